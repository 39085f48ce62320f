//! How the calls of a phase are issued, and the clock that times a phase.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ChildStdin;
use std::time::{Duration, Instant};

use converja_bridge::converja::{AgentId, QueueId};
use converja_bridge::sim::SimHandle;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::Value;

use crate::common::FIRST_AGENT;
use crate::common::machine_busy;
use crate::measure::{TICKS_PER_SEC, cpu};
use crate::systems::Phase;

/// How long each paced phase issues calls.
pub(crate) const PACED_FOR: Duration = Duration::from_secs(10);

/// Paced call rates, per second, unless `--rates` says otherwise; a phase at saturation
/// follows them.
pub(crate) const RATES: [f64; 2] = [50.0, 200.0];

/// How long the calls of one phase may take to end.
pub(crate) const CALLS_PATIENCE: Duration = Duration::from_secs(600);

/// Calls the simulator has under way at once at most.
pub(crate) const SIM_IN_FLIGHT: usize = 64;

/// How calls are issued in a phase.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pace {
    /// This many calls per second.
    Rate(f64),
    /// As fast as they can be issued.
    Saturation,
}

impl Pace {
    pub(crate) fn label(self) -> String {
        match self {
            Pace::Rate(r) => format!("{r:.0} calls/s"),
            Pace::Saturation => "saturation".into(),
        }
    }

    /// Calls in a phase with `agents` agents.
    pub(crate) fn calls(self, agents: u64) -> u64 {
        match self {
            Pace::Rate(r) => (r * PACED_FOR.as_secs_f64()) as u64,
            Pace::Saturation => agents,
        }
    }
}

/// How the calls of a phase reach the system measured.
pub(crate) enum Caller<'a> {
    /// The platform simulator starts them.
    Sim(&'a SimHandle),
    /// The bare socket.io server is told to emit NEW_CALL.
    Floor(&'a mut ChildStdin),
}

/// Issues `count` calls to agents `FIRST_AGENT..FIRST_AGENT + agents` in turn, at `pace`.
/// The simulator's calls overlap: each waits for its events to be published, so one at a
/// time would cap the rate at one call per round trip to the XMPP server.
pub(crate) async fn issue(
    caller: &mut Caller<'_>,
    pace: Pace,
    count: u64,
    agents: u64,
    first_id: u64,
) {
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
pub(crate) struct PhaseClock {
    pub(crate) pid: u32,
    pub(crate) server: Option<u32>,
    pub(crate) cpu: u64,
    pub(crate) server_cpu: u64,
    pub(crate) busy: u64,
    pub(crate) started: Instant,
}

impl PhaseClock {
    pub(crate) fn start(pid: u32, server: Option<u32>) -> PhaseClock {
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
    pub(crate) fn finish(self, count: u64, report: Option<&Value>) -> Phase {
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
