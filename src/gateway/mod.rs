//! The socket.io front end: where agent UIs connect (two paths, two namespaces, WebSocket and
//! polling), how each socket is admitted ([`admission`]: origin, sign-in, limits), and how
//! its events reach the agents core: parsed once at the edge ([`contract::parse`]), charged to
//! the socket's budget, and queued to the socket's own task in exactly the order the socket
//! sent them.

mod address;
mod admission;
mod auth;
pub mod contract;
mod identity;
mod limits;
mod rest;
mod sink;
mod supervisor;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{Event, SocketRef, TryData};
use socketioxide::handler::{ConnectHandler, FromMessageParts, MessageHandler};
use socketioxide::socket::Socket;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::warn;

pub use auth::{mint_token, verify_token};
pub use sink::{SocketAck, SocketSink};

use crate::agents::supervision::Supervision;
use crate::agents::{self, Agents, FromSocket, SocketId};
use crate::config::Config;
use crate::telemetry;
use admission::Admission;
use identity::Identity;
use limits::SocketBudget;

/// The path socketioxide itself serves; every configured path is rewritten to it.
const INTERNAL_PATH: &str = "/socket.io";
/// Namespaces that behave the same.
pub const NAMESPACES: [&str; 2] = ["/", "/callcontrol"];
/// Packets queued per socket: room for the answers to a client that sends a burst of
/// events before it reads. Small, because a socket that stops reading holds this many
/// packets plus the WebSocket's own write buffer (about 128 KiB): measured at about 230 KiB
/// per stalled socket in all (`cargo bench --bench faults -- --only stalled`). Past it, the
/// agents core holds a short backlog, and a socket's task waits for room before it answers
/// the socket's next event.
const SOCKET_BUFFER: usize = 128;
/// Each WebSocket's read buffer. The WebSocket layer zero-fills the whole buffer before every
/// read, so its size is resident memory per agent and work per read; agent events are tens
/// of bytes, and a larger message grows the buffer as it needs. (The default is 4 KiB.)
const WS_READ_BUFFER: usize = 512;
/// How long an engine.io connection may wait for its socket.io CONNECT: a client that opens
/// connections and never connects holds them no longer than this.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The agents core as the gateway drives it.
type Core<P> = Arc<Agents<P, SocketSink>>;

/// Relays every event a socket sends to the core: parsed, charged to the socket's budget,
/// and submitted behind what the socket sent before.
struct EventRelay<P: agents::Platform> {
    id: SocketId,
    core: Core<P>,
    budget: Arc<SocketBudget>,
    max_calls_limit: u32,
}

// Not derived: a derive would ask the platform to be `Clone` too.
impl<P: agents::Platform> Clone for EventRelay<P> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            core: self.core.clone(),
            budget: self.budget.clone(),
            max_calls_limit: self.max_calls_limit,
        }
    }
}

/// The socket.io server, ready to be mounted.
pub struct Gateway<P: agents::Platform> {
    rest: Router,
    layer: socketioxide::layer::SocketIoLayer,
    paths: Vec<String>,
    cors: CorsLayer,
    admission: Arc<Admission<P>>,
}

/// Builds the socket.io server in front of `core` (agents) and `supervision` (the
/// `/supervisor` namespace); fails when the configured sign-in cannot be set up (a JWT key
/// that does not parse).
pub fn start<P: agents::Platform, D: agents::Directory>(
    config: &Config,
    core: Core<P>,
    supervision: Arc<Supervision<D>>,
) -> anyhow::Result<(Gateway<P>, SocketIo)> {
    let (layer, io) = SocketIo::builder()
        .req_path(INTERNAL_PATH)
        .max_payload(config.socketio.max_payload as u64)
        .ws_max_message_size(config.socketio.max_payload)
        .ws_max_frame_size(config.socketio.max_payload)
        .max_buffer_size(SOCKET_BUFFER)
        .ws_read_buffer_size(WS_READ_BUFFER)
        .connect_timeout(CONNECT_TIMEOUT)
        .build_layer();
    let identity = Identity::from_config(config)?;
    let admission = Arc::new(Admission::new(config, core, identity));
    for ns in NAMESPACES {
        let admitting = admission.clone();
        let admit = move |socket: SocketRef, TryData(auth): TryData<Value>| {
            let admission = admitting.clone();
            async move { admission.admit(&socket, auth.ok()).await }
        };
        let admission = admission.clone();
        // Runs once the CONNECT reply is sent: only then can events reach the client.
        let connected = move |socket: SocketRef| {
            let admission = admission.clone();
            async move { admission.connected(&socket) }
        };
        io.ns(ns, connected.with(admit));
    }
    let desk = Arc::new(supervisor::Desk {
        admission: admission.clone(),
        supervision,
        rules: config.supervisors.clone(),
    });
    supervisor::mount(&io, desk.clone());
    let gateway = Gateway {
        rest: rest::routes(desk),
        layer,
        paths: config.socketio.paths.clone(),
        cors: cors(&config.socketio.cors_origins),
        admission,
    };
    Ok((gateway, io))
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

impl<P: agents::Platform> Gateway<P> {
    /// The complete HTTP service: socket.io on every configured path, plus `routes`.
    pub fn router(self, routes: Router) -> Router {
        let paths = Arc::new(self.paths);
        let admission = self.admission;
        routes
            .merge(self.rest)
            .layer(self.layer)
            .layer(axum::middleware::from_fn(
                move |req: Request, next: axum::middleware::Next| {
                    let refused = admission.guard(&req);
                    async move {
                        match refused {
                            Some(refused) => refused,
                            None => next.run(req).await,
                        }
                    }
                },
            ))
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

/// An event's name (empty when unreadable) and payload (`None` when absent or not JSON).
fn name_and_data(
    s: &Arc<Socket<LocalAdapter>>,
    v: &mut socketioxide::handler::Value,
    ack_id: Option<i64>,
) -> (String, Option<Value>) {
    let name = Event::from_message_parts(s, v, &ack_id)
        .map(|e| e.0)
        .unwrap_or_default();
    let data = TryData::<Value>::from_message_parts(s, v, &ack_id)
        .ok()
        .and_then(|TryData(data)| data.ok());
    (name, data)
}

/// Every event of a socket comes here: parsed and queued for the socket's task, inline in
/// the socket's read loop. socketioxide runs a handler's extractors inline, in the order
/// packets arrive, and spawns a task per call for the handler's body; handling everything at
/// the extractor stage keeps a socket's events in order and spares the task.
impl<P: agents::Platform> MessageHandler<LocalAdapter, EventRelay<P>> for EventRelay<P> {
    fn call(
        &self,
        s: Arc<Socket<LocalAdapter>>,
        mut v: socketioxide::handler::Value,
        ack_id: Option<i64>,
    ) {
        let (name, data) = name_and_data(&s, &mut v, ack_id);
        let ack = ack_id.map(|id| SocketAck::new(s.clone(), id));
        let event = contract::parse(&name, data, self.max_calls_limit);
        // Refused in its turn, behind what the socket sent before, never dropped.
        let item = match self.budget.spend(&event) {
            Ok(()) => FromSocket::Event(event, ack),
            Err(refusal) => {
                metrics::counter!(telemetry::EVENTS_LIMITED, "reason" => refusal.reason())
                    .increment(1);
                warn!(
                    socket = self.id.0,
                    reason = refusal.reason(),
                    "event refused: {refusal}"
                );
                FromSocket::Refused(event, ack, refusal)
            }
        };
        self.core.submit(self.id, item);
    }
}
