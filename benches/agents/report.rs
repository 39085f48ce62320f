//! The figures of a level: medians over rounds, and the rows printed for each system.

use crate::Options;
use crate::measure::above_idle;
use crate::systems::{Phase, System};

/// The median of every figure over `runs` of one system.
pub(crate) fn median(runs: &[System]) -> System {
    let first = &runs[0];
    let phases = (0..first.phases.len())
        .map(|i| median_phase(&runs.iter().map(|r| &r.phases[i]).collect::<Vec<_>>()))
        .collect();
    let of = |f: &dyn Fn(&System) -> f64| mid(runs.iter().map(f).collect());
    System {
        name: first.name.clone(),
        login: median_phase(&runs.iter().map(|r| &r.login).collect::<Vec<_>>()),
        idle_cpu_pct: of(&|s| s.idle_cpu_pct),
        rss_per_agent_kib: of(&|s| s.rss_per_agent_kib),
        phases,
    }
}

/// This machine's cores.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The middle value.
pub(crate) fn mid(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The median of every figure over `runs` of one phase.
pub(crate) fn median_phase(runs: &[&Phase]) -> Phase {
    let of = |f: &dyn Fn(&Phase) -> f64| mid(runs.iter().map(|p| f(p)).collect());
    let inside = runs[0]
        .inside
        .keys()
        .map(|path| {
            let at = |q: fn(&(f64, f64)) -> f64| {
                mid(runs
                    .iter()
                    .filter_map(|r| r.inside.get(path))
                    .map(q)
                    .collect())
            };
            (path.clone(), (at(|p| p.0), at(|p| p.1)))
        })
        .collect();
    Phase {
        cpu_per_trip_us: of(&|p| p.cpu_per_trip_us),
        server_cpu_per_trip_us: of(&|p| p.server_cpu_per_trip_us),
        busy_cores: of(&|p| p.busy_cores),
        rate: of(&|p| p.rate),
        ui_p50: of(&|p| p.ui_p50),
        ui_p99: of(&|p| p.ui_p99),
        inside,
    }
}

/// `cell` of every system's phase at each pace, one row per pace; `—` where it is NaN.
pub(crate) fn phase_rows(
    options: &Options,
    all: &[&System],
    figure: &str,
    cell: impl Fn(&Phase) -> (f64, String),
) {
    for (i, pace) in options.paces.iter().enumerate() {
        let cells: Vec<String> = all
            .iter()
            .map(|s| match cell(&s.phases[i]) {
                (v, _) if v.is_nan() => "—".into(),
                (_, text) => text,
            })
            .collect();
        println!("| {figure}, {} | {} |  |", pace.label(), cells.join(" | "));
    }
}

/// One row per pace of `cell` for every system in `all` (the bridge first, the two floors
/// last), ending with the bridge's `value` over the floors' together.
pub(crate) fn ratio_rows(
    options: &Options,
    all: &[&System],
    figure: &str,
    value: &dyn Fn(&System, usize) -> f64,
    cell: &dyn Fn(&System, usize) -> String,
) {
    let n = all.len();
    for (i, pace) in options.paces.iter().enumerate() {
        let cells: Vec<String> = all.iter().map(|s| cell(s, i)).collect();
        let ratio = value(all[0], i) / (value(all[n - 2], i) + value(all[n - 1], i));
        println!(
            "| {figure}, {} | {} | {ratio:.2}× |",
            pace.label(),
            cells.join(" | ")
        );
    }
}

/// The rows of figures measured once per level rather than per phase.
pub(crate) fn level_rows(options: &Options, all: &[&System]) {
    let level_row = |figure: &str, cell: &dyn Fn(&System) -> String| {
        let cells: Vec<String> = all.iter().map(|s| cell(s)).collect();
        println!("| {figure} | {} |  |", cells.join(" | "));
    };
    level_row("idle CPU, all connected, no call", &|s| {
        format!("{:.2}% of a core", s.idle_cpu_pct)
    });
    level_row("idle RSS per agent", &|s| {
        format!("{:.1} KiB", s.rss_per_agent_kib)
    });
    level_row("connect rate (UI logins; XMPP floor: room joins)", &|s| {
        format!("{:.0}/s", s.login.rate)
    });
    level_row("CPU per login", &|s| {
        format!("{:.0} µs", s.login.cpu_per_trip_us)
    });
    level_row(&format!("{} CPU per login", options.server), &|s| match s
        .login
        .server_cpu_per_trip_us
    {
        us if us.is_nan() => "—".into(),
        us => format!("{us:.0} µs"),
    });
    level_row("whole machine busy during logins", &|s| {
        format!("{:.2} of {} cores", s.login.busy_cores, cores())
    });
}

/// Prints the figures of one level, every system's median over its rounds.
pub(crate) fn print_level(
    options: &Options,
    agents: u64,
    rounds: usize,
    bridges: &[System],
    socketio: &System,
    xmpp: &System,
) {
    println!("\n### {agents} agents (median of {rounds} rounds)\n");
    let all: Vec<&System> = bridges.iter().chain([socketio, xmpp]).collect();
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    println!(
        "| figure | {} | bridge / (socket.io + XMPP floors) |\n|---|{}---|",
        names.join(" | "),
        "---|".repeat(all.len())
    );
    ratio_rows(
        options,
        &all,
        "CPU per round trip",
        &|s, i| s.phases[i].cpu_per_trip_us,
        &|s, i| {
            let p = &s.phases[i];
            format!("{:.0} µs ({:.0}/s)", p.cpu_per_trip_us, p.rate)
        },
    );
    // What each round trip costs beyond the work every connected agent costs anyway
    // (heartbeats, self-pings), which the idle row shows: the part that grows with calls.
    let beyond = |s: &System, i: usize| above_idle(&s.phases[i], s.idle_cpu_pct);
    ratio_rows(
        options,
        &all,
        "CPU per round trip beyond idle",
        &beyond,
        &|s, i| format!("{:.0} µs", beyond(s, i)),
    );
    phase_rows(
        options,
        &all,
        &format!("{} CPU per round trip", options.server),
        |p| {
            let us = p.server_cpu_per_trip_us;
            (us, format!("{us:.0} µs"))
        },
    );
    phase_rows(options, &all, "whole machine busy", |p| {
        (
            p.busy_cores,
            format!("{:.2} of {} cores", p.busy_cores, cores()),
        )
    });
    phase_rows(options, &all, "UI END_CALL → CALL_ENDED p50/p99", |p| {
        (p.ui_p50, format!("{:.2}/{:.2} ms", p.ui_p50, p.ui_p99))
    });
    for path in ["to_platform", "to_agent"] {
        phase_rows(
            options,
            &all,
            &format!("inside the bridge {path} p50/p99"),
            |p| match p.inside.get(path) {
                Some((p50, p99)) => (*p50, format!("{p50:.0}/{p99:.0} µs")),
                None => (f64::NAN, String::new()),
            },
        );
    }
    level_rows(options, &all);
}
