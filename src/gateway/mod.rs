//! The socket.io front end: where agent UIs connect (two paths, two namespaces, WebSocket and
//! polling), how each socket is admitted (origin, optional token), and how its events reach
//! the hub in exactly the order the socket sent them.

mod auth;
mod hub;
pub mod payload;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use serde_json::Value;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::{ConnectHandler, FromMessage, FromMessageParts};
use socketioxide::socket::{DisconnectReason, Socket};
use socketioxide::{SocketIo, TransportType};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{Instrument, debug, warn};

pub use auth::{mint_token, verify_token};
use hub::{Hub, HubMsg};

use crate::agents::SocketId;
use crate::config::{Config, Secret};
use crate::platform::Platform;
use crate::telemetry;

/// The path socketioxide itself serves; every configured path is rewritten to it.
const INTERNAL_PATH: &str = "/socket.io";
/// Namespaces that behave the same.
pub const NAMESPACES: [&str; 2] = ["/", "/callcontrol"];
/// Events queued for the hub before sockets are told the bridge is overloaded.
const HUB_QUEUE: usize = 65_536;
/// Packets queued per socket; well above any burst of NEW_CALLs a UI can hold.
const SOCKET_BUFFER: usize = 1024;

/// Per-socket routing, stored in the socket's extensions when it is admitted.
#[derive(Clone)]
struct Route {
    id: SocketId,
    hub: mpsc::Sender<HubMsg>,
}

/// What every admitted socket needs at connect time.
#[derive(Clone)]
struct Admission {
    hub: mpsc::Sender<HubMsg>,
    next_id: Arc<AtomicU64>,
    secret: Option<Secret>,
    origins: Arc<Vec<String>>,
}

/// The socket.io server, ready to be mounted.
pub struct Gateway {
    layer: socketioxide::layer::SocketIoLayer,
    paths: Vec<String>,
    cors: CorsLayer,
}

/// Builds the socket.io server and starts the hub task.
pub fn start(
    config: &Config,
    platform: Platform,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> (Gateway, SocketIo) {
    let (hub_tx, hub_rx) = mpsc::channel(HUB_QUEUE);
    let (layer, io) = SocketIo::builder()
        .req_path(INTERNAL_PATH)
        .max_payload(config.socketio.max_payload as u64)
        .ws_max_message_size(config.socketio.max_payload)
        .ws_max_frame_size(config.socketio.max_payload)
        .max_buffer_size(SOCKET_BUFFER)
        .build_layer();
    let admission = Admission {
        hub: hub_tx.clone(),
        next_id: Arc::new(AtomicU64::new(1)),
        secret: config.auth.as_ref().map(|a| a.hmac_secret.clone()),
        origins: Arc::new(config.socketio.cors_origins.clone()),
    };
    for ns in NAMESPACES {
        let admission = admission.clone();
        let admit = move |socket: SocketRef, TryData(auth): TryData<Value>| {
            let admission = admission.clone();
            async move { admit(&admission, &socket, auth.ok()) }
        };
        io.ns(ns, (async |_: SocketRef| {}).with(admit));
    }
    let hub = Hub::new(config, platform, hub_tx, tracker.clone());
    tracker.spawn(
        hub.run(hub_rx, cancel)
            .instrument(tracing::info_span!("gateway")),
    );
    let gateway = Gateway {
        layer,
        paths: config.socketio.paths.clone(),
        cors: cors(&config.socketio.cors_origins),
    };
    (gateway, io)
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
}

impl Gateway {
    /// The complete HTTP service: socket.io on every configured path, plus `routes`.
    pub fn router(self, routes: Router) -> Router {
        let paths = Arc::new(self.paths);
        routes
            .layer(self.layer)
            .layer(self.cors)
            .layer(axum::middleware::map_request(move |req: Request| {
                let paths = paths.clone();
                async move { rewrite(req, &paths) }
            }))
    }
}

/// Maps every configured socket.io path onto the one the server listens on, and refuses the
/// internal path when it is not configured.
fn rewrite(mut req: Request, paths: &[String]) -> Request {
    let path = req.uri().path().to_owned();
    for configured in paths {
        if let Some(rest) = path.strip_prefix(configured.as_str())
            && (rest.is_empty() || rest.starts_with('/'))
        {
            if configured == INTERNAL_PATH {
                return req;
            }
            let query = req
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            if let Ok(uri) = format!("{INTERNAL_PATH}{rest}{query}").parse() {
                *req.uri_mut() = uri;
            }
            return req;
        }
    }
    if path.starts_with(INTERNAL_PATH) {
        // Not configured: make it miss the socket.io layer.
        if let Ok(uri) = "/__socketio-path-not-configured".parse() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Why a socket was not admitted; the client receives the text in `connect_error`.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("origin {0} is not allowed")]
    Origin(String),
    #[error("a valid auth.token is required")]
    Token,
    #[error("the bridge is overloaded")]
    Overloaded,
}

/// Runs before the client is told it is connected, so the handlers registered here exist
/// before its first event can arrive.
fn admit(admission: &Admission, socket: &SocketRef, auth: Option<Value>) -> Result<(), Refusal> {
    let origin = socket
        .req_parts()
        .headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    // CORS does not apply to WebSocket upgrades, so the origin is checked here for both.
    if let Some(origin) = &origin
        && !admission.origins.iter().any(|o| o == "*" || o == origin)
    {
        metrics::counter!(telemetry::SOCKETS_REFUSED, "reason" => "origin").increment(1);
        warn!(%origin, "socket refused: origin not allowed");
        return Err(Refusal::Origin(origin.clone()));
    }
    let auth_user = match &admission.secret {
        None => None,
        Some(secret) => {
            let token = auth
                .as_ref()
                .and_then(|a| a.get("token"))
                .and_then(Value::as_str);
            match token.and_then(|t| verify_token(secret, t)) {
                Some(user) => Some(user),
                None => {
                    metrics::counter!(telemetry::SOCKETS_REFUSED, "reason" => "token").increment(1);
                    warn!("socket refused: missing or invalid auth.token");
                    return Err(Refusal::Token);
                }
            }
        }
    };
    let id = SocketId(admission.next_id.fetch_add(1, Ordering::Relaxed));
    let route = Route {
        id,
        hub: admission.hub.clone(),
    };
    socket.extensions.insert(route.clone());
    socket.on_fallback(async |_: Enqueued| {});
    socket.on_disconnect(async move |_: SocketRef, reason: DisconnectReason| {
        debug!(socket = id.0, %reason, "socket closed");
        // Waits for room in the queue: a close must never be lost, or the session would
        // outlive its sockets forever.
        let _ = route.hub.send(HubMsg::Closed { id }).await;
    });
    let transport = socket.transport_type();
    debug!(
        socket = id.0,
        ns = socket.ns(),
        ?transport,
        "socket admitted"
    );
    admission
        .hub
        .try_send(HubMsg::Connected {
            id,
            socket: socket.clone(),
            auth_user,
            polling: transport == TransportType::Polling,
        })
        .map_err(|_| Refusal::Overloaded)
}

/// Extracting this queues the event for the hub. socketioxide runs extractors inline, in the
/// order packets arrive, but runs handlers in separate tasks in any order: queuing here is
/// what keeps a socket's events in order.
struct Enqueued;

impl FromMessage<LocalAdapter> for Enqueued {
    type Error = Infallible;

    fn from_message(
        s: Arc<Socket<LocalAdapter>>,
        mut v: socketioxide::handler::Value,
        ack_id: Option<i64>,
    ) -> Result<Self, Infallible> {
        let Some(route) = s.extensions.get::<Route>() else {
            return Ok(Enqueued);
        };
        let name = Event::from_message_parts(&s, &mut v, &ack_id)
            .map(|e| e.0)
            .unwrap_or_default();
        let ack = match ack_id {
            Some(_) => AckSender::from_message_parts(&s, &mut v, &ack_id).ok(),
            None => None,
        };
        let TryData(data) = TryData::<Value>::from_message_parts(&s, &mut v, &ack_id)
            .unwrap_or(TryData(Ok(Value::Null)));
        let incoming = HubMsg::Incoming {
            id: route.id,
            name,
            data: data.ok(),
            ack,
        };
        if let Err(mpsc::error::TrySendError::Full(HubMsg::Incoming { name, ack, .. })) =
            route.hub.try_send(incoming)
        {
            metrics::counter!(telemetry::SOCKET_EVENTS, "event" => "overloaded", "outcome" => "refused").increment(1);
            warn!(socket = route.id.0, %name, "event refused: the bridge is overloaded");
            if let Some(ack) = ack {
                let _ = ack.send(&serde_json::json!({ "error": "the bridge is overloaded" }));
            }
        }
        Ok(Enqueued)
    }
}
