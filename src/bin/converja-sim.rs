//! `converja-sim`: plays the Converja platform over XMPP from a scenario file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use converja_bridge::config::{LogConfig, Secret, TlsMode};
use converja_bridge::sim::{self, Scenario};
use converja_bridge::telemetry;
use converja_bridge::xmpp::{ConnectSettings, Endpoint};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Plays the Converja contact center platform over XMPP: joins its rooms, answers its
/// requests, publishes its events and generates call traffic from a scenario.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Scenario file (queues, agents, traffic, seed).
    #[arg(long, short, env = "CONVERJA_SIM_SCENARIO")]
    scenario: PathBuf,
    /// The simulator's XMPP account.
    #[arg(long, env = "CONVERJA_SIM_JID")]
    jid: String,
    /// Its password.
    #[arg(long, env = "CONVERJA_SIM_PASSWORD", hide_env_values = true)]
    password: String,
    /// XMPP server host (default: the JID's domain).
    #[arg(long, env = "CONVERJA_SIM_HOST")]
    host: Option<String>,
    /// XMPP client port.
    #[arg(long, env = "CONVERJA_SIM_PORT", default_value_t = 5222)]
    port: u16,
    /// "required" (STARTTLS) or "none" (loopback only).
    #[arg(long, env = "CONVERJA_SIM_TLS", default_value = "required", value_parser = ["required", "none"])]
    tls: String,
    /// The platform's MUC service, e.g. conference.converja.local.
    #[arg(long, env = "CONVERJA_SIM_CONFERENCE")]
    conference: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_tracing(&LogConfig::default());
    let scenario = match Scenario::load(&cli.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let (Ok(jid), Ok(conference)) = (cli.jid.parse(), cli.conference.parse()) else {
        eprintln!("error: --jid and --conference must be valid XMPP addresses");
        return ExitCode::from(2);
    };
    let settings = ConnectSettings {
        endpoint: Endpoint::Tcp {
            host: cli
                .host
                .unwrap_or_else(|| cli.jid.rsplit('@').next().unwrap_or_default().to_owned()),
            port: cli.port,
            tls: if cli.tls == "none" {
                TlsMode::None
            } else {
                TlsMode::Required
            },
        },
        jid,
        password: Secret::new(cli.password),
        ca_file: None,
        connect_timeout: Duration::from_secs(10),
        resource: format!("converja-sim-{}", std::process::id()),
        self_ping_every: Duration::from_secs(120),
    };
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        eprintln!("error: cannot start the runtime");
        return ExitCode::FAILURE;
    };
    rt.block_on(async move {
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let _handle = sim::start(settings, conference, scenario, &tracker, cancel.clone());
        converja_bridge::app::shutdown_on_signal().cancelled().await;
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
    });
    ExitCode::SUCCESS
}
