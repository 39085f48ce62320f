//! Where the agents core meets the platform client: the client as the core's
//! [`agents::Platform`], and the task that feeds the core with the platform's events.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::agents::supervision::Supervision;
use crate::agents::{self, Agents, Sink};
use crate::converja::{
    AgentId, AgentState, AgentStatus, Event, PauseReason, PlatformError, QueueAgent, QueueCalls,
    QueueId, QueueInfo, QueueSupervisor, Timestamp,
};
use crate::platform::{Client, Update};
use crate::store::{self, Change, Journal};
use crate::telemetry::latency;

impl agents::Platform for Client {
    async fn check_agent(&self, agent: &AgentId) -> Result<Timestamp, PlatformError> {
        self.join_agent_room(agent).await?;
        self.agent_status(agent)
            .await
            .map(|status| status.timestamp)
    }

    async fn current_caller(&self, agent: &AgentId) -> Result<Option<String>, PlatformError> {
        let status = self.agent_status(agent).await?;
        Ok(match status.name {
            AgentState::Busy => status.show,
            _ => None,
        })
    }

    async fn end_call(&self, agent: &AgentId) -> Result<(), PlatformError> {
        self.end_active_call(agent).await
    }

    async fn transfer(&self, agent: &AgentId, number: &str) -> Result<(), PlatformError> {
        Client::transfer(self, agent, number).await
    }

    async fn logout(&self, agent: &AgentId) -> Result<(), PlatformError> {
        Client::logout(self, agent).await
    }

    async fn pause(&self, agent: &AgentId, reason: PauseReason) -> Result<(), PlatformError> {
        self.set_paused(agent, Some(reason)).await
    }

    async fn resume(&self, agent: &AgentId) -> Result<(), PlatformError> {
        self.set_paused(agent, None).await
    }

    async fn leave_agent_room(&self, agent: &AgentId) {
        Client::leave_agent_room(self, agent).await;
    }

    async fn queue_calls(&self, queue: QueueId) -> Result<QueueCalls, PlatformError> {
        Client::queue_calls(self, queue).await
    }

    fn followed_queues(&self) -> Vec<QueueId> {
        Client::followed_queues(self)
    }

    fn queue_name(&self, queue: QueueId) -> Option<String> {
        Client::queue_name(self, queue)
    }

    async fn wait_ready(&self, limit: Duration) -> bool {
        Client::wait_ready(self, limit).await
    }
}

impl agents::Directory for Client {
    async fn queues(&self) -> Result<Vec<QueueInfo>, PlatformError> {
        // Only the queues whose rooms the bridge follows: the others' events never reach it.
        let followed = Client::followed_queues(self);
        let mut queues = Client::queues(self).await?;
        queues.retain(|q| followed.contains(&q.id));
        Ok(queues)
    }

    async fn queue_agents(&self, queue: QueueId) -> Result<Vec<QueueAgent>, PlatformError> {
        Client::queue_agents(self, queue).await
    }

    async fn queue_supervisors(
        &self,
        queue: QueueId,
    ) -> Result<Vec<QueueSupervisor>, PlatformError> {
        Client::queue_supervisors(self, queue).await
    }

    async fn queue_calls(&self, queue: QueueId) -> Result<QueueCalls, PlatformError> {
        Client::queue_calls(self, queue).await
    }

    async fn agent_status(&self, agent: &AgentId) -> Result<AgentStatus, PlatformError> {
        Client::agent_status(self, agent).await
    }

    async fn terminal_time(&self, agent: &AgentId) -> Result<f64, PlatformError> {
        Client::terminal_time(self, agent).await
    }

    async fn set_paused(
        &self,
        agent: &AgentId,
        reason: Option<PauseReason>,
    ) -> Result<(), PlatformError> {
        Client::set_paused(self, agent, reason).await
    }

    async fn transfer(&self, agent: &AgentId, number: &str) -> Result<(), PlatformError> {
        Client::transfer(self, agent, number).await
    }

    async fn logout(&self, agent: &AgentId) -> Result<(), PlatformError> {
        Client::logout(self, agent).await
    }

    async fn until_ready(&self, limit: Duration) -> bool {
        Client::wait_ready(self, limit).await
    }
}

/// Records the request-id high-water mark every [`store::HIGH_WATER_EVERY`] until
/// `cancel`, so that a successor never reuses an id (shutdown records the last one).
pub(crate) async fn record_request_ids(
    platform: Client,
    journal: Journal,
    cancel: CancellationToken,
) {
    let mut recorded = 0;
    let mut tick = tokio::time::interval(store::HIGH_WATER_EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        };
        let last = platform.last_request_id();
        if last > recorded {
            journal.note(Change::RequestHighWater(last));
            recorded = last;
        }
    }
}

/// Feeds `core` and `supervision` with the platform's events and link changes until
/// `cancel`.
pub(crate) async fn follow_platform<S: Sink>(
    core: Arc<Agents<Client, S>>,
    supervision: Arc<Supervision<Client>>,
    mut updates: broadcast::Receiver<Update>,
    cancel: CancellationToken,
) {
    loop {
        let update = tokio::select! {
            _ = cancel.cancelled() => break,
            update = updates.recv() => update,
        };
        if let Ok(Update::Event(e)) = &update {
            supervision.apply(&e.event);
        }
        match update {
            Ok(Update::Event(e)) => match e.event {
                Event::CallDidStart(start) => latency::stanza(e.read, || core.call_started(&start)),
                Event::CallDidFinish(finish) => {
                    latency::stanza(e.read, || core.call_ended(finish.callid))
                }
                Event::UserSessionDidPause(pause) => {
                    core.session_paused(&pause.agent, Some(pause.reason));
                }
                Event::UserSessionDidResume(session) => core.session_paused(&session.agent, None),
                Event::UserSessionDidFinish(session) => {
                    latency::stanza(e.read, || {
                        core.session_finished(&session.agent, session.timestamp);
                    });
                }
                _ => {}
            },
            Ok(Update::LinkUp | Update::Rejoined) => {
                core.resync();
                supervision.resync();
            }
            Ok(Update::LinkDown) => core.platform_lost(),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                warn!(missed, "platform events missed; reconciling");
                core.resync();
                supervision.resync();
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    info!("no longer following the platform");
}
