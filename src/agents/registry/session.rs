//! One session and where a call stands among its calls: the values the registry keeps per
//! username, apart from the indexes that find them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use crate::agents::event::{NewCall, SocketId};
use crate::agents::resume::PidKey;
use crate::converja::{AgentId, CallId, PauseReason, QueueId, Timestamp};

/// A call of a session (or of an agent without one), as the platform described it.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) call: CallId,
    pub(super) queue: QueueId,
    pub(super) info: NewCall,
    /// When the platform says it started.
    pub(super) started: Timestamp,
    /// The registry's event count when the platform last told us about this call.
    pub(super) seq: u64,
    pub(super) answered: bool,
    pub(super) unanswered_reported: bool,
}

/// What one socket of a session has been shown, and from when it may be shown more.
#[derive(Debug, Default)]
pub(super) struct SocketView {
    /// When NEW_CALLs may start flowing to this socket.
    pub(super) ready_at: Option<Instant>,
    /// Calls emitted to this socket, with when.
    pub(super) delivered: HashMap<CallId, Instant>,
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
    pub(super) sockets: BTreeMap<SocketId, SocketView>,
    /// Calls of the session in arrival order; the first `max_calls` are offered.
    pub(super) calls: Vec<Slot>,
    pub(super) orphaned_since: Option<Instant>,
    /// Brought back from the store at start and not yet reclaimed by a UI.
    pub restored: bool,
    /// The private session ids of the UI sockets that acted for it.
    pub(super) pids: HashSet<PidKey>,
    /// The platform's word on the agent, when the session was confirmed, was this recent:
    /// a logout the platform announces with an earlier (or the same) timestamp is older
    /// than the session.
    pub known_since: Option<Timestamp>,
    /// Paused with this reason, as the UIs were last told (`agents.extensions`).
    pub paused: Option<PauseReason>,
    /// The bridge's own pause changes whose announcement by the platform is awaited.
    pub(super) pause_echoes: std::collections::VecDeque<(Option<PauseReason>, Instant)>,
}

impl Session {
    pub(super) fn offered(&self) -> impl Iterator<Item = &Slot> {
        self.calls.iter().take(self.max_calls as usize)
    }

    /// Whether the session holds `call` (offered or waiting for a slot).
    pub(crate) fn holds(&self, call: CallId) -> bool {
        self.calls.iter().any(|s| s.call == call)
    }

    /// Where `call` stands among the session's calls, for finding out whether it is the
    /// platform's current one; `None` if the session does not hold it.
    pub(crate) fn among(&self, call: CallId) -> Option<Among> {
        let caller = self
            .calls
            .iter()
            .find(|s| s.call == call)?
            .info
            .caller
            .clone();
        let others: Vec<&Slot> = self.calls.iter().filter(|s| s.call != call).collect();
        Some(Among {
            call,
            alone: others.is_empty(),
            caller_shared: others.iter().any(|s| s.info.caller == caller),
            caller,
        })
    }

    /// Calls waiting for a free slot.
    #[cfg(test)]
    pub(crate) fn waiting_calls(&self) -> Vec<CallId> {
        self.calls
            .iter()
            .skip(self.max_calls as usize)
            .map(|s| s.call)
            .collect()
    }
}

/// A call seen among the other calls of its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Among {
    /// The call.
    pub call: CallId,
    /// Whether it is the session's only call.
    pub alone: bool,
    /// Its caller's number.
    pub caller: String,
    /// Whether another call of the session has the same caller.
    pub caller_shared: bool,
}
