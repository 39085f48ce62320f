//! Agents benchmark: N agent UIs (socket.io-client under Node) logged in to the real bridge
//! binary, calls started by the simulator and ended by the agents. Prints NEW_CALL delivery
//! rate, END_CALL round-trip p50/p99, bridge RSS per connected agent, bridge CPU while idle
//! (all connected, no call, 5 s) and bridge CPU per round trip, next to bare platform-link round trips measured in the same run, so the
//! gateway's overhead shows as a ratio.
//!
//! Each level runs once per session store (`--stores memory,sqlite,postgres` by default), so
//! the store's cost per round trip shows against the bridge that stores nothing, in the same
//! run.
//!
//! Run: `cargo bench --bench agents` (options: `-- --agents 1000,10000 --stores memory,sqlite`).
//! Needs Prosody, PostgreSQL and `npm ci --prefix tests/node`.

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use converja_bridge::converja::{AgentId, QueueId};
use converja_bridge::prosody::LocalProsody;
use converja_bridge::sim;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod common;

use common::{FIRST_AGENT, Killed, probe_platform, scenario, start_bridge_on, start_node, usage};
use converja_bridge::postgres::LocalPostgres;

const DOMAIN: &str = "agents.bench";
/// How long the idle CPU is sampled, with every agent connected and no call.
const IDLE_SAMPLE: Duration = Duration::from_secs(5);

async fn platform_baseline(prosody: &LocalProsody, agents: u64) -> (f64, f64) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let platform = probe_platform(prosody, Duration::from_secs(30), &tracker, &cancel).await;
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

/// The Node load generator with `agents` agent UIs logged in to the bridge on `port`.
fn start_load(port: u16, agents: u64) -> Killed {
    start_node(
        "load.mjs",
        &[
            format!("http://127.0.0.1:{port}"),
            agents.to_string(),
            FIRST_AGENT.to_string(),
        ],
    )
}

/// The `[store]` section for `kind`, its files in `dir`, and the server it needs.
fn store(kind: &str, dir: &std::path::Path) -> (String, Option<LocalPostgres>) {
    match kind {
        "memory" => ("backend = \"none\"".into(), None),
        "sqlite" => (
            format!("path = \"{}\"", dir.join("sessions.db").display()),
            None,
        ),
        "postgres" => {
            let server = LocalPostgres::start().unwrap_or_else(|e| panic!("{e}"));
            (format!("url = \"{}\"", server.url()), Some(server))
        }
        other => panic!("unknown store {other}: memory, sqlite or postgres"),
    }
}

async fn run(agents: u64, store_kind: &str) {
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
    let (section, _postgres) = store(store_kind, dir.path());
    let (bridge, port) = start_bridge_on(&prosody, dir.path(), "", &section);
    let pid = bridge.0.id();
    let (idle_rss, _) = usage(pid);

    let mut load = start_load(port, agents);
    let mut stdin = load.0.stdin.take().expect("piped");
    let mut lines = BufReader::new(load.0.stdout.take().expect("piped")).lines();
    let ready: Value =
        serde_json::from_str(&lines.next().expect("ready line").expect("read")).expect("json");
    assert_eq!(ready["errors"], 0, "login errors: {ready}");
    // Idle: every agent connected, no call; what the bridge spends on keeping them.
    let (_, idle_before) = usage(pid);
    tokio::time::sleep(IDLE_SAMPLE).await;
    let (rss, cpu_before) = usage(pid);
    let idle_cpu = (cpu_before - idle_before) as f64 / 100.0 / IDLE_SAMPLE.as_secs_f64() * 100.0;

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
        "{agents:>6} agents | store {store_kind:>8} | login all {:>6.1} s | NEW_CALL {:>7.0}/s (sim issued {:>7.0}/s) | END_CALL p50 {:>6.2} ms p99 {:>6.2} ms | platform p50 {:>5.2} ms p99 {:>5.2} ms | END_CALL/platform p50 {:>5.2}x | RSS {:>5.1} KiB/agent | idle CPU {:>4.1}% of a core | CPU {:>6.0} us/round trip | errors {}",
        ready["ms"].as_f64().unwrap_or(0.0) / 1000.0,
        agents as f64 / (delivery_ms / 1000.0).max(1e-3),
        agents as f64 / issue.as_secs_f64(),
        p50,
        p99,
        base_p50,
        base_p99,
        p50 / base_p50,
        (rss.saturating_sub(idle_rss)) as f64 / 1024.0 / agents as f64,
        idle_cpu,
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
    let stores: Vec<String> = args
        .iter()
        .position(|a| a == "--stores")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_else(|| vec!["memory".into(), "sqlite".into(), "postgres".into()]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "agents: each agent gets one call from the simulator and ends it from its UI; bridge is the release binary"
    );
    for n in levels {
        for kind in &stores {
            rt.block_on(run(n, kind));
        }
    }
}
