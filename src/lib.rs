//! converja-bridge: lets socket.io agent UIs work against the Converja contact center
//! platform, which speaks JSON over XMPP multi-user chat.
//!
//! # Layout
//!
//! ```text
//!  agent UI ──socket.io──▶ gateway ──ClientEvent──▶ agents ──Platform port──▶ platform ──▶ xmpp ──▶ XMPP server
//!           ◀─────────────         ◀──ServerEvent──  (core)  ◀──events───────            ◀──
//! ```
//!
//! - [`converja`]: the platform's protocol as types (requests, responses, events, ids,
//!   room addresses). No I/O.
//! - [`agents`]: the core. Sessions, capacity, delivery, the reconnect grace, reconciliation,
//!   and one handler per socket.io event; the supervisors' [`board`] of each queue and
//!   [`supervision`] (who sees and does what, coalesced feeds of changes). Knows neither
//!   socket.io nor XMPP: it talks to the platform through the [`agents::Platform`] and
//!   [`agents::Directory`] traits and to sockets through [`agents::Sink`].
//! - [`gateway`]: socket.io and the supervisors' REST API. Admits sockets (origin, sign-in,
//!   limits per client; supervisors on `/supervisor`), parses
//!   each event once into an [`agents::ClientEvent`], queues it to the socket's task, emits
//!   [`agents::ServerEvent`]s; [`gateway::contract`] holds the payloads on the wire.
//! - `signin`: JSON Web Tokens and the identity provider's key set, for the gateway.
//! - [`platform`]: the typed platform client over XMPP: requests matched to responses by
//!   `to` in the pending table, room keeping and readiness, inbound dispatch of events.
//! - [`xmpp`]: the XMPP link (TCP with STARTTLS, or BOSH), reconnection, room membership.
//! - [`bridge`]: plugs the platform client into the core, and platform events into it.
//! - [`store`]: what survives a restart (sessions, rejected calls, the request-id mark),
//!   in SQLite or PostgreSQL, written off the call path through a journal.
//! - [`app`]: the daemon (listener, HTTP endpoints in [`http`], shutdown order); [`probe`]
//!   asks a running one from outside, for health checks;
//!   [`config`], [`telemetry`].
//! - [`sim`]: the platform simulator (`converja-sim`), for tests, benchmarks and the demo;
//!   it takes its request ids from `request_ids`, as the pending table does.
//!
//! The private XMPP servers, PostgreSQL and nginx that the tests, benchmarks and the demo run
//! the bridge against are in the workspace's `converja-testkit` crate (`testkit/`), not here:
//! the bridge builds without them.
//!
//! # The path of one request
//!
//! `END_CALL` from a UI: [`gateway`]'s event handler (`EventRelay`) parses it with
//! [`gateway::contract::parse`] into [`agents::ClientEvent::EndCall`] and hands it to
//! [`agents::Agents::submit`]; the socket's task ([`agents::Agents::serve_socket`], in
//! `agents/inbox.rs`) hands it to the `end_call` handler, which checks the session holds the
//! call and calls [`agents::Platform::end_call`]; the platform client
//! ([`platform::Client::end_active_call`], then [`platform::Client::call`]) registers the
//! request in the [`pending`] table and sends it as a chat message over the [`xmpp`] link.
//! The answer comes back through `platform::dispatch`, which resolves the pending request;
//! the handler then ends the call in the core ([`agents::Agents::call_ended`]), which emits
//! `CALL_ENDED` through the [`gateway::SocketSink`].

mod agents;
pub use agents::{board, supervision};
pub mod app;
mod bridge;
pub mod config;
pub mod converja;
pub mod gateway;
mod http;
mod pending;
pub mod platform;
pub mod probe;
mod recent;
mod request_ids;
mod signin;
pub mod sim;
pub mod store;
pub mod telemetry;
mod tls;
pub mod xmpp;
