//! Agents benchmark: N agent UIs (socket.io-client under Node, WebSocket) logged in to the
//! release bridge binary; each call is the simulator's `CallDidStart` → `NEW_CALL` → the UI's
//! `END_CALL` → `DELETE /calls/active` → answer → `CALL_ENDED`. Calls come at 50/s, at 200/s
//! and as fast as the simulator issues them (saturation).
//!
//! The same run measures, with the same load, the floor under the bridge: a bare socket.io
//! server answering the same events with the same payloads and no platform behind it, and a
//! bare tokio-xmpp client doing the same XMPP exchange per call
//! ([`common::floor`]). The bridge's CPU per round trip is reported next to theirs and as a
//! ratio to their sum: the part of the cost that is the bridge's own.
//!
//! Per level it prints: CPU per round trip at each rate, the UI's END_CALL → CALL_ENDED
//! p50/p99, the latency added inside the bridge (p50/p99 from its own
//! `converja_bridge_latency_seconds`: event in → stanza out, stanza in → emit out), idle CPU
//! with every agent connected and no call, idle RSS per agent, and connect rate.
//!
//! Run: `cargo bench --bench agents` (options: `-- --agents 1000,10000 --rounds 3,1
//! --rates 50,200 --server prosody --stores memory`: rounds per level, each figure the
//! median; paced call rates; the XMPP server, prosody or ejabberd, whose own CPU per round
//! trip is reported too; stores: memory, sqlite, postgres; `--profile DIR` writes a `perf`
//! profile of the bridge over its idle sample and each phase, at some cost to its figures;
//! `--bridge-threads N` runs the bridge on N tokio worker threads instead of one per core).
//! Needs Prosody or ejabberd, PostgreSQL for `postgres`, and `npm ci --prefix tests/node`.

#[path = "../common/mod.rs"]
mod common;
mod measure;
mod pace;
mod report;
mod systems;

use std::path::PathBuf;
use std::time::Duration;

use converja_bridge::sim::{self};
use converja_testkit::local_server::{LocalServer, ServerKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::{Limits, floor, scenario, start_bridge_following};
use crate::pace::{Pace, RATES};
use crate::report::{median, print_level};
use crate::systems::{DOMAIN, System, bridge, socketio_floor, xmpp_floor};

/// Queue rooms the bridge follows in the readiness measurement.
pub(crate) const READY_QUEUES: u32 = 100;

/// Bridge starts in the readiness measurement.
pub(crate) const READY_ROUNDS: usize = 3;

/// What a run measures, from its command line.
pub(crate) struct Options {
    /// The XMPP server under the bridge and the floors.
    server: ServerKind,
    /// The phases of each level: the paced rates, then saturation.
    paces: Vec<Pace>,
    /// The bridge's session stores, one bridge run per store.
    stores: Vec<String>,
    /// Where to write a `perf` profile of the bridge over its idle sample and each phase.
    profile: Option<PathBuf>,
}

/// Every system at `agents` agents, against one XMPP server and one simulator.
async fn level(options: &Options, agents: u64, rounds: usize) {
    let xmpp = LocalServer::start(
        options.server,
        DOMAIN,
        &[("bridge", "b"), ("platform", "p"), ("floor", "f")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let sim = sim::start(
        xmpp.account("platform", "p"),
        xmpp.conference.parse().expect("domain"),
        scenario(agents),
        &tracker,
        cancel.clone(),
    );
    tokio::time::timeout(Duration::from_secs(300), sim.ready())
        .await
        .expect("the simulator joins its rooms");
    // Every system once per round, in turn, the order reversed every other round so that
    // none is always measured first; each figure is the median over the rounds.
    let (stores, paces) = (&options.stores, &options.paces);
    let mut runs: Vec<Vec<System>> = vec![Vec::new(); stores.len() + 2];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..runs.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let system = match stores.get(i) {
                Some(kind) => bridge(&xmpp, &sim, options, agents, kind).await,
                None if i == stores.len() => socketio_floor(paces, agents).await,
                None => xmpp_floor(&xmpp, &sim, paces, agents).await,
            };
            runs[i].push(system);
        }
    }
    let mut medians: Vec<System> = runs.iter().map(|r| median(r)).collect();
    let xmpp_floor = medians.pop().expect("the XMPP floor");
    let socketio = medians.pop().expect("the socket.io floor");
    print_level(options, agents, rounds, &medians, &socketio, &xmpp_floor);
    cancel.cancel();
}

/// How long the bridge takes from its start to ready (online, [`READY_QUEUES`] queue rooms
/// joined) with the XMPP server already accepting, over [`READY_ROUNDS`] starts.
async fn readiness(server: ServerKind) -> Vec<Duration> {
    let xmpp = LocalServer::start(server, DOMAIN, &[("bridge", "b"), ("platform", "p")])
        .unwrap_or_else(|e| panic!("{e}"));
    let queues: Vec<u32> = (1..=READY_QUEUES).collect();
    let text: String = queues
        .iter()
        .map(|q| format!("[[queues]]\nid = {q}\nname = \"Queue {q}\"\nagents = []\n"))
        .collect();
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let sim = sim::start(
        xmpp.account("platform", "p"),
        xmpp.conference.parse().expect("domain"),
        toml::from_str(&format!("seed = 1\n{text}")).expect("scenario"),
        &tracker,
        cancel.clone(),
    );
    tokio::time::timeout(Duration::from_secs(60), sim.ready())
        .await
        .expect("the simulator joins its rooms");
    let mut times = Vec::new();
    for _ in 0..READY_ROUNDS {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_bridge, _, ready_in) = start_bridge_following(
            &xmpp,
            dir.path(),
            "",
            "backend = \"none\"",
            &queues,
            Limits::Off,
        );
        times.push(ready_in);
    }
    cancel.cancel();
    times
}

fn list(args: &[String], name: &str) -> Option<Vec<String>> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_owned).collect())
}

fn main() {
    if floor::run_if_asked() {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let levels: Vec<u64> = list(&args, "--agents")
        .map(|l| l.iter().filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10_000]);
    let server = list(&args, "--server").map_or(ServerKind::Prosody, |s| {
        s[0].parse().unwrap_or_else(|e| panic!("--server: {e}"))
    });
    let rates: Vec<f64> = list(&args, "--rates")
        .map(|l| l.iter().filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| RATES.to_vec());
    let options = Options {
        server,
        paces: rates
            .into_iter()
            .map(Pace::Rate)
            .chain([Pace::Saturation])
            .collect(),
        stores: list(&args, "--stores").unwrap_or_else(|| vec!["memory".into()]),
        profile: list(&args, "--profile").map(|dir| PathBuf::from(&dir[0])),
    };
    if let Some(n) = list(&args, "--bridge-threads").and_then(|n| n[0].parse().ok()) {
        let _ = common::BRIDGE_THREADS.set(n);
    }
    if let Some(dir) = &options.profile {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("--profile {}: {e}", dir.display()));
    }
    let rounds: Vec<usize> = list(&args, "--rounds")
        .map(|l| l.iter().filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![3, 1]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "agents: bridge = the release binary; floors = a bare socket.io server and a bare \
         tokio-xmpp client doing the same work without the bridge, measured in the same run; \
         XMPP server: {server}; bridge's tokio worker threads: {}",
        crate::common::BRIDGE_THREADS
            .get()
            .map_or_else(|| "one per core".to_owned(), usize::to_string)
    );
    let ready = rt.block_on(readiness(server));
    println!(
        "\nready (XMPP online, {READY_QUEUES} queue rooms joined) after start, {server} accepting: {}",
        ready
            .iter()
            .map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (i, n) in levels.into_iter().enumerate() {
        let rounds = rounds.get(i).or(rounds.last()).copied().unwrap_or(1).max(1);
        rt.block_on(level(&options, n, rounds));
    }
}
