//! What sits behind the core's lock: the session registry and a handle per socket, with the
//! emits that must happen in the same critical section as the change they report.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use tracing::{debug, info, warn};

use super::event::{ServerEvent, SocketId};
use super::port::{EmitError, Sink};
use super::registry::Registry;
use crate::converja::{AgentId, CallId};
use crate::telemetry;

/// Events held, in order, for a socket whose buffer is full. A socket that falls further
/// behind is dropped: its calls stay with its session for its next connection, and holding
/// more would let one client that stopped reading pin the bridge's memory.
const BACKLOG: usize = 64;

/// One admitted socket.
struct SocketEntry<T> {
    handle: T,
    /// The username its handshake token proves, when tokens are on.
    proven: Option<String>,
    /// Events not yet accepted by the socket's buffer, oldest first.
    backlog: VecDeque<ServerEvent>,
}

/// The core's mutable state.
pub(super) struct State<T> {
    pub(super) registry: Registry,
    sockets: HashMap<SocketId, SocketEntry<T>>,
    /// Sockets with a backlog, so that retrying costs in proportion to them alone.
    backlogged: HashSet<SocketId>,
    /// Agents whose session end is under way on the platform; cancelled when it is done.
    ending: HashMap<AgentId, CancellationToken>,
}

/// A session end under way on the platform, from [`Ending::begin`] until dropped (done,
/// failed or cancelled alike).
pub(super) struct Ending<'a, T> {
    state: &'a Mutex<State<T>>,
    agent: AgentId,
    done: CancellationToken,
}

impl<'a, T> Ending<'a, T> {
    pub(super) fn begin(state: &'a Mutex<State<T>>, agent: &AgentId) -> Self {
        let done = CancellationToken::new();
        lock(state).ending.insert(agent.clone(), done.clone());
        Ending {
            state,
            agent: agent.clone(),
            done,
        }
    }
}

impl<T> Drop for Ending<'_, T> {
    fn drop(&mut self) {
        let mut state = lock(self.state);
        if state
            .ending
            .get(&self.agent)
            .is_some_and(|t| t.is_cancelled() || *t == self.done)
        {
            state.ending.remove(&self.agent);
        }
        self.done.cancel();
    }
}

fn lock<T>(state: &Mutex<State<T>>) -> std::sync::MutexGuard<'_, State<T>> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Send + Sync + 'static> State<T> {
    pub(super) fn new(registry: Registry) -> Self {
        State {
            registry,
            sockets: HashMap::new(),
            backlogged: HashSet::new(),
            ending: HashMap::new(),
        }
    }

    /// The session end of `agent` under way, if any.
    pub(super) fn ending(&self, agent: &AgentId) -> Option<CancellationToken> {
        self.ending.get(agent).cloned()
    }

    pub(super) fn open_socket(&mut self, id: SocketId, handle: T, proven: Option<String>) {
        self.sockets.insert(
            id,
            SocketEntry {
                handle,
                proven,
                backlog: VecDeque::new(),
            },
        );
    }

    /// The socket is gone: its session, if any, starts its grace period.
    pub(super) fn close_socket(&mut self, id: SocketId, now: Instant) {
        self.sockets.remove(&id);
        self.backlogged.remove(&id);
        self.registry.socket_closed(id, now);
    }

    /// The username the socket's token proves.
    pub(super) fn proven(&self, id: SocketId) -> Option<&str> {
        self.sockets.get(&id).and_then(|s| s.proven.as_deref())
    }

    /// Emits to one socket, in order: behind its backlog if it has one. Counts the outcome.
    pub(super) fn emit_to<S: Sink<Socket = T>>(
        &mut self,
        sink: &S,
        id: SocketId,
        event: &ServerEvent,
    ) -> Result<(), EmitError> {
        let outcome = match self.sockets.get_mut(&id) {
            None => "closed",
            Some(entry) => {
                let sent = if entry.backlog.is_empty() {
                    sink.emit(&entry.handle, event)
                } else {
                    Err(EmitError::Full)
                };
                match sent {
                    Ok(()) => "ok",
                    Err(EmitError::Closed) => "closed",
                    Err(EmitError::Full) if entry.backlog.len() < BACKLOG => {
                        entry.backlog.push_back(event.clone());
                        self.backlogged.insert(id);
                        "held"
                    }
                    Err(EmitError::Full) => "stalled",
                }
            }
        };
        metrics::counter!(telemetry::EMITS, "event" => event.name(), "outcome" => outcome)
            .increment(1);
        match outcome {
            "ok" | "held" => Ok(()),
            "stalled" => {
                self.drop_stalled(sink, id);
                Err(EmitError::Closed)
            }
            _ => {
                debug!(
                    socket = id.0,
                    event = event.name(),
                    "event for a closed socket"
                );
                Err(EmitError::Closed)
            }
        }
    }

    /// Sends what the sockets' buffers now accept of their backlogs.
    pub(super) fn flush_backlogs<S: Sink<Socket = T>>(&mut self, sink: &S) {
        let sockets = &mut self.sockets;
        self.backlogged.retain(|id| {
            let Some(entry) = sockets.get_mut(id) else {
                return false;
            };
            while let Some(event) = entry.backlog.front() {
                match sink.emit(&entry.handle, event) {
                    Ok(()) => {
                        entry.backlog.pop_front();
                    }
                    Err(EmitError::Full) => return true,
                    Err(EmitError::Closed) => entry.backlog.clear(),
                }
            }
            false
        });
    }

    /// Drops a socket that stopped reading: its session waits for the UI's next connection.
    fn drop_stalled<S: Sink<Socket = T>>(&mut self, sink: &S, id: SocketId) {
        warn!(
            socket = id.0,
            "socket dropped: it stopped reading; its calls wait for its next connection"
        );
        metrics::counter!(telemetry::SOCKETS_DROPPED, "reason" => "stalled").increment(1);
        self.backlogged.remove(&id);
        if let Some(entry) = self.sockets.remove(&id) {
            sink.disconnect(&entry.handle);
        }
        self.registry.socket_closed(id, super::now());
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
            if self.emit_to(sink, id, &ServerEvent::NewCall(call)).is_ok() {
                self.registry.delivered(id, number, now);
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
