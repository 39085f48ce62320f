//! The platform's word on the agent's session: `UserSessionDidFinish` ends the bridge
//! session and sends its UIs back to their login, unless it is older than the session.

use super::*;

/// A logout announced `secs` after the status the session was confirmed with.
fn finished_at(secs: f64) -> Timestamp {
    Timestamp(STATUS_SINCE.0 + secs)
}

fn disconnected(username: &str) -> (&'static str, Value) {
    ("USER_DISCONNECTED", json!({"username": username}))
}

#[tokio::test(start_paused = true)]
async fn a_logout_at_the_phone_ends_the_session_and_every_ui_goes_back_to_its_login() {
    let (store, platform, mut bench) = first_start(settings()).await;
    let mut tab = bench.login("22010", 2).await;
    let mut other_tab = bench.open(None);
    other_tab.send(connect("22010", 2)).await;
    other_tab.take();
    bench.start_call("22010", 5);
    after(SETTLE).await;
    tab.take();
    other_tab.take();

    bench
        .core
        .session_finished(&AgentId::new("22010"), finished_at(60.0));
    after(Duration::from_millis(10)).await;
    assert_eq!(tab.take(), vec![disconnected("22010")]);
    assert_eq!(other_tab.take(), vec![disconnected("22010")]);
    assert!(bench.core.state().registry.session("22010").is_none());
    assert!(store.saved().sessions.is_empty() && store.saved().pids.is_empty());
    let asked = platform.asked();
    assert!(asked.contains(&Asked::Leave("22010".into())), "{asked:?}");
    assert!(
        !asked.contains(&Asked::Logout("22010".into())),
        "the platform did it already: {asked:?}"
    );
    // The UI's next events are those of a socket with no session.
    let reply = tab.send(ClientEvent::EndCall(CallId(5))).await;
    assert_eq!(reply["error"], "not connected: send USER_CONNECT first");
    // And a reconnect of it names nothing.
    let back = bench.reconnect(&tab);
    after(Duration::from_millis(10)).await;
    assert!(back.log_since(0).is_empty());
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_older_logout_never_ends_a_newer_session() {
    let mut bench = Bench::new();
    let ui = bench.login("22010", 1).await;
    ui.close().await;
    let logout = bench.platform.hold("logout");
    after(Duration::from_millis(30_100)).await;
    // The UI logs in again at the very end of the grace, while the old logout is under way.
    let mut again = bench.open(None);
    let login = again.send_later(connect("22010", 1)).await;
    after(Duration::from_millis(10)).await;
    logout.release(Ok(()));
    // The platform's status, asked after the logout, is that recent.
    bench.platform.set_status_since(finished_at(30.0));
    assert_eq!(
        login.await.unwrap(),
        json!({"username": "22010", "maxCalls": 1})
    );
    again.take();
    // The old session's logout is announced after the new login.
    bench
        .core
        .session_finished(&AgentId::new("22010"), finished_at(30.0));
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(again.new_calls(), vec!["5"], "the new session is untouched");
    assert!(bench.core.state().registry.session("22010").is_some());
    // A logout after the login does end it.
    bench
        .core
        .session_finished(&AgentId::new("22010"), finished_at(31.0));
    after(Duration::from_millis(10)).await;
    assert_eq!(again.take(), vec![disconnected("22010")]);
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_bridge_s_own_logout_is_told_once() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    let logout = bench.platform.hold("logout");
    let reply = ui.send_later(ClientEvent::UserDisconnect(None)).await;
    after(Duration::from_millis(10)).await;
    // The platform announces the logout before it answers the request.
    bench
        .core
        .session_finished(&AgentId::new("22010"), finished_at(5.0));
    logout.release(Ok(()));
    assert_eq!(reply.await.unwrap(), json!({"username": "22010"}));
    after(Duration::from_millis(10)).await;
    assert_eq!(ui.take(), vec![disconnected("22010")]);
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_logout_of_an_agent_without_a_session_changes_nothing() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    bench
        .core
        .session_finished(&AgentId::new("22011"), finished_at(5.0));
    after(Duration::from_millis(10)).await;
    assert!(ui.take().is_empty());
    assert!(bench.core.state().registry.session("22010").is_some());
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_logout_announced_while_the_login_is_checked_ends_the_new_session_too() {
    let mut bench = Bench::new();
    let mut ui = bench.open(None);
    let check = bench.platform.hold("check");
    let login = ui.send_later(connect("22010", 1)).await;
    after(Duration::from_millis(10)).await;
    // The platform answered with a status, then logged the agent out; the event arrives
    // before the answer.
    bench
        .core
        .session_finished(&AgentId::new("22010"), finished_at(2.0));
    check.release(Ok(()));
    assert_eq!(
        login.await.unwrap(),
        json!({"username": "22010", "maxCalls": 1})
    );
    after(Duration::from_millis(10)).await;
    let got = ui.take();
    assert_eq!(
        got.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        vec!["USER_CONNECTED", "USER_DISCONNECTED"],
        "{got:?}"
    );
    assert!(bench.core.state().registry.session("22010").is_none());
    bench.stop().await;
}
