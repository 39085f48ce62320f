//! `flood`: one client address opens connections and sends `USER_CONNECT`s for ever more
//! usernames as fast as it can while healthy agents, from another address, take and end
//! calls; the healthy agents' round trip alone and during the flood, on a bridge with its
//! default limits and on one without limits, and what the flood got.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::load::LoadUis;
use crate::common::raw_socket::RawSocket;
use crate::common::{FIRST_AGENT, Limits, cpu_ticks, machine_busy, usage};
use crate::stack::{healthy_rounds, metric, metric_by, stack_limited};

/// How often a healthy agent ends a call: 10 events a second, half of what a socket may send
/// by default, so that only the flood meets the limits.
const HEALTHY_PACE: Duration = Duration::from_millis(100);

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
        let started = cpu_ticks("/proc/thread-self/stat");
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
            cpu_ticks: cpu_ticks("/proc/thread-self/stat") - started,
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
    let alone = healthy_rounds(&sim, &mut load, healthy, rounds, HEALTHY_PACE).await;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let flooding = start_flood(port, healthy, flooders, stop.clone());
    // The flood in full swing before the healthy agents are measured again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (bridge_before, machine_before) = (usage(pid).1, machine_busy());
    let measured = Instant::now();
    let during = healthy_rounds(&sim, &mut load, healthy, rounds, HEALTHY_PACE).await;
    let share = |ticks: u64| ticks as f64 / measured.elapsed().as_secs_f64();
    let bridge_cpu = share(usage(pid).1 - bridge_before);
    let machine_cpu = share(machine_busy() - machine_before);
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

/// The flood case: with the default limits, then without any as the reference.
pub(crate) async fn flood(flooders: u64, healthy: u64, rounds: u64) {
    flood_against(Limits::Defaults, flooders, healthy, rounds).await;
    flood_against(Limits::Off, flooders, healthy, rounds).await;
}
