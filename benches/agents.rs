//! Agents benchmark: N agent UIs (socket.io-client under Node) logged in to the real bridge
//! binary, calls started by the simulator and ended by the agents. Prints NEW_CALL delivery
//! rate, END_CALL round-trip p50/p99, bridge RSS per connected agent and bridge CPU per
//! round trip, next to bare platform-link round trips measured in the same run, so the
//! gateway's overhead shows as a ratio.
//!
//! Run: `cargo bench --bench agents` (options: `-- --agents 1000,10000`). Needs Prosody and
//! `npm ci --prefix tests/node`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use converja_bridge::config::{ConverjaConfig, HumanDuration, QueueSelection};
use converja_bridge::converja::{AgentId, QueueId};
use converja_bridge::platform::Platform;
use converja_bridge::prosody::LocalProsody;
use converja_bridge::sim::{self, Scenario};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const DOMAIN: &str = "agents.bench";
const FIRST_AGENT: u64 = 30_000;

fn scenario(agents: u64) -> Scenario {
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
fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
    (rss_kb * 1024, ticks)
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = tcp.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut tcp, &mut text);
            if text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the bridge did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn platform_baseline(prosody: &LocalProsody, agents: u64) -> (f64, f64) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let cfg = ConverjaConfig {
        conference: prosody.conference.parse().expect("domain"),
        request_timeout: HumanDuration(Duration::from_secs(30)),
        queues: QueueSelection::List(vec![QueueId(7)]),
        queue_refresh: HumanDuration(Duration::from_secs(3600)),
        max_pending: 100_000,
    };
    let platform = Platform::start(
        prosody.account("probe", "x"),
        "probe".into(),
        &cfg,
        &tracker,
        cancel.clone(),
    );
    platform.wait_ready(Duration::from_secs(60)).await;
    let mut latencies = Vec::new();
    for i in 0..2000u64 {
        let agent = AgentId::new((FIRST_AGENT + i % agents).to_string());
        let t = Instant::now();
        platform
            .agent_status(&agent)
            .await
            .expect("baseline request");
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    cancel.cancel();
    latencies.sort_by(f64::total_cmp);
    (
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
    )
}

/// Starts the bridge binary against `prosody`; returns it and its socket.io port.
fn start_bridge(prosody: &LocalProsody, dir: &Path) -> (Killed, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let config = dir.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[xmpp]\njid = \"bridge@{DOMAIN}\"\npassword = \"b\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             [converja]\nconference = \"{}\"\nrequest_timeout = \"60s\"\nqueues = [7]\n\
             [socketio]\nlisten = \"127.0.0.1:{port}\"\n[agents]\nfirst_call_delay = \"0ms\"\nmax_calls_limit = 8\n[log]\nlevel = \"warn\"\n",
            prosody.c2s_port, prosody.conference
        ),
    )
    .expect("config");
    let bridge = Killed(
        Command::new(env!("CARGO_BIN_EXE_converja-bridge"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bridge"),
    );
    wait_ready(port);
    (bridge, port)
}

/// The Node load generator with `agents` agent UIs logged in to the bridge on `port`.
fn start_load(port: u16, agents: u64) -> Killed {
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    Killed(
        Command::new("node")
            .arg(node_dir.join("load.mjs"))
            .args([
                format!("http://127.0.0.1:{port}"),
                agents.to_string(),
                FIRST_AGENT.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs the load generator (npm ci --prefix tests/node)"),
    )
}

async fn run(agents: u64) {
    let prosody = LocalProsody::start(
        DOMAIN,
        &[("bridge", "b"), ("platform", "p"), ("probe", "x")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let sim = sim::start(
        prosody.account("platform", "p"),
        prosody.conference.parse().expect("domain"),
        scenario(agents),
        &tracker,
        cancel.clone(),
    );
    tokio::time::timeout(Duration::from_secs(300), sim.ready())
        .await
        .expect("the simulator joins its rooms");
    let dir = tempfile::tempdir().expect("tempdir");
    let (bridge, port) = start_bridge(&prosody, dir.path());
    let pid = bridge.0.id();
    let (idle_rss, _) = usage(pid);

    let mut load = start_load(port, agents);
    let mut stdin = load.0.stdin.take().expect("piped");
    let mut lines = BufReader::new(load.0.stdout.take().expect("piped")).lines();
    let ready: Value =
        serde_json::from_str(&lines.next().expect("ready line").expect("read")).expect("json");
    assert_eq!(ready["errors"], 0, "login errors: {ready}");
    let (rss, cpu_before) = usage(pid);

    let started = Instant::now();
    for i in 0..agents {
        sim.start_call(
            QueueId(7),
            &AgentId::new((FIRST_AGENT + i).to_string()),
            "0800",
        )
        .await
        .expect("call starts");
    }
    let issue = started.elapsed();
    // Wait until every call has been delivered and ended.
    let report = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        writeln!(stdin, "report").expect("ask");
        let r: Value =
            serde_json::from_str(&lines.next().expect("report").expect("read")).expect("json");
        if r["ended"].as_u64() == Some(agents) || started.elapsed() > Duration::from_secs(600) {
            break r;
        }
    };
    let (_, cpu_after) = usage(pid);
    let _ = writeln!(stdin, "exit");
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu_per_trip_us = (cpu_after - cpu_before) as f64 / ticks_per_sec / agents as f64 * 1e6;
    let delivery_ms = report["lastNewCall"].as_f64().unwrap_or(0.0)
        - report["firstNewCall"].as_f64().unwrap_or(0.0);
    let (base_p50, base_p99) = platform_baseline(&prosody, agents).await;
    let p50 = report["p50"].as_f64().unwrap_or(f64::NAN);
    let p99 = report["p99"].as_f64().unwrap_or(f64::NAN);
    println!(
        "{agents:>6} agents | login all {:>6.1} s | NEW_CALL {:>7.0}/s (sim issued {:>7.0}/s) | END_CALL p50 {:>6.2} ms p99 {:>6.2} ms | platform p50 {:>5.2} ms p99 {:>5.2} ms | END_CALL/platform p50 {:>5.2}x | RSS {:>5.1} KiB/agent | CPU {:>6.0} us/round trip | errors {}",
        ready["ms"].as_f64().unwrap_or(0.0) / 1000.0,
        agents as f64 / (delivery_ms / 1000.0).max(1e-3),
        agents as f64 / issue.as_secs_f64(),
        p50,
        p99,
        base_p50,
        base_p99,
        p50 / base_p50,
        (rss.saturating_sub(idle_rss)) as f64 / 1024.0 / agents as f64,
        cpu_per_trip_us,
        report["errors"],
    );
    cancel.cancel();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let levels: Vec<u64> = args
        .iter()
        .position(|a| a == "--agents")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10_000]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "agents: each agent gets one call from the simulator and ends it from its UI; bridge is the release binary"
    );
    for n in levels {
        rt.block_on(run(n));
    }
}
