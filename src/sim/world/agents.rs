//! An agent's session in the world: login, logout, pause and resume, each announced in
//! catraquis.

use super::{World, WorldError};
use crate::converja::{
    AgentId, Event, PauseReason, RoomName, Timestamp, UserSession, UserSessionDidPause,
};

impl World {
    fn session_event(&self, agent: &AgentId, now: Timestamp) -> UserSession {
        UserSession {
            agent: agent.clone(),
            queues: self.queues_of(agent),
            timestamp: now,
        }
    }

    /// The agent logs in.
    pub fn login(
        &mut self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<(RoomName, Event)>, WorldError> {
        let a = self.agent_mut(agent)?;
        if a.logged_in {
            return Ok(vec![]);
        }
        a.logged_in = true;
        a.paused = None;
        a.since = now;
        Ok(vec![(
            RoomName::Catraquis,
            Event::UserSessionDidStart(self.session_event(agent, now)),
        )])
    }

    /// The agent logs out, hanging up its calls first.
    pub fn logout(
        &mut self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<(RoomName, Event)>, WorldError> {
        let calls = self.agent(agent)?.calls.clone();
        let mut events = Vec::new();
        for call in calls {
            events.extend(self.finish(call, now)?);
        }
        let a = self.agent_mut(agent)?;
        if !a.logged_in {
            return Ok(events);
        }
        a.logged_in = false;
        a.paused = None;
        a.since = now;
        events.push((
            RoomName::Catraquis,
            Event::UserSessionDidFinish(self.session_event(agent, now)),
        ));
        Ok(events)
    }

    /// The agent pauses.
    pub fn pause(
        &mut self,
        agent: &AgentId,
        reason: PauseReason,
        now: Timestamp,
    ) -> Result<Vec<(RoomName, Event)>, WorldError> {
        let a = self.agent_mut(agent)?;
        a.paused = Some(reason);
        a.since = now;
        let s = self.session_event(agent, now);
        let event = Event::UserSessionDidPause(UserSessionDidPause {
            agent: s.agent,
            queues: s.queues,
            reason,
            timestamp: now,
        });
        Ok(vec![(RoomName::Catraquis, event)])
    }

    /// The agent resumes.
    pub fn resume(
        &mut self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<(RoomName, Event)>, WorldError> {
        let a = self.agent_mut(agent)?;
        if a.paused.take().is_none() {
            return Ok(vec![]);
        }
        a.since = now;
        Ok(vec![(
            RoomName::Catraquis,
            Event::UserSessionDidResume(self.session_event(agent, now)),
        )])
    }
}
