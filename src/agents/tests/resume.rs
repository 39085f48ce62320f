//! A reconnect is not a new login: a socket that hands back its `pid` and last offset, as
//! socket.io-client 4.6+ does by itself, takes its session back with no event from the UI,
//! gets what it missed, and nothing twice; across a restart too.

use super::*;

fn logged_out(platform: &FakePlatform, agent: &str) -> bool {
    platform.asked().contains(&Asked::Logout(agent.to_owned()))
}

/// The platform lists `calls` as the active calls of 22010 in queue 7.
fn platform_has(platform: &FakePlatform, calls: &[u64]) {
    let calls = calls.iter().map(|c| active("22010", *c)).collect();
    platform.set_queues(vec![(QueueId(7), Ok(calls))]);
}

/// A core reconciled with an empty platform, so that it knows it holds what the platform has.
fn synced_bench() -> Bench {
    let bench = Bench::new();
    bench.core.platform_lost();
    bench.core.resync();
    bench
}

/// 22010 logs in with three slots and is shown calls 1 and 2.
async fn shown_calls_1_and_2(bench: &mut Bench) -> Ui {
    let mut ui = bench.login("22010", 3).await;
    bench.start_call("22010", 1);
    bench.start_call("22010", 2);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["1", "2"]);
    ui
}

/// The names of the events, in order.
fn names(events: &[(&'static str, Value)]) -> Vec<&'static str> {
    events.iter().map(|(name, _)| *name).collect()
}

#[tokio::test(start_paused = true)]
async fn a_blip_changes_nothing_the_agent_sees_and_the_gap_is_filled() {
    let mut bench = synced_bench();
    let ui = shown_calls_1_and_2(&mut bench).await;
    assert_eq!(
        bench.sink.offset(ui.id).as_deref(),
        Some("1|22010|1,2"),
        "every event says what the socket shows"
    );

    // The network drops; while the UI is away call 1 ends and call 3 arrives.
    ui.close().await;
    after(Duration::from_secs(1)).await;
    bench.core.call_ended(CallId(1));
    bench.start_call("22010", 3);
    after(Duration::from_secs(2)).await;

    let mut back = bench.reconnect(&ui);
    assert_eq!(
        back.pid, ui.pid,
        "the same pid, so the client knows it recovered"
    );
    after(Duration::from_millis(10)).await;
    let got = back.take();
    assert_eq!(
        names(&got),
        vec!["CALL_ENDED", "NEW_CALL"],
        "what was missed, at once, and nothing already shown: {got:?}"
    );
    assert_eq!(got[0], ended(1));
    assert_eq!(got[1].1["callId"], "3");
    // The socket acts for the session without ever sending USER_CONNECT.
    let reply = back.send(ClientEvent::NewCallAnswered(CallId(3))).await;
    assert_eq!(reply, json!({"callId": "3"}), "{reply}");

    after(Duration::from_secs(60)).await;
    assert!(
        !logged_out(&bench.platform, "22010"),
        "the agent stays logged in"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_before_the_old_connection_is_noticed_gone_takes_the_session_too() {
    let mut bench = synced_bench();
    let mut ui = bench.login("22010", 2).await;
    bench.start_call("22010", 1);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["1"]);

    // The old connection is still attached (its close comes later, after a ping timeout).
    let mut back = bench.reconnect(&ui);
    after(Duration::from_millis(10)).await;
    assert!(
        back.take().is_empty(),
        "nothing shown twice: {:?}",
        back.take()
    );
    bench.start_call("22010", 2);
    after(Duration::from_millis(10)).await;
    assert_eq!(back.new_calls(), vec!["2"]);
    ui.close().await;
    after(Duration::from_secs(60)).await;
    assert!(!logged_out(&bench.platform, "22010"));
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pid_expires_with_the_grace_and_the_ui_goes_back_to_its_login() {
    let mut bench = synced_bench();
    let ui = bench.login("22010", 1).await;
    ui.close().await;
    after(Duration::from_secs(31)).await;
    assert!(logged_out(&bench.platform, "22010"), "the grace ran out");

    let mut back = bench.reconnect(&ui);
    after(Duration::from_millis(10)).await;
    assert_ne!(back.pid, ui.pid, "an expired pid is not given back");
    assert_eq!(
        back.take(),
        vec![("USER_DISCONNECTED", json!({"username": "22010"}))],
        "the screen must not show a session the platform no longer has"
    );
    assert_eq!(
        bench.sink.offset(back.id).as_deref(),
        Some(""),
        "so that the next reconnect names nothing"
    );
    let again = bench.reconnect(&back);
    after(Duration::from_millis(10)).await;
    assert!(again.log_since(0).is_empty());
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pid_nobody_gave_or_another_users_pid_takes_nothing() {
    let mut bench = Bench::with(Settings {
        authenticated: true,
        ..settings()
    });
    bench.core.resync();
    let maria = bench.open(Some("22010"));
    maria.send(connect("22010", 1)).await;

    let forged = bench.open_with(
        None,
        Resume {
            pid: Some("0".repeat(64)),
            offset: Some("1|22010|".into()),
        },
    );
    // Another user's token with maria's pid.
    let other = bench.open_with(
        Some("22011"),
        Resume {
            pid: Some(maria.pid.clone()),
            offset: bench.sink.offset(maria.id),
        },
    );
    after(SETTLE).await;
    {
        let state = bench.core.state();
        assert_eq!(state.registry.username_of(forged.id), None);
        assert_eq!(state.registry.username_of(other.id), None);
    }
    assert_ne!(other.pid, maria.pid);
    assert!(
        forged.log_since(0).is_empty(),
        "the session is live: no farewell"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_the_pid_takes_the_session_back_and_the_gap_is_filled_once_read() {
    let (store, platform, mut bench) = first_start(settings()).await;
    let ui = shown_calls_1_and_2(&mut bench).await;
    assert_eq!(
        store.saved().pids.len(),
        1,
        "the pid is stored with the login"
    );
    let offset = bench.sink.offset(ui.id);
    bench.stop().await;

    // While no bridge runs, call 1 ends and call 3 is assigned.
    platform_has(&platform, &[2, 3]);
    let mut bench = Bench::on_store(settings(), platform.clone(), &store).await;
    // The UI reconnects before the new process has read the platform.
    let mut back = bench.open_with(
        None,
        Resume {
            pid: Some(ui.pid.clone()),
            offset,
        },
    );
    after(Duration::from_millis(10)).await;
    assert_eq!(back.pid, ui.pid);
    assert_eq!(
        bench.core.state().registry.username_of(back.id),
        Some("22010"),
        "the session is back at once"
    );
    assert!(
        back.take().is_empty(),
        "nothing is said before the platform is read"
    );
    bench.core.resync();
    after(Duration::from_millis(10)).await;
    let got = back.take();
    assert_eq!(names(&got), vec!["NEW_CALL", "CALL_ENDED"], "{got:?}");
    assert_eq!(got[0].1["callId"], "3");
    assert_eq!(got[1], ended(1));
    after(Duration::from_secs(60)).await;
    assert!(!logged_out(&platform, "22010"));
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_session_that_ends_forgets_its_pids() {
    let (store, _platform, mut bench) = first_start(settings()).await;
    let ui = bench.login("22010", 1).await;
    let reply = ui.send(ClientEvent::UserDisconnect(None)).await;
    assert_eq!(reply, json!({"username": "22010"}), "{reply}");
    after(Duration::from_millis(10)).await;
    assert!(store.saved().pids.is_empty(), "{:?}", store.saved().pids);
    let back = bench.reconnect(&ui);
    assert_ne!(back.pid, ui.pid);
    assert_eq!(bench.core.state().registry.username_of(back.id), None);
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_at_the_very_end_of_the_grace_keeps_the_session_or_is_told_it_ended() {
    let mut bench = synced_bench();
    let ui = bench.login("22010", 1).await;
    ui.close().await;
    after(Duration::from_millis(29_950)).await;
    let back = bench.reconnect(&ui);
    assert_eq!(back.pid, ui.pid, "taken back just before the grace ends");
    after(Duration::from_secs(60)).await;
    assert!(!logged_out(&bench.platform, "22010"));

    // Gone again; this time the grace runs out and its logout is still with the platform
    // when the UI comes back.
    back.close().await;
    let logout = bench.platform.hold("logout");
    after(Duration::from_millis(30_100)).await;
    let mut late = bench.reconnect(&back);
    after(Duration::from_millis(10)).await;
    assert_ne!(late.pid, back.pid);
    assert_eq!(
        late.take(),
        vec![("USER_DISCONNECTED", json!({"username": "22010"}))],
        "the screen follows the platform, which is logging the agent out"
    );
    logout.release(Ok(()));
    after(Duration::from_millis(10)).await;
    assert!(logged_out(&bench.platform, "22010"));
    bench.stop().await;
}
