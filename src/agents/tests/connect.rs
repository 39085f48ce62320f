//! USER_CONNECT: who may log in as whom, what the platform is asked, what the UI is told.

use serde_json::{Value, json};

use super::*;
use crate::agents::event::{ClientEventKind, Echo, Scalar};
use crate::agents::refusal::PayloadError;

#[tokio::test(start_paused = true)]
async fn a_login_asks_the_platform_and_echoes_the_applied_capacity_as_a_number() {
    let mut bench = Bench::new();
    let mut ui = bench.open(None);
    let reply = ui.send(connect("22010", 3)).await;
    assert_eq!(reply, json!({"username": "22010", "maxCalls": 3}));
    assert_eq!(ui.take(), vec![("USER_CONNECTED", reply)]);
    assert_eq!(
        bench.platform.asked(),
        vec![Asked::CheckAgent("22010".into())]
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unknown_agent_is_refused_with_the_platforms_reason_and_its_room_left() {
    let mut bench = Bench::new();
    bench.platform.fail(
        "check",
        PlatformError::Status {
            status: 404,
            params: json!({}),
        },
    );
    let mut ui = bench.open(None);
    let reply = ui.send(connect("99999", 1)).await;
    assert_eq!(
        reply,
        json!({"username": "99999", "maxCalls": 1,
               "error": "agent 99999 is not known to the platform (404)"})
    );
    assert_eq!(ui.take(), vec![("USER_CONNECTION_ERROR", reply)]);
    after(SETTLE).await;
    assert_eq!(
        bench.platform.asked(),
        vec![
            Asked::CheckAgent("99999".into()),
            Asked::Leave("99999".into())
        ]
    );
    // Not logged in: an event that needs a session is refused.
    let reply = ui.send(ClientEvent::EndCall(CallId(1))).await;
    assert_eq!(reply["error"], "not connected: send USER_CONNECT first");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_bad_payload_is_refused_with_what_was_sent_and_nothing_asked() {
    let mut bench = Bench::new();
    let mut ui = bench.open(None);
    let reply = ui
        .send(ClientEvent::Invalid {
            kind: ClientEventKind::UserConnect,
            error: PayloadError::UsernameInvalid,
            echo: Echo {
                username: Some(Scalar::Text("a@b".into())),
                max_calls: Some(Scalar::Text("x".into())),
                call_id: None,
            },
        })
        .await;
    assert_eq!(
        reply,
        json!({"username": "a@b", "maxCalls": "x",
               "error": "username must be 1-64 characters of A-Z a-z 0-9 . _ -"})
    );
    assert_eq!(ui.take()[0].0, "USER_CONNECTION_ERROR");
    assert!(bench.platform.asked().is_empty());
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn with_tokens_a_socket_logs_in_only_as_the_name_its_token_proves() {
    let mut bench = Bench::with(Settings {
        authenticated: true,
        ..settings()
    });
    let ui = bench.open(Some("22010"));
    let reply = ui.send(connect("22011", 1)).await;
    assert_eq!(reply["error"], "this connection's token is not for 22011");
    assert!(
        bench.platform.asked().is_empty(),
        "never reaches the platform"
    );
    let reply = ui.send(connect("22010", 1)).await;
    assert_eq!(reply, json!({"username": "22010", "maxCalls": 1}));
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_repeated_login_on_the_same_socket_is_answered_again_without_new_calls() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 2).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    let reply = ui.send(connect("22010", 2)).await;
    assert_eq!(reply, json!({"username": "22010", "maxCalls": 2}));
    after(SETTLE).await;
    assert_eq!(
        ui.take(),
        vec![("USER_CONNECTED", reply)],
        "no NEW_CALL again"
    );
    assert_eq!(
        bench.platform.asked(),
        vec![Asked::CheckAgent("22010".into())],
        "asked once"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_socket_acts_for_one_username_and_one_username_holds_an_agent() {
    let mut ids = std::collections::BTreeMap::new();
    ids.insert("maria".to_owned(), AgentId::new("22010"));
    let mut bench = Bench::with(Settings { ids, ..settings() });
    let maria = bench.login("maria", 1).await;
    let reply = maria.send(connect("joao", 1)).await;
    assert_eq!(
        reply["error"],
        "this connection is already logged in as maria; send USER_DISCONNECT first"
    );
    let other = bench.open(None);
    let reply = other.send(connect("22010", 1)).await;
    assert_eq!(reply["error"], "agent 22010 is already connected as maria");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_socket_s_events_are_handled_in_the_order_sent() {
    let mut bench = Bench::new();
    let held = bench.platform.hold("check");
    let mut ui = bench.open(None);
    // Sent back to back while the login is still with the platform.
    let login = ui.send_later(connect("22010", 1)).await;
    let logout = ui.send_later(ClientEvent::UserDisconnect(None)).await;
    after(SETTLE).await;
    assert!(
        ui.take().is_empty(),
        "nothing answered while the login is pending"
    );
    held.release(Ok(()));
    assert_eq!(login.await.unwrap()["maxCalls"], 1);
    assert_eq!(logout.await.unwrap(), json!({"username": "22010"}));
    let names: Vec<_> = ui.take().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["USER_CONNECTED", "USER_DISCONNECTED"]);
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unknown_events_are_answered_and_change_nothing() {
    let mut bench = Bench::new();
    let mut ui = bench.open(None);
    let reply = ui.send(ClientEvent::Unknown("HELLO".into())).await;
    assert_eq!(reply, json!({"error": "unknown event HELLO"}));
    assert!(ui.take().is_empty());
    assert!(bench.platform.asked().is_empty());
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_call_assigned_while_the_login_is_in_flight_is_delivered_after_it() {
    let mut bench = Bench::new();
    let held = bench.platform.hold("check");
    let mut ui = bench.open(None);
    let login = ui.send_later(connect("22010", 1)).await;
    after(Duration::from_millis(10)).await;
    bench.start_call("22010", 5);
    held.release(Ok(()));
    assert_eq!(login.await.unwrap()["username"], "22010");
    after(SETTLE).await;
    let names: Vec<_> = ui
        .take()
        .into_iter()
        .map(|(n, p)| (n, p["callId"].clone()))
        .collect();
    assert_eq!(
        names,
        vec![("USER_CONNECTED", Value::Null), ("NEW_CALL", json!("5"))]
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_socket_that_floods_the_bridge_gets_every_event_answered_in_order() {
    let mut bench = Bench::new();
    let held = bench.platform.hold("check");
    let ui = bench.open(None);
    ui.send_only(connect("22010", 1)).await;
    after(Duration::from_millis(10)).await;
    let mut answers = Vec::new();
    for _ in 0..300 {
        answers.push(ui.send_later(ClientEvent::Unknown("X".into())).await);
    }
    // Nothing is answered ahead of the event being handled, and nothing is dropped.
    assert!(answers.iter_mut().all(|a| a.try_recv().is_err()));
    held.release(Ok(()));
    after(Duration::from_millis(10)).await;
    let errors: Vec<String> = answers
        .iter_mut()
        .map(|a| a.try_recv().expect("every event is answered")["error"].to_string())
        .collect();
    let inbox = crate::agents::state::INBOX;
    assert!(
        errors[..inbox]
            .iter()
            .all(|e| e.contains("unknown event X"))
    );
    assert!(errors[inbox..].iter().all(|e| e.contains("overloaded")));
    // The socket is served again.
    assert_eq!(
        ui.send(ClientEvent::Unknown("LAST".into())).await["error"],
        "unknown event LAST"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_socket_that_sends_faster_than_it_reads_gets_every_answer_once_it_reads() {
    let mut bench = Bench::new();
    let ui = bench.login("22010", 1).await;
    ui.set_full(true);
    let mut answers = Vec::new();
    for _ in 0..200 {
        answers.push(ui.send_later(ClientEvent::Unknown("X".into())).await);
    }
    after(Duration::from_secs(2)).await;
    assert!(!ui.dropped(), "a socket is given time to read");
    ui.set_full(false);
    after(Duration::from_millis(500)).await;
    assert!(
        answers.iter_mut().all(|a| a.try_recv().is_ok()),
        "every event is answered once the socket reads"
    );
    assert!(!ui.dropped());
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_socket_that_never_reads_is_dropped_after_the_stall_limit() {
    let mut bench = Bench::new();
    let ui = bench.login("22010", 1).await;
    ui.set_full(true);
    let _answer = ui.send_later(ClientEvent::Unknown("X".into())).await;
    let _next = ui.send_later(ClientEvent::Unknown("Y".into())).await;
    after(crate::agents::inbox::STALL_AFTER - Duration::from_millis(100)).await;
    assert!(!ui.dropped());
    after(Duration::from_millis(200)).await;
    assert!(
        ui.dropped(),
        "dropped once it has read nothing for the stall limit"
    );
    assert!(!ui.closed(), "not even the close fits in the buffer");
    ui.set_full(false);
    after(Duration::from_millis(200)).await;
    assert!(ui.closed(), "the close goes out once it fits");
    let mut again = bench.login("22010", 1).await;
    after(SETTLE).await;
    assert!(
        again
            .take()
            .iter()
            .all(|(name, _)| *name != "USER_DISCONNECTED")
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_finishes_the_events_taken_and_refuses_new_ones() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    ui.new_calls();
    let held = bench.platform.hold("end");
    let in_flight = ui.send_later(ClientEvent::EndCall(CallId(5))).await;
    after(Duration::from_millis(10)).await;
    let core = bench.core.clone();
    let drained = tokio::spawn(async move { core.drain().await });
    after(Duration::from_millis(10)).await;
    assert!(!drained.is_finished(), "an END_CALL is still in flight");
    // Without an acknowledgement the refusal comes as the event's own error event.
    ui.send_only(ClientEvent::EndCall(CallId(5))).await;
    assert_eq!(
        ui.take(),
        vec![(
            "END_CALL_ERROR",
            json!({"callId": "5", "error": "the bridge is restarting; try again in a moment"})
        )]
    );
    held.release(Ok(()));
    bench.core.call_ended(CallId(5));
    assert_eq!(in_flight.await.unwrap(), json!({"callId": "5"}));
    drained
        .await
        .expect("the drain ends once the END_CALL is answered");
    bench.stop().await;
}
