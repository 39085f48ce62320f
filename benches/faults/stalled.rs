//! `stalled`: healthy agents take and end calls alone, then while sockets that flooded the
//! bridge with acknowledged events stop reading; the healthy round trip, the bridge's memory
//! per stalled socket, and whether each stalled socket got every answer or was dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use converja_bridge::sim::SimHandle;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::load::LoadUis;
use crate::common::raw_socket::RawSocket;
use crate::common::{FIRST_AGENT, usage};
use crate::stack::{SETTLE_LIMIT, healthy_rounds, metric, stack};

/// Acknowledged END_CALLs each stalled socket sends before it stops reading.
const FLOOD: u64 = 1000;

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

/// Runs the case: `stallers` stalled sockets beside `healthy` agents doing `rounds` rounds.
pub(crate) async fn stalled(stallers: u64, healthy: u64, rounds: u64) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (_prosody, sim, bridge, port, _dir) =
        stack(healthy + stallers, "", &tracker, &cancel).await;
    let pid = bridge.0.id();
    let mut load = LoadUis::start(port, healthy);
    let alone = healthy_rounds(&sim, &mut load, healthy, rounds, Duration::ZERO).await;
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
    let during = healthy_rounds(sim, load, healthy, rounds, Duration::ZERO).await;
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
