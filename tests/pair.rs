//! Two bridge binaries sharing one PostgreSQL (active/standby), behind a proxy that plays the
//! load balancer (new connections go to the bridge whose `/readyz` says 200); real Prosody,
//! the simulator, and socket.io-client UIs that reconnect by themselves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::agent_ui::{Puppet, admin_get, admin_port, http_get, wait_ready};
use common::daemon::{Daemon, UI_GRACE, open_with_token, scraped, write_config, write_open_config};
use common::screen::{nothing_twice, settled};
use common::{agent, eventually, scenario, start_sim};
use converja_bridge::converja::QueueId;
use converja_bridge::sim::SimHandle;
use converja_testkit::balancer::{Proxy, Route};
use converja_testkit::postgres::LocalPostgres;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The takeover bound the README promises.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(10);

/// A bridge's `converja_role` gauge for `role`, read from its `/metrics` once the bridge has
/// a role: a bridge listens (and answers its probes) before it has tried the lease, and
/// exports no role until then.
async fn role(port: u16, role: &str) -> f64 {
    let series = format!("converja_role{{role=\"{role}\"}}");
    common::poll_for(&format!("{series} on {port}"), common::PATIENCE, || async {
        match scraped(port, &series).await {
            value if value < 0.0 => Err("no role yet".to_owned()),
            value => Ok(value),
        }
    })
    .await
}

/// Waits until `port` answers `/readyz` 200; how long that took.
async fn ready_within(port: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    while admin_get(port, "/readyz").await.0 != 200 {
        assert!(started.elapsed() < limit, "not ready within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Starts calls for 22010 and 22011 in turn every 300 ms until `stop`: each agent gets far
/// fewer than its 32 slots during a test, so every call the platform has is on its screen.
fn pace_calls(sim: SimHandle, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut started = 0;
        while !stop.load(Ordering::SeqCst) {
            let agent = agent(["22010", "22011"][started % 2]);
            if sim.start_call(QueueId(7), &agent, "0800").await.is_ok() {
                started += 1;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        started
    })
}

/// Prosody, the simulator, PostgreSQL, and the two bridges: A started first and active, B
/// listening as the standby. A's database connection goes through `a_db`, which the test
/// can cut.
struct Pair {
    sim: SimHandle,
    /// Bridge A's port and process (taken by a test that kills it).
    a: (u16, Option<Daemon>),
    /// Bridge B's port and process.
    b: (u16, Daemon),
    a_db: Proxy,
    balancer: Proxy,
    _postgres: LocalPostgres,
    _xmpp: common::server::Server,
    _dir: tempfile::TempDir,
    cancel: CancellationToken,
}

/// How a test writes each bridge's config file (with tokens, or open).
type WriteConfig =
    fn(&std::path::Path, &common::server::Server, u16, &str, &str) -> std::path::PathBuf;

impl Pair {
    async fn start(tracker: &TaskTracker) -> Pair {
        Pair::start_with(tracker, write_config).await
    }

    async fn start_with(tracker: &TaskTracker, write_config: WriteConfig) -> Pair {
        let cancel = CancellationToken::new();
        let (xmpp, sim) = start_sim(scenario(), tracker, &cancel).await;
        let postgres = LocalPostgres::start().unwrap_or_else(|e| panic!("{e}"));
        let a_db = Proxy::start(0, Route::To(postgres.port)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (a_port, b_port) = (common::unused_port(), common::unused_port());
        let via_proxy = postgres
            .url()
            .replace(&format!(":{}/", postgres.port), &format!(":{}/", a_db.port));
        let a = write_config(
            dir.path(),
            &xmpp,
            a_port,
            "bridge-a",
            &format!("url = \"{via_proxy}\""),
        );
        let b = write_config(
            dir.path(),
            &xmpp,
            b_port,
            "bridge-b",
            &format!("url = \"{}\"", postgres.url()),
        );
        let balancer = Proxy::start(
            0,
            Route::Ready(vec![
                (a_port, admin_port(a_port)),
                (b_port, admin_port(b_port)),
            ]),
        )
        .await
        .unwrap();
        let a_bridge = Daemon::start(&a, a_port).await;
        let b_bridge = Daemon::spawn(&b);
        wait_until_listening(b_port).await;
        Pair {
            sim,
            a: (a_port, Some(a_bridge)),
            b: (b_port, b_bridge),
            a_db,
            balancer,
            _postgres: postgres,
            _xmpp: xmpp,
            _dir: dir,
            cancel,
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Which bridge sent each request the platform saw, in the order it saw them.
async fn senders(sim: &SimHandle) -> Vec<String> {
    sim.requests()
        .await
        .iter()
        .map(|r| r.from.resource().map(|n| n.to_string()).unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_when_the_active_one_is_killed_and_no_call_is_lost() {
    let tracker = TaskTracker::new();
    let mut pair = Pair::start(&tracker).await;
    // The standby listens, is alive, not ready, and says so.
    assert_eq!(admin_get(pair.b.0, "/healthz").await.0, 200);
    assert_eq!(admin_get(pair.b.0, "/readyz").await.0, 503);
    assert_eq!(role(pair.b.0, "standby").await, 1.0);
    assert_eq!(role(pair.a.0, "active").await, 1.0);
    let (status, body) = http_get(pair.b.0, "/callcontrol/?EIO=4&transport=polling").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("standby"), "{body}");

    let url = format!("http://127.0.0.1:{}", pair.balancer.port);
    let mut ui = Puppet::start(&url).await;
    // Maria's UI sends USER_CONNECT again after a reconnect; João's relies on its token.
    open_with_token(&mut ui, "22010", true, 32).await;
    open_with_token(&mut ui, "22011", true, 32).await;
    let stop = Arc::new(AtomicBool::new(false));
    let pacer = pace_calls(pair.sim.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    pair.a.1.take().expect("A runs").stop("KILL");
    let took = ready_within(pair.b.0, TAKEOVER_LIMIT).await;
    println!(
        "pair: the standby was ready {} ms after the active one was SIGKILLed (limit {} ms)",
        took.as_millis(),
        TAKEOVER_LIMIT.as_millis()
    );
    assert_eq!(role(pair.b.0, "active").await, 1.0);
    ui.expect("22010", "connect").await;
    ui.login("22010", "22010", 32).await;
    ui.expect("22011", "connect").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let started = pacer.await.unwrap();
    assert!(started >= 15, "calls kept coming: {started}");
    // Calls lost: 0. Every call the platform has is on its agent's screen, none more.
    settled(&mut ui, &pair.sim, &["22010", "22011"]).await;
    tracker.close();
}

/// UIs as contact centers run them (socket.io-client's defaults, USER_CONNECT once, no
/// token) behind the balancer: the active bridge is SIGKILLed under calls, the UIs reconnect
/// by themselves to the standby that takes over, and each keeps its session: every call the
/// platform has is on its screen, none twice, and nobody is logged out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmodified_uis_keep_their_sessions_across_a_failover() {
    let tracker = TaskTracker::new();
    let mut pair = Pair::start_with(&tracker, write_open_config).await;
    let url = format!("http://127.0.0.1:{}", pair.balancer.port);
    let mut ui = Puppet::start(&url).await;
    for username in ["22010", "22011"] {
        ui.connect_as_shipped(username, "4.8").await;
        ui.login(username, username, 32).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let pacer = pace_calls(pair.sim.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    pair.a.1.take().expect("A runs").stop("KILL");
    ready_within(pair.b.0, TAKEOVER_LIMIT).await;
    for username in ["22010", "22011"] {
        ui.expect(username, "connect").await;
        assert_eq!(ui.expect(username, "recovered").await, true);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    pacer.await.unwrap();
    settled(&mut ui, &pair.sim, &["22010", "22011"]).await;
    // Past the grace the new active bridge gave the restored sessions.
    tokio::time::sleep(UI_GRACE + Duration::from_secs(1)).await;
    for username in ["22010", "22011"] {
        nothing_twice(&mut ui, username);
        assert!(pair.sim.world().await.agents[&agent(username)].logged_in);
    }
    assert_eq!(
        scraped(pair.b.0, "converja_sessions_taken_back_total{by=\"pid\"}").await,
        2.0,
        "both sessions taken back by their pid, with no event from the UIs"
    );
    tracker.close();
}

/// Waits until something listens on `port`.
async fn wait_until_listening(port: u16) {
    eventually(&format!("something listens on {port}"), || async {
        admin_get(port, "/healthz").await.0 != 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_bridge_cut_from_the_database_stops_before_the_other_starts() {
    let tracker = TaskTracker::new();
    let pair = Pair::start(&tracker).await;
    let url = format!("http://127.0.0.1:{}", pair.balancer.port);
    let mut ui = Puppet::start(&url).await;
    open_with_token(&mut ui, "22010", true, 32).await;
    let stop = Arc::new(AtomicBool::new(false));
    let pacer = pace_calls(pair.sim.clone(), stop.clone());
    // The UI ends every call it gets, so requests flow to the platform all along.
    let ender = {
        let stop = stop.clone();
        let mut ui = ui;
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let call = ui.expect("22010", "NEW_CALL").await;
                ui.emit("22010", "END_CALL", json!({"callId": call["callId"]}))
                    .await;
            }
            ui
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    pair.a_db.cut();
    let cut = Instant::now();
    let took = ready_within(pair.b.0, TAKEOVER_LIMIT).await;
    println!(
        "pair: bridge B was ready {} ms after bridge A lost the database",
        took.as_millis()
    );
    assert!(
        cut.elapsed() >= Duration::from_secs(3),
        "B took over before A could have stopped"
    );
    // A stands by again: not ready, standby role.
    assert_eq!(admin_get(pair.a.0, "/readyz").await.0, 503);
    assert_eq!(role(pair.a.0, "standby").await, 1.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    pacer.await.unwrap();
    ender.abort();

    // On the platform's side: every request from A came before the first one from B.
    let senders = senders(&pair.sim).await;
    let last_a = senders.iter().rposition(|s| s == "bridge-a");
    let first_b = senders.iter().position(|s| s == "bridge-b");
    assert!(last_a.is_some() && first_b.is_some(), "{senders:?}");
    assert!(
        last_a < first_b,
        "two bridges sent requests at once: {senders:?}"
    );
    assert!(
        !wait_ready_quietly(pair.a.0).await,
        "A never serves again while B holds the lease"
    );
    tracker.close();
}

/// Whether `port` turns ready within a second.
async fn wait_ready_quietly(port: u16) -> bool {
    tokio::time::timeout(Duration::from_secs(1), wait_ready(port))
        .await
        .is_ok()
}
