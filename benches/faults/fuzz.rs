//! `fuzz`: sockets, half of them logged in as other agents, send random events (wrong
//! types, missing and extra fields, huge strings, deep nesting, binary attachments,
//! unknown names, with and without acknowledgements, aimed at a victim's call ids) while
//! the victim agent takes and loses calls; then one frame above the transport limit.

use std::io::Write;
use std::time::Instant;

use converja_bridge::converja::{AgentId, QueueId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::{FIRST_AGENT, usage};
use crate::stack::{Uis, settle, stack};

/// Runs the case with `events` random events and prints its figures.
pub(crate) async fn fuzz(events: u64) {
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
        if let Ok(Some(_)) = fuzzer.child.0.try_wait() {
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
