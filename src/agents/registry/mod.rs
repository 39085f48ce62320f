//! Agent sessions and their calls: who is connected through which sockets, which calls each
//! session holds, and which NEW_CALLs each socket still has to see. Pure logic with an explicit
//! clock, so every delivery rule is unit-tested without I/O or time.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::event::{NewCall, SocketId};
use crate::converja::{AgentId, CallId};

/// Calls remembered as ended per session, so a late platform event does not end them twice.
const ENDED_MEMORY: usize = 512;

/// Delivery settings, from `[agents]`.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Delay between USER_CONNECTED and the first NEW_CALL on a socket.
    pub first_call_delay: Duration,
    /// After this long without NEW_CALL_ANSWERED a delivery counts as unanswered.
    pub ack_timeout: Duration,
    /// Emit unanswered calls again on the same socket.
    pub redeliver_unanswered: bool,
    /// How long a session outlives its last socket.
    pub reconnect_grace: Duration,
}

#[derive(Debug)]
struct Slot {
    call: CallId,
    info: NewCall,
    answered: bool,
    unanswered_reported: bool,
}

#[derive(Debug, Default)]
struct SocketView {
    /// When NEW_CALLs may start flowing to this socket.
    ready_at: Option<Instant>,
    /// Calls emitted to this socket, with when.
    delivered: HashMap<CallId, Instant>,
}

/// One username connected through zero or more sockets.
#[derive(Debug)]
pub(crate) struct Session {
    /// The agent UI's username.
    pub username: String,
    /// The platform's agent id.
    pub agent: AgentId,
    /// Calls held at once.
    pub max_calls: u32,
    sockets: BTreeMap<SocketId, SocketView>,
    /// Calls of the session in arrival order; the first `max_calls` are offered.
    calls: Vec<Slot>,
    ended: VecDeque<CallId>,
    orphaned_since: Option<Instant>,
}

impl Session {
    fn offered(&self) -> impl Iterator<Item = &Slot> {
        self.calls.iter().take(self.max_calls as usize)
    }

    /// Whether the session holds `call` (offered or waiting for a slot).
    pub(crate) fn holds(&self, call: CallId) -> bool {
        self.calls.iter().any(|s| s.call == call)
    }

    /// Calls waiting for a free slot.
    pub(crate) fn waiting_calls(&self) -> Vec<CallId> {
        self.calls
            .iter()
            .skip(self.max_calls as usize)
            .map(|s| s.call)
            .collect()
    }

    fn remember_ended(&mut self, call: CallId) {
        self.ended.push_back(call);
        if self.ended.len() > ENDED_MEMORY {
            self.ended.pop_front();
        }
    }
}

/// Why a socket may not act for a username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachError {
    /// The socket already acts for another username.
    OtherUser(String),
    /// Another username already holds this agent id.
    AgentTaken {
        /// The agent id.
        agent: AgentId,
        /// The username holding it.
        username: String,
    },
}

/// Something worth logging and counting that the registry noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// A call was delivered `ack_timeout` ago and never answered.
    Unanswered {
        /// The session.
        username: String,
        /// The call.
        call: CallId,
    },
}

/// Every session, by username.
#[derive(Debug)]
pub(crate) struct Registry {
    rules: Rules,
    sessions: HashMap<String, Session>,
    by_agent: HashMap<AgentId, String>,
    by_socket: HashMap<SocketId, String>,
    /// Sessions changed since the last [`due_changed`](Self::due_changed), so that a change
    /// costs in proportion to what changed, not to the number of sessions.
    changed: HashSet<String>,
    /// Which session holds each call.
    by_call: HashMap<CallId, String>,
}

impl Registry {
    /// An empty registry.
    pub(crate) fn new(rules: Rules) -> Self {
        Registry {
            rules,
            sessions: HashMap::new(),
            by_agent: HashMap::new(),
            by_socket: HashMap::new(),
            changed: HashSet::new(),
            by_call: HashMap::new(),
        }
    }

    /// The username a socket acts for.
    pub(crate) fn username_of(&self, socket: SocketId) -> Option<&str> {
        self.by_socket.get(&socket).map(String::as_str)
    }

    /// A session by username.
    pub(crate) fn session(&self, username: &str) -> Option<&Session> {
        self.sessions.get(username)
    }

    /// The session of the socket.
    pub(crate) fn session_of(&self, socket: SocketId) -> Option<&Session> {
        self.by_socket
            .get(&socket)
            .and_then(|u| self.sessions.get(u))
    }

    /// The session for an agent id.
    pub(crate) fn session_of_agent(&self, agent: &AgentId) -> Option<&Session> {
        self.by_agent.get(agent).and_then(|u| self.sessions.get(u))
    }

    /// All sessions.
    pub(crate) fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Counts for metrics: (sessions, sockets, calls offered, calls waiting).
    pub(crate) fn counts(&self) -> (usize, usize, usize, usize) {
        let offered = self.sessions.values().map(|s| s.offered().count()).sum();
        let waiting = self
            .sessions
            .values()
            .map(|s| s.waiting_calls().len())
            .sum();
        (self.sessions.len(), self.by_socket.len(), offered, waiting)
    }

    /// Checks that `socket` may act for `username` as `agent`, before asking the platform.
    pub(crate) fn can_attach(
        &self,
        socket: SocketId,
        username: &str,
        agent: &AgentId,
    ) -> Result<(), AttachError> {
        if let Some(current) = self.by_socket.get(&socket)
            && current != username
        {
            return Err(AttachError::OtherUser(current.clone()));
        }
        if let Some(holder) = self.by_agent.get(agent)
            && holder != username
        {
            return Err(AttachError::AgentTaken {
                agent: agent.clone(),
                username: holder.clone(),
            });
        }
        Ok(())
    }

    /// Attaches `socket` to the session of `username`, creating it if needed. A socket already
    /// attached keeps what it has seen; a new socket will receive every unfinished call.
    pub(crate) fn attach(
        &mut self,
        socket: SocketId,
        username: &str,
        agent: &AgentId,
        max_calls: u32,
        now: Instant,
    ) -> Result<(), AttachError> {
        self.can_attach(socket, username, agent)?;
        let session = self
            .sessions
            .entry(username.to_owned())
            .or_insert_with(|| Session {
                username: username.to_owned(),
                agent: agent.clone(),
                max_calls,
                sockets: BTreeMap::new(),
                calls: Vec::new(),
                ended: VecDeque::new(),
                orphaned_since: None,
            });
        session.max_calls = max_calls;
        session.orphaned_since = None;
        let view = session.sockets.entry(socket).or_default();
        if view.ready_at.is_none() {
            view.ready_at = Some(now + self.rules.first_call_delay);
        }
        self.by_agent.insert(agent.clone(), username.to_owned());
        self.by_socket.insert(socket, username.to_owned());
        self.changed.insert(username.to_owned());
        Ok(())
    }

    /// The socket is gone without USER_DISCONNECT; its session waits for the grace period.
    pub(crate) fn socket_closed(&mut self, socket: SocketId, now: Instant) {
        let Some(username) = self.by_socket.remove(&socket) else {
            return;
        };
        if let Some(session) = self.sessions.get_mut(&username) {
            session.sockets.remove(&socket);
            if session.sockets.is_empty() {
                session.orphaned_since = Some(now);
            }
        }
    }

    /// Sessions whose last socket left more than the grace period ago.
    pub(crate) fn expired(&self, now: Instant) -> Vec<String> {
        self.sessions
            .values()
            .filter(|s| {
                s.orphaned_since
                    .is_some_and(|t| now.duration_since(t) >= self.rules.reconnect_grace)
            })
            .map(|s| s.username.clone())
            .collect()
    }

    /// Ends a session: its sockets stop acting for it. Returns the sockets it had.
    pub(crate) fn end_session(&mut self, username: &str) -> Vec<SocketId> {
        let Some(session) = self.sessions.remove(username) else {
            return Vec::new();
        };
        if self
            .by_agent
            .get(&session.agent)
            .is_some_and(|u| u == username)
        {
            self.by_agent.remove(&session.agent);
        }
        let sockets: Vec<SocketId> = session.sockets.keys().copied().collect();
        for s in &sockets {
            self.by_socket.remove(s);
        }
        for slot in &session.calls {
            self.by_call.remove(&slot.call);
        }
        sockets
    }

    /// The platform gave `agent` a call; false if no session wants it or it is known already.
    pub(crate) fn call_started(&mut self, agent: &AgentId, call: CallId, info: NewCall) -> bool {
        let Some(session) = self
            .by_agent
            .get(agent)
            .and_then(|u| self.sessions.get_mut(u))
        else {
            return false;
        };
        if session.holds(call) || session.ended.contains(&call) {
            return false;
        }
        session.calls.push(Slot {
            call,
            info,
            answered: false,
            unanswered_reported: false,
        });
        let username = session.username.clone();
        self.by_call.insert(call, username.clone());
        self.changed.insert(username);
        true
    }

    /// A call ended (on the platform, by END_CALL or by rejection). Returns the session's
    /// sockets to tell, or `None` if no session held it.
    pub(crate) fn call_ended(&mut self, call: CallId) -> Option<(String, Vec<SocketId>)> {
        let username = self.by_call.remove(&call)?;
        let session = self.sessions.get_mut(&username)?;
        session.calls.retain(|s| s.call != call);
        for view in session.sockets.values_mut() {
            view.delivered.remove(&call);
        }
        session.remember_ended(call);
        self.changed.insert(username);
        Some((
            session.username.clone(),
            session.sockets.keys().copied().collect(),
        ))
    }

    /// The UI confirmed a NEW_CALL; false if the socket's session does not hold it.
    pub(crate) fn answered(&mut self, socket: SocketId, call: CallId) -> bool {
        let Some(session) = self
            .by_socket
            .get(&socket)
            .and_then(|u| self.sessions.get_mut(u))
        else {
            return false;
        };
        match session.calls.iter_mut().find(|s| s.call == call) {
            Some(slot) => {
                slot.answered = true;
                true
            }
            None => false,
        }
    }

    /// NEW_CALLs due now, per socket, over every session: offered calls the socket has not
    /// seen (once its first-call delay has passed), and unanswered ones again if redelivery
    /// is on. Run periodically, for the deliveries that wait on the clock.
    pub(crate) fn due(&self, now: Instant) -> Vec<(SocketId, NewCall)> {
        let mut out = Vec::new();
        for session in self.sessions.values() {
            self.session_due(session, now, &mut out);
        }
        out
    }

    /// Like [`due`](Self::due), for the sessions changed since the last call only.
    pub(crate) fn due_changed(&mut self, now: Instant) -> Vec<(SocketId, NewCall)> {
        let mut out = Vec::new();
        for username in std::mem::take(&mut self.changed) {
            if let Some(session) = self.sessions.get(&username) {
                self.session_due(session, now, &mut out);
            }
        }
        out
    }

    fn session_due(&self, session: &Session, now: Instant, out: &mut Vec<(SocketId, NewCall)>) {
        for (socket, view) in &session.sockets {
            if view.ready_at.is_none_or(|t| now < t) {
                continue;
            }
            for slot in session.offered() {
                let due = match view.delivered.get(&slot.call) {
                    None => true,
                    Some(at) => {
                        self.rules.redeliver_unanswered
                            && !slot.answered
                            && now.duration_since(*at) >= self.rules.ack_timeout
                    }
                };
                if due {
                    out.push((*socket, slot.info.clone()));
                }
            }
        }
    }

    /// Records that `call` reached `socket`.
    pub(crate) fn delivered(&mut self, socket: SocketId, call: CallId, now: Instant) {
        if let Some(view) = self
            .by_socket
            .get(&socket)
            .and_then(|u| self.sessions.get_mut(u))
            .and_then(|s| s.sockets.get_mut(&socket))
        {
            view.delivered.insert(call, now);
        }
    }

    /// Calls delivered `ack_timeout` ago and never answered, each reported once.
    pub(crate) fn notices(&mut self, now: Instant) -> Vec<Notice> {
        let mut out = Vec::new();
        let timeout = self.rules.ack_timeout;
        for session in self.sessions.values_mut() {
            let oldest: HashMap<CallId, Instant> = session
                .sockets
                .values()
                .flat_map(|v| v.delivered.iter())
                .fold(HashMap::new(), |mut m, (c, t)| {
                    let e = m.entry(*c).or_insert(*t);
                    if *t < *e {
                        *e = *t;
                    }
                    m
                });
            for slot in session.calls.iter_mut() {
                if !slot.answered
                    && !slot.unanswered_reported
                    && oldest
                        .get(&slot.call)
                        .is_some_and(|t| now.duration_since(*t) >= timeout)
                {
                    slot.unanswered_reported = true;
                    out.push(Notice::Unanswered {
                        username: session.username.clone(),
                        call: slot.call,
                    });
                }
            }
        }
        out
    }

    /// Every call held by any session, with its agent.
    pub(crate) fn held_calls(&self) -> Vec<(AgentId, CallId)> {
        self.sessions
            .values()
            .flat_map(|s| s.calls.iter().map(|c| (s.agent.clone(), c.call)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
