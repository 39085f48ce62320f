//! Fault runner: the release bridge binary, a real Prosody, the simulator and Node agent UIs,
//! put through what production does to them. Each case prints its figures.
//!
//! - `xmpp-kill`: agents hold calls while the simulator starts and ends calls; Prosody is
//!   SIGKILLed and restarted at random moments. After each recovery: time from Prosody
//!   accepting again to `/readyz` 200, and whether every agent's UI shows exactly the calls
//!   the platform has for it (with no NEW_CALL twice and no CALL_ENDED for a call not shown).
//! - `churn`: connect / `USER_CONNECT` / disconnect cycles, every other one left to expire
//!   through the reconnect grace and logged in again at its very end, then disconnected;
//!   sessions, sockets, pending requests, rooms and RSS before and after, and how many of
//!   those late logins got `USER_CONNECTED` but not `USER_DISCONNECTED`.
//!
//! - `fuzz`: sockets, half of them logged in as other agents, send random events (wrong
//!   types, missing and extra fields, huge strings, deep nesting, binary attachments,
//!   unknown names, with and without acknowledgements, aimed at a victim's call ids) while
//!   the victim agent takes and loses calls; then one frame above the transport limit.
//!
//! - `platform`: the bridge's platform client sends `--requests` requests to a simulator
//!   that, for 10% of the agents each, answers late (past the timeout), out of order, twice,
//!   never, after a malformed body, or after a forged answer from another occupant. Every
//!   request must end exactly once, with its own answer or a timeout, none with another's.
//! - `shutdown`: agents end each call the moment it arrives while the platform takes 500 ms
//!   to answer each hangup; the bridge gets SIGTERM with those requests in flight. Figures:
//!   exit status and time, END_CALLs answered (ended or refused) against those left without
//!   an answer when the socket closed, and the UIs against the platform.
//! - `flood`: one client address opens connections and sends `USER_CONNECT`s for ever more
//!   usernames as fast as it can while healthy agents, from another address, take and end
//!   calls; the healthy agents' round trip alone and during the flood, on a bridge with its
//!   default limits and on one without limits, and what the flood got.
//! - `soak` (with `--soak SECONDS`): agents hold calls while the simulator starts and ends
//!   up to 100 calls a second; the bridge's RSS is sampled every 10 s and its trend printed.
//!
//! Run: `cargo bench --bench faults` (options: `-- --agents 200 --kills 4 --churn 2000
//! --fuzz 20000 --requests 20000 --soak 600 --seed 1 --only churn --server ejabberd`). Needs
//! Prosody (or ejabberd for `--server ejabberd`) and `npm ci --prefix tests/node`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Lines, Write};
use std::net::Ipv4Addr;
use std::process::{ChildStdin, ChildStdout};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::load::LoadUis;
use common::raw_socket::RawSocket;
use common::{
    FIRST_AGENT, Killed, Limits, probe_platform, scenario, start_bridge_limited, start_node, usage,
    wait_ready,
};
use converja_bridge::converja::{AgentId, QueueId};
use converja_bridge::local_server::{LocalServer, ServerKind};
use converja_bridge::sim::{self, Fault, FaultRule, SimHandle};
use futures::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const DOMAIN: &str = "faults.bench";

/// How long a recovered bridge may take to show every UI what the platform has.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// The reconnect grace of the churn: short, so that many logins land at its end.
const CHURN_GRACE: Duration = Duration::from_secs(1);
/// How long the platform takes to answer the churn's agent status reads and logouts, as a
/// real one does rather than at once like the simulator: a late login's checks and the end of
/// the expired session on the platform then overlap, as they do in production.
const CHURN_PLATFORM_TIME: Duration = Duration::from_millis(200);

/// The XMPP server the cases run against (`--server`).
static SERVER: std::sync::OnceLock<ServerKind> = std::sync::OnceLock::new();

fn server() -> ServerKind {
    SERVER.get().copied().unwrap_or(ServerKind::Prosody)
}

/// A small deterministic generator: same seed, same run.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// The Node agent UIs and their pipes.
struct Uis {
    _child: Killed,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Uis {
    fn start(args: &[String]) -> Uis {
        Uis::script("faults.mjs", args)
    }

    fn script(script: &str, args: &[String]) -> Uis {
        let mut child = start_node(script, args);
        let stdin = child.0.stdin.take().expect("piped");
        let lines = BufReader::new(child.0.stdout.take().expect("piped")).lines();
        Uis {
            _child: child,
            stdin,
            lines,
        }
    }

    /// `agents` agent UIs logged in to the bridge on `port`, keeping what they are shown.
    fn agents(port: u16, agents: u64) -> Uis {
        let mut uis = Uis::start(&[
            "agents".into(),
            format!("http://127.0.0.1:{port}"),
            agents.to_string(),
            FIRST_AGENT.to_string(),
        ]);
        assert_eq!(uis.read()["errors"], 0, "every agent logs in");
        uis
    }

    fn read(&mut self) -> Value {
        let line = self.lines.next().expect("a line").expect("readable");
        serde_json::from_str(&line).expect("json")
    }

    /// Each agent's shown calls, and the contract errors seen so far.
    fn view(&mut self) -> (BTreeMap<String, Vec<String>>, Value) {
        writeln!(self.stdin, "view").expect("ask");
        let v = self.read();
        let view = serde_json::from_value(v["view"].clone()).expect("a map");
        (view, v["firstError"].clone())
    }
}

/// What the platform has: each agent's active calls.
async fn platform_view(sim: &SimHandle) -> BTreeMap<String, Vec<String>> {
    sim.world()
        .await
        .agents
        .into_iter()
        .map(|(id, a)| {
            let mut calls: Vec<String> = a.calls.iter().map(|c| c.to_string()).collect();
            calls.sort();
            (id.to_string(), calls)
        })
        .collect()
}

/// Starts and ends calls at random until `stop`; failures while the server is down are
/// expected and ignored.
async fn traffic(
    sim: SimHandle,
    agents: u64,
    seed: u64,
    pause: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    let mut dice = Dice(seed);
    while !stop.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if pause.load(Ordering::Relaxed) {
            continue;
        }
        let agent = AgentId::new((FIRST_AGENT + dice.below(agents)).to_string());
        let world = sim.world().await;
        let held = world
            .agents
            .get(&agent)
            .map(|a| a.calls.clone())
            .unwrap_or_default();
        if held.len() < 3 && dice.below(2) == 0 {
            let _ = sim.start_call(QueueId(7), &agent, "0800").await;
        } else if let Some(call) = held.get(dice.below(held.len() as u64) as usize) {
            let _ = sim.finish_call(*call).await;
        }
    }
}

/// Waits until every UI shows what the platform has; how long it took, or the mismatches.
async fn settle(uis: &mut Uis, sim: &SimHandle) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let platform = platform_view(sim).await;
        let (ui, error) = uis.view();
        if !error.is_null() {
            return Err(format!("contract error seen by a UI: {error}"));
        }
        let wrong: Vec<String> = ui
            .iter()
            .filter(|(agent, calls)| {
                platform
                    .get(*agent)
                    .map_or(!calls.is_empty(), |p| p != *calls)
            })
            .map(|(agent, calls)| {
                format!("{agent}: UI {calls:?} platform {:?}", platform.get(agent))
            })
            .collect();
        if wrong.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > SETTLE_LIMIT {
            return Err(format!("{} agents differ, e.g. {}", wrong.len(), wrong[0]));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn xmpp_kill(agents: u64, kills: u32, seed: u64) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (mut prosody, sim, bridge, port, _dir) =
        stack(agents, "reconnect_grace = \"600s\"\n", &tracker, &cancel).await;
    let mut uis = Uis::agents(port, agents);
    let pause = Arc::new(AtomicBool::new(false));
    tracker.spawn(traffic(
        sim.clone(),
        agents,
        seed,
        pause.clone(),
        cancel.clone(),
    ));
    let mut dice = Dice(seed ^ 0x5eed);
    let mut ready_after = Vec::new();
    let mut failures = 0;
    for kill in 1..=kills {
        tokio::time::sleep(Duration::from_millis(500 + dice.below(2000))).await;
        prosody.kill();
        tokio::time::sleep(Duration::from_millis(200 + dice.below(1500))).await;
        prosody.restart().expect("Prosody restarts");
        let ready = tokio::task::spawn_blocking(move || wait_ready(port))
            .await
            .expect("joined");
        ready_after.push(ready);
        pause.store(true, Ordering::Relaxed);
        sim.ready().await;
        match settle(&mut uis, &sim).await {
            Ok(took) => println!(
                "  kill {kill}: /readyz 200 {:>5} ms after Prosody accepted again; every UI equal to the platform {:>5} ms later",
                ready.as_millis(),
                took.as_millis()
            ),
            Err(e) => {
                failures += 1;
                println!(
                    "  kill {kill}: /readyz after {} ms; UIs NOT equal to the platform: {e}",
                    ready.as_millis()
                );
            }
        }
        pause.store(false, Ordering::Relaxed);
    }
    cancel.cancel();
    // Every request the bridge sent has ended once the traffic stops and the timeout passes:
    // with an answer, a failure or a timeout, each counted by outcome; none still waiting.
    let quiet = Instant::now();
    while metric(port, "converja_pending_requests") > 0.0 && quiet.elapsed() < SETTLE_LIMIT * 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outcomes = metric_by(port, "converja_requests_total", "outcome");
    let worst = ready_after.iter().max().copied().unwrap_or_default();
    println!(
        "xmpp-kill: {agents} agents, {kills} SIGKILLs of Prosody: worst accept→/readyz {} ms (target ≤ 2000); recoveries with a UI differing from the platform: {failures}; platform requests by outcome {}; still pending {} (target 0); bridge alive: {}",
        worst.as_millis(),
        outcomes
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        metric(port, "converja_pending_requests"),
        usage(bridge.0.id()).0 > 0
    );
}

/// A gauge or counter of the bridge's `/metrics`, summed over its label sets.
fn metric(port: u16, name: &str) -> f64 {
    let Some(text) = common::admin_get(port, "/metrics") else {
        return f64::NAN;
    };
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A counter of the bridge's `/metrics` summed by the value of one of its labels.
fn metric_by(port: u16, name: &str, label: &str) -> BTreeMap<String, f64> {
    let Some(text) = common::admin_get(port, "/metrics") else {
        return BTreeMap::new();
    };
    let key = format!("{label}=\"");
    let mut sums = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(&format!("{name}{{"))) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some(at) = labels.find(&key) else {
            continue;
        };
        let rest = &labels[at + key.len()..];
        let label_value = rest.split('"').next().unwrap_or_default().to_string();
        *sums.entry(label_value).or_insert(0.0) += value.parse::<f64>().unwrap_or(f64::NAN);
    }
    sums
}

async fn churn(cycles: u64) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let grace = format!("reconnect_grace = \"{}ms\"\n", CHURN_GRACE.as_millis());
    let (_prosody, sim, bridge, port, _dir) = stack(100, &grace, &tracker, &cancel).await;
    let slow = Fault {
        delay: Some(CHURN_PLATFORM_TIME),
        ..Fault::default()
    };
    sim.set_faults(vec![
        FaultRule::new("/agents", slow.clone()),
        FaultRule::new("/session", slow),
    ])
    .await;
    let pid = bridge.0.id();
    let gauges = [
        "converja_sessions",
        "converja_sockets",
        "converja_pending_requests",
        "converja_xmpp_rooms_joined",
    ];
    let before: Vec<f64> = gauges.iter().map(|g| metric(port, g)).collect();
    let (rss_before, _) = usage(pid);
    let started = Instant::now();
    let mut uis = Uis::start(&[
        "churn".into(),
        format!("http://127.0.0.1:{port}"),
        cycles.to_string(),
        FIRST_AGENT.to_string(),
        CHURN_GRACE.as_millis().to_string(),
    ]);
    let done = uis.read();
    let took = started.elapsed();
    // Past the grace and a clock tick or two, every session should be gone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<f64> = gauges.iter().map(|g| metric(port, g)).collect();
    let (rss_after, _) = usage(pid);
    println!(
        "churn: {} cycles in {:.1} s, errors {} ({}); {}; RSS {:.1} MiB before, {:.1} MiB after",
        done["cycles"],
        took.as_secs_f64(),
        done["errors"],
        done["firstError"],
        gauges
            .iter()
            .zip(before.iter().zip(&after))
            .map(|(g, (b, a))| format!("{g} {b}→{a}"))
            .collect::<Vec<_>>()
            .join(", "),
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
    );
    println!(
        "  grace edge ({:?}, status and logout answered in {} ms): {} logins again at the very end of the grace got USER_CONNECTED; {} of them then got no USER_DISCONNECTED (target 0; first: {})",
        server(),
        CHURN_PLATFORM_TIME.as_millis(),
        done["edge"],
        done["edgeLost"],
        done["firstEdgeLost"],
    );
    cancel.cancel();
}

/// Starts Prosody, the simulator with `agents` agents and the bridge binary.
async fn stack(
    agents: u64,
    extra: &str,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> (LocalServer, SimHandle, Killed, u16, tempfile::TempDir) {
    stack_limited(agents, extra, Limits::Off, tracker, cancel).await
}

/// [`stack`] with the bridge's `limits`.
async fn stack_limited(
    agents: u64,
    extra: &str,
    limits: Limits,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> (LocalServer, SimHandle, Killed, u16, tempfile::TempDir) {
    let prosody = LocalServer::start(server(), DOMAIN, &[("bridge", "b"), ("platform", "p")])
        .unwrap_or_else(|e| panic!("{e}"));
    let sim = sim::start(
        prosody.account("platform", "p"),
        prosody.conference.parse().expect("domain"),
        scenario(agents),
        tracker,
        cancel.clone(),
    );
    sim.ready().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (bridge, port) = start_bridge_limited(&prosody, dir.path(), extra, limits);
    (prosody, sim, bridge, port, dir)
}

async fn fuzz(events: u64) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (_prosody, sim, bridge, port, _dir) = stack(12, "", &tracker, &cancel).await;
    let victim = AgentId::new(FIRST_AGENT.to_string());
    let mut ui = Uis::agents(port, 1);
    let kept = sim
        .start_call(QueueId(7), &victim, "0800")
        .await
        .expect("a call");
    let mut fuzzer = Uis::start(&[
        "fuzz".into(),
        format!("http://127.0.0.1:{port}"),
        events.to_string(),
        FIRST_AGENT.to_string(),
    ]);
    assert_eq!(fuzzer.read()["event"], "ready");
    writeln!(fuzzer.stdin, "calls {kept},{}", kept.0 + 1).expect("aim");
    writeln!(fuzzer.stdin, "go").expect("go");
    let started = Instant::now();
    // The victim keeps working while the fuzzing runs: calls come and go on its screen.
    let mut round_trips = 0;
    let mut failures = 0;
    let fuzzed = loop {
        let call = sim
            .start_call(QueueId(7), &victim, "0800")
            .await
            .expect("a call");
        failures += usize::from(settle(&mut ui, &sim).await.is_err());
        sim.finish_call(call).await.expect("ends");
        failures += usize::from(settle(&mut ui, &sim).await.is_err());
        round_trips += 1;
        if let Ok(Some(_)) = fuzzer._child.0.try_wait() {
            break fuzzer.read();
        }
    };
    let still = sim.world().await.agents[&victim].calls.contains(&kept);
    println!(
        "fuzz: {} events in {:.1} s ({} acknowledged, {} acknowledgements missing, {} socket drops); frame above the limit: {}; victim round trips during it {round_trips} (failures {failures}); victim's call untouched by others: {still}; bridge alive: {}",
        fuzzed["sent"],
        started.elapsed().as_secs_f64(),
        fuzzed["acks"],
        fuzzed["ackTimeouts"],
        fuzzed["disconnects"],
        fuzzed["oversized"],
        usage(bridge.0.id()).0 > 0,
    );
    if fuzzed["ackTimeouts"] != 0 {
        println!("  unanswered, e.g.: {}", fuzzed["missing"]);
    }
    cancel.cancel();
}

/// The fault each tenth of the agents' requests meets, by agent-id prefix.
fn platform_faults() -> Vec<(&'static str, Fault)> {
    let fault = Fault::default;
    vec![
        (
            "reorder",
            Fault {
                reorder: true,
                ..fault()
            },
        ),
        (
            "duplicate",
            Fault {
                duplicate: true,
                ..fault()
            },
        ),
        (
            "drop",
            Fault {
                drop: true,
                ..fault()
            },
        ),
        (
            "malformed",
            Fault {
                malformed: true,
                ..fault()
            },
        ),
        (
            "spoof",
            Fault {
                spoof_first: true,
                ..fault()
            },
        ),
        // Past the request timeout.
        (
            "late",
            Fault {
                delay: Some(Duration::from_secs(5)),
                ..fault()
            },
        ),
    ]
}

/// Per outcome: answered with another request's answer, ended unexpectedly, and per fault
/// how many were answered and how many timed out.
fn tally(
    outcomes: &[(u64, Result<AgentId, String>)],
    faults: &[(&'static str, Fault)],
) -> (u64, u64, BTreeMap<&'static str, (u64, u64)>) {
    let mut wrong = 0;
    let mut unexpected = 0;
    let mut by_fault: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (n, outcome) in outcomes {
        let fault = faults
            .get((n / 10) as usize)
            .map_or("none", |(name, _)| *name);
        let expect_answer = !matches!(fault, "drop" | "late");
        let entry = by_fault.entry(fault).or_default();
        match outcome {
            Ok(agent) if agent.as_str() != (FIRST_AGENT + n).to_string() => wrong += 1,
            Ok(_) => entry.0 += 1,
            Err(e) if e == "timeout" && !expect_answer => entry.1 += 1,
            Err(_) => unexpected += 1,
        }
    }
    (wrong, unexpected, by_fault)
}

async fn misbehaving_platform(requests: u64) {
    let prosody = LocalServer::start(server(), DOMAIN, &[("platform", "p"), ("probe", "x")])
        .unwrap_or_else(|e| panic!("{e}"));
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let sim = sim::start(
        prosody.account("platform", "p"),
        prosody.conference.parse().expect("domain"),
        scenario(100),
        &tracker,
        cancel.clone(),
    );
    sim.ready().await;
    // Agents 300x0..300x9 of each tenth x meet fault x; x = 6..9 are answered normally.
    let faults = platform_faults();
    let rules = faults
        .iter()
        .enumerate()
        .map(|(tenth, (_, fault))| {
            FaultRule::new(
                &format!("/agents/{}{tenth}", FIRST_AGENT / 100),
                fault.clone(),
            )
        })
        .collect();
    sim.set_faults(rules).await;
    let platform = probe_platform(&prosody, Duration::from_secs(3), &tracker, &cancel).await;
    let started = Instant::now();
    let outcomes: Vec<(u64, Result<AgentId, String>)> = futures::stream::iter(0..requests)
        .map(|i| {
            let platform = platform.clone();
            async move {
                let agent = AgentId::new((FIRST_AGENT + i % 100).to_string());
                let answer = platform.agent_status(&agent).await;
                (
                    i % 100,
                    answer.map(|s| s.agent).map_err(|e| e.outcome().to_owned()),
                )
            }
        })
        .buffer_unordered(500)
        .collect()
        .await;
    let (wrong, unexpected, by_fault) = tally(&outcomes, &faults);
    println!(
        "platform: {} requests in {:.1} s, each ended once ({} results); answers given to the wrong request: {wrong}; unexpected outcomes: {unexpected}; still pending: {}; answered/timed out by fault: {}",
        requests,
        started.elapsed().as_secs_f64(),
        outcomes.len(),
        platform.pending(),
        by_fault
            .iter()
            .map(|(f, (ok, timeout))| format!("{f} {ok}/{timeout}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    cancel.cancel();
}

/// Acknowledged END_CALLs each stalled socket sends before it stops reading.
const FLOOD: u64 = 1000;

/// `rounds` rounds of one call per healthy agent, each ended by its UI at once (load.mjs);
/// the UIs' report on those rounds alone.
async fn healthy_rounds(sim: &SimHandle, load: &mut LoadUis, agents: u64, rounds: u64) -> Value {
    load.reset();
    for round in 1..=rounds {
        for i in 0..agents {
            let agent = AgentId::new((FIRST_AGENT + i).to_string());
            sim.start_call(QueueId(7), &agent, "0800")
                .await
                .expect("call starts");
        }
        load.ended(round * agents, Duration::from_secs(300)).await;
    }
    load.report()
}

/// How a stalled socket ended once it read again.
#[derive(Default)]
struct Resumed {
    complete: u64,
    dropped: u64,
    missing: u64,
}

/// What one wave of stalled sockets did to the bridge.
struct Wave {
    /// The healthy agents' report during the wave.
    healthy: Value,
    sent: u64,
    rss_before: u64,
    rss_peak: u64,
    rss_after: u64,
    resumed: Resumed,
    dropped: f64,
}

async fn stalled(stallers: u64, healthy: u64, rounds: u64) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (_prosody, sim, bridge, port, _dir) =
        stack(healthy + stallers, "", &tracker, &cancel).await;
    let pid = bridge.0.id();
    let mut load = LoadUis::start(port, healthy);
    let alone = healthy_rounds(&sim, &mut load, healthy, rounds).await;
    let ms = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    // Twice: memory that a second wave does not add to is reused, not leaked.
    for wave in 1..=2 {
        let w = stall_wave(port, pid, &sim, &mut load, healthy, stallers, rounds).await;
        println!(
            "stalled, wave {wave}: {stallers} sockets stop reading after sending {FLOOD} acknowledged events each ({} sent) while {healthy} agents work ({rounds} rounds): healthy END_CALL→CALL_ENDED p50/p99 {:.2}/{:.2} ms alone, {:.2}/{:.2} ms with them (p99 {:.2}x, target ≤ 2x); bridge RSS {:.1} MiB with them logged in, peak {:.1} MiB ({:.0} KiB per stalled socket, target ≤ 256), {:.1} MiB after they closed; once reading again {} got every answer, {} found their socket dropped by the bridge (counted so far: {}), {} live but missing answers (target 0); healthy errors {}",
            w.sent,
            ms(&alone, "p50"),
            ms(&alone, "p99"),
            ms(&w.healthy, "p50"),
            ms(&w.healthy, "p99"),
            ms(&w.healthy, "p99") / ms(&alone, "p99"),
            w.rss_before as f64 / 1048576.0,
            w.rss_peak as f64 / 1048576.0,
            w.rss_peak.saturating_sub(w.rss_before) as f64 / 1024.0 / stallers as f64,
            w.rss_after as f64 / 1048576.0,
            w.resumed.complete,
            w.resumed.dropped,
            w.dropped,
            w.resumed.missing,
            w.healthy["errors"],
        );
    }
    cancel.cancel();
}

/// A bare socket logged in as `agent`.
async fn raw_login(port: u16, agent: u64) -> RawSocket {
    let mut socket = RawSocket::connect(port, 4096).await.expect("connects");
    let login = format!(r#"42["USER_CONNECT",{{"username":"{agent}","maxCalls":1}}]"#);
    socket.send(&login).await.expect("sends");
    socket
        .read_until(|t| t.starts_with(r#"42["USER_CONNECTED""#))
        .await
        .expect("logs in");
    socket
}

/// The stalled sockets read again: each must get every answer or find itself dropped.
async fn resume(floods: Vec<tokio::task::JoinHandle<(RawSocket, u64)>>) -> (Resumed, u64) {
    let mut sent_total = 0;
    let mut readers = Vec::new();
    for flood in floods {
        let (mut socket, sent) = flood.await.expect("joined");
        sent_total += sent;
        readers.push(tokio::spawn(async move {
            // Every answer, or the bridge's close ("41", or the connection itself).
            let mut answers = 0;
            while answers < sent {
                let next = socket.read_until(|t| t.starts_with("43") || t.starts_with("41"));
                match tokio::time::timeout(Duration::from_secs(10), next).await {
                    Ok(Ok(t)) if t.starts_with("43") => answers += 1,
                    Ok(_) => return (1, 0),
                    Err(_) => return (0, 1),
                }
            }
            (0, 0)
        }));
    }
    let mut resumed = Resumed::default();
    for reader in readers {
        match reader.await.expect("joined") {
            (1, _) => resumed.dropped += 1,
            (_, 1) => resumed.missing += 1,
            _ => resumed.complete += 1,
        }
    }
    (resumed, sent_total)
}

/// `stallers` sockets log in, flood and stop reading while the healthy agents work; then
/// they read again (each must get every answer or find itself dropped) and close.
async fn stall_wave(
    port: u16,
    pid: u32,
    sim: &SimHandle,
    load: &mut LoadUis,
    healthy: u64,
    stallers: u64,
    rounds: u64,
) -> Wave {
    let mut sockets = Vec::new();
    for i in 0..stallers {
        sockets.push(raw_login(port, FIRST_AGENT + healthy + i).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = usage(pid).0;
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(rss_before));
    let sampling = CancellationToken::new();
    let sampler = tokio::spawn({
        let (peak, sampling) = (peak.clone(), sampling.clone());
        async move {
            while !sampling.is_cancelled() {
                peak.fetch_max(usage(pid).0, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    // Acknowledged END_CALLs with long call ids (echoed clipped in the error), never read.
    let call_id = "9".repeat(500);
    let floods: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            let call_id = call_id.clone();
            tokio::spawn(async move {
                let mut sent = 0;
                let _ = tokio::time::timeout(Duration::from_secs(60), async {
                    for k in 0..FLOOD {
                        let packet = format!(r#"42{k}["END_CALL",{{"callId":"{call_id}"}}]"#);
                        if socket.send(&packet).await.is_err() {
                            break;
                        }
                        sent += 1;
                    }
                })
                .await;
                (socket, sent)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = healthy_rounds(sim, load, healthy, rounds).await;
    let (resumed, sent_total) = resume(floods).await;
    sampling.cancel();
    let _ = sampler.await;
    let settled = Instant::now();
    while metric(port, "converja_sockets") > healthy as f64 && settled.elapsed() < SETTLE_LIMIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Wave {
        healthy: during,
        sent: sent_total,
        rss_before,
        rss_peak: peak.load(Ordering::Relaxed),
        rss_after: usage(pid).0,
        resumed,
        dropped: metric(port, "converja_sockets_dropped_total"),
    }
}

/// The flooding client's address; the healthy agents come from 127.0.0.1.
const HOSTILE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// `USER_CONNECT`s each flooding connection sends at once, each for another username, before
/// it reads their answers and closes.
const FLOOD_LOGINS: u64 = 8;
/// Agents of the platform the flood logs in as (none of them a healthy agent).
const FLOOD_USERNAMES: u64 = 200;

/// What the flooding client got, by outcome: `USER_CONNECTED`, the text of each
/// `USER_CONNECTION_ERROR`, the handshake's refusal, or no answer at all.
type FloodTally = Arc<std::sync::Mutex<BTreeMap<String, u64>>>;

fn count(tally: &FloodTally, outcome: impl Into<String>) {
    *tally
        .lock()
        .expect("not poisoned")
        .entry(outcome.into())
        .or_default() += 1;
}

/// One flooding connection: a handshake from [`HOSTILE`], [`FLOOD_LOGINS`] logins sent at
/// once, each answer read (or its absence counted), then the connection closed.
async fn flood_once(
    port: u16,
    healthy: u64,
    next_username: &std::sync::atomic::AtomicU64,
    tally: &FloodTally,
) {
    let mut socket = match RawSocket::connect_from(HOSTILE, port).await {
        Ok(socket) => socket,
        Err(e) => {
            let text = e.to_string();
            let status = text.split_whitespace().nth(4).unwrap_or("");
            count(
                tally,
                format!(
                    "handshake refused: {status} {}",
                    if status == "429" {
                        "Too Many Requests"
                    } else {
                        &text
                    }
                ),
            );
            return;
        }
    };
    count(tally, "connections opened");
    for _ in 0..FLOOD_LOGINS {
        let n = next_username.fetch_add(1, Ordering::Relaxed) % FLOOD_USERNAMES;
        let login = format!(
            r#"42["USER_CONNECT",{{"username":"{}","maxCalls":1}}]"#,
            FIRST_AGENT + healthy + n
        );
        if socket.send(&login).await.is_err() {
            count(tally, "connection closed by the bridge");
            return;
        }
    }
    for _ in 0..FLOOD_LOGINS {
        let answer = socket.read_until(|t| {
            t.starts_with(r#"42["USER_CONNECTED""#)
                || t.starts_with(r#"42["USER_CONNECTION_ERROR""#)
        });
        match tokio::time::timeout(Duration::from_secs(10), answer).await {
            Ok(Ok(t)) if t.starts_with(r#"42["USER_CONNECTED""#) => count(tally, "USER_CONNECTED"),
            Ok(Ok(t)) => {
                let reply: Value = serde_json::from_str(&t[2..]).unwrap_or_default();
                // Usernames and counts as N, so that the texts add up by kind.
                let error: String = reply[1]["error"]
                    .as_str()
                    .unwrap_or("(no text)")
                    .split(|c: char| c.is_ascii_digit())
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join("N");
                count(tally, format!("USER_CONNECTION_ERROR: {error}"));
            }
            Ok(Err(_)) => return count(tally, "connection closed by the bridge"),
            Err(_) => count(tally, "no answer within 10 s (target 0)"),
        }
    }
}

/// What a flood did, seen from the flooding client.
struct Flood {
    tally: BTreeMap<String, u64>,
    /// CPU time (clock ticks) the flooding client itself used.
    cpu_ticks: u64,
}

/// CPU time (clock ticks) of the calling thread.
fn thread_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    field(11).unwrap_or(0) + field(12).unwrap_or(0)
}

/// `flooders` connections at a time from [`HOSTILE`] until `stop`, on a thread and runtime of
/// their own, so that the simulator's answers never wait behind the flood's tasks: on a real
/// site the flood comes from another machine, and here it shares the cores at least no more.
fn start_flood(
    port: u16,
    healthy: u64,
    flooders: u64,
    stop: CancellationToken,
) -> std::thread::JoinHandle<Flood> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let tally = FloodTally::default();
        let next_username = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = thread_ticks();
        rt.block_on(async {
            let tracker = TaskTracker::new();
            for _ in 0..flooders {
                let (tally, next, stop) = (tally.clone(), next_username.clone(), stop.clone());
                tracker.spawn(async move {
                    while !stop.is_cancelled() {
                        tokio::select! {
                            () = flood_once(port, healthy, &next, &tally) => {}
                            () = stop.cancelled() => {}
                        }
                    }
                });
            }
            tracker.close();
            tracker.wait().await;
        });
        let tally = std::mem::take(&mut *tally.lock().expect("not poisoned"));
        Flood {
            tally,
            cpu_ticks: thread_ticks() - started,
        }
    })
}

/// The flood against a bridge with `limits`: healthy agents' rounds alone and during it.
async fn flood_against(limits: Limits, flooders: u64, healthy: u64, rounds: u64) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    // The healthy agents first, then the flood's usernames.
    let (_prosody, sim, bridge, port, _dir) =
        stack_limited(healthy + FLOOD_USERNAMES, "", limits, &tracker, &cancel).await;
    let pid = bridge.0.id();
    let mut load = LoadUis::start(port, healthy);
    let alone = healthy_rounds(&sim, &mut load, healthy, rounds).await;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let flooding = start_flood(port, healthy, flooders, stop.clone());
    // The flood in full swing before the healthy agents are measured again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (bridge_before, machine_before) = (usage(pid).1, machine_ticks());
    let measured = Instant::now();
    let during = healthy_rounds(&sim, &mut load, healthy, rounds).await;
    let share = |ticks: u64| ticks as f64 / measured.elapsed().as_secs_f64();
    let bridge_cpu = share(usage(pid).1 - bridge_before);
    let machine_cpu = share(machine_ticks() - machine_before);
    stop.cancel();
    let flood = tokio::task::spawn_blocking(move || flooding.join().expect("the flood ran"))
        .await
        .expect("joined");
    let flooded = started.elapsed().as_secs_f64();
    let ms = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "flood, limits {}: {flooders} connections at a time from one address, {FLOOD_LOGINS} USER_CONNECTs each at once, for {flooded:.1} s, while {healthy} agents from another address work ({rounds} rounds): healthy END_CALL→CALL_ENDED p50/p99 {:.2}/{:.2} ms alone, {:.2}/{:.2} ms during the flood (p99 {:.2}x); CPU while measured, in % of a core: bridge {:.0}, whole machine {:.0} of 200, the flooding client {:.0} over the flood; healthy errors {}, disconnects {}",
        if limits == Limits::Defaults {
            "on (defaults)"
        } else {
            "off"
        },
        ms(&alone, "p50"),
        ms(&alone, "p99"),
        ms(&during, "p50"),
        ms(&during, "p99"),
        ms(&during, "p99") / ms(&alone, "p99"),
        bridge_cpu,
        machine_cpu,
        flood.cpu_ticks as f64 / flooded,
        during["errors"],
        during["disconnected"],
    );
    for (outcome, n) in &flood.tally {
        println!("  the flood got: {outcome}: {n}");
    }
    println!(
        "  the bridge counted: sockets refused {:?}, events limited {:?}; sessions now {}",
        metric_by(port, "converja_sockets_refused_total", "reason"),
        metric_by(port, "converja_events_limited_total", "reason"),
        metric(port, "converja_sessions"),
    );
    cancel.cancel();
}

/// Busy CPU time of the whole machine (clock ticks, every core), from `/proc/stat`.
fn machine_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    fields
        .iter()
        .enumerate()
        .filter(|(i, _)| !matches!(i, 3 | 4) && *i < 8)
        .map(|(_, v)| v)
        .sum()
}

/// The flood case: with the default limits, then without any as the reference.
async fn flood(flooders: u64, healthy: u64, rounds: u64) {
    flood_against(Limits::Defaults, flooders, healthy, rounds).await;
    flood_against(Limits::Off, flooders, healthy, rounds).await;
}

/// Sends SIGTERM to `child` and waits for it to exit: its status and how long it took.
fn terminate(child: &mut std::process::Child) -> (std::process::ExitStatus, Duration) {
    let signalled = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            return (status, signalled.elapsed());
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(60),
            "the bridge did not exit"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

async fn shutdown(agents: u64) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (_prosody, sim, mut bridge, port, _dir) = stack(agents, "", &tracker, &cancel).await;
    let mut load = LoadUis::start(port, agents);
    sim.set_faults(vec![FaultRule::new(
        "/calls/active",
        Fault {
            delay: Some(Duration::from_millis(500)),
            ..Fault::default()
        },
    )])
    .await;
    // Calls keep arriving, so END_CALLs are in flight and arriving when the signal lands.
    let pacer = tracker.spawn({
        let (sim, cancel) = (sim.clone(), cancel.clone());
        async move {
            let mut next = 0;
            while !cancel.is_cancelled() {
                let agent = AgentId::new((FIRST_AGENT + next % agents).to_string());
                let _ = sim.start_call(QueueId(7), &agent, "0800").await;
                next += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let loading = Instant::now();
    while metric(port, "converja_pending_requests") < (agents / 4) as f64 {
        assert!(loading.elapsed() < SETTLE_LIMIT, "requests never piled up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let in_flight = metric(port, "converja_pending_requests");
    let (status, took) = terminate(&mut bridge.0);
    cancel.cancel();
    let _ = pacer.await;
    // Every socket has seen its close once the UIs report them all disconnected.
    let report = load.until("disconnected", agents, SETTLE_LIMIT).await;
    println!(
        "shutdown: SIGTERM with {in_flight} platform requests in flight ({agents} agents ending calls, hangups answered after 500 ms): exit {status} after {} ms; END_CALLs ended {}, refused {} (first refusal: {}), left without an answer {} (target 0)",
        took.as_millis(),
        report["ended"],
        report["endErrors"],
        report["firstError"],
        report["unanswered"],
    );
}

async fn soak(agents: u64, seconds: u64, seed: u64) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (_prosody, sim, bridge, port, _dir) = stack(agents, "", &tracker, &cancel).await;
    let mut uis = Uis::agents(port, agents);
    let pause = Arc::new(AtomicBool::new(false));
    tracker.spawn(traffic(sim.clone(), agents, seed, pause, cancel.clone()));
    let started = Instant::now();
    let mut samples: Vec<(f64, f64)> = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let rss = usage(bridge.0.id()).0 as f64 / 1024.0;
        samples.push((started.elapsed().as_secs_f64() / 60.0, rss));
    }
    // Least-squares slope of RSS over time, in KiB per minute.
    let n = samples.len() as f64;
    let (mx, my) = samples
        .iter()
        .fold((0.0, 0.0), |(x, y), (a, b)| (x + a / n, y + b / n));
    let (sxy, sxx) = samples.iter().fold((0.0, 0.0), |(xy, xx), (x, y)| {
        (xy + (x - mx) * (y - my), xx + (x - mx) * (x - mx))
    });
    let (_, error) = uis.view();
    println!(
        "soak: {agents} agents, {seconds} s of traffic; RSS samples (KiB): {}; slope {:.1} KiB/min; UI contract errors: {error}",
        samples
            .iter()
            .map(|(_, r)| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" "),
        if sxx > 0.0 { sxy / sxx } else { 0.0 },
    );
    cancel.cancel();
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let agents = arg(&args, "--agents", 200);
    let kills = arg(&args, "--kills", 4) as u32;
    let cycles = arg(&args, "--churn", 2000);
    let seed = arg(&args, "--seed", 1);
    let events = arg(&args, "--fuzz", 20_000);
    let soak_seconds = arg(&args, "--soak", 0);
    let requests = arg(&args, "--requests", 20_000);
    let stallers = arg(&args, "--stalled", 100);
    let flooders = arg(&args, "--flooders", 200);
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    if let Some(kind) = args
        .iter()
        .position(|a| a == "--server")
        .and_then(|i| args.get(i + 1))
    {
        let kind = kind.parse().unwrap_or_else(|e| panic!("--server: {e}"));
        SERVER.set(kind).expect("set once");
    }
    let runs = |case: &str| only.as_deref().is_none_or(|o| o == case);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if runs("xmpp-kill") {
        rt.block_on(xmpp_kill(agents, kills, seed));
    }
    if runs("churn") {
        rt.block_on(churn(cycles));
    }
    if runs("fuzz") {
        rt.block_on(fuzz(events));
    }
    if runs("platform") {
        rt.block_on(misbehaving_platform(requests));
    }
    if runs("stalled") {
        rt.block_on(stalled(stallers, 20, 20));
    }
    if runs("flood") {
        rt.block_on(flood(flooders, 20, 20));
    }
    if runs("shutdown") {
        rt.block_on(shutdown(agents));
    }
    if soak_seconds > 0 && runs("soak") {
        rt.block_on(soak(agents, soak_seconds, seed));
    }
}
