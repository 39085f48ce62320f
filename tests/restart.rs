//! The bridge binary restarted under its agents, by SIGTERM and by SIGKILL, its sessions kept
//! in a SQLite file or in PostgreSQL; real Prosody, the simulator, and socket.io-client UIs that reconnect
//! by themselves. After the restart the UIs must show exactly what the platform has.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::agent_ui::Puppet;
use common::daemon::{Daemon, GRACE, Store, open_with_token, scraped, write_config};
use common::{Calls, PATIENCE, agent, call_of, eventually_within, scenario, start_sim};
use converja_bridge::converja::CallId;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The NEW_CALLs `username` receives until it has `count` of them.
async fn new_calls(ui: &mut Puppet, username: &str, count: usize) -> BTreeSet<CallId> {
    let mut calls = BTreeSet::new();
    for _ in 0..count {
        let call = call_of(&ui.expect(username, "NEW_CALL").await);
        assert!(calls.insert(call), "{call} delivered twice to {username}");
    }
    calls
}

async fn restart_under_agents(signal: &str, store: Store) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (xmpp, sim) = start_sim(scenario(), &tracker, &cancel).await;
    let dir = tempfile::tempdir().unwrap();
    let port = common::unused_port();
    let config = write_config(
        dir.path(),
        &xmpp,
        port,
        "converja-bridge",
        &store.section(dir.path()),
    );
    let bridge = Daemon::start(&config, port).await;
    let url = format!("http://127.0.0.1:{port}");
    let mut ui = Puppet::start(&url).await;

    // Maria sends USER_CONNECT again after a reconnect; João's UI never does; Carla's UI
    // does not come back at all.
    open_with_token(&mut ui, "22010", true, 3).await;
    open_with_token(&mut ui, "22011", true, 3).await;
    open_with_token(&mut ui, "22012", false, 3).await;
    let a = sim.call("22010", "0800").await;
    assert_eq!(new_calls(&mut ui, "22010", 1).await, BTreeSet::from([a]));
    let b = sim.call_in(8, "22011", "0801").await;
    assert_eq!(new_calls(&mut ui, "22011", 1).await, BTreeSet::from([b]));
    ui.send(json!({"op": "emit", "id": "22011", "event": "NEW_CALL_ERROR", "data": {"callId": b.to_string(), "error": "busy"}, "ack": true}))
        .await;
    ui.expect("22011", "ack:NEW_CALL_ERROR").await;
    let sent_before = sim.requests().await.len();

    bridge.stop(signal);
    // Calls the platform gives the agents while no bridge runs.
    let c = sim.call("22010", "0802").await;
    let d = sim.call("22011", "0803").await;
    let _bridge = Daemon::start(&config, port).await;

    ui.expect("22010", "connect").await;
    ui.login("22010", "22010", 3).await;
    // Call a, on the screen, is not sent twice: the socket handed back what it shows.
    assert_eq!(new_calls(&mut ui, "22010", 1).await, BTreeSet::from([c]));
    ui.expect("22011", "connect").await;
    assert_eq!(
        new_calls(&mut ui, "22011", 1).await,
        BTreeSet::from([d]),
        "the token alone brings the session back; the rejected call stays rejected"
    );
    ui.expect_none("22011", "NEW_CALL").await;
    ui.expect_none("22010", "NEW_CALL").await;

    eventually_within(
        "a session nobody reclaims is logged out after the grace",
        GRACE + PATIENCE,
        || async { !sim.world().await.agents[&agent("22012")].logged_in },
    )
    .await;
    // Counted: three brought back, two taken back by their UIs, one ended after the grace.
    let restored =
        |outcome: &str| format!("converja_restored_sessions_total{{outcome=\"{outcome}\"}}");
    assert_eq!(scraped(port, &restored("restored")).await, 3.0);
    assert_eq!(scraped(port, &restored("reclaimed")).await, 2.0);
    assert_eq!(scraped(port, &restored("expired")).await, 1.0);
    let world = sim.world().await;
    assert!(world.agents[&agent("22010")].logged_in);
    assert!(world.agents[&agent("22011")].logged_in);
    let ids: Vec<u64> = sim.requests().await.iter().map(|r| r.message.id).collect();
    assert!(
        ids.len() > sent_before,
        "the restarted bridge sent requests"
    );
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "request ids are never reused: {ids:?}"
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_after_a_sigterm_every_session_comes_back_or_is_logged_out() {
    restart_under_agents("TERM", Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_after_a_sigkill_every_session_comes_back_or_is_logged_out() {
    restart_under_agents("KILL", Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_after_a_sigterm_every_session_comes_back_or_is_logged_out() {
    restart_under_agents("TERM", Store::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_after_a_sigkill_every_session_comes_back_or_is_logged_out() {
    restart_under_agents("KILL", Store::postgres()).await;
}
