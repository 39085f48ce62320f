//! The systems measured: the bridge binary (with each session store), and the two floors
//! under it, each with its agents logged in.

use std::collections::BTreeMap;
use std::io::Write;

use converja_bridge::sim::SimHandle;
use converja_testkit::local_server::LocalServer;
use converja_testkit::postgres::LocalPostgres;

use crate::Options;
use crate::common::load::LoadUis;
use crate::common::{FIRST_AGENT, floor, start_bridge_on, usage};
use crate::measure::{Profile, idle_cpu, inside_latency, metrics_text};
use crate::pace::{CALLS_PATIENCE, Caller, Pace, PhaseClock, issue};

/// The XMPP domain of the benchmark's private server.
pub(crate) const DOMAIN: &str = "agents.bench";

/// What one phase measured on one system.
#[derive(Debug, Default, Clone)]
pub(crate) struct Phase {
    pub(crate) cpu_per_trip_us: f64,
    /// The XMPP server's CPU per round trip over the same phase (NaN without one).
    pub(crate) server_cpu_per_trip_us: f64,
    /// Cores the whole machine kept busy over the phase, every process counted.
    pub(crate) busy_cores: f64,
    /// Round trips per second achieved.
    pub(crate) rate: f64,
    /// The UI's END_CALL → CALL_ENDED, ms.
    pub(crate) ui_p50: f64,
    pub(crate) ui_p99: f64,
    /// Inside the bridge, µs: (p50, p99) by path.
    pub(crate) inside: BTreeMap<String, (f64, f64)>,
}

/// What one system measured at one level.
#[derive(Debug, Default, Clone)]
pub(crate) struct System {
    pub(crate) name: String,
    /// Logging every agent in (the XMPP floor: joining every agent room): its rate is
    /// logins per second, its CPU per round trip is per login.
    pub(crate) login: Phase,
    pub(crate) idle_cpu_pct: f64,
    pub(crate) rss_per_agent_kib: f64,
    pub(crate) phases: Vec<Phase>,
}

/// The `[store]` section for `kind`, its files in `dir`, and the server it needs.
pub(crate) fn store(kind: &str, dir: &std::path::Path) -> (String, Option<LocalPostgres>) {
    match kind {
        "memory" => ("backend = \"none\"".into(), None),
        "sqlite" => (
            format!("path = \"{}\"", dir.join("sessions.db").display()),
            None,
        ),
        "postgres" => {
            let server = LocalPostgres::start().unwrap_or_else(|e| panic!("{e}"));
            (format!("url = \"{}\"", server.url()), Some(server))
        }
        other => panic!("unknown store {other}: memory, sqlite or postgres"),
    }
}

/// The bridge binary with `agents` agents logged in, through every phase.
pub(crate) async fn bridge(
    xmpp: &LocalServer,
    sim: &SimHandle,
    options: &Options,
    agents: u64,
    kind: &str,
) -> System {
    let profile = |name: &str, pid| {
        Profile::start(
            options.profile.as_deref(),
            pid,
            &format!("{agents}-{kind}-{name}"),
        )
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (section, _postgres) = store(kind, dir.path());
    let (bridge, port) = start_bridge_on(xmpp, dir.path(), "", &section);
    let pid = bridge.0.id();
    let (rss_before, _) = usage(pid);
    let (mut uis, login) = log_in(port, agents, pid, xmpp.pid());
    let sampling = profile("idle", pid);
    let idle_cpu_pct = idle_cpu(pid).await;
    drop(sampling);
    let (rss, _) = usage(pid);
    let mut system = System {
        name: format!("bridge ({kind} store)"),
        login,
        idle_cpu_pct,
        rss_per_agent_kib: rss.saturating_sub(rss_before) as f64 / 1024.0 / agents as f64,
        phases: Vec::new(),
    };
    for &pace in &options.paces {
        let count = pace.calls(agents);
        uis.reset();
        let scrape = metrics_text(port);
        let sampling = profile(&pace.label(), pid);
        let clock = PhaseClock::start(pid, xmpp.pid());
        issue(&mut Caller::Sim(sim), pace, count, agents, 0).await;
        let report = uis.ended(count, CALLS_PATIENCE).await;
        assert_eq!(report["errors"], 0, "the agents saw errors: {report}");
        let mut phase = clock.finish(count, Some(&report));
        drop(sampling);
        phase.inside = inside_latency(&scrape, &metrics_text(port));
        system.phases.push(phase);
    }
    system
}

/// The load generator's `agents` agents logged in to the server on `port` (process `pid`,
/// in front of the XMPP server `server`), and what logging them in cost.
pub(crate) fn log_in(port: u16, agents: u64, pid: u32, server: Option<u32>) -> (LoadUis, Phase) {
    let clock = PhaseClock::start(pid, server);
    let uis = LoadUis::start(port, agents);
    let mut login = clock.finish(agents, None);
    // The generator's own clock, without its start-up.
    login.rate = agents as f64 / uis.login_time.as_secs_f64();
    (uis, login)
}

/// The bare socket.io server with `agents` agents logged in, through every phase.
pub(crate) async fn socketio_floor(paces: &[Pace], agents: u64) -> System {
    let (mut server, port) = floor::start_socketio();
    let pid = server.0.id();
    let mut stdin = server.0.stdin.take().expect("piped");
    let (rss_before, _) = usage(pid);
    let (mut uis, login) = log_in(port, agents, pid, None);
    let idle_cpu_pct = idle_cpu(pid).await;
    let (rss, _) = usage(pid);
    let mut system = System {
        name: "socket.io floor".into(),
        login,
        idle_cpu_pct,
        rss_per_agent_kib: rss.saturating_sub(rss_before) as f64 / 1024.0 / agents as f64,
        phases: Vec::new(),
    };
    let mut next_id = 1;
    for &pace in paces {
        let count = pace.calls(agents);
        uis.reset();
        let clock = PhaseClock::start(pid, None);
        issue(&mut Caller::Floor(&mut stdin), pace, count, agents, next_id).await;
        next_id += count;
        let report = uis.ended(count, CALLS_PATIENCE).await;
        assert_eq!(report["errors"], 0, "the agents saw errors: {report}");
        system.phases.push(clock.finish(count, Some(&report)));
    }
    system
}

/// The bare XMPP client in `agents` agent rooms, through every phase.
pub(crate) async fn xmpp_floor(
    xmpp: &LocalServer,
    sim: &SimHandle,
    paces: &[Pace],
    agents: u64,
) -> System {
    let mut client = floor::start_xmpp(
        ("floor", &xmpp.domain, "f"),
        xmpp.c2s_port,
        &xmpp.conference,
        FIRST_AGENT,
        agents,
    );
    let pid = client.0.id();
    let (rss_before, _) = usage(pid);
    let clock = PhaseClock::start(pid, xmpp.pid());
    floor::join_rooms(&mut client);
    let login = clock.finish(agents, None);
    let mut stdin = client.0.stdin.take().expect("piped");
    let mut lines = floor::lines(&mut client);
    let idle_cpu_pct = idle_cpu(pid).await;
    let (rss, _) = usage(pid);
    let mut system = System {
        name: "XMPP floor".into(),
        login,
        idle_cpu_pct,
        rss_per_agent_kib: rss.saturating_sub(rss_before) as f64 / 1024.0 / agents as f64,
        phases: Vec::new(),
    };
    for &pace in paces {
        let count = pace.calls(agents);
        writeln!(stdin, "expect {count}").expect("the floor reads its stdin");
        let clock = PhaseClock::start(pid, xmpp.pid());
        issue(&mut Caller::Sim(sim), pace, count, agents, 0).await;
        floor::wait_done(&mut lines);
        system.phases.push(clock.finish(count, None));
    }
    system
}
