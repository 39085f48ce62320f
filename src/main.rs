//! The `converja-bridge` command: the daemon and a config checker.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use converja_bridge::config::Config;
use converja_bridge::{app, telemetry};

/// Bridges socket.io agent UIs to the Converja contact center platform over XMPP.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge.
    Run {
        /// The TOML configuration file (keys overridable by CONVERJA_BRIDGE__SECTION__KEY).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration and print it with secrets masked.
    CheckConfig {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(cfg) => {
                print!("{}", cfg.to_masked_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            let cfg = match Config::load(&config) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            telemetry::init_tracing(&cfg.log);
            runtime(async move {
                let listeners = app::Listeners::bind(&cfg).await?;
                app::serve(cfg, listeners, app::shutdown_on_signal()).await
            })
        }
    }
}

fn runtime(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
