//! What sits behind the core's lock: the session registry and a handle per socket, with the
//! emits that must happen in the same critical section as the change they report.

mod socket;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use tracing::{debug, info, warn};

use super::event::{AckReply, ServerEvent, SocketId};
use super::inbox::{Next, NotQueued, Queued};
use super::port::{EmitError, Sink};
use super::refusal::Refusal;
use super::registry::Registry;
use super::resume::PidKey;
use crate::converja::{AgentId, CallId, PauseReason, Timestamp};
use crate::store::{Change, Journal, StoredSession};
use crate::telemetry;
use socket::{Handed, Outgoing, SocketEntry};

/// Events held, in order, for a socket whose buffer is full. A socket that falls further
/// behind is dropped: its calls stay with its session for its next connection, and holding
/// more would let one client that stopped reading pin the bridge's memory.
const BACKLOG: usize = 64;

/// Events a socket may have waiting while its previous one is handled; a UI sends a handful.
/// Past it, events are refused, in order, with the others.
pub(super) const INBOX: usize = 256;

/// Refusals a socket may have waiting besides its inbox. A client that sends even more
/// without reading the answers is disconnected: its answers could not be kept for it.
const REFUSALS: usize = 1024;

/// The core's mutable state.
pub(super) struct State<T, A> {
    pub(super) registry: Registry,
    sockets: HashMap<SocketId, SocketEntry<T, A>>,
    /// Sockets with a backlog, so that retrying costs in proportion to them alone.
    backlogged: HashSet<SocketId>,
    /// Agents whose session end is under way on the platform; cancelled when it is done.
    ending: HashMap<AgentId, CancellationToken>,
    /// The latest logout the platform announced for each agent, so that a login confirmed
    /// with an older status while it arrived is ended too.
    logouts: HashMap<AgentId, Timestamp>,
    /// The bridge is shutting down: events are refused, the ones taken are finished.
    draining: bool,
    /// The registry holds what the platform has: every queue was read since the start and
    /// since the last outage.
    synced: bool,
    /// Dropped sockets whose close could not be queued yet, tried again on every tick.
    unclosed: Vec<T>,
    /// Where changes that must survive a restart go.
    pub(super) journal: Journal,
}

impl<T: Send + Sync + 'static, A: Send + 'static> State<T, A> {
    pub(super) fn new(registry: Registry, journal: Journal) -> Self {
        State {
            registry,
            sockets: HashMap::new(),
            backlogged: HashSet::new(),
            ending: HashMap::new(),
            logouts: HashMap::new(),
            draining: false,
            synced: false,
            unclosed: Vec::new(),
            journal,
        }
    }

    /// The platform announced a logout of `agent` at `at`.
    pub(super) fn logged_out(&mut self, agent: &AgentId, at: Timestamp) {
        let latest = self.logouts.entry(agent.clone()).or_insert(at);
        if at.0 > latest.0 {
            *latest = at;
        }
    }

    /// The platform's latest logout of `agent` if it is newer than what the agent's session
    /// was confirmed with: the session outlived it only because the two crossed.
    pub(super) fn logout_since_confirmed(&self, agent: &AgentId) -> Option<Timestamp> {
        let at = *self.logouts.get(agent)?;
        let since = self.registry.session_of_agent(agent)?.known_since?;
        (at.0 > since.0).then_some(at)
    }

    /// The session end of `agent` under way, if any.
    pub(super) fn ending(&self, agent: &AgentId) -> Option<CancellationToken> {
        self.ending.get(agent).cloned()
    }

    /// `agent`'s session end is under way on the platform until `done` is cancelled.
    pub(super) fn begin_ending(&mut self, agent: &AgentId, done: CancellationToken) {
        self.ending.insert(agent.clone(), done);
    }

    /// The session end of `agent` marked by `done` is over (a later one may have replaced it).
    pub(super) fn finish_ending(&mut self, agent: &AgentId, done: &CancellationToken) {
        if self
            .ending
            .get(agent)
            .is_some_and(|t| t.is_cancelled() || t == done)
        {
            self.ending.remove(agent);
        }
    }

    /// Admits socket `id`, whose client is not yet told it is connected
    /// ([`connected`](Self::connected)).
    pub(super) fn open_socket(
        &mut self,
        id: SocketId,
        handle: T,
        proven: Option<String>,
        pid: PidKey,
    ) {
        self.sockets.insert(
            id,
            SocketEntry {
                handle,
                proven,
                pid,
                connecting: true,
                unsettled: false,
                farewell: None,
                backlog: VecDeque::new(),
                inbox: VecDeque::new(),
                serving: false,
                closing: false,
            },
        );
    }

    /// The client of socket `id` now knows it is connected: what waited for that is sent,
    /// and a socket that took its session back is told what it missed.
    pub(super) fn connected<S: Sink<Socket = T, Ack = A>>(
        &mut self,
        sink: &S,
        id: SocketId,
        now: Instant,
    ) {
        let Some(entry) = self.sockets.get_mut(&id) else {
            return;
        };
        entry.connecting = false;
        if let Some(username) = entry.farewell.take() {
            info!(socket = id.0, %username, "the UI shows a session that ended; telling it");
            let _ = self.emit_to(sink, id, &ServerEvent::UserDisconnected { username });
        }
        let Some(entry) = self.sockets.get_mut(&id) else {
            return;
        };
        if !entry.backlog.is_empty() {
            self.backlogged.insert(id);
            self.flush_backlogs(sink);
        }
        self.settle(sink, id);
        self.deliver_changed(sink, now);
    }

    /// Gives socket `id` another private session id, before any session is bound to it.
    pub(super) fn set_pid(&mut self, id: SocketId, pid: PidKey) {
        if let Some(entry) = self.sockets.get_mut(&id) {
            entry.pid = pid;
        }
    }

    /// Socket `id`'s private session id.
    pub(super) fn pid_of(&self, id: SocketId) -> Option<PidKey> {
        self.sockets.get(&id).map(|e| e.pid.clone())
    }

    /// Binds socket `id`'s private session id to the session it now acts for.
    pub(super) fn bind_pid(&mut self, id: SocketId, username: &str) {
        let Some(pid) = self.pid_of(id) else {
            return;
        };
        if self.registry.bind_pid(pid.clone(), username) {
            self.journal.note(Change::Pid {
                key: pid.0,
                username: username.to_owned(),
            });
        }
    }

    /// Socket `id`'s UI shows the session of `username`, which has ended.
    pub(super) fn farewell(&mut self, id: SocketId, username: String) {
        if let Some(entry) = self.sockets.get_mut(&id) {
            entry.farewell = Some(username);
        }
    }

    /// Socket `id` took its session back showing calls it may have seen end meanwhile.
    pub(super) fn mark_unsettled(&mut self, id: SocketId) {
        if let Some(entry) = self.sockets.get_mut(&id) {
            entry.unsettled = true;
        }
    }

    /// Whether the registry holds what the platform has.
    pub(super) fn set_synced(&mut self, synced: bool) {
        self.synced = synced;
    }

    /// Tells every socket that took its session back the end of the calls it shows that
    /// ended while it was away; only once the registry holds what the platform has.
    pub(super) fn settle_all<S: Sink<Socket = T, Ack = A>>(&mut self, sink: &S) {
        let unsettled: Vec<SocketId> = self
            .sockets
            .iter()
            .filter(|(_, e)| e.unsettled)
            .map(|(id, _)| *id)
            .collect();
        for id in unsettled {
            self.settle(sink, id);
        }
    }

    fn settle<S: Sink<Socket = T, Ack = A>>(&mut self, sink: &S, id: SocketId) {
        if !self.synced {
            return;
        }
        match self.sockets.get_mut(&id) {
            Some(entry) if entry.unsettled && !entry.connecting => entry.unsettled = false,
            _ => return,
        }
        for call in self.registry.settle_view(id) {
            info!(socket = id.0, %call, "call ended while the UI was away");
            let _ = self.emit_to(sink, id, &ServerEvent::CallEnded(call));
        }
    }

    /// Queues an event of socket `id`, to be handled or, with `refusal`, refused in its
    /// turn; true if no task serves the socket yet and the caller must start one. Past the
    /// inbox, events are refused as overloaded; during shutdown they come back at once.
    pub(super) fn queue_event(
        &mut self,
        id: SocketId,
        mut item: Queued<A>,
    ) -> Result<bool, Box<NotQueued<A>>> {
        if self.draining {
            return Err(Box::new(NotQueued::Refused(
                item.event,
                item.ack,
                Refusal::ShuttingDown,
            )));
        }
        let Some(entry) = self.sockets.get_mut(&id) else {
            return Ok(false);
        };
        if entry.inbox.len() >= INBOX + REFUSALS {
            return Err(Box::new(NotQueued::Flooding));
        }
        if entry.inbox.len() >= INBOX && item.refusal.is_none() {
            item.refusal = Some(Refusal::Overloaded);
        }
        entry.inbox.push_back(item);
        Ok(!std::mem::replace(&mut entry.serving, true))
    }

    /// From now on events are refused; whether some socket still has events being handled.
    pub(super) fn drain(&mut self) -> bool {
        self.draining = true;
        self.sockets.values().any(|s| s.serving)
    }

    /// Marks socket `id` closed, behind the events it sent; true if the caller must start a
    /// task to finish it.
    pub(super) fn queue_close(&mut self, id: SocketId) -> bool {
        let Some(entry) = self.sockets.get_mut(&id) else {
            return false;
        };
        entry.closing = true;
        !std::mem::replace(&mut entry.serving, true)
    }

    /// What the task serving socket `id` does next.
    pub(super) fn next_event(&mut self, id: SocketId, now: Instant) -> Next<A> {
        let Some(entry) = self.sockets.get_mut(&id) else {
            return Next::Idle;
        };
        if let Some(item) = entry.inbox.pop_front() {
            return Next::Event(item);
        }
        if entry.closing {
            self.close_socket(id, now);
            return Next::Closed;
        }
        entry.serving = false;
        Next::Idle
    }

    /// The socket is gone: its session, if any, starts its grace period.
    fn close_socket(&mut self, id: SocketId, now: Instant) {
        self.sockets.remove(&id);
        self.backlogged.remove(&id);
        self.socket_left(id, now);
    }

    /// A socket of a session is gone; the session remembers when its last one left.
    fn socket_left(&mut self, id: SocketId, now: Instant) {
        if let Some(session) = self.registry.socket_closed(id, now) {
            self.journal.note(Change::Orphaned {
                username: session.username.clone(),
                at: SystemTime::now(),
            });
        }
    }

    /// The username the socket's token proves.
    pub(super) fn proven(&self, id: SocketId) -> Option<&str> {
        self.sockets.get(&id).and_then(|s| s.proven.as_deref())
    }

    /// The session of `username` attached through socket `id`, as the store keeps it.
    pub(super) fn stored_session(
        &self,
        id: SocketId,
        username: &str,
        agent: &AgentId,
        max_calls: u32,
    ) -> StoredSession {
        StoredSession {
            username: username.to_owned(),
            agent: agent.clone(),
            max_calls,
            proven: self.proven(id).map(str::to_owned),
            orphaned_at: None,
        }
    }

    /// Emits to one socket, in order: behind its backlog if it has one. Counts the outcome.
    pub(super) fn emit_to<S: Sink<Socket = T, Ack = A>>(
        &mut self,
        sink: &S,
        id: SocketId,
        event: &ServerEvent,
    ) -> Result<(), EmitError> {
        // What the socket shows once it has this event; a socket whose session ended is left
        // with an empty offset, so that a reconnect of it names nothing.
        let offset = match event {
            ServerEvent::UserDisconnected { .. } => Some(String::new()),
            _ => self.registry.offset(id),
        };
        let outcome = match self.sockets.get(&id) {
            None => "closed",
            Some(entry) if entry.open() => match sink.emit(&entry.handle, event, offset.as_deref())
            {
                Ok(()) => "ok",
                Err(EmitError::Closed) => "closed",
                Err(EmitError::Full) => self.hold(id, Outgoing::Event(event.clone(), offset)),
            },
            Some(_) => self.hold(id, Outgoing::Event(event.clone(), offset)),
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
    pub(super) fn flush_backlogs<S: Sink<Socket = T, Ack = A>>(&mut self, sink: &S) {
        let sockets = &mut self.sockets;
        self.backlogged
            .retain(|id| sockets.get_mut(id).is_some_and(|entry| entry.flush(sink)));
    }

    /// Sends what socket `id`'s buffer now accepts of its backlog; whether some is left.
    pub(super) fn flush_socket<S: Sink<Socket = T, Ack = A>>(
        &mut self,
        sink: &S,
        id: SocketId,
    ) -> bool {
        let left = self.sockets.get_mut(&id).is_some_and(|e| e.flush(sink));
        if !left {
            self.backlogged.remove(&id);
        }
        left
    }

    /// Answers an acknowledgement of socket `id`, in order behind what its buffer did not
    /// take yet. An answer that does not fit waits in the backlog like an event.
    pub(super) fn answer_to<S: Sink<Socket = T, Ack = A>>(
        &mut self,
        sink: &S,
        id: SocketId,
        ack: A,
        reply: AckReply,
    ) {
        let Some(entry) = self.sockets.get(&id) else {
            return;
        };
        let answer = Outgoing::Answer(ack, reply);
        let answer = if entry.open() {
            match entry.hand(sink, answer) {
                Handed::Sent | Handed::Closed => return,
                Handed::Full(answer) => answer,
            }
        } else {
            answer
        };
        if self.hold(id, answer) == "stalled" {
            self.drop_stalled(sink, id);
        }
    }

    /// Holds `out` at the end of socket `id`'s backlog: `"held"`, or `"stalled"` when the
    /// backlog is full (the socket stopped reading; the caller drops it).
    fn hold(&mut self, id: SocketId, out: Outgoing<A>) -> &'static str {
        let Some(entry) = self.sockets.get_mut(&id) else {
            return "closed";
        };
        if entry.backlog.len() >= BACKLOG {
            return "stalled";
        }
        entry.backlog.push_back(out);
        if !entry.connecting {
            self.backlogged.insert(id);
        }
        "held"
    }

    /// Closes the dropped sockets whose close did not fit in their buffer before.
    pub(super) fn retry_closes<S: Sink<Socket = T, Ack = A>>(&mut self, sink: &S) {
        self.unclosed.retain(|handle| !sink.disconnect(handle));
    }

    /// Drops a socket that stopped reading: its session waits for the UI's next connection.
    pub(super) fn drop_stalled<S: Sink<Socket = T, Ack = A>>(&mut self, sink: &S, id: SocketId) {
        warn!(
            socket = id.0,
            "socket dropped: it stopped reading; its calls wait for its next connection"
        );
        self.drop_socket(sink, id, "stalled");
    }

    /// Drops a socket that sent far more events than it read answers: they could not be
    /// kept for it. The UI sees its connection close, and its session waits for the next.
    pub(super) fn drop_flooding<S: Sink<Socket = T, Ack = A>>(&mut self, sink: &S, id: SocketId) {
        warn!(
            socket = id.0,
            "socket dropped: it sent far more events than it read answers"
        );
        self.drop_socket(sink, id, "flood");
    }

    fn drop_socket<S: Sink<Socket = T, Ack = A>>(
        &mut self,
        sink: &S,
        id: SocketId,
        reason: &'static str,
    ) {
        metrics::counter!(telemetry::SOCKETS_DROPPED, "reason" => reason).increment(1);
        self.backlogged.remove(&id);
        if let Some(entry) = self.sockets.remove(&id)
            && !sink.disconnect(&entry.handle)
        {
            self.unclosed.push(entry.handle);
        }
        self.socket_left(id, super::now());
    }

    /// Ends `call` in whichever session holds it and tells every socket of that session, once.
    /// Records that `agent` is paused or not, by the bridge's own request or the platform's
    /// announcement, and tells its session's sockets when that is news to them; whether it
    /// was.
    pub(super) fn paused<S: Sink<Socket = T, Ack = A>>(
        &mut self,
        sink: &S,
        agent: &AgentId,
        paused: Option<PauseReason>,
        by_bridge: bool,
    ) -> bool {
        let now = super::now();
        let changed = if by_bridge {
            self.registry.paused_by_bridge(agent, paused, now)
        } else {
            self.registry.paused_by_platform(agent, paused, now)
        };
        let Some((username, sockets)) = changed else {
            return false;
        };
        let event = match paused {
            Some(reason) => ServerEvent::UserPaused { username, reason },
            None => ServerEvent::UserResumed { username },
        };
        for id in sockets {
            if let Err(e) = self.emit_to(sink, id, &event) {
                tracing::debug!(socket = id.0, error = ?e, "pause change not delivered");
            }
        }
        true
    }

    pub(super) fn call_ended<S: Sink<Socket = T, Ack = A>>(&mut self, sink: &S, call: CallId) {
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
    pub(super) fn deliver_changed<S: Sink<Socket = T, Ack = A>>(&mut self, sink: &S, now: Instant) {
        let due = self.registry.due_changed(now);
        self.deliver(sink, due, now);
    }

    /// Emits every NEW_CALL due now: first-call delays that passed, redeliveries, and emits
    /// that found a full buffer before.
    pub(super) fn deliver_all<S: Sink<Socket = T, Ack = A>>(&mut self, sink: &S, now: Instant) {
        let due = self.registry.due(now);
        self.deliver(sink, due, now);
        self.registry.rest();
    }

    fn deliver<S: Sink<Socket = T, Ack = A>>(
        &mut self,
        sink: &S,
        due: Vec<(SocketId, super::NewCall)>,
        now: Instant,
    ) {
        for (id, call) in due {
            // Recorded first, so that the event's offset counts the call it brings.
            self.registry.delivered(id, call.call, now);
            let _ = self.emit_to(sink, id, &ServerEvent::NewCall(call));
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
