//! `converja-demo`: a private Prosody, the simulator playing the demo scenario, and the
//! bridge, all on loopback, for a first look; `--pair` runs two bridges on a private
//! PostgreSQL instead ([`pair`]). Everything stops and is removed on Ctrl-C.

mod pair;

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use pair::{BRIDGE_OPTION, run_pair};

use converja_bridge::app;
use converja_bridge::config::{Config, StoreConfig};
use converja_bridge::sim::{self, Scenario};

use crate::prosody::LocalProsody;

/// The demo's scenario: three queues, a dozen agents, a call every few seconds.
pub const SCENARIO: &str = include_str!("../../../config/scenario.demo.toml");
const DOMAIN: &str = "converja.local";
const BRIDGE_PASSWORD: &str = "demo-bridge";
const SIM_PASSWORD: &str = "demo-platform";

/// Prosody and the simulator playing the demo scenario; stopped when dropped.
struct SimulatedPlatform {
    prosody: LocalProsody,
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// The scenario's agents, as "id (name)".
    agents: Vec<String>,
}

impl SimulatedPlatform {
    async fn start() -> anyhow::Result<SimulatedPlatform> {
        let scenario: Scenario = toml::from_str(SCENARIO).context("the demo scenario")?;
        let prosody = LocalProsody::start(
            DOMAIN,
            &[("bridge", BRIDGE_PASSWORD), ("platform", SIM_PASSWORD)],
        )?;
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let agents = scenario
            .agents
            .iter()
            .map(|a| format!("{} ({})", a.id, a.name))
            .collect();
        let sim = sim::start(
            prosody.account("platform", SIM_PASSWORD),
            prosody.conference.parse().expect("a valid domain"),
            scenario,
            &tracker,
            cancel.clone(),
        );
        tokio::time::timeout(Duration::from_secs(20), sim.ready())
            .await
            .context("the simulator did not join its rooms")?;
        Ok(SimulatedPlatform {
            prosody,
            tracker,
            cancel,
            agents,
        })
    }

    /// A bridge configuration for this platform, listening on `listen`, without `[store]`.
    fn bridge_config(&self, bosh: bool, listen: u16) -> String {
        format!(
            r#"
            [xmpp]
            jid = "bridge@{DOMAIN}"
            password = "{BRIDGE_PASSWORD}"
            transport = "{transport}"
            host = "127.0.0.1"
            port = {c2s}
            bosh_url = "{bosh_url}"
            tls = "none"
            [converja]
            conference = "{conference}"
            [socketio]
            listen = "127.0.0.1:{listen}"
            # A load balancer that cannot reach the admin port probes here.
            readyz = true
            [agents]
            on_disconnect = "logout"
            "#,
            transport = if bosh { "bosh" } else { "tcp" },
            c2s = self.prosody.c2s_port,
            bosh_url = self.prosody.bosh_url(),
            conference = self.prosody.conference,
        )
    }

    /// Where the bridge reaches XMPP, for the banner.
    fn xmpp(&self, bosh: bool) -> String {
        match bosh {
            true => self.prosody.bosh_url(),
            false => format!("127.0.0.1:{}", self.prosody.c2s_port),
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tracker.wait()).await;
    }
}

/// Runs the demo on `port` until `shutdown`; with `bosh`, the bridge uses Prosody's BOSH
/// endpoint.
pub async fn run(port: u16, bosh: bool, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!("cannot listen on 127.0.0.1:{port}; pass --port to use another")
        })?;
    // Any free port: the banner says which.
    let admin = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let admin_port = admin.local_addr()?.port();
    let platform = SimulatedPlatform::start().await?;
    let store = tempfile::tempdir().context("a temporary directory for the session store")?;
    let mut config = Config::from_toml(&platform.bridge_config(bosh, port))?;
    // Sessions survive a restart of the bridge, not of the demo.
    config.store = StoreConfig::Sqlite(store.path().join("sessions.db"));
    print_banner(
        port,
        Some(admin_port),
        &platform.xmpp(bosh),
        &platform.agents,
    );
    println!("  Press Ctrl-C to stop.");
    println!();
    let listeners = app::Listeners {
        public: listener,
        admin,
    };
    let result = app::serve(config, listeners, shutdown).await;
    platform.stop().await;
    result
}

/// What the user can open and try.
fn print_banner(port: u16, admin_port: Option<u16>, xmpp: &str, agents: &[String]) {
    println!();
    println!("  converja-bridge demo is running.");
    println!();
    println!("  Agent console:   http://127.0.0.1:{port}/");
    println!(
        "  Wallboard:       http://127.0.0.1:{port}/wallboard?supervisor=9001  (Ana Lima; 9002 is Bruno Costa)"
    );
    println!(
        "  Supervisor API:  http://127.0.0.1:{port}/api/v1/queues?supervisor=9001  (OpenAPI: /api/v1/openapi.json)"
    );
    println!(
        "  socket.io:       http://127.0.0.1:{port}  (path /callcontrol, or /socket.io with namespace /callcontrol)"
    );
    if let Some(admin) = admin_port {
        println!(
            "  Health:          http://127.0.0.1:{admin}/readyz   Metrics: http://127.0.0.1:{admin}/metrics"
        );
    }
    println!("  XMPP (Prosody):  {xmpp}");
    println!("  Agents to try:   {}", agents.join(", "));
    println!("  Calls arrive every few seconds in Financeiro, Suporte Técnico and Vendas.");
    println!();
}
