//! What the benchmarks and the fault runner share: a scenario of N agents, the bridge binary
//! started against a private XMPP server, the Node agent UIs, and process measurements.

#![allow(dead_code)]

pub(crate) mod floor;
pub(crate) mod load;
pub(crate) mod raw_socket;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use converja_bridge::config::{ConverjaConfig, HumanDuration, QueueSelection};
use converja_bridge::converja::QueueId;
use converja_bridge::platform::Client;
use converja_bridge::sim::Scenario;
use converja_testkit::local_server::LocalServer;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The first agent id of a generated scenario.
pub(crate) const FIRST_AGENT: u64 = 30_000;

/// `agents` agents, all in queue 7.
pub(crate) fn scenario(agents: u64) -> Scenario {
    let ids: Vec<String> = (0..agents)
        .map(|i| format!("\"{}\"", FIRST_AGENT + i))
        .collect();
    let mut text = format!(
        "seed = 1\n[[queues]]\nid = 7\nname = \"Financeiro\"\nagents = [{}]\n",
        ids.join(",")
    );
    for i in 0..agents {
        text.push_str(&format!(
            "[[agents]]\nid = \"{}\"\nname = \"Agent {i}\"\n",
            FIRST_AGENT + i
        ));
    }
    toml::from_str(&text).expect("generated scenario")
}

/// Resident memory (bytes) and CPU time (clock ticks) of a process.
pub(crate) fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (rss_kb * 1024, cpu_ticks(&format!("/proc/{pid}/stat")))
}

/// User and system CPU time (clock ticks) from a `stat` file of `/proc`: a process's
/// (`/proc/PID/stat`) or a thread's (`/proc/thread-self/stat`).
pub(crate) fn cpu_ticks(stat_file: &str) -> u64 {
    let stat = std::fs::read_to_string(stat_file).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    field(11).unwrap_or(0) + field(12).unwrap_or(0)
}

/// CPU (ticks) the whole machine has spent busy since boot, all cores: `/proc/stat` less
/// idle and I/O wait.
pub(crate) fn machine_busy() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    ticks.iter().take(8).sum::<u64>().saturating_sub(idle)
}

/// A child process killed when dropped.
pub(crate) struct Killed(pub(crate) Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The whole HTTP/1.0 answer to `GET path` on the loopback `port`; `None` when nothing
/// listens there.
pub(crate) fn http_get(port: u16, path: &str) -> Option<String> {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = tcp.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes());
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut tcp, &mut text);
    Some(text)
}

/// The admin port of each bridge started here, by its public port.
static ADMIN_PORTS: std::sync::Mutex<std::collections::BTreeMap<u16, u16>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The whole answer to `GET path` on the admin listener of the bridge on `port`.
pub(crate) fn admin_get(port: u16, path: &str) -> Option<String> {
    let admin = *ADMIN_PORTS.lock().ok()?.get(&port)?;
    http_get(admin, path)
}

/// Whether the bridge on `port` answers `/readyz` with 200.
pub(crate) fn is_ready(port: u16) -> bool {
    admin_get(port, "/readyz")
        .is_some_and(|text| text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200"))
}

/// Waits until the bridge on `port` is ready; how long that took.
pub(crate) fn wait_ready(port: u16) -> Duration {
    let started = Instant::now();
    while !is_ready(port) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the bridge did not become ready: {}",
            admin_get(port, "/readyz").unwrap_or_else(|| "no answer on /readyz".into())
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

/// Whether a bridge applies its limits per client address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limits {
    /// None: every simulated agent comes from the one loopback address.
    Off,
    /// The defaults of a production bridge.
    Defaults,
}

/// Starts the bridge binary against `xmpp`, with `extra` lines in `[agents]` and its
/// session store in a SQLite file in `dir`; returns it and its socket.io port. Every
/// simulated agent comes from the one loopback address, so the limits per address are off.
pub(crate) fn start_bridge(xmpp: &LocalServer, dir: &Path, extra: &str) -> (Killed, u16) {
    start_bridge_limited(xmpp, dir, extra, Limits::Off)
}

/// [`start_bridge`] with `limits`.
pub(crate) fn start_bridge_limited(
    xmpp: &LocalServer,
    dir: &Path,
    extra: &str,
    limits: Limits,
) -> (Killed, u16) {
    let store = format!("path = \"{}\"", dir.join("sessions.db").display());
    let (bridge, port, _) = start_bridge_following(xmpp, dir, extra, &store, &[7], limits);
    (bridge, port)
}

/// [`start_bridge`] with `store` as the `[store]` section's lines.
pub(crate) fn start_bridge_on(
    xmpp: &LocalServer,
    dir: &Path,
    extra: &str,
    store: &str,
) -> (Killed, u16) {
    let (bridge, port, _) = start_bridge_following(xmpp, dir, extra, store, &[7], Limits::Off);
    (bridge, port)
}

/// The bridge's tokio worker threads, when not one per core (`TOKIO_WORKER_THREADS`).
pub(crate) static BRIDGE_THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// [`start_bridge_on`] following `queues` with `limits`; also returns how long it took to be
/// ready.
pub(crate) fn start_bridge_following(
    xmpp: &LocalServer,
    dir: &Path,
    extra: &str,
    store: &str,
    queues: &[u32],
    limits: Limits,
) -> (Killed, u16, Duration) {
    let [port, admin] = converja_testkit::loopback::free_ports().expect("free ports");
    ADMIN_PORTS
        .lock()
        .expect("not poisoned")
        .insert(port, admin);
    let limits = match limits {
        Limits::Off => {
            "[limits]\nconnections_per_address = 0\nhandshakes_per_second_per_address = 0\n\
             events_per_second_per_socket = 0\nusernames_per_socket = 0\n"
        }
        Limits::Defaults => "",
    };
    let config = dir.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[xmpp]\njid = \"bridge@{}\"\npassword = \"b\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             [converja]\nconference = \"{}\"\nrequest_timeout = \"60s\"\nqueues = {queues:?}\n\
             [socketio]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             {limits}[agents]\nfirst_call_delay = \"0ms\"\nmax_calls_limit = 8\n{extra}[log]\nlevel = \"warn\"\n\
             [store]\n{store}\n",
            xmpp.domain,
            xmpp.c2s_port,
            xmpp.conference,
        ),
    )
    .expect("config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_converja-bridge"));
    if let Some(threads) = BRIDGE_THREADS.get() {
        command.env("TOKIO_WORKER_THREADS", threads.to_string());
    }
    let bridge = Killed(
        command
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bridge"),
    );
    let ready_in = wait_ready(port);
    (bridge, port, ready_in)
}

/// A Node script of tests/node with `args`, its stdin and stdout piped.
pub(crate) fn start_node(script: &str, args: &[String]) -> Killed {
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    Killed(
        Command::new("node")
            .arg(node_dir.join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs the agent UIs (npm ci --prefix tests/node)"),
    )
}

/// The bridge's platform client as the `probe` account of `xmpp`, following queue 7, with
/// requests timing out after `timeout`; returns once it is ready.
pub(crate) async fn probe_platform(
    xmpp: &LocalServer,
    timeout: Duration,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> Client {
    let cfg = ConverjaConfig {
        conference: xmpp.conference.parse().expect("domain"),
        request_timeout: HumanDuration(timeout),
        queues: QueueSelection::List(vec![QueueId(7)]),
        queue_refresh: HumanDuration(Duration::from_secs(3600)),
        max_pending: 100_000,
    };
    let platform = Client::start(
        xmpp.account("probe", "x"),
        "probe".into(),
        &cfg,
        tracker,
        cancel.clone(),
    );
    platform.wait_ready(Duration::from_secs(60)).await;
    platform
}
