//! The bridge binary as an operator runs it: a config file, a process, signals.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use converja_bridge::config::Secret;
use converja_bridge::converja::CallId;
use converja_bridge::gateway::mint_token;
use converja_bridge::sim::SimHandle;
use converja_testkit::postgres::LocalPostgres;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::agent_ui::{Puppet, admin_get, wait_ready};
use super::server::Server;
use super::{Calls, agent, scenario, start_sim, unused_port};
use converja_testkit::nginx::{PROXY_ADDRESS, USER_HEADER};

pub(crate) const BRIDGE: &str = env!("CARGO_BIN_EXE_converja-bridge");
pub(crate) const SECRET: &str = "a-test-secret-for-tokens";
/// Short, so that the sessions nobody reclaims end within the test.
pub(crate) const GRACE: Duration = Duration::from_secs(4);
/// The grace for UIs that reconnect with socket.io-client's defaults: longer than its
/// longest wait between two attempts (5 s), so that a UI that keeps trying through a
/// restart or a failover comes back within it, as it does with the default 30 s.
pub(crate) const UI_GRACE: Duration = Duration::from_secs(10);

/// The bridge binary; killed if the test ends first.
pub(crate) struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    /// Starts the bridge with `config` and returns once it listens on `port` and is ready.
    pub(crate) async fn start(config: &Path, port: u16) -> Daemon {
        let daemon = Daemon::spawn(config);
        wait_ready(port).await;
        daemon
    }

    /// Starts the bridge with `config` without waiting for anything.
    pub(crate) fn spawn(config: &Path) -> Daemon {
        Daemon(
            Command::new(BRIDGE)
                .args(["run", "--config"])
                .arg(config)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("the bridge starts"),
        )
    }

    /// Sends `signal` and waits for the process to exit.
    pub(crate) fn stop(mut self, signal: &str) {
        Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        super::wait_exit(&mut self.0);
    }
}

/// Where the bridge keeps its sessions in a test.
pub(crate) enum Store {
    /// A SQLite file in the test's directory.
    Sqlite,
    /// A private PostgreSQL server.
    Postgres(LocalPostgres),
}

impl Store {
    pub(crate) fn postgres() -> Store {
        Store::Postgres(LocalPostgres::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// The `[store]` section for a bridge whose files are in `dir`.
    pub(crate) fn section(&self, dir: &Path) -> String {
        match self {
            Store::Sqlite => format!("path = \"{}\"", dir.join("sessions.db").display()),
            Store::Postgres(server) => format!("url = \"{}\"", server.url()),
        }
    }
}

/// Writes `name`.toml in `dir` for a bridge on `port` with nickname `name`, its sessions in
/// `store` (a `[store]` section's lines), sockets proving their username with tokens.
pub(crate) fn write_config(
    dir: &Path,
    xmpp: &Server,
    port: u16,
    name: &str,
    store: &str,
) -> PathBuf {
    let auth = format!("[auth]\nhmac_secret = \"{SECRET}\"");
    write_config_with(dir, xmpp, port, name, store, &auth, GRACE)
}

/// Like [`write_config`], without `[auth]`: any socket may act as any username, as in a
/// deployment where the UIs carry no token; the grace is [`UI_GRACE`].
pub(crate) fn write_open_config(
    dir: &Path,
    xmpp: &Server,
    port: u16,
    name: &str,
    store: &str,
) -> PathBuf {
    write_config_with(dir, xmpp, port, name, store, "", UI_GRACE)
}

/// Like [`write_open_config`], signing sockets in through a reverse proxy: a socket is the
/// username in [`USER_HEADER`] of a handshake from [`PROXY_ADDRESS`], and nothing from
/// elsewhere is admitted.
pub(crate) fn write_proxy_config(
    dir: &Path,
    xmpp: &Server,
    port: u16,
    name: &str,
    store: &str,
) -> PathBuf {
    let auth = format!(
        "[auth]\nmode = \"proxy\"\nheader = \"{USER_HEADER}\"\n\
         trusted_proxies = [\"{PROXY_ADDRESS}/32\"]"
    );
    write_config_with(dir, xmpp, port, name, store, &auth, UI_GRACE)
}

fn write_config_with(
    dir: &Path,
    xmpp: &Server,
    port: u16,
    name: &str,
    store: &str,
    auth: &str,
    grace: Duration,
) -> PathBuf {
    let file = dir.join(format!("{name}.toml"));
    let admin = super::unused_port();
    super::agent_ui::note_admin_port(port, admin);
    std::fs::write(
        &file,
        format!(
            r#"
            [xmpp]
            jid = "bridge@{domain}"
            password = "bridge-pw"
            host = "127.0.0.1"
            port = {c2s}
            tls = "none"
            nickname = "{name}"
            [converja]
            conference = "{conference}"
            request_timeout = "3s"
            [socketio]
            listen = "127.0.0.1:{port}"
            [admin]
            listen = "127.0.0.1:{admin}"
            [agents]
            first_call_delay = "100ms"
            reconnect_grace = "{grace}s"
            {auth}
            [store]
            {store}
            [log]
            level = "info"
            "#,
            domain = xmpp.domain,
            c2s = xmpp.c2s_port,
            conference = xmpp.conference,
            grace = grace.as_secs(),
            store = store,
        ),
    )
    .expect("config written");
    file
}

/// A UI socket of `ui` with the token (for [`SECRET`]) of `username`, logged in with
/// `max_calls`; it reconnects by itself when `reconnects`, as agent UIs do.
pub(crate) async fn open_with_token(
    ui: &mut Puppet,
    username: &str,
    reconnects: bool,
    max_calls: u32,
) {
    let token = mint_token(&Secret::new(SECRET), username);
    ui.connect_with(
        username,
        "/callcontrol",
        "",
        &["websocket"],
        json!({"auth": {"token": token}, "reconnection": reconnects}),
    )
    .await;
    ui.login(username, username, max_calls).await;
}

/// The value of the metric line `series` (name and labels, as rendered) on the `/metrics` of
/// the bridge on `port`; -1 when it has no such line.
pub(crate) async fn scraped(port: u16, series: &str) -> f64 {
    // A scrape that fails (a loaded machine refusing or dropping the connection) says nothing
    // about the series: scrape again.
    let body = super::poll_for("a /metrics scrape", super::PATIENCE, || async {
        match admin_get(port, "/metrics").await {
            (200, body) => Ok(body),
            (status, _) => Err(format!("status {status}")),
        }
    })
    .await;
    let wanted = format!("{series} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1.0)
}

/// How a test writes the bridge's configuration: [`write_config`], [`write_open_config`],
/// [`write_proxy_config`].
pub(crate) type WriteConfig = fn(&Path, &Server, u16, &str, &str) -> PathBuf;

/// Prosody, the simulator and the bridge binary, its sessions in SQLite; stops with the test.
pub(crate) struct DaemonStack {
    pub(crate) sim: SimHandle,
    /// The bridge's socket.io port.
    pub(crate) port: u16,
    pub(crate) config: PathBuf,
    /// `None` while a test has it stopped.
    pub(crate) bridge: Option<Daemon>,
    _xmpp: Server,
    _dir: tempfile::TempDir,
    cancel: CancellationToken,
}

impl Drop for DaemonStack {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl DaemonStack {
    /// Starts everything on `tracker`, the bridge configured by `write`.
    pub(crate) async fn start(tracker: &TaskTracker, write: WriteConfig) -> DaemonStack {
        let cancel = CancellationToken::new();
        let (xmpp, sim) = start_sim(scenario(), tracker, &cancel).await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = unused_port();
        let store = format!("path = \"{}\"", dir.path().join("sessions.db").display());
        let config = write(dir.path(), &xmpp, port, "converja-bridge", &store);
        let bridge = Daemon::start(&config, port).await;
        DaemonStack {
            sim,
            port,
            config,
            bridge: Some(bridge),
            _xmpp: xmpp,
            _dir: dir,
            cancel,
        }
    }

    /// The platform gives 22010 a new call from `caller`.
    pub(crate) async fn new_call(&self, caller: &str) -> CallId {
        self.sim.call("22010", caller).await
    }
}

/// Whether the platform still has `id` logged in once [`UI_GRACE`] is over: a session the
/// bridge gave up would have been logged out by then.
pub(crate) async fn logged_in_after_the_grace(sim: &SimHandle, id: &str) -> bool {
    tokio::time::sleep(UI_GRACE + Duration::from_secs(1)).await;
    sim.world().await.agents[&agent(id)].logged_in
}
