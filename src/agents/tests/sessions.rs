//! USER_DISCONNECT, lost sockets and the reconnect grace, several sockets of one session.

use serde_json::json;

use super::*;

#[tokio::test(start_paused = true)]
async fn logging_out_applies_on_disconnect_then_stops_delivering() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    let reply = ui
        .send(ClientEvent::UserDisconnect(Some("22010".into())))
        .await;
    assert_eq!(reply, json!({"username": "22010"}));
    assert_eq!(ui.take(), vec![("USER_DISCONNECTED", reply)]);
    assert_eq!(
        bench.platform.asked()[1..],
        [Asked::Logout("22010".into()), Asked::Leave("22010".into())]
    );
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert!(ui.take().is_empty(), "no session, no call");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn pause_and_none_policies_ask_for_a_pause_or_nothing() {
    let mut bench = Bench::with(Settings {
        on_disconnect: OnDisconnect::Pause(PauseReason(4)),
        ..settings()
    });
    let ui = bench.login("22010", 1).await;
    ui.send(ClientEvent::UserDisconnect(None)).await;
    assert_eq!(bench.platform.asked()[1], Asked::Pause("22010".into(), 4));
    bench.stop().await;

    let mut bench = Bench::with(Settings {
        on_disconnect: OnDisconnect::None,
        ..settings()
    });
    let ui = bench.login("22010", 1).await;
    let reply = ui.send(ClientEvent::UserDisconnect(None)).await;
    assert_eq!(reply, json!({"username": "22010"}));
    assert_eq!(
        bench.platform.asked()[1..],
        [Asked::Leave("22010".into())],
        "nothing asked of the agent"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_logout_leaves_the_session_as_it_was() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    bench
        .platform
        .fail("logout", PlatformError::Timeout(Duration::from_secs(10)));
    let reply = ui.send(ClientEvent::UserDisconnect(None)).await;
    assert_eq!(
        reply,
        json!({"username": "22010", "error": "the platform did not answer within 10s"})
    );
    assert_eq!(ui.take()[0].0, "USER_DISCONNECTION_ERROR");
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"], "still connected");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_logout_names_the_socket_s_own_user_or_nobody() {
    let mut bench = Bench::new();
    let stranger = bench.open(None);
    let reply = stranger
        .send(ClientEvent::UserDisconnect(Some("22010".into())))
        .await;
    assert_eq!(
        reply,
        json!({"username": "22010", "error": "not connected: send USER_CONNECT first"})
    );
    let ui = bench.login("22010", 1).await;
    let reply = ui
        .send(ClientEvent::UserDisconnect(Some("22011".into())))
        .await;
    assert_eq!(reply["error"], "this connection is logged in as 22010");
    assert!(
        !bench
            .platform
            .asked()
            .contains(&Asked::Logout("22010".into()))
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_socket_keeps_its_session_for_the_grace_and_a_new_socket_gets_its_calls() {
    let mut bench = Bench::new();
    let ui = bench.login("22010", 2).await;
    bench.start_call("22010", 5);
    ui.close().await;
    after(Duration::from_secs(29)).await;
    bench.start_call("22010", 6);
    let mut again = bench.login("22010", 2).await;
    after(SETTLE).await;
    assert_eq!(again.new_calls(), vec!["5", "6"]);
    after(Duration::from_secs(60)).await;
    assert!(
        !bench
            .platform
            .asked()
            .contains(&Asked::Logout("22010".into())),
        "picked up in time: never logged out"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_session_nobody_reclaims_is_ended_on_the_platform_after_the_grace() {
    let mut bench = Bench::new();
    let ui = bench.login("22010", 1).await;
    ui.close().await;
    after(Duration::from_millis(29_800)).await;
    assert!(
        !bench
            .platform
            .asked()
            .contains(&Asked::Logout("22010".into()))
    );
    after(Duration::from_millis(400)).await;
    assert_eq!(
        bench.platform.asked()[1..],
        [Asked::Logout("22010".into()), Asked::Leave("22010".into())]
    );
    // The session is gone: a new login is a new session, checked with the platform again.
    bench.login("22010", 1).await;
    assert_eq!(
        bench.platform.asked().last(),
        Some(&Asked::CheckAgent("22010".into()))
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_event_sent_just_before_the_close_is_handled_at_once() {
    let mut bench = Bench::new();
    let ui = bench.login("22010", 1).await;
    ui.send_only(ClientEvent::UserDisconnect(None)).await;
    ui.close().await;
    after(Duration::from_millis(100)).await;
    assert_eq!(
        bench.platform.asked()[1..],
        [Asked::Logout("22010".into()), Asked::Leave("22010".into())],
        "logged out now, not after the grace"
    );
    after(Duration::from_secs(60)).await;
    assert_eq!(bench.platform.asked().len(), 3, "and only once");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn every_socket_of_a_session_sees_its_calls_once() {
    let mut bench = Bench::new();
    let mut tab1 = bench.login("22010", 2).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(tab1.new_calls(), vec!["5"]);
    let mut tab2 = bench.login("22010", 2).await;
    after(SETTLE).await;
    assert_eq!(
        tab2.new_calls(),
        vec!["5"],
        "a new socket receives the unfinished call"
    );
    assert!(
        tab1.take().is_empty(),
        "the first socket does not receive it twice"
    );
    bench.core.call_ended(CallId(5));
    assert_eq!(tab1.take(), vec![ended(5)]);
    assert_eq!(tab2.take(), vec![ended(5)]);
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_login_at_the_very_end_of_the_grace_waits_for_the_old_session_s_end() {
    let mut bench = Bench::new();
    let ui = bench.login("22010", 1).await;
    ui.close().await;
    let logout = bench.platform.hold("logout");
    // The grace runs out; its logout is with the platform when the UI comes back.
    after(Duration::from_millis(30_100)).await;
    assert_eq!(
        bench.platform.asked().last(),
        Some(&Asked::Logout("22010".into()))
    );
    let mut again = bench.open(None);
    let login = again.send_later(connect("22010", 1)).await;
    after(Duration::from_millis(100)).await;
    assert_eq!(
        bench.platform.asked().last(),
        Some(&Asked::Logout("22010".into())),
        "the new login waits for the old session's end"
    );
    logout.release(Ok(()));
    assert_eq!(
        login.await.unwrap(),
        json!({"username": "22010", "maxCalls": 1})
    );
    assert_eq!(
        bench.platform.asked()[1..],
        [
            Asked::Logout("22010".into()),
            Asked::Leave("22010".into()),
            Asked::CheckAgent("22010".into()),
        ],
        "the room is joined again after it was left, never before"
    );
    // The new session is whole: calls reach it, and it can log out.
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(again.new_calls(), vec!["5"]);
    let reply = again.send(ClientEvent::UserDisconnect(None)).await;
    assert_eq!(reply, json!({"username": "22010"}));
    bench.stop().await;
}
