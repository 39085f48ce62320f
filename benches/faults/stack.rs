//! What the cases share: the stack they run against (an XMPP server, the simulator, the
//! bridge binary), the Node agent UIs, the bridge's metrics, and the platform's view.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{ChildStdin, ChildStdout};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use converja_bridge::converja::{AgentId, QueueId};
use converja_bridge::sim::{self, SimHandle};
use converja_testkit::local_server::LocalServer;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::load::LoadUis;
use crate::common::{FIRST_AGENT, Killed, Limits, scenario, start_bridge_limited, start_node};
use crate::server;

/// The XMPP domain of the runner's private server.
pub(crate) const DOMAIN: &str = "faults.bench";

/// How long a recovered bridge may take to show every UI what the platform has.
pub(crate) const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// A small deterministic generator: same seed, same run.
pub(crate) struct Dice(pub(crate) u64);

impl Dice {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// The Node agent UIs and their pipes.
pub(crate) struct Uis {
    pub(crate) child: Killed,
    pub(crate) stdin: ChildStdin,
    pub(crate) lines: Lines<BufReader<ChildStdout>>,
}

impl Uis {
    pub(crate) fn start(args: &[String]) -> Uis {
        Uis::script("faults.mjs", args)
    }

    pub(crate) fn script(script: &str, args: &[String]) -> Uis {
        let mut child = start_node(script, args);
        let stdin = child.0.stdin.take().expect("piped");
        let lines = BufReader::new(child.0.stdout.take().expect("piped")).lines();
        Uis {
            child,
            stdin,
            lines,
        }
    }

    /// `agents` agent UIs logged in to the bridge on `port`, keeping what they are shown.
    pub(crate) fn agents(port: u16, agents: u64) -> Uis {
        let mut uis = Uis::start(&[
            "agents".into(),
            format!("http://127.0.0.1:{port}"),
            agents.to_string(),
            FIRST_AGENT.to_string(),
        ]);
        assert_eq!(uis.read()["errors"], 0, "every agent logs in");
        uis
    }

    pub(crate) fn read(&mut self) -> Value {
        let line = self.lines.next().expect("a line").expect("readable");
        serde_json::from_str(&line).expect("json")
    }

    /// Each agent's shown calls, and the contract errors seen so far.
    pub(crate) fn view(&mut self) -> (BTreeMap<String, Vec<String>>, Value) {
        writeln!(self.stdin, "view").expect("ask");
        let v = self.read();
        let view = serde_json::from_value(v["view"].clone()).expect("a map");
        (view, v["firstError"].clone())
    }
}

/// What the platform has: each agent's active calls.
pub(crate) async fn platform_view(sim: &SimHandle) -> BTreeMap<String, Vec<String>> {
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
pub(crate) async fn traffic(
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
pub(crate) async fn settle(uis: &mut Uis, sim: &SimHandle) -> Result<Duration, String> {
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

/// A gauge or counter of the bridge's `/metrics`, summed over its label sets.
pub(crate) fn metric(port: u16, name: &str) -> f64 {
    let Some(text) = crate::common::admin_get(port, "/metrics") else {
        return f64::NAN;
    };
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A counter of the bridge's `/metrics` summed by the value of one of its labels.
pub(crate) fn metric_by(port: u16, name: &str, label: &str) -> BTreeMap<String, f64> {
    let Some(text) = crate::common::admin_get(port, "/metrics") else {
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

/// Starts Prosody, the simulator with `agents` agents and the bridge binary.
pub(crate) async fn stack(
    agents: u64,
    extra: &str,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> (LocalServer, SimHandle, Killed, u16, tempfile::TempDir) {
    stack_limited(agents, extra, Limits::Off, tracker, cancel).await
}

/// [`stack`] with the bridge's `limits`.
pub(crate) async fn stack_limited(
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

/// `rounds` rounds of one call per healthy agent, each ended by its UI at once (load.mjs),
/// a round starting at least `every` after the one before; the UIs' report on those rounds.
pub(crate) async fn healthy_rounds(
    sim: &SimHandle,
    load: &mut LoadUis,
    agents: u64,
    rounds: u64,
    every: Duration,
) -> Value {
    load.reset();
    let mut pace = tokio::time::interval(every.max(Duration::from_nanos(1)));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for round in 1..=rounds {
        pace.tick().await;
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
