//! How a session's end reaches the platform, and how the core knows it is still under way
//! there while the agent logs in again.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Agents, Platform, Sink};
use crate::config::OnDisconnect;
use crate::converja::{AgentId, PlatformError};

/// A session end under way on the platform, from [`Ending::begin`] until dropped (done,
/// failed or cancelled alike).
struct Ending<'a, P: Platform, S: Sink> {
    agents: &'a Agents<P, S>,
    agent: AgentId,
    done: CancellationToken,
}

impl<'a, P: Platform, S: Sink> Ending<'a, P, S> {
    fn begin(agents: &'a Agents<P, S>, agent: &AgentId) -> Self {
        let done = CancellationToken::new();
        agents.state().begin_ending(agent, done.clone());
        Ending {
            agents,
            agent: agent.clone(),
            done,
        }
    }
}

impl<P: Platform, S: Sink> Drop for Ending<'_, P, S> {
    fn drop(&mut self) {
        self.agents.state().finish_ending(&self.agent, &self.done);
        self.done.cancel();
    }
}

impl<P: Platform, S: Sink> Agents<P, S> {
    /// Applies `on_disconnect` on the platform for `agent`, then leaves its room. A login of
    /// the same agent meanwhile waits for it (`user_connect::ended`), so that the leave
    /// cannot land after the new session's join.
    pub(super) async fn end_on_platform(&self, agent: &AgentId) -> Result<(), PlatformError> {
        let _ending = Ending::begin(self, agent);
        let result = match self.settings.on_disconnect {
            OnDisconnect::Logout => self.platform.logout(agent).await,
            OnDisconnect::Pause(reason) => self.platform.pause(agent, reason).await,
            OnDisconnect::None => Ok(()),
        };
        if result.is_ok() {
            self.platform.leave_agent_room(agent).await;
        }
        result
    }

    /// Leaves the agent's room unless a session still needs it.
    pub(super) fn leave_if_unused(self: &Arc<Self>, agent: &AgentId) {
        let agents = self.clone();
        let agent = agent.clone();
        self.tasks.spawn(async move {
            // Looked at as the leave goes out: a new session of the agent may have come since.
            if agents.state().registry.session_of_agent(&agent).is_none() {
                agents.platform.leave_agent_room(&agent).await;
            }
        });
    }
}
