//! The `converja-bridge` command: the daemon, a config checker and a health probe.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use converja_bridge::config::Config;
use converja_bridge::{app, probe, telemetry};

/// Bridges socket.io agent UIs to the Converja contact center platform over XMPP.
///
/// One XMPP connection for the whole site carries the agents' requests to the platform and
/// its events back; agent UIs connect over socket.io. `run` starts the daemon,
/// `check-config` validates a configuration first, `probe` asks a running bridge whether it
/// is alive or ready. Every configuration key can also be set
/// by an environment variable CONVERJA_BRIDGE__SECTION__KEY (e.g.
/// CONVERJA_BRIDGE__XMPP__PASSWORD). Installed from the Debian package, the configuration is
/// /etc/converja-bridge/bridge.toml and the service converja-bridge.service.
#[derive(Parser)]
#[command(version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CONVERJA_REVISION"), ")"), about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge until SIGTERM or SIGINT.
    ///
    /// Connects to the platform's XMPP server, joins its rooms and serves socket.io agents on
    /// socketio.listen, and /healthz, /readyz and /metrics on admin.listen. Logs go to
    /// standard output. SIGTERM or SIGINT drains: new agent events are refused, those taken
    /// are finished, requests in flight answered, sessions written to the store, then the
    /// process exits 0 (within about 20 s at worst). The configuration is read once, at
    /// start: there is no reload, restart to apply a change.
    ///
    /// Exit status: 0 after a clean shutdown, 2 when the configuration is refused (the
    /// message names the key), 1 on any other failure (a listener's port taken, the session
    /// store unreadable).
    Run {
        /// The TOML configuration file; each key can be overridden by an environment
        /// variable CONVERJA_BRIDGE__SECTION__KEY.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration and print it with secrets masked.
    ///
    /// Prints the effective configuration (the file, environment overrides and defaults)
    /// with every secret replaced by asterisks, and exits 0; exits 2 with the offending key
    /// named when the configuration would be refused at start. Nothing is connected to.
    CheckConfig {
        /// The TOML configuration file, with the same environment overrides as `run`.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ask a running bridge whether it is alive (`/healthz`) or, with --ready, ready to take
    /// agents (`/readyz`); exits 0 if so and 1 if not, for container health checks.
    Probe {
        /// Ask whether it is ready (active, XMPP online, rooms joined), not only alive.
        #[arg(long)]
        ready: bool,
        /// The configuration whose admin listener (`admin.listen`) to ask.
        #[arg(long, short, default_value = "/etc/converja-bridge/bridge.toml")]
        config: PathBuf,
        /// The admin listener's address (HOST:PORT), instead of reading the configuration.
        #[arg(long, conflicts_with = "config")]
        address: Option<SocketAddr>,
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
        Command::Probe {
            ready,
            config,
            address,
        } => run_probe(ready, &config, address),
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

/// Exits 0 when the bridge answers 200, and 1 for anything else, a configuration that cannot
/// be read included: container engines reserve other codes.
fn run_probe(ready: bool, config: &std::path::Path, address: Option<SocketAddr>) -> ExitCode {
    let addr = match address {
        Some(addr) => addr,
        None => match Config::load(config) {
            Ok(cfg) => probe::local_address(cfg.admin.listen),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let Some(rt) = new_runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(probe::probe(addr, ready)) {
        Ok(body) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let Some(rt) = new_runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
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

/// The runtime `builder` makes, with every driver; `None` (said on stderr) if it cannot start.
fn new_runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .inspect_err(|e| eprintln!("error: cannot start the runtime: {e}"))
        .ok()
}
