//! `xmpp-kill`: agents hold calls while the simulator starts and ends calls; the XMPP server
//! is SIGKILLed and restarted at random moments. After each recovery: time from the server
//! accepting again to `/readyz` 200, and whether every agent's UI shows exactly the calls
//! the platform has for it (with no NEW_CALL twice and no CALL_ENDED for a call not shown).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::{usage, wait_ready};
use crate::stack::{Dice, SETTLE_LIMIT, Uis, metric, metric_by, settle, stack, traffic};

/// Runs the case: `agents` agents, the XMPP server killed `kills` times, chosen by `seed`.
pub(crate) async fn xmpp_kill(agents: u64, kills: u32, seed: u64) {
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
