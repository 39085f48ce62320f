//! Fault runner: the release bridge binary, a real XMPP server, the simulator and Node agent
//! UIs, put through what production does to them. Each case, one module here, prints its
//! figures: `xmpp-kill`, `churn`, `fuzz`, `platform`, `stalled`, `flood`, `shutdown`, `soak`.
//!
//! Run: `cargo bench --bench faults` (options: `-- --agents 200 --kills 4 --churn 2000
//! --fuzz 20000 --requests 20000 --stalled 100 --flooders 200 --soak 600 --seed 1
//! --only churn --server ejabberd`). Needs Prosody (or ejabberd for `--server ejabberd`) and
//! `npm ci --prefix tests/node`.

#[path = "../common/mod.rs"]
mod common;

mod churn;
mod flood;
mod fuzz;
mod platform;
mod shutdown;
mod soak;
mod stack;
mod stalled;
mod xmpp_kill;

use converja_testkit::local_server::ServerKind;

/// The XMPP server the cases run against (`--server`).
static SERVER: std::sync::OnceLock<ServerKind> = std::sync::OnceLock::new();

/// The XMPP server the cases run against: `--server`, Prosody by default.
pub(crate) fn server() -> ServerKind {
    SERVER.get().copied().unwrap_or(ServerKind::Prosody)
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let agents = arg(&args, "--agents", 200);
    let kills = arg(&args, "--kills", 4) as u32;
    let cycles = arg(&args, "--churn", 2000);
    let seed = arg(&args, "--seed", 1);
    let events = arg(&args, "--fuzz", 20_000);
    let soak_seconds = arg(&args, "--soak", 0);
    let requests = arg(&args, "--requests", 20_000);
    let stallers = arg(&args, "--stalled", 100);
    let flooders = arg(&args, "--flooders", 200);
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    if let Some(kind) = args
        .iter()
        .position(|a| a == "--server")
        .and_then(|i| args.get(i + 1))
    {
        let kind = kind.parse().unwrap_or_else(|e| panic!("--server: {e}"));
        SERVER.set(kind).expect("set once");
    }
    let runs = |case: &str| only.as_deref().is_none_or(|o| o == case);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if runs("xmpp-kill") {
        rt.block_on(xmpp_kill::xmpp_kill(agents, kills, seed));
    }
    if runs("churn") {
        rt.block_on(churn::churn(cycles));
    }
    if runs("fuzz") {
        rt.block_on(fuzz::fuzz(events));
    }
    if runs("platform") {
        rt.block_on(platform::misbehaving_platform(requests));
    }
    if runs("stalled") {
        rt.block_on(stalled::stalled(stallers, 20, 20));
    }
    if runs("flood") {
        rt.block_on(flood::flood(flooders, 20, 60));
    }
    if runs("shutdown") {
        rt.block_on(shutdown::shutdown(agents));
    }
    if soak_seconds > 0 && runs("soak") {
        rt.block_on(soak::soak(agents, soak_seconds, seed));
    }
}
