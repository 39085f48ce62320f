//! Agent UIs as contact centers run them: an unmodified socket.io-client with its defaults,
//! no token, `USER_CONNECT` sent once at login and never again. A network blip, a SIGTERM
//! restart and a SIGKILL restart of the bridge binary (real Prosody, the simulator): the
//! client reconnects by itself and hands back its `pid` and offset; the session must be back
//! at once, every call assigned during the gap shown once, every call ended during the gap
//! told, nothing shown twice, and the agent never logged out on the platform.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::agent_ui::Puppet;
use common::console::ConsolePage;
use common::daemon::{Daemon, DaemonStack, logged_in_after_the_grace, scraped, write_open_config};
use common::engineio::connect_answer_from;
use common::screen::{nothing_twice, settled, shown};
use common::{agent, call_of};
use serde_json::{Value, json};
use tokio_util::task::TaskTracker;

/// How soon after its reconnect a UI must have what it missed.
const BACK_WITHIN: Duration = Duration::from_secs(1);

/// What breaks the UI's connection.
#[derive(Debug, Clone, Copy)]
enum Gap {
    /// The connection drops; the bridge runs on.
    Blip,
    /// The bridge is stopped with this signal and started again.
    Restart(&'static str),
}

/// Prosody, the simulator and the bridge binary, open (no `[auth]`), sessions in SQLite.
async fn stack(tracker: &TaskTracker) -> DaemonStack {
    DaemonStack::start(tracker, write_open_config).await
}

/// Whether the bridge on `port` counted `taken` sessions taken back by their pid.
async fn taken_back_by_pid(port: u16) -> f64 {
    scraped(port, "converja_sessions_taken_back_total{by=\"pid\"}").await
}

async fn through(gap: Gap, client: &str) {
    let tracker = TaskTracker::new();
    let mut stack = stack(&tracker).await;
    let mut ui = Puppet::start(&format!("http://127.0.0.1:{}", stack.port)).await;
    ui.connect_as_shipped("22010", client).await;
    ui.login("22010", "22010", 3).await;
    let (a, b) = (stack.new_call("0800").await, stack.new_call("0801").await);
    for _ in 0..2 {
        ui.expect("22010", "NEW_CALL").await;
    }

    // The gap: call a ends and call c is assigned while the UI is away.
    match gap {
        Gap::Blip => ui.blip("22010").await,
        Gap::Restart(signal) => stack.bridge.take().unwrap().stop(signal),
    }
    ui.expect("22010", "disconnect").await;
    stack.sim.finish_call(a).await.unwrap();
    let c = stack.new_call("0802").await;
    let mut ready = None;
    if let Gap::Restart(_) = gap {
        stack.bridge = Some(Daemon::start(&stack.config, stack.port).await);
        ready = Some(Instant::now());
    }

    ui.expect("22010", "connect").await;
    let reconnected = Instant::now();
    assert_eq!(
        ui.expect("22010", "recovered").await,
        true,
        "the client hands back its pid and the bridge gives it back"
    );
    let new = call_of(&ui.expect("22010", "NEW_CALL").await);
    let ended = call_of(&ui.expect("22010", "CALL_ENDED").await);
    let waited = reconnected.elapsed();
    let since = ready.map_or(reconnected, |r| r.max(reconnected));
    assert!(
        since.elapsed() <= BACK_WITHIN,
        "what was missed took {waited:?} after the reconnect"
    );
    println!(
        "{gap:?}: what was missed arrived {} ms after the reconnect",
        waited.as_millis()
    );
    assert_eq!((new, ended), (c, a));
    ui.expect_none("22010", "NEW_CALL").await;
    nothing_twice(&mut ui, "22010");
    assert_eq!(
        shown(&mut ui, "22010"),
        [b, c].into(),
        "the screen is the platform"
    );
    settled(&mut ui, &stack.sim, &["22010"]).await;

    // The reconnected socket acts for the session without ever sending USER_CONNECT (the
    // simulated platform's current call is the newest).
    ui.emit("22010", "END_CALL", json!({"callId": c.to_string()}))
        .await;
    let reply = ui
        .expect_any("22010", &["CALL_ENDED", "END_CALL_ERROR"])
        .await;
    assert_eq!(
        reply,
        ("CALL_ENDED".to_owned(), json!({"callId": c.to_string()}))
    );
    assert!(
        logged_in_after_the_grace(&stack.sim, "22010").await,
        "the agent is never logged out on the platform"
    );
    assert_eq!(taken_back_by_pid(stack.port).await, 1.0);
    tracker.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_is_invisible_to_an_unmodified_ui() {
    through(Gap::Blip, "4.8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_restart_is_invisible_to_an_unmodified_ui() {
    through(Gap::Restart("TERM"), "4.8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_restart_is_invisible_to_an_unmodified_ui() {
    through(Gap::Restart("KILL"), "4.8").await;
}

/// socket.io-client before 4.6 hands nothing back on a reconnect: the bridge cannot tell the
/// reconnected socket from a new one, so the session waits for a `USER_CONNECT` that such a
/// UI never sends, and ends after the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_older_than_4_6_loses_its_session_after_a_blip() {
    let tracker = TaskTracker::new();
    let stack = stack(&tracker).await;
    let mut ui = Puppet::start(&format!("http://127.0.0.1:{}", stack.port)).await;
    ui.connect_as_shipped("22010", "4.5").await;
    ui.login("22010", "22010", 3).await;
    ui.blip("22010").await;
    ui.expect("22010", "disconnect").await;
    ui.expect("22010", "connect").await;
    assert_eq!(ui.expect("22010", "recovered").await, false);
    stack.new_call("0800").await;
    assert!(
        !logged_in_after_the_grace(&stack.sim, "22010").await,
        "the session ended with the grace"
    );
    ui.expect_none("22010", "NEW_CALL").await;
    assert!(
        taken_back_by_pid(stack.port).await <= 0.0,
        "an old client cannot name its session"
    );
    tracker.close();
}

/// The platform's word on the session: a logout at the phone (`UserSessionDidFinish`) ends
/// the bridge session and the UI goes back to its login; a reconnect afterwards names
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_the_platform_sends_the_ui_back_to_its_login() {
    let tracker = TaskTracker::new();
    let stack = stack(&tracker).await;
    let mut ui = Puppet::start(&format!("http://127.0.0.1:{}", stack.port)).await;
    ui.connect_as_shipped("22010", "4.8").await;
    ui.login("22010", "22010", 3).await;
    stack.sim.logout(&agent("22010")).await.unwrap();
    assert_eq!(
        ui.expect("22010", "USER_DISCONNECTED").await,
        json!({"username": "22010"})
    );
    assert_eq!(
        scraped(
            stack.port,
            "converja_platform_logouts_total{outcome=\"ended\"}"
        )
        .await,
        1.0
    );
    ui.emit("22010", "END_CALL", json!({"callId": "1"})).await;
    let refused = ui.expect("22010", "END_CALL_ERROR").await;
    assert_eq!(refused["error"], "not connected: send USER_CONNECT first");
    ui.blip("22010").await;
    ui.expect("22010", "connect").await;
    assert_eq!(ui.expect("22010", "recovered").await, false);
    ui.expect_none("22010", "USER_DISCONNECTED").await;
    tracker.close();
}

/// The built-in console in headless Chromium sends USER_CONNECT once, like the public UIs:
/// across a SIGTERM restart and a SIGKILL restart of the bridge it stays logged in, shows the
/// call assigned during the gap, drops the one that ended, and never logs in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_stays_logged_in_across_restarts() {
    let tracker = TaskTracker::new();
    let mut stack = stack(&tracker).await;
    let mut page = ConsolePage::logged_in(&format!("http://127.0.0.1:{}/", stack.port), None).await;
    let mut held = vec![stack.new_call("0800").await];
    page.shows(&held, "before any restart").await;
    for signal in ["TERM", "KILL"] {
        stack.bridge.take().unwrap().stop(signal);
        stack.sim.finish_call(held.remove(0)).await.unwrap();
        held.push(stack.new_call(&format!("0801{signal}")).await);
        stack.bridge = Some(Daemon::start(&stack.config, stack.port).await);
        page.shows(&held, &format!("after SIG{signal}")).await;
        let logins = "converja_socket_events_total{event=\"USER_CONNECT\",outcome=\"received\"}";
        assert!(
            scraped(stack.port, logins).await <= 0.0,
            "the console never logs in again"
        );
        assert_eq!(taken_back_by_pid(stack.port).await, 1.0);
    }
    assert!(logged_in_after_the_grace(&stack.sim, "22010").await);
    page.shows(&held, "after the grace").await;
    page.close().await;
    tracker.close();
}

/// The socketioxide change the bridge carries (docs/socketioxide-pid.md): the CONNECT reply
/// names a private session id, which is what makes socket.io-client hand it back. Read off
/// the wire with Engine.IO's long-polling, so that no client library can hide its absence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_reply_carries_a_private_session_id() {
    let tracker = TaskTracker::new();
    let stack = stack(&tracker).await;
    let answer = connect_answer_from("127.0.0.1", stack.port, "").await;
    let reply = answer.strip_prefix("40").expect("the socket is admitted");
    let connect: Value = serde_json::from_str(reply).unwrap();
    let pid = connect["pid"].as_str().unwrap_or_default();
    assert_eq!(pid.len(), 64, "a 256-bit pid in {reply}");
    assert!(connect["sid"].is_string(), "{reply}");
    tracker.close();
}
