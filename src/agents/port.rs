//! The two sides the agents core talks to, as small traits: the platform (the requests the
//! core needs) and the sockets (emit an event, answer an acknowledgement). The daemon plugs
//! in the XMPP platform client and socket.io; the tests plug in fakes.

use std::future::Future;
use std::time::Duration;

use super::event::{AckReply, ServerEvent};
use crate::converja::{
    AgentId, AgentStatus, PauseReason, PlatformError, QueueAgent, QueueCalls, QueueId, QueueInfo,
    QueueSupervisor, Timestamp,
};

/// The platform requests the agents core makes.
pub trait Platform: Send + Sync + 'static {
    /// Proves that `agent` exists (`GET /agents/:id/status`), joining its room first;
    /// returns the status's timestamp: the platform's word on the agent is at least that
    /// recent.
    fn check_agent(
        &self,
        agent: &AgentId,
    ) -> impl Future<Output = Result<Timestamp, PlatformError>> + Send;
    /// The caller of the agent's current call (`GET /agents/:id/status`, `show` while
    /// busy); `None` when the agent is not busy.
    fn current_caller(
        &self,
        agent: &AgentId,
    ) -> impl Future<Output = Result<Option<String>, PlatformError>> + Send;
    /// `DELETE /calls/active`: ends the agent's current call.
    fn end_call(&self, agent: &AgentId) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// `PUT /calls/active/local`: transfers the agent's current call to `number`.
    fn transfer(
        &self,
        agent: &AgentId,
        number: &str,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// `DELETE /session`: logs the agent out.
    fn logout(&self, agent: &AgentId) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// `PUT /session/paused`: pauses the agent with `reason`.
    fn pause(
        &self,
        agent: &AgentId,
        reason: PauseReason,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// `PUT /session/paused` with 0: the agent takes calls again.
    fn resume(&self, agent: &AgentId) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// Stops following `agent.<id>`.
    fn leave_agent_room(&self, agent: &AgentId) -> impl Future<Output = ()> + Send;
    /// `GET /queues/:id/calls`.
    fn queue_calls(
        &self,
        queue: QueueId,
    ) -> impl Future<Output = Result<QueueCalls, PlatformError>> + Send;
    /// The queues followed now.
    fn followed_queues(&self) -> Vec<QueueId>;
    /// A queue's name, if known.
    fn queue_name(&self, queue: QueueId) -> Option<String>;
    /// Waits until requests can be answered (link up, rooms joined), at most `limit`.
    fn wait_ready(&self, limit: Duration) -> impl Future<Output = bool> + Send;
}

/// Why an event could not be handed to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitError {
    /// The socket's buffer is full; the event may be sent again later.
    Full,
    /// The socket is gone.
    Closed,
}

/// Why an acknowledgement could not be answered.
#[derive(Debug)]
pub enum AckError<A> {
    /// The socket's buffer is full: the callback, to answer later.
    Full(A),
    /// The socket is gone.
    Closed,
}

/// Where the core's events to agent UIs go.
pub trait Sink: Send + Sync + 'static {
    /// A handle to one socket.
    type Socket: Send + Sync + 'static;
    /// A pending acknowledgement callback.
    type Ack: Send + 'static;

    /// Queues `event` for `socket` without waiting, with `offset` as its last argument when
    /// there is one ([`resume`](super::resume)).
    fn emit(
        &self,
        socket: &Self::Socket,
        event: &ServerEvent,
        offset: Option<&str>,
    ) -> Result<(), EmitError>;
    /// Answers an acknowledgement callback; one that finds the buffer full comes back, to be
    /// answered once there is room.
    fn ack(&self, ack: Self::Ack, reply: &AckReply) -> Result<(), AckError<Self::Ack>>;
    /// Closes a socket the core gave up on; false when it cannot be closed yet (not even a
    /// disconnect packet fits in its buffer), and the core tries again later.
    fn disconnect(&self, socket: &Self::Socket) -> bool;
}

/// The platform requests supervisors make, besides what the agents core needs.
pub trait Directory: Send + Sync + 'static {
    /// `GET /queues`.
    fn queues(&self) -> impl Future<Output = Result<Vec<QueueInfo>, PlatformError>> + Send;
    /// `GET /queues/:id/agents`.
    fn queue_agents(
        &self,
        queue: QueueId,
    ) -> impl Future<Output = Result<Vec<QueueAgent>, PlatformError>> + Send;
    /// `GET /queues/:id/supervisors`.
    fn queue_supervisors(
        &self,
        queue: QueueId,
    ) -> impl Future<Output = Result<Vec<QueueSupervisor>, PlatformError>> + Send;
    /// `GET /queues/:id/calls`.
    fn queue_calls(
        &self,
        queue: QueueId,
    ) -> impl Future<Output = Result<QueueCalls, PlatformError>> + Send;
    /// `GET /agents/:id/status`.
    fn agent_status(
        &self,
        agent: &AgentId,
    ) -> impl Future<Output = Result<AgentStatus, PlatformError>> + Send;
    /// `GET /timestamp`: the agent terminal's clock, in milliseconds.
    fn terminal_time(
        &self,
        agent: &AgentId,
    ) -> impl Future<Output = Result<f64, PlatformError>> + Send;
    /// `PUT /session/paused`: pauses with `Some(reason)`, resumes with `None`.
    fn set_paused(
        &self,
        agent: &AgentId,
        reason: Option<PauseReason>,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// `PUT /calls/active/local`: transfers the agent's current call to `number`.
    fn transfer(
        &self,
        agent: &AgentId,
        number: &str,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// `DELETE /session`: logs the agent out.
    fn logout(&self, agent: &AgentId) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// Waits until requests can be answered (link up, rooms joined), at most `limit`.
    fn until_ready(&self, limit: Duration) -> impl Future<Output = bool> + Send;
}
