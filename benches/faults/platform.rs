//! `platform`: the bridge's platform client sends `--requests` requests to a simulator
//! that, for 10% of the agents each, answers late (past the timeout), out of order, twice,
//! never, after a malformed body, or after a forged answer from another occupant. Every
//! request must end exactly once, with its own answer or a timeout, none with another's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use converja_bridge::converja::AgentId;
use converja_bridge::sim::{self, Fault, FaultRule};
use converja_testkit::local_server::LocalServer;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::{FIRST_AGENT, probe_platform, scenario};
use crate::server;
use crate::stack::DOMAIN;

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

/// Runs the case with `requests` requests and prints its figures.
pub(crate) async fn misbehaving_platform(requests: u64) {
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
