//! The daemon: wires the platform client, the socket.io gateway and the HTTP endpoints onto
//! one listener, and shuts them down in order.

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
    let tracker = TaskTracker::new();
    // The platform outlives the socket.io server during shutdown so that in-flight
    // requests can finish; it gets its own token, cancelled last.
    let platform_cancel = CancellationToken::new();
    let platform = Platform::start(
        ConnectSettings::from_config(&config.xmpp),
        config.xmpp.nickname.clone(),
        &config.converja,
        &tracker,
        platform_cancel.clone(),
    );
    let gateway_cancel = CancellationToken::new();
    let core = Agents::new(
        Settings::from_config(&config),
        platform.clone(),
        SocketSink,
        tracker.clone(),
        gateway_cancel.clone(),
    );
    core.start_clock();
    tracker.spawn(telemetry::upkeep(gateway_cancel.clone()));
    tracker.spawn(bridge::follow_platform(
        core.clone(),
        platform.subscribe(),
        gateway_cancel.clone(),
    ));
    let (gateway, io) = gateway::start(&config, core.clone());
    let router = gateway.router(http::routes(platform.clone(), config.socketio.console));

    let address = listener.local_addr()?;
    info!(%address, paths = ?config.socketio.paths, "listening for agent UIs");
    // Agent events are tiny and latency-bound; Nagle would delay them by tens of ms.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let stop = shutdown.clone();
    axum::serve(listener, router)
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
        .await?;

    gateway_cancel.cancel();
    if tokio::time::timeout(DRAIN_DEADLINE, platform.idle())
        .await
        .is_err()
    {
        warn!(
            pending = platform.pending(),
            "requests still pending at the shutdown deadline"
        );
    }
    platform_cancel.cancel();
    tracker.close();
    if tokio::time::timeout(DRAIN_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        warn!("some tasks did not stop within the deadline");
    }
    info!("stopped");
    Ok(())
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
