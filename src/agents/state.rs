//! What sits behind the core's lock: the session registry and a handle per socket, with the
//! emits that must happen in the same critical section as the change they report.

use std::collections::HashMap;
use std::time::Instant;

use tracing::{debug, info, warn};

use super::event::{ServerEvent, SocketId};
use super::port::{EmitError, Sink};
use super::registry::Registry;
use crate::converja::CallId;
use crate::telemetry;

/// One admitted socket.
struct SocketEntry<T> {
    handle: T,
    /// The username its handshake token proves, when tokens are on.
    proven: Option<String>,
}

/// The core's mutable state.
pub(super) struct State<T> {
    pub(super) registry: Registry,
    sockets: HashMap<SocketId, SocketEntry<T>>,
}

impl<T: Send + Sync + 'static> State<T> {
    pub(super) fn new(registry: Registry) -> Self {
        State {
            registry,
            sockets: HashMap::new(),
        }
    }

    pub(super) fn open_socket(&mut self, id: SocketId, handle: T, proven: Option<String>) {
        self.sockets.insert(id, SocketEntry { handle, proven });
    }

    /// The socket is gone: its session, if any, starts its grace period.
    pub(super) fn close_socket(&mut self, id: SocketId, now: Instant) {
        self.sockets.remove(&id);
        self.registry.socket_closed(id, now);
    }

    /// The username the socket's token proves.
    pub(super) fn proven(&self, id: SocketId) -> Option<&str> {
        self.sockets.get(&id).and_then(|s| s.proven.as_deref())
    }

    /// Emits to one socket, counting the outcome.
    pub(super) fn emit_to<S: Sink<Socket = T>>(
        &self,
        sink: &S,
        id: SocketId,
        event: &ServerEvent,
    ) -> Result<(), EmitError> {
        let result = match self.sockets.get(&id) {
            Some(entry) => sink.emit(&entry.handle, event),
            None => Err(EmitError::Closed),
        };
        let outcome = match result {
            Ok(()) => "ok",
            Err(EmitError::Full) => "full",
            Err(EmitError::Closed) => "closed",
        };
        metrics::counter!(telemetry::EMITS, "event" => event.name(), "outcome" => outcome)
            .increment(1);
        if let Err(e) = result {
            debug!(socket = id.0, event = event.name(), error = ?e, "event not delivered");
        }
        result
    }

    /// Ends `call` in whichever session holds it and tells every socket of that session, once.
    pub(super) fn end_call<S: Sink<Socket = T>>(&mut self, sink: &S, call: CallId) {
        let Some((username, sockets)) = self.registry.call_ended(call) else {
            return;
        };
        info!(%username, %call, "call ended");
        let event = ServerEvent::CallEnded(call);
        for id in sockets {
            if let Err(e) = self.emit_to(sink, id, &event) {
                warn!(socket = id.0, %call, error = ?e, "CALL_ENDED not delivered");
            }
        }
    }

    /// Emits the NEW_CALLs due in the sessions changed since the last look.
    pub(super) fn deliver_changed<S: Sink<Socket = T>>(&mut self, sink: &S, now: Instant) {
        let due = self.registry.due_changed(now);
        self.deliver(sink, due, now);
    }

    /// Emits every NEW_CALL due now: first-call delays that passed, redeliveries, and emits
    /// that found a full buffer before.
    pub(super) fn deliver_all<S: Sink<Socket = T>>(&mut self, sink: &S, now: Instant) {
        let due = self.registry.due(now);
        self.deliver(sink, due, now);
    }

    fn deliver<S: Sink<Socket = T>>(
        &mut self,
        sink: &S,
        due: Vec<(SocketId, super::NewCall)>,
        now: Instant,
    ) {
        for (id, call) in due {
            let number = call.call;
            match self.emit_to(sink, id, &ServerEvent::NewCall(call)) {
                Ok(()) => self.registry.delivered(id, number, now),
                Err(EmitError::Full) => {
                    debug!(socket = id.0, call = %number, "socket buffer full; NEW_CALL retried");
                }
                Err(EmitError::Closed) => {}
            }
        }
    }

    /// Publishes the session, socket and call gauges.
    pub(super) fn publish_gauges(&self) {
        let counts = self.registry.counts();
        metrics::gauge!(telemetry::SESSIONS).set(counts.sessions as f64);
        metrics::gauge!(telemetry::SOCKETS).set(self.sockets.len() as f64);
        metrics::gauge!(telemetry::SESSION_SOCKETS).set(counts.sockets as f64);
        metrics::gauge!(telemetry::CALLS, "state" => "offered").set(counts.offered as f64);
        metrics::gauge!(telemetry::CALLS, "state" => "waiting").set(counts.waiting as f64);
        metrics::gauge!(telemetry::CALLS, "state" => "unclaimed").set(counts.unclaimed as f64);
    }
}
