//! The daemon: wires the platform client, the socket.io gateway and the HTTP endpoints onto
//! one listener, and shuts them down in order.

use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::agents::{Agents, Settings};
use crate::config::Config;
use crate::gateway::SocketSink;
use crate::platform::Platform;
use crate::store::{self, Change, Journal, Saved};
use crate::xmpp::ConnectSettings;
use crate::{bridge, gateway, http, telemetry};

/// How long shutdown waits for the agent events already taken, and then for requests
/// already sent to the platform.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Runs the bridge on `listener` until `shutdown` is cancelled, then drains and returns.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    telemetry::prometheus();
    if config.auth.is_none() {
        warn!("no [auth] configured: any socket.io client may act as any agent username");
    }
    let running = Running::start(&config).await?;
    let core = running.core.clone();
    let (gateway, io) = gateway::start(&config, core.clone());
    let router = gateway.router(http::routes(
        running.platform.clone(),
        config.socketio.console,
    ));

    let address = listener.local_addr()?;
    info!(%address, paths = ?config.socketio.paths, "listening for agent UIs");
    // Agent events are tiny and latency-bound; Nagle would delay them by tens of ms.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let stop = shutdown.clone();
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            stop.cancelled().await;
            info!("shutting down: refusing new events, finishing the ones taken");
            if tokio::time::timeout(DRAIN_DEADLINE, core.drain())
                .await
                .is_err()
            {
                warn!("agent events still being handled at the shutdown deadline");
            }
            io.close().await;
        })
        .await;
    running.stop().await;
    served?;
    info!("stopped");
    Ok(())
}

/// What runs while the bridge serves, with the tokens that stop it in order.
struct Running {
    platform: Platform,
    core: Arc<Agents<Platform, SocketSink>>,
    journal: Journal,
    tracker: TaskTracker,
    /// The core's work: the clock, platform events, gauges.
    gateway_cancel: CancellationToken,
    /// The journal's writer, which outlives the sockets so that their sessions' last changes
    /// are written.
    store_cancel: CancellationToken,
    /// The platform link, which outlives the core so that requests in flight can finish.
    platform_cancel: CancellationToken,
}

impl Running {
    /// Opens the store, starts the platform link and the core, and restores the sessions.
    async fn start(config: &Config) -> anyhow::Result<Running> {
        let tracker = TaskTracker::new();
        let store_cancel = CancellationToken::new();
        let (journal, saved) = open_store(config, &tracker, store_cancel.clone()).await?;
        let platform_cancel = CancellationToken::new();
        let platform = Platform::start_after(
            saved.request_ids_used(),
            ConnectSettings::from_config(&config.xmpp),
            config.xmpp.nickname.clone(),
            &config.converja,
            &tracker,
            platform_cancel.clone(),
        );
        let gateway_cancel = CancellationToken::new();
        let core = Agents::new(
            Settings::from_config(config),
            platform.clone(),
            SocketSink,
            journal.clone(),
            tracker.clone(),
            gateway_cancel.clone(),
        );
        core.restore(saved);
        core.start_clock();
        tracker.spawn(bridge::record_request_ids(
            platform.clone(),
            journal.clone(),
            gateway_cancel.clone(),
        ));
        tracker.spawn(telemetry::upkeep(gateway_cancel.clone()));
        tracker.spawn(bridge::follow_platform(
            core.clone(),
            platform.subscribe(),
            gateway_cancel.clone(),
        ));
        Ok(Running {
            platform,
            core,
            journal,
            tracker,
            gateway_cancel,
            store_cancel,
            platform_cancel,
        })
    }

    /// Once the sockets are closed: lets the requests in flight finish, writes what the
    /// store must keep, leaves the rooms and waits for every task.
    async fn stop(self) {
        self.gateway_cancel.cancel();
        if tokio::time::timeout(DRAIN_DEADLINE, self.platform.idle())
            .await
            .is_err()
        {
            warn!(
                pending = self.platform.pending(),
                "requests still pending at the shutdown deadline"
            );
        }
        write_last(&self.journal, &self.platform).await;
        self.store_cancel.cancel();
        self.platform_cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(DRAIN_DEADLINE, self.tracker.wait())
            .await
            .is_err()
        {
            warn!("some tasks did not stop within the deadline");
        }
    }
}

/// Opens the store `config` names and reads what it holds; the journal that writes to it
/// stops with `cancel`.
async fn open_store(
    config: &Config,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> anyhow::Result<(Journal, Saved)> {
    let Some(store) = store::open(&config.store).await? else {
        warn!("store.backend = \"none\": sessions will not survive a restart");
        return Ok((Journal::off(), Saved::default()));
    };
    let saved = store.load().await?;
    info!(
        location = store.location(),
        sessions = saved.sessions.len(),
        rejected_calls = saved.rejected.len(),
        "session store opened"
    );
    Ok((Journal::open(store, tracker, cancel), saved))
}

/// Shutdown: writes the request-id mark and whatever the journal still holds.
async fn write_last(journal: &Journal, platform: &Platform) {
    journal.note(Change::RequestHighWater(platform.last_request_id()));
    match tokio::time::timeout(DRAIN_DEADLINE, journal.flush()).await {
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
