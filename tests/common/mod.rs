//! Test harness: a private Prosody, the platform simulator and the bridge's platform client,
//! all real, on loopback. Everything stops when the [`Stack`] is dropped.

#![allow(dead_code, unused_macros)]

pub(crate) mod agent_ui;
pub(crate) mod console;
pub(crate) mod daemon;
pub(crate) mod engineio;
pub(crate) mod jwt;
pub(crate) mod screen;
pub(crate) mod server;

use std::time::Duration;

use converja_bridge::config::{ConverjaConfig, HumanDuration, QueueSelection};
use converja_bridge::converja::{AgentId, CallId, QueueId};
use converja_bridge::platform::{Client, Update};
use converja_bridge::sim::{self, Scenario, SimHandle};
use converja_bridge::xmpp::ConnectSettings;
use metrics_exporter_prometheus::PrometheusHandle;
use server::Server;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) const DOMAIN: &str = "converja.test";
pub(crate) const BRIDGE_NICK: &str = "converja-bridge";

/// A wait in a test that should never come close to this.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) fn scenario() -> Scenario {
    toml::from_str(
        r#"
        seed = 7
        [[queues]]
        id = 7
        name = "Financeiro"
        agents = ["22010", "22011"]
        supervisors = [{ id = "9001", name = "Ana Lima" }]
        [[queues]]
        id = 8
        name = "Suporte Técnico"
        agents = ["22011", "22012"]
        [[agents]]
        id = "22010"
        name = "Maria Souza"
        [[agents]]
        id = "22011"
        name = "João Pereira"
        [[agents]]
        id = "22012"
        name = "Carla Dias"
        "#,
    )
    .expect("the test scenario is valid")
}

pub(crate) fn agent(id: &str) -> AgentId {
    AgentId::new(id)
}

/// The call a `NEW_CALL` (or any payload with a `callId`) names.
pub(crate) fn call_of(payload: &serde_json::Value) -> CallId {
    let id = payload["callId"].as_str().expect("a callId");
    CallId(id.parse().expect("a call id"))
}

pub(crate) fn settings(xmpp: &Server, user: &str, password: &str) -> ConnectSettings {
    xmpp.account(user, password)
}

/// A loopback port nothing listens on (bound, read, released).
pub(crate) fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The transport of the bridge's own XMPP link in a test; the simulator always uses TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// The client-to-server port.
    Tcp,
    /// Prosody's BOSH endpoint.
    Bosh,
}

impl Via {
    /// Connection settings for `user` over this transport.
    pub(crate) fn account(self, xmpp: &Server, user: &str, password: &str) -> ConnectSettings {
        match self {
            Via::Tcp => xmpp.account(user, password),
            Via::Bosh => xmpp.bosh_account(user, password),
        }
    }
}

/// For each `async fn name(via: Via)` listed, a test `tcp::name` and a test `bosh::name`.
macro_rules! over_tcp_and_bosh {
    ($($name:ident),+ $(,)?) => {
        mod tcp {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Via::Tcp).await
                }
            )+
        }
        mod bosh {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Via::Bosh).await
                }
            )+
        }
    };
}

pub(crate) fn converja(xmpp: &Server, request_timeout: Duration) -> ConverjaConfig {
    ConverjaConfig {
        conference: xmpp.conference.parse().expect("valid domain"),
        request_timeout: HumanDuration(request_timeout),
        queues: QueueSelection::default(),
        queue_refresh: HumanDuration(Duration::from_secs(300)),
        max_pending: 1000,
    }
}

/// The bridge's Prometheus recorder, so tests can read counters.
pub(crate) fn metrics() -> &'static PrometheusHandle {
    converja_bridge::telemetry::prometheus()
}

/// The value of a counter line such as `name{label="value"}`, 0 when absent.
pub(crate) fn counter(name: &str, label: &str) -> f64 {
    converja_bridge::telemetry::counter(name, label)
}

/// The whole platform side: Prosody, simulator, and the bridge's platform client.
pub(crate) struct Stack {
    pub xmpp: Server,
    pub sim: SimHandle,
    pub platform: Client,
    pub tracker: TaskTracker,
    pub cancel: CancellationToken,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts Prosody (with bridge, platform and "other" accounts) and the simulator.
pub(crate) async fn start_sim(
    scenario: Scenario,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> (Server, SimHandle) {
    metrics();
    let xmpp = server::start(
        DOMAIN,
        &[
            ("bridge", "bridge-pw"),
            ("platform", "platform-pw"),
            ("other", "other-pw"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let conference = xmpp.conference.parse().expect("valid domain");
    let sim = sim::start(
        settings(&xmpp, "platform", "platform-pw"),
        conference,
        scenario,
        tracker,
        cancel.clone(),
    );
    tokio::time::timeout(PATIENCE, sim.ready())
        .await
        .expect("the simulator joins its rooms");
    (xmpp, sim)
}

/// Starts everything and waits until the bridge's platform client is ready.
pub(crate) async fn stack_with(
    via: Via,
    scenario: Scenario,
    request_timeout: Duration,
    max_pending: usize,
) -> Stack {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (xmpp, sim) = start_sim(scenario, &tracker, &cancel).await;
    let mut cfg = converja(&xmpp, request_timeout);
    cfg.max_pending = max_pending;
    let platform = Client::start(
        via.account(&xmpp, "bridge", "bridge-pw"),
        BRIDGE_NICK.into(),
        &cfg,
        &tracker,
        cancel.clone(),
    );
    wait_ready(&platform).await;
    Stack {
        xmpp,
        sim,
        platform,
        tracker,
        cancel,
    }
}

pub(crate) async fn stack(via: Via) -> Stack {
    stack_with(via, scenario(), Duration::from_secs(5), 1000).await
}

pub(crate) async fn wait_ready(platform: &Client) {
    assert!(
        platform.wait_ready(PATIENCE).await,
        "the platform client did not become ready: {:?}",
        platform.readiness()
    );
    assert!(
        !platform.followed_queues().is_empty(),
        "ready means the queue rooms are followed too"
    );
}

/// Starting calls on the simulated platform, as the tests do.
pub(crate) trait Calls {
    /// Starts a call in queue 7 for agent `id` from `caller`; its id.
    async fn call(&self, id: &str, caller: &str) -> CallId;
    /// Starts a call in `queue` for agent `id` from `caller`; its id.
    async fn call_in(&self, queue: u64, id: &str, caller: &str) -> CallId;
}

impl Calls for SimHandle {
    async fn call(&self, id: &str, caller: &str) -> CallId {
        self.call_in(7, id, caller).await
    }

    async fn call_in(&self, queue: u64, id: &str, caller: &str) -> CallId {
        self.start_call(QueueId(queue), &agent(id), caller)
            .await
            .unwrap_or_else(|e| panic!("a call for {id} in queue {queue} starts: {e}"))
    }
}

/// Polls `check` until it holds; panics with `what` after [`PATIENCE`].
pub(crate) async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(what, PATIENCE, check).await;
}

/// [`eventually`] for at most `within`.
pub(crate) async fn eventually_within<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll_for(what, within, || {
        let holds = check();
        async move {
            if holds.await {
                Ok(())
            } else {
                Err(String::new())
            }
        }
    })
    .await;
}

/// Polls `check` until it gives a value, for at most `within`; panics with `what` and the
/// last reason `check` gave otherwise.
pub(crate) async fn poll_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut last = String::new();
    let polled = tokio::time::timeout(within, async {
        loop {
            match check().await {
                Ok(found) => return found,
                Err(why) => last = why,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    polled.unwrap_or_else(|_| panic!("never happened within {within:?}: {what} {last}"))
}

/// Waits for `child` to exit, for at most [`PATIENCE`]; its status.
pub(crate) fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    converja_testkit::process::wait_exit(child, PATIENCE)
}

/// The next event from `updates` that `pick` accepts, within [`PATIENCE`].
pub(crate) async fn next_update<T>(
    updates: &mut broadcast::Receiver<Update>,
    mut pick: impl FnMut(&Update) -> Option<T>,
) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match updates.recv().await {
                Ok(update) => {
                    if let Some(found) = pick(&update) {
                        return found;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("platform updates closed"),
            }
        }
    })
    .await
    .expect("the expected platform update arrives")
}

/// A TCP proxy in front of an HTTP server that lets requests through but, for every
/// `every`-th answer, closes the connection instead of delivering it: the server did the
/// work, the client never heard back.
pub(crate) struct AnswerDroppingProxy {
    pub port: u16,
    pub dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    cancel: CancellationToken,
}

impl Drop for AnswerDroppingProxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl AnswerDroppingProxy {
    pub(crate) async fn start(upstream: u16, every: usize) -> AnswerDroppingProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dropped = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(AtomicUsize::new(0));
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let counted = dropped.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => return,
                    },
                };
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (mut client_rd, mut client_wr) = client.into_split();
                let (mut server_rd, mut server_wr) = server.into_split();
                let (answers, dropped, stop) = (answers.clone(), counted.clone(), stop.clone());
                tokio::spawn(async move {
                    let upstream = async {
                        let _ = tokio::io::copy(&mut client_rd, &mut server_wr).await;
                    };
                    let downstream = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match server_rd.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if buf[..n].starts_with(b"HTTP/")
                                && answers.fetch_add(1, Ordering::Relaxed) % every == every - 1
                            {
                                dropped.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                            if client_wr.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    // Whichever direction ends first closes both.
                    tokio::select! {
                        _ = upstream => {}
                        _ = downstream => {}
                        _ = stop.cancelled() => {}
                    }
                });
            }
        });
        AnswerDroppingProxy {
            port,
            dropped,
            cancel,
        }
    }
}

/// Headless Chromium and the Playwright driver the browser tests run: the browser's path.
pub(crate) fn chromium() -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium is not installed: run `sudo apt-get install -y chromium` (or set CHROMIUM)"
    );
    assert!(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/node/node_modules/playwright-core")
            .exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/node`"
    );
    chromium
}
