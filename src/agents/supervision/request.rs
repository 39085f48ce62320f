//! What a supervisor may ask, what comes back, and why it may be refused.

use crate::converja::{
    AgentId, AgentStatus, CallId, PauseReason, PlatformError, QueueAgent, QueueCall, QueueId,
    QueueInfo, QueueSupervisor,
};

use crate::agents::board::QueueSnapshot;

/// A supervisor, as the sign-in proved it: the id `GET /queues/:id/supervisors` lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Supervisor(pub AgentId);

/// A supervisor's request.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// The queues this supervisor may see.
    Queues,
    /// A queue's agents.
    QueueAgents(QueueId),
    /// A queue's supervisors.
    QueueSupervisors(QueueId),
    /// A queue's calls not over yet, as the platform lists them.
    QueueCalls(QueueId),
    /// An agent's status, as the platform reports it.
    AgentStatus(AgentId),
    /// Pauses an agent.
    Pause(AgentId, PauseReason),
    /// Resumes a paused agent.
    Resume(AgentId),
    /// Transfers the named call of an agent to `destination`.
    Transfer {
        /// The agent on the call.
        agent: AgentId,
        /// The call, as the supervisor's screen showed it.
        call: CallId,
        /// The number to transfer to.
        destination: String,
    },
    /// Logs an agent out.
    Logout(AgentId),
    /// The agent terminal's clock.
    TerminalTime(AgentId),
    /// A queue's board, to follow it from.
    Board(QueueId),
}

/// The answer to an [`Ask`], in the same order of variants.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Visible queues.
    Queues(Vec<QueueInfo>),
    /// A queue's agents.
    QueueAgents(QueueId, Vec<QueueAgent>),
    /// A queue's supervisors.
    QueueSupervisors(QueueId, Vec<QueueSupervisor>),
    /// A queue's calls.
    QueueCalls(QueueId, Vec<QueueCall>),
    /// An agent's status.
    AgentStatus(AgentStatus),
    /// Done: the agent is paused.
    Paused(AgentId, PauseReason),
    /// Done: the agent is resumed.
    Resumed(AgentId),
    /// Done: the call is transferred.
    Transferred(AgentId, CallId, String),
    /// Done: the agent is logged out.
    LoggedOut(AgentId),
    /// The terminal's clock, in milliseconds.
    TerminalTime(AgentId, f64),
    /// A queue's board.
    Board(Box<QueueSnapshot>),
}

/// Why a supervisor's request was not carried out; its text is for a person.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// The queue is not among the supervisor's (or does not exist: the same to them).
    #[error("queue {0} is not one of your queues")]
    NotYourQueue(QueueId),
    /// The agent serves none of the supervisor's queues (or does not exist).
    #[error("agent {0} is not in any of your queues")]
    NotYourAgent(AgentId),
    /// The agent does not hold the named call.
    #[error("agent {agent} is not on call {call}")]
    CallNotHeld {
        /// The agent.
        agent: AgentId,
        /// The call named.
        call: CallId,
    },
    /// The agent holds several calls and the platform acts on its "current" one, which the
    /// bridge cannot tell is the named one.
    #[error(
        "agent {agent} holds several calls and the platform would act on its current one, which may not be call {call}; nothing was done"
    )]
    NotTheCurrentCall {
        /// The agent.
        agent: AgentId,
        /// The call named.
        call: CallId,
    },
    /// The platform failed or refused.
    #[error("{0}")]
    Platform(#[from] PlatformError),
}

impl Denied {
    /// A short code for programs, and the metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Denied::NotYourQueue(_) => "not_your_queue",
            Denied::NotYourAgent(_) => "not_your_agent",
            Denied::CallNotHeld { .. } => "call_not_held",
            Denied::NotTheCurrentCall { .. } => "not_the_current_call",
            Denied::Platform(e) => match e {
                PlatformError::Status { status: 404, .. } => "not_found",
                PlatformError::Status { .. } => "refused",
                PlatformError::Timeout(_) => "timeout",
                _ => "unavailable",
            },
        }
    }
}
