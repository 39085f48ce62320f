//! The socket.io front end: where agent UIs connect (two paths, two namespaces, WebSocket and
//! polling), how each socket is admitted (origin, optional token), and how its events reach
//! the agents core: parsed once at the edge ([`payload::parse`]) and queued to the socket's
//! own task in exactly the order the socket sent them.

mod auth;
pub mod payload;
mod sink;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::{ConnectHandler, FromMessageParts, MessageHandler};
use socketioxide::socket::Sid;
use socketioxide::socket::{DisconnectReason, Socket};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{debug, warn};

pub use auth::{mint_token, verify_token};
pub use sink::SocketSink;

use crate::agents::{self, Agents, Inbound, Resume, SocketId};
use crate::config::{Config, Secret};
use crate::telemetry;

/// The path socketioxide itself serves; every configured path is rewritten to it.
const INTERNAL_PATH: &str = "/socket.io";
/// Namespaces that behave the same.
pub const NAMESPACES: [&str; 2] = ["/", "/callcontrol"];
/// Packets queued per socket: room for the answers to a client that sends a burst of
/// events before it reads (an acknowledgement that finds the buffer full drops the socket:
/// socketioxide consumes it, it cannot wait). Small, because a socket that stops reading
/// holds this many packets plus the WebSocket's own write buffer (about 128 KiB): measured
/// at about 230 KiB per stalled socket in all (`cargo bench --bench faults -- --only
/// stalled`). Past it, the agents core holds a short backlog of events, then drops the socket.
const SOCKET_BUFFER: usize = 128;
/// Each WebSocket's read buffer. The WebSocket layer zero-fills the whole buffer before every
/// read, so its size is resident memory per agent and work per read; agent events are tens
/// of bytes, and a larger message grows the buffer as it needs. (The default is 4 KiB.)
const WS_READ_BUFFER: usize = 512;

/// The agents core as the gateway drives it.
type Core<P> = Arc<Agents<P, SocketSink>>;

/// Hands what a socket sent to the agents core; an event that does not fit comes back.
type Submit = dyn Fn(SocketId, Inbound<AckSender>) + Send + Sync;

/// Where a socket's events go: the handler of every event it sends.
#[derive(Clone)]
struct Inbox {
    id: SocketId,
    submit: Arc<Submit>,
    max_calls_limit: u32,
}

/// What every admitted socket needs at connect time.
struct Admission<P: agents::Platform> {
    core: Core<P>,
    submit: Arc<Submit>,
    next_id: AtomicU64,
    secret: Option<Secret>,
    origins: Vec<String>,
    max_calls_limit: u32,
    /// Sockets admitted whose client is not yet told it is connected.
    opening: Mutex<HashMap<Sid, SocketId>>,
}

impl<P: agents::Platform> Admission<P> {
    fn opening(&self) -> std::sync::MutexGuard<'_, HashMap<Sid, SocketId>> {
        self.opening.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The socket.io server, ready to be mounted.
pub struct Gateway {
    layer: socketioxide::layer::SocketIoLayer,
    paths: Vec<String>,
    cors: CorsLayer,
}

/// Builds the socket.io server in front of `core`.
pub fn start<P: agents::Platform>(config: &Config, core: Core<P>) -> (Gateway, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .req_path(INTERNAL_PATH)
        .max_payload(config.socketio.max_payload as u64)
        .ws_max_message_size(config.socketio.max_payload)
        .ws_max_frame_size(config.socketio.max_payload)
        .max_buffer_size(SOCKET_BUFFER)
        .ws_read_buffer_size(WS_READ_BUFFER)
        .build_layer();
    let submit: Arc<Submit> = {
        let core = core.clone();
        Arc::new(move |id, item| core.submit(id, item))
    };
    let admission = Arc::new(Admission {
        core,
        submit,
        next_id: AtomicU64::new(1),
        secret: config.auth.as_ref().map(|a| a.hmac_secret.clone()),
        origins: config.socketio.cors_origins.clone(),
        max_calls_limit: config.agents.max_calls_limit,
        opening: Mutex::new(HashMap::new()),
    });
    for ns in NAMESPACES {
        let admitting = admission.clone();
        let admit = move |socket: SocketRef, TryData(auth): TryData<Value>| {
            let admission = admitting.clone();
            async move { admit(&admission, &socket, auth.ok()) }
        };
        let admission = admission.clone();
        // Runs once the CONNECT reply is sent: only then can events reach the client.
        let connected = move |socket: SocketRef| {
            let admission = admission.clone();
            async move {
                let id = admission.opening().remove(&socket.id);
                if let Some(id) = id {
                    admission.core.socket_connected(id);
                }
            }
        };
        io.ns(ns, connected.with(admit));
    }
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
enum Refused {
    #[error("origin {0} is not allowed")]
    Origin(String),
    #[error("a valid auth.token is required")]
    Token,
}

/// Runs before the client is told it is connected, so the handlers registered here exist
/// before its first event can arrive.
fn admit<P: agents::Platform>(
    admission: &Arc<Admission<P>>,
    socket: &SocketRef,
    auth: Option<Value>,
) -> Result<(), Refused> {
    check_origin(admission, socket)?;
    let proven = check_token(admission, auth.as_ref())?;
    let id = SocketId(admission.next_id.fetch_add(1, Ordering::Relaxed));
    let inbox = Inbox {
        id,
        submit: admission.submit.clone(),
        max_calls_limit: admission.max_calls_limit,
    };
    let resume = resume_of(auth.as_ref());
    let fresh = agents::resume::new_pid();
    admission.opening().insert(socket.id, id);
    let pid = admission
        .core
        .socket_opened(id, socket.clone(), proven, resume, fresh);
    socket.set_pid(pid);
    socket.on_fallback(inbox.clone());
    let sid = socket.id;
    let closing = admission.clone();
    socket.on_disconnect(async move |_: SocketRef, reason: DisconnectReason| {
        debug!(socket = id.0, %reason, "socket disconnected");
        closing.opening().remove(&sid);
        // A close always fits: it is a mark behind the socket's events, not an event.
        (inbox.submit)(id, Inbound::Closed);
    });
    debug!(socket = id.0, ns = socket.ns(), transport = ?socket.transport_type(), "socket admitted");
    Ok(())
}

/// What socket.io-client hands back from an earlier connection of the same socket: the
/// `pid` and `offset` it adds to the handshake's `auth` (4.6 and later).
fn resume_of(auth: Option<&Value>) -> Resume {
    let field = |name: &str| {
        auth.and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Resume {
        pid: field("pid"),
        offset: field("offset"),
    }
}

// CORS does not apply to WebSocket upgrades, so the origin is checked here for both.
fn check_origin<P: agents::Platform>(
    admission: &Admission<P>,
    socket: &SocketRef,
) -> Result<(), Refused> {
    let origin = socket
        .req_parts()
        .headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok());
    match origin {
        Some(origin) if !admission.origins.iter().any(|o| o == "*" || o == origin) => {
            metrics::counter!(telemetry::SOCKETS_REFUSED, "reason" => "origin").increment(1);
            warn!(%origin, "socket refused: origin not allowed");
            Err(Refused::Origin(origin.to_owned()))
        }
        _ => Ok(()),
    }
}

/// The username the handshake token proves; `None` when tokens are off.
fn check_token<P: agents::Platform>(
    admission: &Admission<P>,
    auth: Option<&Value>,
) -> Result<Option<String>, Refused> {
    let Some(secret) = &admission.secret else {
        return Ok(None);
    };
    let token = auth.and_then(|a| a.get("token")).and_then(Value::as_str);
    match token.and_then(|t| verify_token(secret, t)) {
        Some(user) => Ok(Some(user)),
        None => {
            metrics::counter!(telemetry::SOCKETS_REFUSED, "reason" => "token").increment(1);
            warn!("socket refused: missing or invalid auth.token");
            Err(Refused::Token)
        }
    }
}

/// Every event of a socket comes here: parsed and queued for the socket's task, inline in
/// the socket's read loop. socketioxide runs a handler's extractors inline, in the order
/// packets arrive, and spawns a task per call for the handler's body; handling everything at
/// the extractor stage keeps a socket's events in order and spares the task.
impl MessageHandler<LocalAdapter, Inbox> for Inbox {
    fn call(
        &self,
        s: Arc<Socket<LocalAdapter>>,
        mut v: socketioxide::handler::Value,
        ack_id: Option<i64>,
    ) {
        let name = Event::from_message_parts(&s, &mut v, &ack_id)
            .map(|e| e.0)
            .unwrap_or_default();
        let ack = match ack_id {
            Some(_) => AckSender::from_message_parts(&s, &mut v, &ack_id).ok(),
            None => None,
        };
        let data = TryData::<Value>::from_message_parts(&s, &mut v, &ack_id)
            .ok()
            .and_then(|TryData(data)| data.ok());
        let event = payload::parse(&name, data, self.max_calls_limit);
        (self.submit)(self.id, Inbound::Event(event, ack));
    }
}
