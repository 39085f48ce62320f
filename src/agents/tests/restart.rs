//! Restarts: a new core over the same store and the same platform, as a bridge restarted in
//! front of agents it was serving.

use super::*;

fn with_tokens() -> Settings {
    Settings {
        authenticated: true,
        ..settings()
    }
}

/// The platform lists `calls` as the active calls of 22010 in queue 7.
fn platform_has(platform: &FakePlatform, calls: &[u64]) {
    let calls = calls.iter().map(|c| active("22010", *c)).collect();
    platform.set_queues(vec![(QueueId(7), Ok(calls))]);
}

/// The restarted core, reconciled with the platform as it is once ready.
async fn restart(settings: Settings, platform: &FakePlatform, store: &Arc<MemoryStore>) -> Bench {
    let bench = Bench::on_store(settings, platform.clone(), store).await;
    bench.core.resync();
    after(Duration::from_millis(100)).await;
    bench
}

/// 22010 logs in with one slot, is shown call 5 and rejects it.
async fn reject_call_5(bench: &mut Bench) -> Ui {
    let mut ui = bench.login("22010", 1).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    ui.send(ClientEvent::NewCallError {
        call: CallId(5),
        reason: "busy".into(),
    })
    .await;
    ui
}

fn logged_out(platform: &FakePlatform) -> bool {
    platform
        .asked()
        .contains(&Asked::Logout("22010".to_owned()))
}

#[tokio::test(start_paused = true)]
async fn a_ui_that_logs_in_again_gets_its_calls_including_those_started_meanwhile() {
    let (store, platform, mut bench) = first_start(settings()).await;
    let mut ui = bench.login("22010", 2).await;
    assert_eq!(
        store.saved().sessions.len(),
        1,
        "stored before USER_CONNECTED"
    );
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    bench.stop().await;

    // Call 6 started while no bridge was running.
    platform_has(&platform, &[5, 6]);
    let mut bench = restart(settings(), &platform, &store).await;
    let checks = platform
        .asked()
        .iter()
        .filter(|a| **a == Asked::CheckAgent("22010".into()))
        .count();
    assert_eq!(checks, 2, "the restored agent's room is joined again");
    let mut ui = bench.login("22010", 2).await;
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5", "6"]);
    assert!(!logged_out(&platform));
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn with_tokens_a_reconnecting_socket_gets_its_session_without_user_connect() {
    let (store, platform, mut bench) = first_start(with_tokens()).await;
    let ui = bench.open(Some("22010"));
    ui.send(connect("22010", 1)).await;
    bench.stop().await;

    platform_has(&platform, &[5]);
    let mut bench = restart(with_tokens(), &platform, &store).await;
    let mut stranger = bench.open(Some("22011"));
    let mut ui = bench.open(Some("22010"));
    after(SETTLE).await;
    assert_eq!(
        ui.new_calls(),
        vec!["5"],
        "delivered with no event from the UI"
    );
    assert!(stranger.take().is_empty());
    assert_eq!(
        store.saved().sessions[0].orphaned_at,
        None,
        "stored as attached again"
    );
    // The socket acts for the session like any other.
    let reply = ui.send(ClientEvent::NewCallAnswered(CallId(5))).await;
    assert_eq!(reply, json!({"callId": "5"}), "{reply}");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restored_session_nobody_reclaims_gets_on_disconnect_after_the_grace() {
    let (store, platform, mut bench) = first_start(settings()).await;
    bench.login("22010", 1).await;
    bench.stop().await;

    let bench = restart(settings(), &platform, &store).await;
    after(Duration::from_secs(29)).await;
    assert!(!logged_out(&platform), "the grace is not over");
    after(Duration::from_secs(2)).await;
    assert!(logged_out(&platform), "{:?}", platform.asked());
    assert!(store.saved().sessions.is_empty(), "forgotten once ended");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejected_call_stays_rejected_after_a_restart() {
    let (store, platform, mut bench) = first_start(settings()).await;
    reject_call_5(&mut bench).await;
    assert_eq!(
        store
            .saved()
            .rejected
            .iter()
            .map(|r| r.call)
            .collect::<Vec<_>>(),
        vec![CallId(5)],
        "stored before the acknowledgement"
    );
    bench.stop().await;

    // The platform still routes call 5 to the agent.
    platform_has(&platform, &[5]);
    let mut bench = restart(settings(), &platform, &store).await;
    let mut ui = bench.login("22010", 1).await;
    after(SETTLE).await;
    assert!(ui.new_calls().is_empty());
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_login_the_store_cannot_record_is_refused_and_nothing_is_half_done() {
    let (store, platform, mut bench) = first_start(settings()).await;
    store.fail(true);
    let mut ui = bench.open(None);
    let reply = ui.send(connect("22010", 1)).await;
    assert_eq!(
        reply["error"], "the bridge cannot record your session right now; try again in a moment",
        "{reply}"
    );
    assert!(bench.core.state().registry.session("22010").is_none());
    assert!(
        platform.asked().contains(&Asked::Leave("22010".into())),
        "the room joined for the check is left"
    );
    ui.take();
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert!(ui.take().is_empty(), "no call reaches a refused login");

    store.fail(false);
    let reply = ui.send(connect("22010", 1)).await;
    assert_eq!(reply, json!({"username": "22010", "maxCalls": 1}));
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn changes_nobody_waits_for_are_written_once_the_store_is_back() {
    let (store, _platform, mut bench) = first_start(settings()).await;
    let ui = bench.login("22010", 1).await;
    store.fail(true);
    ui.close().await;
    after(Duration::from_secs(1)).await;
    assert_eq!(
        store.saved().sessions[0].orphaned_at,
        None,
        "not written yet"
    );
    store.fail(false);
    after(Duration::from_secs(2)).await;
    assert!(store.saved().sessions[0].orphaned_at.is_some());
    bench.stop().await;
}

/// `CallDidStart` of `call` for 22010, `later` seconds after the test calls' usual start.
fn started_later(call: u64, later: f64) -> CallDidStart {
    let start = started("22010", call);
    CallDidStart {
        timestamp: Timestamp(start.timestamp.0 + later),
        ..start
    }
}

#[tokio::test(start_paused = true)]
async fn a_rejection_lasts_while_the_platform_has_the_call_and_a_reused_id_is_a_new_call() {
    let (store, _platform, mut bench) = first_start(settings()).await;
    let mut ui = reject_call_5(&mut bench).await;
    // The same call announced again is still hidden.
    bench.core.call_started(&started("22010", 5));
    after(SETTLE).await;
    assert!(ui.new_calls().is_empty());

    // The platform ends it: the rejection is forgotten, in memory and in the store.
    bench.core.call_ended(CallId(5));
    after(Duration::from_millis(10)).await;
    assert!(
        store.saved().rejected.is_empty(),
        "{:?}",
        store.saved().rejected
    );
    // A platform restarted with its ids starting again gives the agent a new call 5.
    bench.core.call_started(&started_later(5, 3_600.0));
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"], "a reused id is not hidden");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_a_rejection_never_hides_a_newer_call_with_its_id() {
    let (store, platform, mut bench) = first_start(settings()).await;
    reject_call_5(&mut bench).await;
    bench.stop().await;

    // A fresh platform: call 5 is another call, started an hour later.
    let mut reused = active("22010", 5);
    reused.timestamps.answer = Some(Timestamp(1_468_418_331.721 + 3_600.0));
    platform.set_queues(vec![(QueueId(7), Ok(vec![reused]))]);
    let mut bench = restart(settings(), &platform, &store).await;
    let mut ui = bench.login("22010", 1).await;
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejection_is_forgotten_once_a_read_of_its_queue_no_longer_lists_the_call() {
    let (store, platform, mut bench) = first_start(settings()).await;
    reject_call_5(&mut bench).await;
    platform_has(&platform, &[5]);
    bench.core.resync();
    after(Duration::from_millis(100)).await;
    assert_eq!(store.saved().rejected.len(), 1, "the platform still has it");
    platform_has(&platform, &[]);
    bench.core.resync();
    after(Duration::from_millis(100)).await;
    assert!(store.saved().rejected.is_empty());
    bench.stop().await;
}
