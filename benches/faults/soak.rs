//! `soak` (with `--soak SECONDS`): agents hold calls while the simulator starts and ends
//! up to 100 calls a second; the bridge's RSS is sampled every 10 s and its trend printed.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::usage;
use crate::stack::{Uis, stack, traffic};

/// Runs the case with `agents` agents for `seconds` and prints its figures.
pub(crate) async fn soak(agents: u64, seconds: u64, seed: u64) {
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
