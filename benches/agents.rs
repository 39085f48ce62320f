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

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use converja_bridge::converja::{AgentId, QueueId};
use converja_bridge::local_server::{LocalServer, ServerKind};
use converja_bridge::postgres::LocalPostgres;
use converja_bridge::sim::{self, SimHandle};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod common;

use common::load::LoadUis;
use common::{
    FIRST_AGENT, Limits, floor, scenario, start_bridge_following, start_bridge_on, usage,
};

const DOMAIN: &str = "agents.bench";
/// How long the idle CPU is sampled, with every agent connected and no call: socket.io's
/// ping interval, so that every socket's heartbeat falls in the window once.
const IDLE_SAMPLE: Duration = Duration::from_secs(25);
/// How long each paced phase issues calls.
const PACED_FOR: Duration = Duration::from_secs(10);
/// Paced call rates, per second, unless `--rates` says otherwise; a phase at saturation
/// follows them.
const RATES: [f64; 2] = [50.0, 200.0];
/// How long the calls of one phase may take to end.
const CALLS_PATIENCE: Duration = Duration::from_secs(600);
/// Calls the simulator has under way at once at most.
const SIM_IN_FLIGHT: usize = 64;
/// USER_HZ on Linux: the unit of /proc CPU times.
const TICKS_PER_SEC: f64 = 100.0;
/// Queue rooms the bridge follows in the readiness measurement.
const READY_QUEUES: u32 = 100;
/// Bridge starts in the readiness measurement.
const READY_ROUNDS: usize = 3;

/// How calls are issued in a phase.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// This many calls per second.
    Rate(f64),
    /// As fast as they can be issued.
    Saturation,
}

impl Pace {
    fn label(self) -> String {
        match self {
            Pace::Rate(r) => format!("{r:.0} calls/s"),
            Pace::Saturation => "saturation".into(),
        }
    }

    /// Calls in a phase with `agents` agents.
    fn calls(self, agents: u64) -> u64 {
        match self {
            Pace::Rate(r) => (r * PACED_FOR.as_secs_f64()) as u64,
            Pace::Saturation => agents,
        }
    }
}

/// What a run measures, from its command line.
struct Options {
    /// The XMPP server under the bridge and the floors.
    server: ServerKind,
    /// The phases of each level: the paced rates, then saturation.
    paces: Vec<Pace>,
    /// The bridge's session stores, one bridge run per store.
    stores: Vec<String>,
    /// Where to write a `perf` profile of the bridge over its idle sample and each phase.
    profile: Option<PathBuf>,
}

/// `perf record` of one process while it lives; stopped (and its file written) on drop.
struct Profile(Option<Child>);

impl Profile {
    /// Samples `pid` into `dir/name.data`, when a `dir` is given.
    fn start(dir: Option<&Path>, pid: u32, name: &str) -> Profile {
        let Some(dir) = dir else {
            return Profile(None);
        };
        let out = dir.join(format!("{}.data", name.replace([' ', '/'], "-")));
        let child = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "997", "-g", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("--profile needs perf (apt-get install linux-perf): {e}"));
        Profile(Some(child))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // perf writes its file on SIGINT, not on SIGKILL.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// What one phase measured on one system.
#[derive(Debug, Default, Clone)]
struct Phase {
    cpu_per_trip_us: f64,
    /// The XMPP server's CPU per round trip over the same phase (NaN without one).
    server_cpu_per_trip_us: f64,
    /// Cores the whole machine kept busy over the phase, every process counted.
    busy_cores: f64,
    /// Round trips per second achieved.
    rate: f64,
    /// The UI's END_CALL → CALL_ENDED, ms.
    ui_p50: f64,
    ui_p99: f64,
    /// Inside the bridge, µs: (p50, p99) by path.
    inside: BTreeMap<String, (f64, f64)>,
}

/// What one system measured at one level.
#[derive(Debug, Default, Clone)]
struct System {
    name: String,
    /// Logging every agent in (the XMPP floor: joining every agent room): its rate is
    /// logins per second, its CPU per round trip is per login.
    login: Phase,
    idle_cpu_pct: f64,
    rss_per_agent_kib: f64,
    phases: Vec<Phase>,
}

/// How the calls of a phase reach the system measured.
enum Caller<'a> {
    /// The platform simulator starts them.
    Sim(&'a SimHandle),
    /// The bare socket.io server is told to emit NEW_CALL.
    Floor(&'a mut ChildStdin),
}

/// Issues `count` calls to agents `FIRST_AGENT..FIRST_AGENT + agents` in turn, at `pace`.
/// The simulator's calls overlap: each waits for its events to be published, so one at a
/// time would cap the rate at one call per round trip to the XMPP server.
async fn issue(caller: &mut Caller<'_>, pace: Pace, count: u64, agents: u64, first_id: u64) {
    let mut tick = match pace {
        Pace::Rate(r) => Some(tokio::time::interval(Duration::from_secs_f64(1.0 / r))),
        Pace::Saturation => None,
    };
    let mut in_flight = FuturesUnordered::new();
    for i in 0..count {
        if let Some(tick) = tick.as_mut() {
            loop {
                tokio::select! {
                    _ = tick.tick() => break,
                    Some(()) = in_flight.next() => {}
                }
            }
        }
        let agent = FIRST_AGENT + i % agents;
        match caller {
            Caller::Floor(stdin) => {
                writeln!(stdin, "call {agent} {}", first_id + i)
                    .expect("the floor reads its stdin");
            }
            Caller::Sim(sim) => {
                while in_flight.len() >= SIM_IN_FLIGHT {
                    in_flight.next().await;
                }
                let sim = *sim;
                in_flight.push(async move {
                    sim.start_call(QueueId(7), &AgentId::new(agent.to_string()), "0800")
                        .await
                        .expect("call starts");
                });
            }
        }
    }
    while in_flight.next().await.is_some() {}
}

/// The start of a phase: CPU of the system measured and of the XMPP server.
struct PhaseClock {
    pid: u32,
    server: Option<u32>,
    cpu: u64,
    server_cpu: u64,
    busy: u64,
    started: Instant,
}

impl PhaseClock {
    fn start(pid: u32, server: Option<u32>) -> PhaseClock {
        PhaseClock {
            pid,
            server,
            cpu: cpu(pid),
            server_cpu: server.map_or(0, cpu),
            busy: machine_busy(),
            started: Instant::now(),
        }
    }

    /// The phase's figures once `count` round trips are done; the UIs' `report` for their
    /// latency, if they took part.
    fn finish(self, count: u64, report: Option<&Value>) -> Phase {
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = count as f64 / elapsed;
        let per_trip = |ticks: u64| ticks as f64 / TICKS_PER_SEC / count as f64 * 1e6;
        let ms = |key: &str| report.and_then(|r| r[key].as_f64()).unwrap_or(f64::NAN);
        Phase {
            cpu_per_trip_us: per_trip(cpu(self.pid) - self.cpu),
            server_cpu_per_trip_us: self
                .server
                .map_or(f64::NAN, |pid| per_trip(cpu(pid) - self.server_cpu)),
            busy_cores: (machine_busy() - self.busy) as f64 / TICKS_PER_SEC / elapsed,
            rate,
            ui_p50: ms("p50"),
            ui_p99: ms("p99"),
            inside: BTreeMap::new(),
        }
    }
}

/// `phase`'s CPU per round trip less what the system spends idle over the same time.
fn above_idle(phase: &Phase, idle_cpu_pct: f64) -> f64 {
    phase.cpu_per_trip_us - idle_cpu_pct / 100.0 * 1e6 / phase.rate
}

/// CPU (ticks) the whole machine has spent busy since boot, all cores: `/proc/stat` less
/// idle and I/O wait.
fn machine_busy() -> u64 {
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

/// CPU (ticks) of `pid` now.
fn cpu(pid: u32) -> u64 {
    usage(pid).1
}

/// Idle CPU over [`IDLE_SAMPLE`], in % of a core.
async fn idle_cpu(pid: u32) -> f64 {
    let before = cpu(pid);
    tokio::time::sleep(IDLE_SAMPLE).await;
    (cpu(pid) - before) as f64 / TICKS_PER_SEC / IDLE_SAMPLE.as_secs_f64() * 100.0
}

/// The bridge's `/metrics` text.
fn metrics_text(port: u16) -> String {
    common::admin_get(port, "/metrics").expect("the bridge serves /metrics")
}

/// The cumulative buckets of `converja_bridge_latency_seconds` by path: (upper bound, count).
fn latency_buckets(text: &str) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("converja_bridge_latency_seconds_bucket{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
        };
        let (Some(path), Some(le)) = (label("path"), label("le")) else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::NAN)
        };
        out.entry(path)
            .or_default()
            .push((le, value.trim().parse().unwrap_or(0.0)));
    }
    for buckets in out.values_mut() {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// p50 and p99 in µs, interpolated within the buckets, of what was recorded between two
/// scrapes.
fn inside_latency(before: &str, after: &str) -> BTreeMap<String, (f64, f64)> {
    let before = latency_buckets(before);
    latency_buckets(after)
        .into_iter()
        .map(|(path, buckets)| {
            let old = before.get(&path);
            let diff: Vec<(f64, f64)> = buckets
                .iter()
                .map(|(le, n)| {
                    let was = old
                        .and_then(|o| o.iter().find(|(l, _)| l == le))
                        .map_or(0.0, |(_, n)| *n);
                    (*le, n - was)
                })
                .collect();
            let q = |q: f64| quantile(&diff, q) * 1e6;
            (path, (q(0.5), q(0.99)))
        })
        .collect()
}

fn quantile(cumulative: &[(f64, f64)], q: f64) -> f64 {
    let total = cumulative.last().map_or(0.0, |(_, n)| *n);
    if total == 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, n) in cumulative {
        if n >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            let within = (rank - lower.1) / (n - lower.1).max(1e-9);
            return lower.0 + (le - lower.0) * within;
        }
        lower = (le, n);
    }
    lower.0
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

/// The bridge binary with `agents` agents logged in, through every phase.
async fn bridge(
    xmpp: &LocalServer,
    sim: &SimHandle,
    options: &Options,
    agents: u64,
    kind: &str,
) -> System {
    let profile = |name: &str, pid| {
        Profile::start(
            options.profile.as_deref(),
            pid,
            &format!("{agents}-{kind}-{name}"),
        )
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (section, _postgres) = store(kind, dir.path());
    let (bridge, port) = start_bridge_on(xmpp, dir.path(), "", &section);
    let pid = bridge.0.id();
    let (rss_before, _) = usage(pid);
    let (mut uis, login) = log_in(port, agents, pid, xmpp.pid());
    let sampling = profile("idle", pid);
    let idle_cpu_pct = idle_cpu(pid).await;
    drop(sampling);
    let (rss, _) = usage(pid);
    let mut system = System {
        name: format!("bridge ({kind} store)"),
        login,
        idle_cpu_pct,
        rss_per_agent_kib: rss.saturating_sub(rss_before) as f64 / 1024.0 / agents as f64,
        phases: Vec::new(),
    };
    for &pace in &options.paces {
        let count = pace.calls(agents);
        uis.reset();
        let scrape = metrics_text(port);
        let sampling = profile(&pace.label(), pid);
        let clock = PhaseClock::start(pid, xmpp.pid());
        issue(&mut Caller::Sim(sim), pace, count, agents, 0).await;
        let report = uis.ended(count, CALLS_PATIENCE).await;
        assert_eq!(report["errors"], 0, "the agents saw errors: {report}");
        let mut phase = clock.finish(count, Some(&report));
        drop(sampling);
        phase.inside = inside_latency(&scrape, &metrics_text(port));
        system.phases.push(phase);
    }
    system
}

/// The load generator's `agents` agents logged in to the server on `port` (process `pid`,
/// in front of the XMPP server `server`), and what logging them in cost.
fn log_in(port: u16, agents: u64, pid: u32, server: Option<u32>) -> (LoadUis, Phase) {
    let clock = PhaseClock::start(pid, server);
    let uis = LoadUis::start(port, agents);
    let mut login = clock.finish(agents, None);
    // The generator's own clock, without its start-up.
    login.rate = agents as f64 / uis.login_time.as_secs_f64();
    (uis, login)
}

/// The bare socket.io server with `agents` agents logged in, through every phase.
async fn socketio_floor(paces: &[Pace], agents: u64) -> System {
    let (mut server, port) = floor::start_socketio();
    let pid = server.0.id();
    let mut stdin = server.0.stdin.take().expect("piped");
    let (rss_before, _) = usage(pid);
    let (mut uis, login) = log_in(port, agents, pid, None);
    let idle_cpu_pct = idle_cpu(pid).await;
    let (rss, _) = usage(pid);
    let mut system = System {
        name: "socket.io floor".into(),
        login,
        idle_cpu_pct,
        rss_per_agent_kib: rss.saturating_sub(rss_before) as f64 / 1024.0 / agents as f64,
        phases: Vec::new(),
    };
    let mut next_id = 1;
    for &pace in paces {
        let count = pace.calls(agents);
        uis.reset();
        let clock = PhaseClock::start(pid, None);
        issue(&mut Caller::Floor(&mut stdin), pace, count, agents, next_id).await;
        next_id += count;
        let report = uis.ended(count, CALLS_PATIENCE).await;
        assert_eq!(report["errors"], 0, "the agents saw errors: {report}");
        system.phases.push(clock.finish(count, Some(&report)));
    }
    system
}

/// The bare XMPP client in `agents` agent rooms, through every phase.
async fn xmpp_floor(xmpp: &LocalServer, sim: &SimHandle, paces: &[Pace], agents: u64) -> System {
    let mut client = floor::start_xmpp(
        ("floor", &xmpp.domain, "f"),
        xmpp.c2s_port,
        &xmpp.conference,
        FIRST_AGENT,
        agents,
    );
    let pid = client.0.id();
    let (rss_before, _) = usage(pid);
    let clock = PhaseClock::start(pid, xmpp.pid());
    floor::join_rooms(&mut client);
    let login = clock.finish(agents, None);
    let mut stdin = client.0.stdin.take().expect("piped");
    let mut lines = floor::lines(&mut client);
    let idle_cpu_pct = idle_cpu(pid).await;
    let (rss, _) = usage(pid);
    let mut system = System {
        name: "XMPP floor".into(),
        login,
        idle_cpu_pct,
        rss_per_agent_kib: rss.saturating_sub(rss_before) as f64 / 1024.0 / agents as f64,
        phases: Vec::new(),
    };
    for &pace in paces {
        let count = pace.calls(agents);
        writeln!(stdin, "expect {count}").expect("the floor reads its stdin");
        let clock = PhaseClock::start(pid, xmpp.pid());
        issue(&mut Caller::Sim(sim), pace, count, agents, 0).await;
        floor::wait_done(&mut lines);
        system.phases.push(clock.finish(count, None));
    }
    system
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

/// The median of every figure over `runs` of one system.
fn median(runs: &[System]) -> System {
    let first = &runs[0];
    let phases = (0..first.phases.len())
        .map(|i| median_phase(&runs.iter().map(|r| &r.phases[i]).collect::<Vec<_>>()))
        .collect();
    let of = |f: &dyn Fn(&System) -> f64| mid(runs.iter().map(f).collect());
    System {
        name: first.name.clone(),
        login: median_phase(&runs.iter().map(|r| &r.login).collect::<Vec<_>>()),
        idle_cpu_pct: of(&|s| s.idle_cpu_pct),
        rss_per_agent_kib: of(&|s| s.rss_per_agent_kib),
        phases,
    }
}

/// This machine's cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The middle value.
fn mid(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The median of every figure over `runs` of one phase.
fn median_phase(runs: &[&Phase]) -> Phase {
    let of = |f: &dyn Fn(&Phase) -> f64| mid(runs.iter().map(|p| f(p)).collect());
    let inside = runs[0]
        .inside
        .keys()
        .map(|path| {
            let at = |q: fn(&(f64, f64)) -> f64| {
                mid(runs
                    .iter()
                    .filter_map(|r| r.inside.get(path))
                    .map(q)
                    .collect())
            };
            (path.clone(), (at(|p| p.0), at(|p| p.1)))
        })
        .collect();
    Phase {
        cpu_per_trip_us: of(&|p| p.cpu_per_trip_us),
        server_cpu_per_trip_us: of(&|p| p.server_cpu_per_trip_us),
        busy_cores: of(&|p| p.busy_cores),
        rate: of(&|p| p.rate),
        ui_p50: of(&|p| p.ui_p50),
        ui_p99: of(&|p| p.ui_p99),
        inside,
    }
}

/// `cell` of every system's phase at each pace, one row per pace; `—` where it is NaN.
fn phase_rows(
    options: &Options,
    all: &[&System],
    figure: &str,
    cell: impl Fn(&Phase) -> (f64, String),
) {
    for (i, pace) in options.paces.iter().enumerate() {
        let cells: Vec<String> = all
            .iter()
            .map(|s| match cell(&s.phases[i]) {
                (v, _) if v.is_nan() => "—".into(),
                (_, text) => text,
            })
            .collect();
        println!("| {figure}, {} | {} |  |", pace.label(), cells.join(" | "));
    }
}

/// One row per pace of `cell` for every system in `all` (the bridge first, the two floors
/// last), ending with the bridge's `value` over the floors' together.
fn ratio_rows(
    options: &Options,
    all: &[&System],
    figure: &str,
    value: &dyn Fn(&System, usize) -> f64,
    cell: &dyn Fn(&System, usize) -> String,
) {
    let n = all.len();
    for (i, pace) in options.paces.iter().enumerate() {
        let cells: Vec<String> = all.iter().map(|s| cell(s, i)).collect();
        let ratio = value(all[0], i) / (value(all[n - 2], i) + value(all[n - 1], i));
        println!(
            "| {figure}, {} | {} | {ratio:.2}× |",
            pace.label(),
            cells.join(" | ")
        );
    }
}

/// The rows of figures measured once per level rather than per phase.
fn level_rows(options: &Options, all: &[&System]) {
    let level_row = |figure: &str, cell: &dyn Fn(&System) -> String| {
        let cells: Vec<String> = all.iter().map(|s| cell(s)).collect();
        println!("| {figure} | {} |  |", cells.join(" | "));
    };
    level_row("idle CPU, all connected, no call", &|s| {
        format!("{:.2}% of a core", s.idle_cpu_pct)
    });
    level_row("idle RSS per agent", &|s| {
        format!("{:.1} KiB", s.rss_per_agent_kib)
    });
    level_row("connect rate (UI logins; XMPP floor: room joins)", &|s| {
        format!("{:.0}/s", s.login.rate)
    });
    level_row("CPU per login", &|s| {
        format!("{:.0} µs", s.login.cpu_per_trip_us)
    });
    level_row(&format!("{} CPU per login", options.server), &|s| match s
        .login
        .server_cpu_per_trip_us
    {
        us if us.is_nan() => "—".into(),
        us => format!("{us:.0} µs"),
    });
    level_row("whole machine busy during logins", &|s| {
        format!("{:.2} of {} cores", s.login.busy_cores, cores())
    });
}

fn print_level(
    options: &Options,
    agents: u64,
    rounds: usize,
    bridges: &[System],
    socketio: &System,
    xmpp: &System,
) {
    println!("\n### {agents} agents (median of {rounds} rounds)\n");
    let all: Vec<&System> = bridges.iter().chain([socketio, xmpp]).collect();
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    println!(
        "| figure | {} | bridge / (socket.io + XMPP floors) |\n|---|{}---|",
        names.join(" | "),
        "---|".repeat(all.len())
    );
    ratio_rows(
        options,
        &all,
        "CPU per round trip",
        &|s, i| s.phases[i].cpu_per_trip_us,
        &|s, i| {
            let p = &s.phases[i];
            format!("{:.0} µs ({:.0}/s)", p.cpu_per_trip_us, p.rate)
        },
    );
    // What each round trip costs beyond the work every connected agent costs anyway
    // (heartbeats, self-pings), which the idle row shows: the part that grows with calls.
    let beyond = |s: &System, i: usize| above_idle(&s.phases[i], s.idle_cpu_pct);
    ratio_rows(
        options,
        &all,
        "CPU per round trip beyond idle",
        &beyond,
        &|s, i| format!("{:.0} µs", beyond(s, i)),
    );
    phase_rows(
        options,
        &all,
        &format!("{} CPU per round trip", options.server),
        |p| {
            let us = p.server_cpu_per_trip_us;
            (us, format!("{us:.0} µs"))
        },
    );
    phase_rows(options, &all, "whole machine busy", |p| {
        (
            p.busy_cores,
            format!("{:.2} of {} cores", p.busy_cores, cores()),
        )
    });
    phase_rows(options, &all, "UI END_CALL → CALL_ENDED p50/p99", |p| {
        (p.ui_p50, format!("{:.2}/{:.2} ms", p.ui_p50, p.ui_p99))
    });
    for path in ["to_platform", "to_agent"] {
        phase_rows(
            options,
            &all,
            &format!("inside the bridge {path} p50/p99"),
            |p| match p.inside.get(path) {
                Some((p50, p99)) => (*p50, format!("{p50:.0}/{p99:.0} µs")),
                None => (f64::NAN, String::new()),
            },
        );
    }
    level_rows(options, &all);
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
        common::BRIDGE_THREADS
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
