//! `churn`: connect / `USER_CONNECT` / disconnect cycles, every other one left to expire
//! through the reconnect grace and logged in again at its very end, then disconnected;
//! sessions, sockets, pending requests, rooms and RSS before and after, and how many of
//! those late logins got `USER_CONNECTED` but not `USER_DISCONNECTED`.

use std::time::{Duration, Instant};

use converja_bridge::sim::{Fault, FaultRule};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::{FIRST_AGENT, usage};
use crate::server;
use crate::stack::{Uis, metric, stack};

/// The reconnect grace of the churn: short, so that many logins land at its end.
const CHURN_GRACE: Duration = Duration::from_secs(1);

/// How long the platform takes to answer the churn's agent status reads and logouts, as a
/// real one does rather than at once like the simulator: a late login's checks and the end of
/// the expired session on the platform then overlap, as they do in production.
const CHURN_PLATFORM_TIME: Duration = Duration::from_millis(200);

/// Runs the case with `cycles` cycles and prints its figures.
pub(crate) async fn churn(cycles: u64) {
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
