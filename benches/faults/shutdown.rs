//! `shutdown`: agents end each call the moment it arrives while the platform takes 500 ms
//! to answer each hangup; the bridge gets SIGTERM with those requests in flight. Figures:
//! exit status and time, END_CALLs answered (ended or refused) against those left without
//! an answer when the socket closed, and the UIs against the platform.

use std::time::{Duration, Instant};

use converja_bridge::converja::{AgentId, QueueId};
use converja_bridge::sim::{Fault, FaultRule};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::FIRST_AGENT;
use crate::common::load::LoadUis;
use crate::stack::{SETTLE_LIMIT, metric, stack};

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

/// Runs the case with `agents` agents and prints its figures.
pub(crate) async fn shutdown(agents: u64) {
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
