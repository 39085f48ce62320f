//! Admitting a socket: its origin, who it is, what its address may still open, and the
//! session it takes back. Everything here runs before the client is told it is connected,
//! so the handlers registered exist before its first event can arrive.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use socketioxide::extract::SocketRef;
use socketioxide::socket::{DisconnectReason, Sid};
use tracing::{debug, warn};

use super::identity::{self, Identity, Unproven};
use super::limits::{AddressLimits, Limited, SocketBudget};
use super::{Core, EventRelay, address};
use crate::agents::{self, FromSocket, Resume, SocketId};
use crate::config::{Config, LimitsConfig, TrustedProxies};
use crate::telemetry;

/// What every socket is admitted by.
pub(super) struct Admission<P: agents::Platform> {
    pub(super) core: Core<P>,
    next_id: AtomicU64,
    pub(super) identity: Identity,
    origins: Vec<String>,
    pub(super) trusted: TrustedProxies,
    limits: LimitsConfig,
    pub(super) addresses: Arc<AddressLimits>,
    max_calls_limit: u32,
    /// Sockets admitted whose client is not yet told it is connected.
    opening: Mutex<HashMap<Sid, SocketId>>,
}

/// Why a socket was not admitted; the client receives the text in `connect_error`.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    #[error("origin {0} is not allowed")]
    Origin(String),
    #[error(transparent)]
    Unproven(#[from] Unproven),
    #[error(transparent)]
    Limited(#[from] Limited),
}

impl Refused {
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Refused::Origin(_) => "origin",
            Refused::Unproven(e) => e.reason(),
            Refused::Limited(e) => e.reason(),
        }
    }
}

impl<P: agents::Platform> Admission<P> {
    pub(super) fn new(config: &Config, core: Core<P>, identity: Identity) -> Self {
        Admission {
            core,
            next_id: AtomicU64::new(1),
            identity,
            origins: config.socketio.cors_origins.clone(),
            trusted: config.trusted_proxies.clone(),
            limits: config.limits,
            addresses: Arc::new(AddressLimits::new(&config.limits)),
            max_calls_limit: config.agents.max_calls_limit,
            opening: Mutex::new(HashMap::new()),
        }
    }

    fn opening(&self) -> MutexGuard<'_, HashMap<Sid, SocketId>> {
        self.opening.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client of `socket` has its CONNECT reply: events may reach it now.
    pub(super) fn connected(&self, socket: &SocketRef) {
        let id = self.opening().remove(&socket.id);
        if let Some(id) = id {
            self.core.socket_connected(id);
        }
    }

    /// Admits `socket`, or says why not; logged and counted either way.
    pub(super) async fn admit(
        self: &Arc<Self>,
        socket: &SocketRef,
        auth: Option<Value>,
    ) -> Result<(), Refused> {
        let parts = socket.req_parts();
        let client = address::client(&parts.extensions, &parts.headers, &self.trusted);
        let admitted = self.check(socket, client, auth.as_ref()).await;
        let (proven, slot) = match admitted {
            Ok(admitted) => admitted,
            Err(refused) => {
                let reason = refused.reason();
                metrics::counter!(telemetry::SOCKETS_REFUSED, "reason" => reason).increment(1);
                warn!(client = ?client, reason, "socket refused: {refused}");
                return Err(refused);
            }
        };
        let id = SocketId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let relay = EventRelay {
            id,
            core: self.core.clone(),
            budget: Arc::new(SocketBudget::new(&self.limits)),
            max_calls_limit: self.max_calls_limit,
        };
        let resume = resume_of(auth.as_ref());
        let fresh = agents::resume::new_pid();
        self.opening().insert(socket.id, id);
        let pid = self
            .core
            .socket_opened(id, socket.clone(), proven, resume, fresh);
        socket.set_pid(pid);
        socket.on_fallback(relay.clone());
        let sid = socket.id;
        let closing = self.clone();
        // Held by the handler, which socketioxide drops with the socket.
        let slot = Arc::new(Mutex::new(slot));
        socket.on_disconnect(async move |_: SocketRef, reason: DisconnectReason| {
            debug!(socket = id.0, %reason, "socket disconnected");
            closing.opening().remove(&sid);
            slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            // A close always fits: it is a mark behind the socket's events, not an event.
            relay.core.submit(id, FromSocket::Closed);
        });
        debug!(socket = id.0, client = ?client, ns = socket.ns(), transport = ?socket.transport_type(), "socket admitted");
        Ok(())
    }

    /// The username the socket proves and its address's connection slot.
    async fn check(
        &self,
        socket: &SocketRef,
        client: Option<IpAddr>,
        auth: Option<&Value>,
    ) -> Result<(Option<String>, Option<super::limits::Slot>), Refused> {
        self.check_origin(socket)?;
        let proven = self.identity.prove(socket.req_parts(), auth).await?;
        let slot = match client {
            Some(client) => Some(self.addresses.connect(client)?),
            None => None,
        };
        Ok((proven, slot))
    }

    // CORS does not apply to WebSocket upgrades, so the origin is checked here for both.
    pub(super) fn check_origin(&self, socket: &SocketRef) -> Result<(), Refused> {
        let headers = &socket.req_parts().headers;
        let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
            // Not a browser: origins are a browser's notion.
            return Ok(());
        };
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if same_origin(origin, host) || self.origins.iter().any(|o| o == "*" || o == origin) {
            Ok(())
        } else {
            Err(Refused::Origin(origin.to_owned()))
        }
    }
}

impl<P: agents::Platform> Admission<P> {
    /// Refuses an HTTP request to socket.io before socket.io reads it: a new handshake from
    /// an address past its limits (429, which socket.io-client retries with its backoff, so
    /// a UI refused during a crowd of reconnections still comes back), and in proxy mode a
    /// request through the proxy that does not name its user.
    pub(super) fn guard(&self, req: &Request) -> Option<Response> {
        // From anywhere else, the handshake goes on to be refused at CONNECT with a sentence.
        if let Identity::Proxy { header, trusted } = &self.identity
            && let Err(unnamed @ Unproven::NoUser(_)) =
                identity::proxied_user(req.extensions(), req.headers(), header, trusted)
        {
            let refused = Refused::from(unnamed);
            return Some(self.refuse_http(StatusCode::UNAUTHORIZED, None, &refused));
        }
        let handshake = !req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("sid=")));
        if !handshake {
            return None;
        }
        let client = address::client(req.extensions(), req.headers(), &self.trusted)?;
        let limited = self.addresses.handshake(client).err()?;
        let refused = Refused::from(limited);
        Some(self.refuse_http(StatusCode::TOO_MANY_REQUESTS, Some(client), &refused))
    }

    fn refuse_http(
        &self,
        status: StatusCode,
        client: Option<IpAddr>,
        refused: &Refused,
    ) -> Response {
        let reason = refused.reason();
        metrics::counter!(telemetry::SOCKETS_REFUSED, "reason" => reason).increment(1);
        warn!(client = ?client, reason, "connection refused: {refused}");
        let mut response = (status, format!("{refused}\n")).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        }
        response
    }
}

/// Whether `origin` is the bridge's own: the page was served by the host the socket
/// connects to.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
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

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn the_own_origin_is_the_host_the_page_came_from() {
        assert!(same_origin(
            "http://agents.example:3000",
            Some("agents.example:3000")
        ));
        assert!(same_origin(
            "https://Agents.Example",
            Some("agents.example")
        ));
        assert!(!same_origin("https://evil.example", Some("agents.example")));
        assert!(!same_origin(
            "http://agents.example:3001",
            Some("agents.example:3000")
        ));
        assert!(!same_origin("null", Some("agents.example")));
        assert!(!same_origin("https://agents.example", None));
    }
}
