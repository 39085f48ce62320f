//! Unit tests of the BOSH session.

use super::super::WAIT;
use super::*;
use crate::config::HttpUrl;
use crate::xmpp::ConnectSettings;

fn session() -> BoshSession {
    let url = HttpUrl::parse("http://127.0.0.1:1/http-bind").expect("valid");
    let settings = ConnectSettings {
        jid: "bridge@converja.test".parse().expect("valid"),
        password: crate::config::Secret::new("x"),
        endpoint: crate::xmpp::Endpoint::Bosh(url.clone()),
        ca_file: None,
        connect_timeout: Duration::from_secs(1),
        resource: "r".into(),
        self_ping_every: Duration::from_secs(120),
    };
    let params = SessionParams {
        sid: "s1".into(),
        requests: 2,
        hold: 1,
        wait: WAIT,
        polling: Duration::ZERO,
    };
    let http = Http::new(&url, &settings).expect("plain http");
    BoshSession::new(Arc::new(http), params, 11)
}

fn answer(payload: &str) -> Element {
    format!("<body xmlns='{NS_HTTPBIND}'>{payload}</body>")
        .parse()
        .expect("xml")
}

#[test]
fn answers_are_passed_on_in_rid_order_whatever_order_they_arrive_in() {
    let mut s = session();
    let first = "<message xmlns='jabber:client' id='a'/>";
    let second = "<message xmlns='jabber:client' id='b'/>";
    s.settle(12, answer(second)).expect("alive");
    assert!(s.inbound.is_empty(), "rid 12 waits for rid 11");
    s.settle(11, answer(first)).expect("alive");
    let text = String::from_utf8(s.inbound.clone()).expect("utf-8");
    let (a, b) = (text.find("id='a'"), text.find("id='b'"));
    assert!(a.is_some() && a < b, "{text}");
    assert!(s.received.is_empty());
}

#[test]
fn a_terminate_answer_ends_the_session_with_its_condition() {
    let mut s = session();
    let body: Element =
        format!("<body xmlns='{NS_HTTPBIND}' type='terminate' condition='item-not-found'/>")
            .parse()
            .expect("xml");
    let err = s.settle(11, body).expect_err("ended");
    assert!(err.contains("item-not-found"), "{err}");
}

#[test]
fn no_rid_goes_beyond_the_window_of_the_oldest_unanswered_request() {
    let mut s = session();
    let mut in_flight = InFlight::new();
    let queue_one = |s: &mut BoshSession| s.enqueue(b"<presence xmlns='jabber:client'/>".to_vec());
    queue_one(&mut s);
    assert!(s.issue(&mut in_flight).is_some(), "rid 11");
    queue_one(&mut s);
    assert!(s.issue(&mut in_flight).is_some(), "rid 12");
    // 12 is answered while 11 is still being retransmitted.
    s.unanswered.remove(&12);
    queue_one(&mut s);
    assert!(s.issue(&mut in_flight).is_none(), "rid 13 waits for rid 11");
    s.unanswered.remove(&11);
    assert!(
        s.issue(&mut in_flight).is_some(),
        "rid 13 once 11 is answered"
    );
    assert_eq!(s.unanswered.iter().copied().collect::<Vec<_>>(), vec![13]);
}

#[test]
fn stanzas_do_not_follow_an_unanswered_request_too_closely() {
    let mut s = session();
    let mut in_flight = InFlight::new();
    s.enqueue(b"<presence xmlns='jabber:client'/>".to_vec());
    assert!(
        s.issue(&mut in_flight).is_some(),
        "nothing before: sent at once"
    );
    s.last_sent = Some(Instant::now());
    s.enqueue(b"<presence xmlns='jabber:client'/>".to_vec());
    assert!(s.guarded_until().is_some());
    assert!(
        s.issue(&mut in_flight).is_none(),
        "rid 11 was sent just now"
    );
    s.last_sent = Some(Instant::now() - ORDER_GUARD * 2);
    assert!(
        s.issue(&mut in_flight).is_some(),
        "rid 11 has had time to arrive"
    );
    // Once the request before is answered, the server has seen it: no wait.
    s.unanswered.clear();
    s.last_sent = Some(Instant::now());
    s.enqueue(b"<presence xmlns='jabber:client'/>".to_vec());
    assert!(s.guarded_until().is_none());
}

#[test]
fn queued_stanzas_are_batched_up_to_the_payload_limit() {
    let mut s = session();
    let stanza = |n: usize| format!("<message xmlns='jabber:client' id='{n}'/>");
    for n in 0..3 {
        s.enqueue(stanza(n).into_bytes());
    }
    let body = String::from_utf8(s.payload_body(11, None)).expect("utf-8");
    assert!(body.starts_with(&format!("<body xmlns='{NS_HTTPBIND}' rid='11' sid='s1'>")));
    assert_eq!(body.matches("<message").count(), 3, "{body}");
    assert_eq!((s.queue.len(), s.queued), (0, 0));
    let big = "x".repeat(MAX_PAYLOAD);
    for _ in 0..2 {
        s.enqueue(big.clone().into_bytes());
    }
    let body = s.payload_body(12, Some("terminate"));
    assert!(
        body.len() < 2 * MAX_PAYLOAD,
        "one oversized stanza per body"
    );
    assert_eq!(s.queue.len(), 1);
    assert_eq!(s.queued, MAX_PAYLOAD);
}
