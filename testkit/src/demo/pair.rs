//! `converja-demo --pair`: two bridge processes sharing a private PostgreSQL, behind a
//! load balancer on the demo's port that sends each connection to the ready one. Pressing
//! Enter SIGKILLs the active bridge (it comes back as the standby) and shows how long the
//! other one took to take over; the console reconnects by itself.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::{SimulatedPlatform, print_banner};
use crate::balancer::{Proxy, Route, is_ready};
use crate::loopback::free_ports;
use crate::postgres::LocalPostgres;

/// The option that makes the demo's executable run one bridge of the pair, on the
/// configuration file that follows it.
pub const BRIDGE_OPTION: &str = "bridge";

/// How long the demo waits for a bridge to become ready.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// One of the two bridge processes.
struct Bridge {
    name: &'static str,
    port: u16,
    admin: u16,
    config: PathBuf,
    log: PathBuf,
    child: Child,
}

impl Bridge {
    fn spawn(
        name: &'static str,
        (port, admin): (u16, u16),
        config: PathBuf,
        log: PathBuf,
    ) -> anyhow::Result<Bridge> {
        let child = Self::process(&config, &log)?;
        Ok(Bridge {
            name,
            port,
            admin,
            config,
            log,
            child,
        })
    }

    fn process(config: &PathBuf, log: &PathBuf) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        // This executable carries the whole bridge: it runs as one with `--bridge CONFIG`.
        Command::new(std::env::current_exe().context("the demo's own executable")?)
            .arg(format!("--{BRIDGE_OPTION}"))
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start a bridge process")
    }

    /// SIGKILL, as a crash would.
    fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Started again after a crash: it comes back as the standby.
    fn restart(&mut self) -> anyhow::Result<()> {
        self.child = Self::process(&self.config, &self.log)?;
        Ok(())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the pair demo on `port` until `shutdown`.
pub async fn run_pair(port: u16, shutdown: CancellationToken) -> anyhow::Result<()> {
    let platform = SimulatedPlatform::start().await?;
    let postgres = LocalPostgres::start()?;
    let dir = tempfile::Builder::new()
        .prefix("converja-pair-")
        .tempdir()
        .context("a temporary directory")?;
    let mut bridges = Vec::new();
    for name in ["A", "B"] {
        let [listen, admin] = free_ports()?;
        let config = dir.path().join(format!("bridge-{name}.toml"));
        let text = format!(
            "{}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[store]\nurl = \"{}\"\n",
            platform.bridge_config(false, listen),
            postgres.url()
        );
        std::fs::write(&config, text)?;
        let log = dir.path().join(format!("bridge-{name}.log"));
        bridges.push(Bridge::spawn(name, (listen, admin), config, log)?);
    }
    let ports = bridges.iter().map(|b| (b.port, b.admin)).collect();
    let balancer = Proxy::start(port, Route::Ready(ports))
        .await
        .with_context(|| {
            format!("cannot listen on 127.0.0.1:{port}; pass --port to use another")
        })?;
    match wait_active(&bridges, READY_LIMIT).await {
        Some(active) => println!("  bridge {} is active", bridges[active].name),
        None => anyhow::bail!("no bridge became ready; logs in {}", dir.path().display()),
    }
    print_banner(balancer.port, None, &platform.xmpp(false), &platform.agents);
    for b in &bridges {
        println!(
            "  Bridge {}:        http://127.0.0.1:{}/readyz   log {}",
            b.name,
            b.admin,
            b.log.display()
        );
    }
    println!("  PostgreSQL:      {}", postgres.url());
    println!();
    println!("  Press Enter to SIGKILL the active bridge; Ctrl-C to stop.");
    println!();

    let mut enter = enter_presses();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            pressed = enter.recv() => match pressed {
                Some(()) => fail_over(&mut bridges).await?,
                // No terminal: nothing to press; run until Ctrl-C.
                None => { shutdown.cancelled().await; break; }
            },
        }
    }
    drop(balancer);
    drop(bridges);
    platform.stop().await;
    Ok(())
}

/// Each Enter on standard input, read on a thread of its own.
fn enter_presses() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.send(()).is_err() {
                return;
            }
            line.clear();
        }
    });
    rx
}

/// The index of the ready bridge, waiting up to `limit` for one.
async fn wait_active(bridges: &[Bridge], limit: Duration) -> Option<usize> {
    let deadline = Instant::now() + limit;
    loop {
        for (i, b) in bridges.iter().enumerate() {
            if is_ready(b.admin).await {
                return Some(i);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Crashes the active bridge, reports how long the other took to be ready, and starts the
/// crashed one again as the standby.
async fn fail_over(bridges: &mut [Bridge]) -> anyhow::Result<()> {
    let Some(active) = wait_active(bridges, Duration::ZERO).await else {
        println!("  no bridge is active right now; try again in a moment");
        return Ok(());
    };
    let killed = Instant::now();
    bridges[active].crash();
    println!("  bridge {} SIGKILLed", bridges[active].name);
    match wait_active(bridges, READY_LIMIT).await {
        Some(next) => println!(
            "  bridge {} is active: ready {} ms after the crash",
            bridges[next].name,
            killed.elapsed().as_millis()
        ),
        None => println!("  no bridge became ready within {READY_LIMIT:?}"),
    }
    bridges[active].restart()?;
    println!(
        "  bridge {} started again: the standby",
        bridges[active].name
    );
    Ok(())
}
