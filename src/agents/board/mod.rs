//! The supervisors' live picture of the queues: calls waiting and since when, what became of
//! the calls of the last hour, and each agent's state and since when. Kept from the
//! platform's events and set right by its `GET` answers ([`Board::reconcile_calls`],
//! [`Board::reconcile_members`], [`Board::reconcile_status`]) at start, after every outage
//! and periodically: events sent while the bridge was away are lost for it.
//!
//! Pure: no I/O, no clock. Every fact carries the platform's timestamp, and the figures are
//! asked for at a `now` the caller gives. Each change that a screen would show comes back as
//! a [`Change`], for the subscriptions to forward.
//!
//! Rules (the README's "Supervisors" section states them for users):
//! - a call is counted once per outcome (answered, missed, ended), whichever of an event or
//!   a `GET` told first; replays and reconciliations never count it twice;
//! - a waiting call that vanishes from `GET /queues/:id/calls` without an outcome is dropped
//!   from the waiting list and counted nowhere: the API does not say what became of it;
//! - the platform's status has no "logged out": an agent is shown logged out from its
//!   `UserSessionDidFinish` until a later session event, or a status dated after it;
//! - a fact older than the newest one already applied to an agent is ignored.

mod window;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::converja::{
    AgentId, AgentState, AgentStatus, CallId, Event, PauseReason, QueueAgent, QueueCalls, QueueId,
    Timestamp,
};
use window::Records;
pub use window::{HISTORY_MINUTES, Judging, Minute, WindowStats};

/// Longest a finished call's outcome is remembered to keep it from being counted twice, past
/// the longest window.
const REMEMBER_PAST_WINDOW: Duration = Duration::from_secs(3600);

/// What an agent is doing, as the supervisors see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// Logged in and free.
    Idle,
    /// On a call with `caller` (unknown when only the call's id is known).
    Busy {
        /// The caller's number.
        caller: Option<String>,
    },
    /// Logged in, taking no calls.
    Paused {
        /// The pause reason.
        reason: PauseReason,
    },
    /// Logged out.
    LoggedOut,
    /// Nothing said yet.
    Unknown,
}

/// One agent on the board.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentCard {
    /// The agent.
    pub agent: AgentId,
    /// Display name, once a queue listing gave it.
    pub name: Option<String>,
    /// What it is doing.
    pub presence: Presence,
    /// Since when (the platform's time), when known.
    pub since: Option<Timestamp>,
    /// The queues it serves.
    pub queues: BTreeSet<QueueId>,
    /// Calls it holds, by id, with their callers.
    calls: BTreeMap<CallId, String>,
    /// Paused with this reason, even while finishing a call.
    paused: Option<PauseReason>,
    /// The newest fact applied, to ignore older ones arriving late.
    latest: Option<Timestamp>,
}

/// A call waiting in a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingCall {
    /// The call.
    pub call: CallId,
    /// The caller's number.
    pub caller: String,
    /// When it joined the queue.
    pub since: Timestamp,
}

/// What became of a call, for screens following its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFate {
    /// Waiting to be answered.
    Waiting,
    /// Answered by `agent`, when the platform named it.
    Answered {
        /// Who answered.
        agent: Option<AgentId>,
    },
    /// Left the queue unanswered.
    Missed,
    /// No longer listed by the platform, outcome unknown.
    Gone,
}

/// A call's change, as sent to screens.
#[derive(Debug, Clone, PartialEq)]
pub struct CallChange {
    /// Its queue.
    pub queue: QueueId,
    /// The call.
    pub call: CallId,
    /// The caller's number.
    pub caller: String,
    /// What became of it.
    pub fate: CallFate,
    /// When that happened (for a waiting call: when it joined).
    pub since: Timestamp,
}

/// Something a screen following a queue would show differently.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The queue's figures moved.
    Stats(QueueId),
    /// A call of the queue changed.
    Call(CallChange),
    /// An agent changed; it serves the queues on its card.
    Agent(AgentId),
}

/// The figures of one queue at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    /// The queue.
    pub queue: QueueId,
    /// When they were taken.
    pub at: Timestamp,
    /// Calls waiting.
    pub waiting: usize,
    /// When the call waiting longest joined the queue.
    pub longest_wait_since: Option<Timestamp>,
    /// The service-level threshold.
    pub threshold: Duration,
    /// One per configured window, shortest first.
    pub windows: Vec<WindowStats>,
    /// The last hour, minute by minute.
    pub history: Vec<Minute>,
}

/// Everything a screen needs to start following a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSnapshot {
    /// The queue.
    pub queue: QueueId,
    /// Its name, once known.
    pub name: Option<String>,
    /// Its figures.
    pub stats: QueueStats,
    /// Calls waiting, longest first.
    pub calls: Vec<WaitingCall>,
    /// Its agents.
    pub agents: Vec<AgentCard>,
}

/// Which outcomes of a call were already counted.
#[derive(Debug, Clone, Copy, Default)]
struct Counted {
    offered: bool,
    answered: bool,
    missed: bool,
    ended: bool,
    /// The newest timestamp of the call, for forgetting it.
    last: f64,
    /// When it joined, once known.
    join: Option<f64>,
}

#[derive(Debug, Default, Clone)]
struct QueueBoard {
    name: Option<String>,
    waiting: BTreeMap<CallId, WaitingCall>,
    agents: BTreeSet<AgentId>,
    records: Records,
    counted: BTreeMap<CallId, Counted>,
}

/// The live picture of every queue followed.
#[derive(Debug, Clone)]
pub struct Board {
    judging: Judging,
    queues: BTreeMap<QueueId, QueueBoard>,
    agents: BTreeMap<AgentId, AgentCard>,
}

impl Board {
    /// An empty board judging calls by `judging`.
    pub fn new(judging: Judging) -> Self {
        Board {
            judging,
            queues: BTreeMap::new(),
            agents: BTreeMap::new(),
        }
    }

    /// The queues on the board.
    pub fn queues(&self) -> Vec<QueueId> {
        self.queues.keys().copied().collect()
    }

    /// A queue's name, once known.
    pub fn queue_name(&self, queue: QueueId) -> Option<&str> {
        self.queues.get(&queue)?.name.as_deref()
    }

    /// Every agent's card.
    pub fn agents(&self) -> impl Iterator<Item = &AgentCard> {
        self.agents.values()
    }

    /// The cards of the agents serving `queue`.
    pub fn agents_of(&self, queue: QueueId) -> impl Iterator<Item = &AgentCard> {
        self.agents
            .values()
            .filter(move |c| c.queues.contains(&queue))
    }

    /// An agent's card.
    pub fn agent(&self, agent: &AgentId) -> Option<&AgentCard> {
        self.agents.get(agent)
    }

    /// Applies one platform event.
    pub fn apply(&mut self, event: &Event) -> Vec<Change> {
        let mut changes = Vec::new();
        match event {
            Event::CallRinging(e) => {
                self.joined(e.queue, e.callid, &e.origin, e.timestamp, &mut changes);
            }
            Event::CallDidStart(e) => {
                let answer = Answer {
                    join: None,
                    at: e.timestamp,
                    agent: Some(&e.destination),
                };
                self.answered(e.queue, e.callid, &e.origin, answer, &mut changes);
                self.agent_took(&e.destination, e.queue, e.callid, &e.origin, e.timestamp)
                    .then(|| changes.push(Change::Agent(e.destination.clone())));
            }
            Event::CallDidFinish(e) => {
                self.ended(e.queue, e.callid, e.duration, e.timestamp, &mut changes);
                self.agent_left_call(&e.destination, e.callid, e.timestamp)
                    .then(|| changes.push(Change::Agent(e.destination.clone())));
            }
            Event::CallMissed(e) => {
                let join = e.timestamp.0 - e.duration;
                self.missed(
                    e.queue,
                    e.callid,
                    &e.origin,
                    join,
                    e.timestamp,
                    &mut changes,
                );
            }
            Event::UserSessionDidStart(s) => {
                self.session(
                    &s.agent,
                    &s.queues,
                    s.timestamp,
                    Session::Start,
                    &mut changes,
                );
            }
            Event::UserSessionDidPause(s) => {
                let session = Session::Pause(s.reason);
                self.session(&s.agent, &s.queues, s.timestamp, session, &mut changes);
            }
            Event::UserSessionDidResume(s) => {
                self.session(
                    &s.agent,
                    &s.queues,
                    s.timestamp,
                    Session::Resume,
                    &mut changes,
                );
            }
            Event::UserSessionDidFinish(s) => {
                self.session(
                    &s.agent,
                    &s.queues,
                    s.timestamp,
                    Session::Finish,
                    &mut changes,
                );
            }
        }
        changes
    }

    /// Sets a queue's waiting list and outcomes right from `GET /queues/:id/calls`, which
    /// lists the calls not over yet.
    pub fn reconcile_calls(&mut self, listed: &QueueCalls) -> Vec<Change> {
        let queue = listed.queue;
        let mut changes = Vec::new();
        let mut still_waiting = BTreeSet::new();
        for c in &listed.calls {
            let t = &c.timestamps;
            let join = t.join;
            if let Some(missed) = t.miss {
                self.missed(queue, c.call, &c.caller, join.0, missed, &mut changes);
            } else if let Some(answer) = t.answer {
                let answered = Answer {
                    join: Some(join),
                    at: answer,
                    agent: c.callee.as_ref(),
                };
                self.answered(queue, c.call, &c.caller, answered, &mut changes);
                if let Some(hangup) = t.hangup {
                    self.ended(queue, c.call, hangup.0 - answer.0, hangup, &mut changes);
                } else if let Some(agent) = &c.callee
                    && self.agent_took(agent, queue, c.call, &c.caller, answer)
                {
                    changes.push(Change::Agent(agent.clone()));
                }
            } else if t.hangup.is_none() {
                still_waiting.insert(c.call);
                self.joined(queue, c.call, &c.caller, join, &mut changes);
            }
        }
        let board = self.queues.entry(queue).or_default();
        let vanished: Vec<WaitingCall> = board
            .waiting
            .values()
            .filter(|w| !still_waiting.contains(&w.call))
            .cloned()
            .collect();
        for w in vanished {
            board.waiting.remove(&w.call);
            changes.push(Change::Call(CallChange {
                queue,
                call: w.call,
                caller: w.caller,
                fate: CallFate::Gone,
                since: listed.timestamp,
            }));
            push_once(&mut changes, Change::Stats(queue));
        }
        self.forget_old(queue, listed.timestamp);
        changes
    }

    /// Sets a queue's name and members from `GET /queues` and `GET /queues/:id/agents`.
    pub fn reconcile_members(
        &mut self,
        queue: QueueId,
        name: Option<&str>,
        members: &[QueueAgent],
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let board = self.queues.entry(queue).or_default();
        if let Some(name) = name {
            board.name = Some(name.to_owned());
        }
        let now: BTreeSet<AgentId> = members.iter().map(|m| m.agent.clone()).collect();
        let gone: Vec<AgentId> = board.agents.difference(&now).cloned().collect();
        board.agents = now;
        for agent in gone {
            if let Some(card) = self.agents.get_mut(&agent) {
                card.queues.remove(&queue);
                changes.push(Change::Agent(agent));
            }
        }
        for m in members {
            let card = self.card(&m.agent);
            let joined = card.queues.insert(queue);
            let renamed = card.name.as_deref() != Some(m.name.as_str());
            card.name = Some(m.name.clone());
            if joined || renamed {
                changes.push(Change::Agent(m.agent.clone()));
            }
        }
        changes
    }

    /// Sets an agent's state right from `GET /agents/:id/status`.
    pub fn reconcile_status(&mut self, status: &AgentStatus) -> Vec<Change> {
        let card = self.card(&status.agent);
        let at = status.timestamp;
        if card.latest.is_some_and(|latest| at.0 < latest.0) {
            return vec![];
        }
        let before = (card.presence.clone(), card.since);
        match status.name {
            AgentState::Busy => {
                card.set(
                    Presence::Busy {
                        caller: status.show.clone(),
                    },
                    at,
                );
            }
            AgentState::Paused => {
                card.calls.clear();
                card.paused = status.pause_reason();
                if let Some(reason) = card.paused {
                    card.set(Presence::Paused { reason }, at);
                }
            }
            AgentState::Idle => {
                // The same moment as a logout reads "idle": only a later one says otherwise.
                if card.presence == Presence::LoggedOut && card.latest.is_some_and(|l| at.0 <= l.0)
                {
                    return vec![];
                }
                card.calls.clear();
                card.paused = None;
                card.set(Presence::Idle, at);
            }
        }
        card.latest = Some(at);
        if (card.presence.clone(), card.since) == before {
            vec![]
        } else {
            vec![Change::Agent(status.agent.clone())]
        }
    }

    /// The figures of `queue` at `now`.
    pub fn stats(&self, queue: QueueId, now: Timestamp) -> QueueStats {
        let board = self.queues.get(&queue);
        let longest = board.and_then(|b| {
            b.waiting
                .values()
                .map(|w| w.since)
                .min_by(|a, b| a.0.total_cmp(&b.0))
        });
        let windows = self
            .judging
            .windows
            .iter()
            .map(|w| {
                board.map_or_else(
                    || Records::default().window(&self.judging, *w, now),
                    |b| b.records.window(&self.judging, *w, now),
                )
            })
            .collect();
        QueueStats {
            queue,
            at: now,
            waiting: board.map_or(0, |b| b.waiting.len()),
            longest_wait_since: longest,
            threshold: self.judging.threshold,
            windows,
            history: board.map_or_else(
                || Records::default().history(now),
                |b| b.records.history(now),
            ),
        }
    }

    /// What a screen starting to follow `queue` at `now` shows.
    pub fn snapshot(&self, queue: QueueId, now: Timestamp) -> QueueSnapshot {
        let board = self.queues.get(&queue);
        let mut calls: Vec<WaitingCall> =
            board.map_or_else(Vec::new, |b| b.waiting.values().cloned().collect());
        calls.sort_by(|a, b| a.since.0.total_cmp(&b.since.0));
        let agents = self.agents_of(queue).cloned().collect();
        QueueSnapshot {
            queue,
            name: board.and_then(|b| b.name.clone()),
            stats: self.stats(queue, now),
            calls,
            agents,
        }
    }

    fn card(&mut self, agent: &AgentId) -> &mut AgentCard {
        self.agents
            .entry(agent.clone())
            .or_insert_with(|| AgentCard {
                agent: agent.clone(),
                name: None,
                presence: Presence::Unknown,
                since: None,
                queues: BTreeSet::new(),
                calls: BTreeMap::new(),
                paused: None,
                latest: None,
            })
    }

    fn counted(&mut self, queue: QueueId, call: CallId, at: Timestamp) -> &mut Counted {
        let c = self
            .queues
            .entry(queue)
            .or_default()
            .counted
            .entry(call)
            .or_default();
        c.last = c.last.max(at.0);
        c
    }

    fn joined(
        &mut self,
        queue: QueueId,
        call: CallId,
        caller: &str,
        join: Timestamp,
        changes: &mut Vec<Change>,
    ) {
        let counted = self.counted(queue, call, join);
        counted.join = Some(join.0);
        if counted.answered || counted.missed || counted.ended {
            return;
        }
        let first = !counted.offered;
        counted.offered = true;
        let board = self.queues.entry(queue).or_default();
        if first {
            board.records.offered(join);
        }
        if board.waiting.contains_key(&call) {
            return;
        }
        let waiting = WaitingCall {
            call,
            caller: caller.to_owned(),
            since: join,
        };
        board.waiting.insert(call, waiting);
        changes.push(Change::Call(CallChange {
            queue,
            call,
            caller: caller.to_owned(),
            fate: CallFate::Waiting,
            since: join,
        }));
        push_once(changes, Change::Stats(queue));
    }

    fn answered(
        &mut self,
        queue: QueueId,
        call: CallId,
        caller: &str,
        answer: Answer<'_>,
        changes: &mut Vec<Change>,
    ) {
        let at = answer.at;
        let counted = self.counted(queue, call, at);
        if let Some(join) = answer.join {
            counted.join = Some(join.0);
        }
        let join = counted.join;
        let first = !counted.answered && !counted.missed;
        let offered = counted.offered;
        counted.answered = true;
        counted.offered = true;
        let board = self.queues.entry(queue).or_default();
        let waited = board.waiting.remove(&call);
        if !first {
            return;
        }
        let join = waited.map(|w| w.since.0).or(join);
        if !offered && let Some(join) = join {
            board.records.offered(Timestamp(join));
        }
        // Without a join time the wait is unknown: counted as answered within threshold
        // would flatter the service level, outside it would blame it; zero is the former,
        // so the platform's own event stream (which always rings first) is what it leans on.
        board.records.answered(at, join.map_or(0.0, |j| at.0 - j));
        changes.push(Change::Call(CallChange {
            queue,
            call,
            caller: caller.to_owned(),
            fate: CallFate::Answered {
                agent: answer.agent.cloned(),
            },
            since: at,
        }));
        push_once(changes, Change::Stats(queue));
    }

    fn missed(
        &mut self,
        queue: QueueId,
        call: CallId,
        caller: &str,
        join: f64,
        at: Timestamp,
        changes: &mut Vec<Change>,
    ) {
        let counted = self.counted(queue, call, at);
        let first = !counted.missed && !counted.answered;
        let offered = counted.offered;
        counted.missed = true;
        counted.offered = true;
        let join = counted.join.unwrap_or(join);
        let board = self.queues.entry(queue).or_default();
        board.waiting.remove(&call);
        if !first {
            return;
        }
        if !offered {
            board.records.offered(Timestamp(join));
        }
        board.records.missed(at, at.0 - join);
        changes.push(Change::Call(CallChange {
            queue,
            call,
            caller: caller.to_owned(),
            fate: CallFate::Missed,
            since: at,
        }));
        push_once(changes, Change::Stats(queue));
    }

    fn ended(
        &mut self,
        queue: QueueId,
        call: CallId,
        talk: f64,
        at: Timestamp,
        changes: &mut Vec<Change>,
    ) {
        let counted = self.counted(queue, call, at);
        if counted.ended {
            return;
        }
        counted.ended = true;
        let board = self.queues.entry(queue).or_default();
        board.records.handled(at, talk);
        push_once(changes, Change::Stats(queue));
        self.forget_old(queue, at);
    }

    /// `agent` took `call`; whether its card changed.
    fn agent_took(
        &mut self,
        agent: &AgentId,
        queue: QueueId,
        call: CallId,
        caller: &str,
        at: Timestamp,
    ) -> bool {
        let card = self.card(agent);
        if card.latest.is_some_and(|l| at.0 < l.0) || card.calls.contains_key(&call) {
            return false;
        }
        card.latest = Some(at);
        card.queues.insert(queue);
        card.calls.insert(call, caller.to_owned());
        card.set(
            Presence::Busy {
                caller: Some(caller.to_owned()),
            },
            at,
        );
        self.queues
            .entry(queue)
            .or_default()
            .agents
            .insert(agent.clone());
        true
    }

    /// `agent`'s `call` ended; whether its card changed.
    fn agent_left_call(&mut self, agent: &AgentId, call: CallId, at: Timestamp) -> bool {
        let card = self.card(agent);
        let held = card.calls.remove(&call).is_some();
        if !held && card.latest.is_some_and(|l| at.0 < l.0) {
            return false;
        }
        if card.latest.is_none_or(|l| l.0 < at.0) {
            card.latest = Some(at);
        }
        let next = match (card.calls.values().last(), card.paused) {
            (Some(caller), _) => Presence::Busy {
                caller: Some(caller.clone()),
            },
            (None, Some(reason)) => Presence::Paused { reason },
            (None, None) => Presence::Idle,
        };
        card.set(next, at)
    }

    fn session(
        &mut self,
        agent: &AgentId,
        queues: &[QueueId],
        at: Timestamp,
        what: Session,
        changes: &mut Vec<Change>,
    ) {
        for q in queues {
            self.queues
                .entry(*q)
                .or_default()
                .agents
                .insert(agent.clone());
        }
        let card = self.card(agent);
        let joined = queues.iter().fold(false, |j, q| card.queues.insert(*q) | j);
        if card.latest.is_some_and(|l| at.0 < l.0) {
            if joined {
                changes.push(Change::Agent(agent.clone()));
            }
            return;
        }
        card.latest = Some(at);
        let moved = match what {
            Session::Start => {
                card.calls.clear();
                card.paused = None;
                card.set(Presence::Idle, at)
            }
            Session::Pause(reason) => {
                card.paused = Some(reason);
                card.calls.is_empty() && card.set(Presence::Paused { reason }, at)
            }
            Session::Resume => {
                card.paused = None;
                card.calls.is_empty() && card.set(Presence::Idle, at)
            }
            Session::Finish => {
                card.calls.clear();
                card.paused = None;
                card.set(Presence::LoggedOut, at)
            }
        };
        if moved || joined {
            changes.push(Change::Agent(agent.clone()));
        }
    }

    /// Forgets the outcomes of calls over for longer than any window plus a margin.
    fn forget_old(&mut self, queue: QueueId, now: Timestamp) {
        let longest = self
            .judging
            .windows
            .iter()
            .max()
            .copied()
            .unwrap_or_default();
        let keep = longest.max(Duration::from_secs(60 * HISTORY_MINUTES as u64));
        let Some(board) = self.queues.get_mut(&queue) else {
            return;
        };
        board.records.prune(now, keep);
        let horizon = now.0 - (keep + REMEMBER_PAST_WINDOW).as_secs_f64();
        board
            .counted
            .retain(|call, c| c.last > horizon || board.waiting.contains_key(call));
    }
}

/// An answer, as an event or a listing tells it.
struct Answer<'a> {
    /// When the call joined, if the teller says.
    join: Option<Timestamp>,
    /// When it was answered.
    at: Timestamp,
    /// Who answered, if the teller says.
    agent: Option<&'a AgentId>,
}

enum Session {
    Start,
    Pause(PauseReason),
    Resume,
    Finish,
}

impl AgentCard {
    /// The calls it holds, with their callers.
    pub fn held(&self) -> BTreeMap<CallId, String> {
        self.calls.clone()
    }

    /// Moves to `presence` at `at`; whether anything changed.
    fn set(&mut self, presence: Presence, at: Timestamp) -> bool {
        if self.presence == presence {
            return false;
        }
        self.presence = presence;
        self.since = Some(at);
        true
    }
}

fn push_once(changes: &mut Vec<Change>, change: Change) {
    if !changes.contains(&change) {
        changes.push(change);
    }
}

#[cfg(test)]
mod tests;
