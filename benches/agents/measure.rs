//! What the benchmark reads off processes and the machine: CPU time, memory, the bridge's
//! own latency histograms, and `perf` profiles.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::usage;
use crate::systems::Phase;

/// How long the idle CPU is sampled, with every agent connected and no call: socket.io's
/// ping interval, so that every socket's heartbeat falls in the window once.
pub(crate) const IDLE_SAMPLE: Duration = Duration::from_secs(25);

/// USER_HZ on Linux: the unit of /proc CPU times.
pub(crate) const TICKS_PER_SEC: f64 = 100.0;

/// `perf record` of one process while it lives; stopped (and its file written) on drop.
pub(crate) struct Profile(Option<Child>);

impl Profile {
    /// Samples `pid` into `dir/name.data`, when a `dir` is given.
    pub(crate) fn start(dir: Option<&Path>, pid: u32, name: &str) -> Profile {
        let Some(dir) = dir else {
            return Profile(None);
        };
        let out = dir.join(format!("{}.data", name.replace([' ', '/'], "-")));
        let child = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "997", "-g", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("--profile needs perf (apt-get install linux-perf): {e}"));
        Profile(Some(child))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // perf writes its file on SIGINT, not on SIGKILL.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// `phase`'s CPU per round trip less what the system spends idle over the same time.
pub(crate) fn above_idle(phase: &Phase, idle_cpu_pct: f64) -> f64 {
    phase.cpu_per_trip_us - idle_cpu_pct / 100.0 * 1e6 / phase.rate
}

/// CPU (ticks) of `pid` now.
pub(crate) fn cpu(pid: u32) -> u64 {
    usage(pid).1
}

/// Idle CPU over [`IDLE_SAMPLE`], in % of a core.
pub(crate) async fn idle_cpu(pid: u32) -> f64 {
    let before = cpu(pid);
    tokio::time::sleep(IDLE_SAMPLE).await;
    (cpu(pid) - before) as f64 / TICKS_PER_SEC / IDLE_SAMPLE.as_secs_f64() * 100.0
}

/// The bridge's `/metrics` text.
pub(crate) fn metrics_text(port: u16) -> String {
    crate::common::admin_get(port, "/metrics").expect("the bridge serves /metrics")
}

/// The cumulative buckets of `converja_bridge_latency_seconds` by path: (upper bound, count).
pub(crate) fn latency_buckets(text: &str) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("converja_bridge_latency_seconds_bucket{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
        };
        let (Some(path), Some(le)) = (label("path"), label("le")) else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::NAN)
        };
        out.entry(path)
            .or_default()
            .push((le, value.trim().parse().unwrap_or(0.0)));
    }
    for buckets in out.values_mut() {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// p50 and p99 in µs, interpolated within the buckets, of what was recorded between two
/// scrapes.
pub(crate) fn inside_latency(before: &str, after: &str) -> BTreeMap<String, (f64, f64)> {
    let before = latency_buckets(before);
    latency_buckets(after)
        .into_iter()
        .map(|(path, buckets)| {
            let old = before.get(&path);
            let diff: Vec<(f64, f64)> = buckets
                .iter()
                .map(|(le, n)| {
                    let was = old
                        .and_then(|o| o.iter().find(|(l, _)| l == le))
                        .map_or(0.0, |(_, n)| *n);
                    (*le, n - was)
                })
                .collect();
            let q = |q: f64| quantile(&diff, q) * 1e6;
            (path, (q(0.5), q(0.99)))
        })
        .collect()
}

/// The `q` quantile of a cumulative histogram of (upper bound, count) buckets.
pub(crate) fn quantile(cumulative: &[(f64, f64)], q: f64) -> f64 {
    let total = cumulative.last().map_or(0.0, |(_, n)| *n);
    if total == 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, n) in cumulative {
        if n >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            let within = (rank - lower.1) / (n - lower.1).max(1e-9);
            return lower.0 + (le - lower.0) * within;
        }
        lower = (le, n);
    }
    lower.0
}
