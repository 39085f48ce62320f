//! The `converja-demo` command: a private Prosody, the platform simulator and the bridge on
//! loopback, for a first look at the bridge.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use converja_bridge::config::{Config, LogConfig};
use converja_bridge::{app, telemetry};
use converja_testkit::demo;

/// Runs a private Prosody, the platform simulator and the bridge on loopback.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Port of the agent console and socket.io.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Connect the bridge to Prosody over BOSH instead of the client port.
    #[arg(long, conflicts_with = "pair")]
    bosh: bool,
    /// Two bridges on a private PostgreSQL behind a load balancer, with a failover to
    /// trigger.
    #[arg(long)]
    pair: bool,
    /// One bridge of the pair, on this configuration: how the pair demo starts its bridge
    /// processes from this executable.
    #[arg(long = demo::BRIDGE_OPTION, hide = true, value_name = "CONFIG")]
    bridge: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.bridge {
        Some(config) => bridge(&config).await,
        None => {
            telemetry::init_tracing(&LogConfig::default());
            let shutdown = app::shutdown_on_signal();
            if cli.pair {
                demo::run_pair(cli.port, shutdown).await
            } else {
                demo::run(cli.port, cli.bosh, shutdown).await
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `converja-bridge run --config <config>` does.
async fn bridge(config: &std::path::Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    telemetry::init_tracing(&cfg.log);
    let listeners = app::Listeners::bind(&cfg).await?;
    app::serve(cfg, listeners, app::shutdown_on_signal()).await
}
