//! Agent sessions and their calls: who is connected through which sockets, which calls each
//! session holds, and which NEW_CALLs each socket still has to see. Pure logic with an explicit
//! clock, so every delivery rule is unit-tested without I/O or time.

mod delivery;
mod ended;
mod session;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::event::{NewCall, SocketId};
use super::resume::{PidKey, Shown};
use crate::converja::{AgentId, CallId, PauseReason, QueueId, Timestamp};
use ended::EndedCalls;
use session::Slot;
pub(crate) use session::{Among, Session};

/// Calls remembered as ended (or rejected), so that a late event or an older snapshot does
/// not bring them back: well above the calls a contact center ends between two outages.
const ENDED_MEMORY: usize = 65_536;

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

/// Sizes for the gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Sessions.
    pub sessions: usize,
    /// Sockets attached to a session.
    pub sockets: usize,
    /// Calls offered to UIs.
    pub offered: usize,
    /// Calls waiting for a free slot.
    pub waiting: usize,
    /// Active calls of agents without a session.
    pub unclaimed: usize,
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

/// How long the platform's announcement of a pause or resume the bridge made is awaited.
pub(crate) const PAUSE_ECHO_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Every session, by username, and every active call the platform told us about, by agent.
#[derive(Debug)]
pub(crate) struct Registry {
    rules: Rules,
    sessions: HashMap<String, Session>,
    by_agent: HashMap<AgentId, String>,
    by_socket: HashMap<SocketId, String>,
    /// Sessions changed since the last [`due_changed`](Self::due_changed), so that a change
    /// costs in proportion to what changed, not to the number of sessions.
    changed: HashSet<String>,
    /// When the clock must look at a session again, earliest first: a socket's first-call
    /// delay ending, a delivered call's `ack_timeout`, a grace ending. An entry may be stale
    /// (the session changed since); the look finds nothing to do then.
    wakeups: BinaryHeap<Reverse<(Instant, String)>>,
    /// The sessions whose wakeup came due, for this tick's look ([`rest`](Self::rest) empties
    /// it). A tick costs in proportion to what comes due, not to the number of sessions.
    timed: HashSet<String>,
    /// Whose each active call is.
    by_call: HashMap<CallId, AgentId>,
    /// Active calls of agents without a session: the platform counts them as the agent's, so
    /// a session that starts later takes them.
    unclaimed: HashMap<AgentId, Vec<Slot>>,
    /// Calls that ended or were rejected.
    ended: EndedCalls,
    /// Which session each private session id names.
    pids: HashMap<PidKey, String>,
    /// Platform call events applied so far; orders snapshots against events.
    seq: u64,
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
            wakeups: BinaryHeap::new(),
            timed: HashSet::new(),
            by_call: HashMap::new(),
            unclaimed: HashMap::new(),
            ended: EndedCalls::new(ENDED_MEMORY),
            pids: HashMap::new(),
            seq: 0,
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

    fn session_of_agent_mut(&mut self, agent: &AgentId) -> Option<&mut Session> {
        self.by_agent
            .get(agent)
            .and_then(|u| self.sessions.get_mut(u))
    }

    /// Counts for metrics.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            sessions: self.sessions.len(),
            sockets: self.by_socket.len(),
            offered: self.sessions.values().map(|s| s.offered().count()).sum(),
            waiting: self
                .sessions
                .values()
                .map(|s| s.calls.len().saturating_sub(s.max_calls as usize))
                .sum(),
            unclaimed: self.unclaimed.values().map(Vec::len).sum(),
        }
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
                // Calls the agent already had on the platform are the session's too.
                calls: self.unclaimed.remove(agent).unwrap_or_default(),
                orphaned_since: None,
                restored: false,
                pids: HashSet::new(),
                known_since: None,
                paused: None,
                pause_echoes: std::collections::VecDeque::new(),
            });
        session.max_calls = max_calls;
        session.orphaned_since = None;
        session.restored = false;
        let view = session.sockets.entry(socket).or_default();
        let ready_at = *view
            .ready_at
            .get_or_insert(now + self.rules.first_call_delay);
        self.by_agent.insert(agent.clone(), username.to_owned());
        self.by_socket.insert(socket, username.to_owned());
        self.changed.insert(username.to_owned());
        self.wake_at(ready_at, username);
        Ok(())
    }

    /// The socket is gone without USER_DISCONNECT; its session waits for the grace period.
    /// Returns the session if that was its last socket.
    pub(crate) fn socket_closed(&mut self, socket: SocketId, now: Instant) -> Option<&Session> {
        let username = self.by_socket.remove(&socket)?;
        let session = self.sessions.get_mut(&username)?;
        session.sockets.remove(&socket);
        if !session.sockets.is_empty() {
            return None;
        }
        session.orphaned_since = Some(now);
        self.wake_at(now + self.rules.reconnect_grace, &username);
        self.sessions.get(&username)
    }

    /// Brings back a session a previous process stored, without sockets: it waits for its UI
    /// as if its last socket had left at `orphaned_since`. A session of the same username or
    /// agent already here wins.
    pub(crate) fn restore(
        &mut self,
        username: &str,
        agent: &AgentId,
        max_calls: u32,
        orphaned_since: Instant,
    ) -> bool {
        if self.sessions.contains_key(username) || self.by_agent.contains_key(agent) {
            return false;
        }
        self.sessions.insert(
            username.to_owned(),
            Session {
                username: username.to_owned(),
                agent: agent.clone(),
                max_calls,
                sockets: BTreeMap::new(),
                calls: self.unclaimed.remove(agent).unwrap_or_default(),
                orphaned_since: Some(orphaned_since),
                restored: true,
                pids: HashSet::new(),
                known_since: None,
                paused: None,
                pause_echoes: std::collections::VecDeque::new(),
            },
        );
        self.by_agent.insert(agent.clone(), username.to_owned());
        self.wake_at(orphaned_since + self.rules.reconnect_grace, username);
        true
    }

    /// The platform confirmed the agent of `username`'s session with a status this recent.
    pub(crate) fn known_since(&mut self, username: &str, since: Timestamp) {
        if let Some(session) = self.sessions.get_mut(username) {
            session.known_since = Some(since);
        }
    }

    /// The bridge itself paused (`Some`) or resumed `agent` at `now`: recorded, and the
    /// platform's announcement of it expected; the session's username and sockets when that
    /// changed what its UIs were told.
    pub(crate) fn paused_by_bridge(
        &mut self,
        agent: &AgentId,
        paused: Option<PauseReason>,
        now: Instant,
    ) -> Option<(String, Vec<SocketId>)> {
        let session = self.session_of_agent_mut(agent)?;
        if session.paused == paused {
            return None;
        }
        session.paused = paused;
        session.pause_echoes.push_back((paused, now));
        Some((
            session.username.clone(),
            session.sockets.keys().copied().collect(),
        ))
    }

    /// The platform announced at `now` that `agent` was paused (`Some`) or resumed. The
    /// platform announces an agent's changes in the order it makes them, so while the
    /// announcement of the bridge's own change is awaited, any other announcement is of an
    /// earlier change, which the bridge's superseded: ignored. An announcement that never
    /// comes is awaited [`PAUSE_ECHO_WAIT`] at most.
    pub(crate) fn paused_by_platform(
        &mut self,
        agent: &AgentId,
        paused: Option<PauseReason>,
        now: Instant,
    ) -> Option<(String, Vec<SocketId>)> {
        let session = self.session_of_agent_mut(agent)?;
        session
            .pause_echoes
            .retain(|(_, at)| now.saturating_duration_since(*at) < PAUSE_ECHO_WAIT);
        if let Some((awaited, _)) = session.pause_echoes.front() {
            if *awaited == paused {
                session.pause_echoes.pop_front();
            }
            return None;
        }
        if session.paused == paused {
            return None;
        }
        session.paused = paused;
        Some((
            session.username.clone(),
            session.sockets.keys().copied().collect(),
        ))
    }

    /// Like [`known_since`](Self::known_since), for the session of `agent`.
    pub(crate) fn agent_known_since(&mut self, agent: &AgentId, since: Timestamp) {
        if let Some(username) = self.by_agent.get(agent).cloned() {
            self.known_since(&username, since);
        }
    }

    /// Binds a socket's private session id to the session of `username`, so that the socket
    /// can take it back on a reconnect; false if there is no such session.
    pub(crate) fn bind_pid(&mut self, pid: PidKey, username: &str) -> bool {
        let Some(session) = self.sessions.get_mut(username) else {
            return false;
        };
        session.pids.insert(pid.clone());
        self.pids.insert(pid, username.to_owned());
        true
    }

    /// The username of the session a private session id names.
    pub(crate) fn session_by_pid(&self, pid: &PidKey) -> Option<&str> {
        self.pids.get(pid).map(String::as_str)
    }

    /// Socket `socket`, just attached, already shows `calls` (it says so on a reconnect):
    /// they are not sent again, and NEW_CALLs need no first-call delay, since the UI has had
    /// its listeners all along.
    pub(crate) fn resume_view(&mut self, socket: SocketId, calls: &[CallId], now: Instant) {
        let Some(username) = self.by_socket.get(&socket).cloned() else {
            return;
        };
        let Some(view) = self
            .sessions
            .get_mut(&username)
            .and_then(|s| s.sockets.get_mut(&socket))
        else {
            return;
        };
        view.ready_at = Some(now);
        for call in calls {
            view.delivered.entry(*call).or_insert(now);
        }
        self.changed.insert(username);
    }

    /// The calls socket `socket` shows that its session no longer holds, now forgotten by
    /// the socket's view: the UI must be told they ended. Only meaningful once the registry
    /// holds what the platform has.
    pub(crate) fn settle_view(&mut self, socket: SocketId) -> Vec<CallId> {
        let Some(session) = self
            .by_socket
            .get(&socket)
            .and_then(|u| self.sessions.get_mut(u))
        else {
            return Vec::new();
        };
        let held: HashSet<CallId> = session.calls.iter().map(|s| s.call).collect();
        let Some(view) = session.sockets.get_mut(&socket) else {
            return Vec::new();
        };
        let mut gone: Vec<CallId> = view
            .delivered
            .keys()
            .filter(|c| !held.contains(c))
            .copied()
            .collect();
        gone.sort_unstable();
        for call in &gone {
            view.delivered.remove(call);
        }
        gone
    }

    /// The offset for an event to `socket`: its session's username and the calls the socket
    /// has been shown. `None` for a socket that acts for no session.
    pub(crate) fn offset(&self, socket: SocketId) -> Option<String> {
        let username = self.by_socket.get(&socket)?;
        let view = self.sessions.get(username)?.sockets.get(&socket)?;
        let mut calls: Vec<CallId> = view.delivered.keys().copied().collect();
        calls.sort_unstable();
        Some(Shown::offset(username, calls.into_iter()))
    }

    /// A call rejected before a restart: not offered again while the platform has it.
    pub(crate) fn rejected_before(
        &mut self,
        call: CallId,
        queue: Option<QueueId>,
        started: Timestamp,
    ) {
        self.ended.reject(call, queue, started, 0);
    }

    /// The agent of `socket`'s session rejected `call`: it ends for the session and is not
    /// offered again while the platform has it. Returns its queue and start, or `None` if
    /// the session does not hold it.
    pub(crate) fn reject(
        &mut self,
        socket: SocketId,
        call: CallId,
    ) -> Option<(QueueId, Timestamp)> {
        let slot = self
            .session_of(socket)?
            .calls
            .iter()
            .find(|s| s.call == call)?;
        let (queue, started) = (slot.queue, slot.started);
        self.call_ended(call);
        self.ended.reject(call, Some(queue), started, self.seq);
        Some((queue, started))
    }

    /// The platform ended `call`; true if an agent had rejected it (the rejection is
    /// forgotten: the platform no longer has the call).
    pub(crate) fn rejection_over(&mut self, call: CallId) -> bool {
        self.ended.rejection_over(call)
    }

    /// The rejected calls of `queue` that a read sent after `since` events no longer lists
    /// in `live`; their rejections are forgotten.
    pub(crate) fn rejections_gone(
        &mut self,
        queue: QueueId,
        live: &HashSet<CallId>,
        since: u64,
    ) -> Vec<CallId> {
        self.ended.rejections_gone(queue, live, since)
    }

    /// Whether the session is waiting for its UI (no socket attached).
    pub(crate) fn is_orphaned(&self, username: &str) -> bool {
        self.sessions
            .get(username)
            .is_some_and(|s| s.orphaned_since.is_some())
    }

    /// Sessions whose last socket left more than the grace period ago.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<String> {
        self.wake(now);
        self.timed_sessions()
            .filter(|s| {
                s.orphaned_since
                    .is_some_and(|t| now.duration_since(t) >= self.rules.reconnect_grace)
            })
            .map(|s| s.username.clone())
            .collect()
    }

    /// Asks the clock to look at `username`'s session at `at`.
    fn wake_at(&mut self, at: Instant, username: &str) {
        self.wakeups.push(Reverse((at, username.to_owned())));
    }

    /// Takes the wakeups due by `now` into this tick's look.
    fn wake(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.wakeups.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, username))) = self.wakeups.pop() {
                self.timed.insert(username);
            }
        }
    }

    /// The sessions the clock looks at this tick.
    fn timed_sessions(&self) -> impl Iterator<Item = &Session> {
        self.timed.iter().filter_map(|u| self.sessions.get(u))
    }

    /// The tick's look is done: what is due later has its own wakeup.
    pub(crate) fn rest(&mut self) {
        self.timed.clear();
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
        for pid in &session.pids {
            self.pids.remove(pid);
        }
        // The platform still has the calls: a later session of the agent takes them.
        if !session.calls.is_empty() {
            self.unclaimed
                .entry(session.agent.clone())
                .or_default()
                .extend(session.calls);
        }
        sockets
    }

    /// The platform gave `agent` a call in `queue`; false if it is known already, or ended.
    /// A call of an agent without a session waits for one.
    pub(crate) fn call_started(
        &mut self,
        agent: &AgentId,
        call: CallId,
        queue: QueueId,
        info: NewCall,
        started: Timestamp,
    ) -> bool {
        if self.by_call.contains_key(&call) || self.ended.hides(call, started) {
            return false;
        }
        self.seq += 1;
        let slot = Slot {
            call,
            queue,
            info,
            started,
            seq: self.seq,
            answered: false,
            unanswered_reported: false,
        };
        self.by_call.insert(call, agent.clone());
        match self
            .by_agent
            .get(agent)
            .and_then(|u| self.sessions.get_mut(u))
        {
            Some(session) => {
                session.calls.push(slot);
                self.changed.insert(session.username.clone());
            }
            None => self.unclaimed.entry(agent.clone()).or_default().push(slot),
        }
        true
    }

    /// A call ended (on the platform, by END_CALL or by rejection); it is never taken again.
    /// Returns the session and those of its sockets that were sent the call (a socket never
    /// hears of the end of a call it was not shown), or `None` if no session held it.
    pub(crate) fn call_ended(&mut self, call: CallId) -> Option<(String, Vec<SocketId>)> {
        self.seq += 1;
        let started = self.started_of(call);
        self.ended.insert(call, started);
        let agent = self.by_call.remove(&call)?;
        let Some(session) = self
            .by_agent
            .get(&agent)
            .and_then(|u| self.sessions.get_mut(u))
        else {
            if let Some(calls) = self.unclaimed.get_mut(&agent) {
                calls.retain(|s| s.call != call);
                if calls.is_empty() {
                    self.unclaimed.remove(&agent);
                }
            }
            return None;
        };
        session.calls.retain(|s| s.call != call);
        let shown = session
            .sockets
            .iter_mut()
            .filter_map(|(id, view)| view.delivered.remove(&call).map(|_| *id))
            .collect();
        self.changed.insert(session.username.clone());
        Some((session.username.clone(), shown))
    }

    /// When the platform says `call`, which the registry holds, started.
    fn started_of(&self, call: CallId) -> Option<Timestamp> {
        let agent = self.by_call.get(&call)?;
        let calls = match self.by_agent.get(agent).and_then(|u| self.sessions.get(u)) {
            Some(session) => &session.calls,
            None => self.unclaimed.get(agent)?,
        };
        calls.iter().find(|s| s.call == call).map(|s| s.started)
    }

    /// Platform call events applied so far.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// The active calls of `queue` the registry holds, with the event count of each one's
    /// last news.
    pub(crate) fn calls_in_queue(&self, queue: QueueId) -> Vec<(CallId, u64)> {
        self.sessions
            .values()
            .flat_map(|s| s.calls.iter())
            .chain(self.unclaimed.values().flatten())
            .filter(|slot| slot.queue == queue)
            .map(|slot| (slot.call, slot.seq))
            .collect()
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
}

#[cfg(test)]
mod tests;
