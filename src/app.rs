//! The daemon: wires the platform client and the socket.io gateway onto the public listener
//! and the probes and metrics onto the admin listener, and shuts them down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::future::IntoFuture;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::agents::supervision::{Supervision, SupervisionSettings};
use crate::agents::{Agents, Settings};
use crate::config::Config;
use crate::gateway::SocketSink;
use crate::http::Readiness;
use crate::platform::Client;
use crate::store::lease::Kept;
use crate::store::{self, Change, Journal, Lease, Saved, SqlStore, Store};
use crate::xmpp::ConnectSettings;
use crate::{bridge, gateway, http, telemetry};

/// The two listeners: agents on one, probes and metrics on the other.
pub struct Listeners {
    /// socket.io and the console.
    pub public: TcpListener,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds both addresses of `config`.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let bind = async |address: SocketAddr, what: &str| {
            TcpListener::bind(address)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {address} ({what}): {e}"))
        };
        Ok(Listeners {
            public: bind(config.socketio.listen, "socketio.listen").await?,
            admin: bind(config.admin.listen, "admin.listen").await?,
        })
    }
}

/// How long shutdown waits for the agent events already taken, and then for requests
/// already sent to the platform.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// How long an active bridge that lost its lease takes at most to stop serving: well within
/// the margin between [`store::lease::FENCE_AFTER`] and [`store::lease::TTL`].
const FENCE_DEADLINE: Duration = Duration::from_millis(500);

/// Runs the bridge on `listeners` until `shutdown` is cancelled, then drains and returns.
///
/// With a shared store (PostgreSQL), the bridge serves only while it holds the store's lease:
/// until then it stands by (`/readyz` 503, sockets refused), and if it loses the lease it
/// stops serving at once and stands by again.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    telemetry::prometheus();
    if config.auth.is_none() {
        warn!("no [auth] configured: any socket.io client may act as any agent username");
    }
    if config.socketio.cors_origins.iter().any(|o| o == "*") {
        warn!("socketio.cors_origins = [\"*\"]: pages from any site may connect agents");
    }
    let readiness = Readiness::default();
    let admin = TaskTracker::new();
    let done = CancellationToken::new();
    serve_admin(&config, listeners.admin, &readiness, &admin, &done)?;
    // `/readyz` says draining from the moment shutdown is asked, before anything stops.
    admin.spawn({
        let (readiness, shutdown, done) = (readiness.clone(), shutdown.clone(), done.clone());
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => readiness.draining(),
                _ = done.cancelled() => {}
            }
        }
    });
    let served = serve_public(config, listeners.public, readiness, shutdown).await;
    done.cancel();
    admin.close();
    admin.wait().await;
    served
}

/// Serves the admin listener on `tracker` until `done`.
fn serve_admin(
    config: &Config,
    listener: TcpListener,
    readiness: &Readiness,
    tracker: &TaskTracker,
    done: &CancellationToken,
) -> anyhow::Result<()> {
    info!(address = %listener.local_addr()?, "admin listener: /healthz /readyz /metrics");
    let router = http::admin_routes(readiness.clone(), config.admin.token.clone());
    tracker.spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(done.clone().cancelled_owned())
            .into_future(),
    );
    Ok(())
}

/// Serves agents, through the lease's phases when the store is shared.
async fn serve_public(
    config: Config,
    listener: TcpListener,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = store::open(&config.store).await?;
    let lease = store
        .as_ref()
        .filter(|s| s.is_shared())
        .map(|s| Lease::new(s.clone()));
    // Each phase serves on its own handle of the same socket, so that connections never
    // find the port closed between phases.
    let listener = listener.into_std()?;
    let address = listener.local_addr()?;
    loop {
        let held = match &lease {
            None => None,
            Some(lease) => {
                let held =
                    stand_by(&config, reuse(&listener)?, lease, &readiness, &shutdown).await?;
                if held.is_none() {
                    break;
                }
                held
            }
        };
        telemetry::set_role(true);
        info!(%address, paths = ?config.socketio.paths, "listening for agent UIs");
        let stop = shutdown.child_token();
        let keeper = lease.clone().zip(held).map(|(lease, held)| {
            let stop = stop.clone();
            tokio::spawn(async move {
                if lease.keep(held, &stop).await == Kept::Lost {
                    stop.cancel();
                }
            })
        });
        let served = serve_active(
            &config,
            store.clone(),
            reuse(&listener)?,
            &readiness,
            &stop,
            &shutdown,
        )
        .await;
        stop.cancel();
        if let Some(keeper) = keeper {
            let _ = keeper.await;
        }
        served?;
        if shutdown.is_cancelled() {
            break;
        }
        warn!("stopped serving: the lease was lost; standing by");
    }
    if let Some(lease) = &lease {
        lease.release().await;
    }
    info!("stopped");
    Ok(())
}

/// Another handle on the listening socket, for the next phase.
fn reuse(listener: &std::net::TcpListener) -> anyhow::Result<TcpListener> {
    Ok(TcpListener::from_std(listener.try_clone()?)?)
}

/// Serves as the standby until this process holds the lease (when it was taken), or until
/// `shutdown` (`None`).
async fn stand_by(
    config: &Config,
    listener: TcpListener,
    lease: &Lease,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<tokio::time::Instant>> {
    telemetry::set_role(false);
    readiness.standby();
    info!(
        holder = lease.holder(),
        "standing by until the lease is free"
    );
    let done = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(
            listener,
            http::standby_routes(config.socketio.readyz.then(|| readiness.clone())),
        )
        .with_graceful_shutdown(done.clone().cancelled_owned())
        .into_future(),
    );
    let held = lease.acquire(shutdown).await;
    done.cancel();
    server.await??;
    Ok(held)
}

/// Serves agent UIs until `stop`: drained when `shutdown` is the reason, dropped at once when
/// the lease was lost.
async fn serve_active(
    config: &Config,
    store: Option<SqlStore>,
    listener: TcpListener,
    readiness: &Readiness,
    stop: &CancellationToken,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let running = Running::start(config, store).await?;
    let core = running.core.clone();
    let (gateway, io) = match gateway::start(config, core.clone(), running.supervision.clone()) {
        Ok(started) => started,
        Err(e) => {
            running.stop(DRAIN_DEADLINE).await;
            return Err(e);
        }
    };
    readiness.active(running.platform.clone());
    let router = gateway.router(http::public_routes(
        config.socketio.console,
        config.socketio.readyz.then(|| readiness.clone()),
    ));
    // Agent events are tiny and latency-bound; Nagle would delay them by tens of ms.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let asked = shutdown.clone();
    let (stop, shutdown) = (stop.clone(), shutdown.clone());
    // The peer's address, for the limits per client address and the trusted proxies.
    let router = router.into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            stop.cancelled().await;
            if shutdown.is_cancelled() {
                info!("shutting down: refusing new events, finishing the ones taken");
                if tokio::time::timeout(DRAIN_DEADLINE, core.drain())
                    .await
                    .is_err()
                {
                    warn!("agent events still being handled at the shutdown deadline");
                }
                io.close().await;
            } else {
                warn!("another bridge may take over: dropping every socket now");
                let _ = tokio::time::timeout(FENCE_DEADLINE, io.close()).await;
            }
        })
        .await;
    let fenced = !asked.is_cancelled();
    running
        .stop(if fenced {
            FENCE_DEADLINE
        } else {
            DRAIN_DEADLINE
        })
        .await;
    Ok(served?)
}

/// What runs while the bridge serves, with the tokens that stop it in order.
struct Running {
    platform: Client,
    core: Arc<Agents<Client, SocketSink>>,
    supervision: Arc<Supervision<Client>>,
    journal: Journal,
    tracker: TaskTracker,
    /// The core's work: the clock, platform events, gauges.
    core_cancel: CancellationToken,
    /// The journal's writer, which outlives the sockets so that their sessions' last changes
    /// are written.
    store_cancel: CancellationToken,
    /// The platform link, which outlives the core so that requests in flight can finish.
    platform_cancel: CancellationToken,
}

impl Running {
    /// Reads the store, starts the platform link and the core, and restores the sessions.
    async fn start(config: &Config, store: Option<SqlStore>) -> anyhow::Result<Running> {
        let tracker = TaskTracker::new();
        let store_cancel = CancellationToken::new();
        let (journal, saved) = read_store(store, &tracker, store_cancel.clone()).await?;
        let platform_cancel = CancellationToken::new();
        let platform = Client::start_after(
            saved.request_ids_used(),
            ConnectSettings::from_config(&config.xmpp),
            config.xmpp.nickname.clone(),
            &config.converja,
            &tracker,
            platform_cancel.clone(),
        );
        let core_cancel = CancellationToken::new();
        let core = Agents::new(
            Settings::from_config(config),
            platform.clone(),
            SocketSink,
            journal.clone(),
            tracker.clone(),
            core_cancel.clone(),
        );
        core.restore(saved);
        core.start_clock();
        tracker.spawn(bridge::record_request_ids(
            platform.clone(),
            journal.clone(),
            core_cancel.clone(),
        ));
        tracker.spawn(telemetry::upkeep(core_cancel.clone()));
        let supervision = Arc::new(Supervision::new(
            SupervisionSettings::from_config(&config.supervisors),
            platform.clone(),
            tracker.clone(),
            core_cancel.clone(),
        ));
        tracker.spawn(supervision.clone().run());
        tracker.spawn(bridge::follow_platform(
            core.clone(),
            supervision.clone(),
            platform.subscribe(),
            core_cancel.clone(),
        ));
        Ok(Running {
            platform,
            core,
            supervision,
            journal,
            tracker,
            core_cancel,
            store_cancel,
            platform_cancel,
        })
    }

    /// Once the sockets are closed: lets the requests in flight finish, writes what the
    /// store must keep, leaves the rooms and waits for every task; each step at most
    /// `deadline`.
    async fn stop(self, deadline: Duration) {
        self.core_cancel.cancel();
        if tokio::time::timeout(deadline, self.platform.idle())
            .await
            .is_err()
        {
            warn!(
                pending = self.platform.pending(),
                "requests still pending at the shutdown deadline"
            );
        }
        write_last(&self.journal, &self.platform, deadline).await;
        self.store_cancel.cancel();
        self.platform_cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            warn!("some tasks did not stop within the deadline");
        }
    }
}

/// Reads what `store` holds; the journal that writes to it stops with `cancel`.
async fn read_store(
    store: Option<SqlStore>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> anyhow::Result<(Journal, Saved)> {
    let Some(store) = store else {
        warn!("store.backend = \"none\": sessions will not survive a restart");
        return Ok((Journal::off(), Saved::default()));
    };
    let saved = store.load().await?;
    info!(
        location = store.location(),
        sessions = saved.sessions.len(),
        rejected_calls = saved.rejected.len(),
        "session store read"
    );
    Ok((Journal::open(Arc::new(store), tracker, cancel), saved))
}

/// Shutdown: writes the request-id mark and whatever the journal still holds.
async fn write_last(journal: &Journal, platform: &Client, deadline: Duration) {
    journal.note(Change::RequestHighWater(platform.last_request_id()));
    match tokio::time::timeout(deadline, journal.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => warn!(%error, "sessions not all stored at shutdown"),
        Err(_) => warn!("session store still writing at the shutdown deadline"),
    }
}

/// A token cancelled on SIGINT or SIGTERM (containers stop with SIGTERM).
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the bridge");
                let _ = ctrl_c.await;
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        info!("signal received");
        cancel.cancel();
    });
    token
}
