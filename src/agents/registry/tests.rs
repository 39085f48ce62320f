//! Unit tests of the registry module.

use super::*;

const Q: QueueId = QueueId(7);
/// When the test calls started.
const T: Timestamp = Timestamp(1_468_418_331.721);

fn rules() -> Rules {
    Rules {
        first_call_delay: Duration::from_millis(500),
        ack_timeout: Duration::from_secs(15),
        redeliver_unanswered: false,
        reconnect_grace: Duration::from_secs(30),
    }
}

fn info(call: u64) -> NewCall {
    NewCall {
        call: CallId(call),
        media: "CHAT".into(),
        start_date: "2016-07-13T13:58:51.721Z".into(),
        service: "Financeiro".into(),
        caller: "0800".into(),
    }
}

fn due_ids(r: &mut Registry, now: Instant) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = r
        .due(now)
        .into_iter()
        .map(|(s, c)| (s.0, c.call.to_string()))
        .collect();
    v.sort();
    v
}

fn deliver_all(r: &mut Registry, now: Instant) -> usize {
    let due = r.due(now);
    for (s, c) in &due {
        r.delivered(*s, c.call, now);
    }
    due.len()
}

const S1: SocketId = SocketId(1);
const S2: SocketId = SocketId(2);

#[test]
fn changed_sessions_alone_are_looked_at_after_a_change() {
    let t0 = Instant::now();
    let later = t0 + Duration::from_secs(1);
    let mut r = Registry::new(Rules {
        first_call_delay: Duration::ZERO,
        ..rules()
    });
    let maria = AgentId::new("22010");
    let joao = AgentId::new("22011");
    r.attach(S1, "maria", &maria, 1, t0).unwrap();
    r.attach(S2, "joao", &joao, 1, t0).unwrap();
    assert!(r.due_changed(later).is_empty());
    r.call_started(&joao, CallId(7), Q, info(7), T);
    let due: Vec<(u64, String)> = r
        .due_changed(later)
        .into_iter()
        .map(|(s, c)| (s.0, c.call.to_string()))
        .collect();
    assert_eq!(due, vec![(2, "7".into())]);
    assert!(r.due_changed(later).is_empty(), "nothing changed since");
    assert_eq!(
        due_ids(&mut r, later),
        vec![(2, "7".into())],
        "the periodic scan still sees it until delivered"
    );
}

#[test]
fn first_calls_wait_for_the_listener_delay() {
    let t0 = Instant::now();
    let mut r = Registry::new(rules());
    let maria = AgentId::new("22010");
    r.attach(S1, "maria", &maria, 2, t0).unwrap();
    assert!(r.call_started(&maria, CallId(1), Q, info(1), T));
    assert!(due_ids(&mut r, t0 + Duration::from_millis(499)).is_empty());
    assert_eq!(
        due_ids(&mut r, t0 + Duration::from_millis(500)),
        vec![(1, "1".into())]
    );
}

#[test]
fn capacity_caps_offered_calls_and_the_backlog_keeps_arrival_order() {
    let t0 = Instant::now();
    let later = t0 + Duration::from_secs(1);
    let mut r = Registry::new(rules());
    let maria = AgentId::new("22010");
    r.attach(S1, "maria", &maria, 2, t0).unwrap();
    for c in 1..=4 {
        r.call_started(&maria, CallId(c), Q, info(c), T);
    }
    assert_eq!(
        due_ids(&mut r, later),
        vec![(1, "1".into()), (1, "2".into())]
    );
    deliver_all(&mut r, later);
    assert!(r.due(later).is_empty(), "delivered once per socket");
    assert_eq!(
        r.session("maria").unwrap().waiting_calls(),
        vec![CallId(3), CallId(4)]
    );
    r.call_ended(CallId(1));
    assert_eq!(
        due_ids(&mut r, later),
        vec![(1, "3".into())],
        "the oldest waiting call takes the freed slot"
    );
}

#[test]
fn a_new_socket_receives_every_unfinished_call_and_a_repeat_connect_nothing() {
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(1);
    let mut r = Registry::new(rules());
    let maria = AgentId::new("22010");
    r.attach(S1, "maria", &maria, 3, t0).unwrap();
    r.call_started(&maria, CallId(1), Q, info(1), T);
    r.call_started(&maria, CallId(2), Q, info(2), T);
    deliver_all(&mut r, t1);
    r.attach(S1, "maria", &maria, 3, t1).unwrap();
    assert!(
        r.due(t1 + Duration::from_secs(5)).is_empty(),
        "repeated USER_CONNECT re-delivers nothing"
    );
    r.attach(S2, "maria", &maria, 3, t1).unwrap();
    let t2 = t1 + Duration::from_secs(1);
    assert_eq!(due_ids(&mut r, t2), vec![(2, "1".into()), (2, "2".into())]);
}

#[test]
fn one_socket_one_username_and_one_username_per_agent() {
    let t0 = Instant::now();
    let mut r = Registry::new(rules());
    r.attach(S1, "maria", &AgentId::new("22010"), 1, t0)
        .unwrap();
    assert_eq!(
        r.attach(S1, "joao", &AgentId::new("22011"), 1, t0),
        Err(AttachError::OtherUser("maria".into()))
    );
    assert!(matches!(
        r.attach(S2, "impostor", &AgentId::new("22010"), 1, t0),
        Err(AttachError::AgentTaken { .. })
    ));
}

#[test]
fn a_lost_socket_keeps_the_session_for_the_grace_period() {
    let t0 = Instant::now();
    let mut r = Registry::new(rules());
    let maria = AgentId::new("22010");
    r.attach(S1, "maria", &maria, 1, t0).unwrap();
    r.call_started(&maria, CallId(9), Q, info(9), T);
    r.socket_closed(S1, t0);
    assert!(r.expired(t0 + Duration::from_secs(29)).is_empty());
    r.attach(S2, "maria", &maria, 1, t0 + Duration::from_secs(29))
        .unwrap();
    assert!(
        r.expired(t0 + Duration::from_secs(60)).is_empty(),
        "picked up in time"
    );
    assert_eq!(
        due_ids(&mut r, t0 + Duration::from_secs(30)),
        vec![(2, "9".into())]
    );
    r.socket_closed(S2, t0 + Duration::from_secs(40));
    assert_eq!(
        r.expired(t0 + Duration::from_secs(70)),
        vec!["maria".to_string()]
    );
    assert_eq!(r.end_session("maria"), Vec::<SocketId>::new());
    assert!(r.session_of_agent(&maria).is_none());
}

#[test]
fn a_call_ends_once_and_is_not_offered_again() {
    let t0 = Instant::now();
    let mut r = Registry::new(rules());
    let maria = AgentId::new("22010");
    r.attach(S1, "maria", &maria, 1, t0).unwrap();
    r.attach(S2, "maria", &maria, 1, t0).unwrap();
    r.call_started(&maria, CallId(5), Q, info(5), T);
    r.delivered(S1, CallId(5), t0);
    assert_eq!(
        r.call_ended(CallId(5)),
        Some(("maria".into(), vec![S1])),
        "only the socket that was shown the call hears of its end"
    );
    assert_eq!(r.call_ended(CallId(5)), None, "CALL_ENDED once per call");
    assert!(
        !r.call_started(&maria, CallId(5), Q, info(5), T),
        "an ended call is not offered again"
    );
}

#[test]
fn unanswered_calls_are_reported_once_and_redelivered_only_when_asked() {
    let t0 = Instant::now();
    let mut r = Registry::new(rules());
    let maria = AgentId::new("22010");
    r.attach(S1, "maria", &maria, 1, t0).unwrap();
    r.call_started(&maria, CallId(1), Q, info(1), T);
    let t1 = t0 + Duration::from_secs(1);
    deliver_all(&mut r, t1);
    let late = t1 + Duration::from_secs(16);
    assert!(r.due(late).is_empty(), "no redelivery by default");
    assert_eq!(
        r.notices(late),
        vec![Notice::Unanswered {
            username: "maria".into(),
            call: CallId(1)
        }]
    );
    assert!(r.notices(late).is_empty(), "reported once");

    let mut r = Registry::new(Rules {
        redeliver_unanswered: true,
        ..rules()
    });
    r.attach(S1, "maria", &maria, 1, t0).unwrap();
    r.call_started(&maria, CallId(1), Q, info(1), T);
    deliver_all(&mut r, t1);
    assert_eq!(due_ids(&mut r, late), vec![(1, "1".into())]);
    assert!(r.answered(S1, CallId(1)));
    assert!(
        r.due(late).is_empty(),
        "an answered call is not redelivered"
    );
    assert!(!r.answered(S1, CallId(77)));
}

#[test]
fn announcements_older_than_the_bridges_own_pause_are_ignored() {
    let mut r = Registry::new(rules());
    let maria = AgentId::new("22010");
    let t0 = Instant::now();
    r.attach(S1, "maria", &maria, 1, t0).unwrap();
    let told = |x: Option<(String, Vec<SocketId>)>| x.map(|(u, s)| (u, s.len()));
    let paused = Some(PauseReason(3));
    assert_eq!(
        told(r.paused_by_bridge(&maria, paused, t0)),
        Some(("maria".into(), 1))
    );
    // A resume the platform made before it took the bridge's pause, announced late.
    assert_eq!(told(r.paused_by_platform(&maria, None, t0)), None);
    // The pause's own announcement changes nothing the UIs were told.
    assert_eq!(told(r.paused_by_platform(&maria, paused, t0)), None);
    // Later announcements are news.
    let eleven = Some(PauseReason(11));
    assert_eq!(
        told(r.paused_by_platform(&maria, eleven, t0)),
        Some(("maria".into(), 1))
    );
    assert_eq!(r.session("maria").unwrap().paused, eleven);
    // An announcement that never comes is not awaited for ever.
    r.paused_by_bridge(&maria, None, t0);
    let later = t0 + PAUSE_ECHO_WAIT;
    assert_eq!(
        told(r.paused_by_platform(&maria, eleven, later)),
        Some(("maria".into(), 1))
    );
}
