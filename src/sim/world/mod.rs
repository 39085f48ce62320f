//! The simulated platform's state: queues, agents and calls, and what every request and every
//! life-cycle step does to them. Pure logic: no I/O, no clock (callers pass `now`).

mod agents;
mod calls;
mod requests;
mod tally;

pub use tally::Tally;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::scenario::CurrentCall;
use crate::converja::{
    AgentId, AgentState, AgentStatus, CallId, CallTimestamps, Event, PauseReason, QueueId,
    RoomName, Timestamp,
};

/// One queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueModel {
    /// Display name.
    pub name: String,
    /// Agents serving it, in dispatch preference order.
    pub agents: Vec<AgentId>,
    /// Supervisors, with display names.
    pub supervisors: Vec<(AgentId, String)>,
}

/// One agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentModel {
    /// Display name.
    pub name: String,
    /// Logged in to the platform.
    pub logged_in: bool,
    /// Paused, with the reason.
    pub paused: Option<PauseReason>,
    /// Calls in progress, oldest first.
    pub calls: Vec<CallId>,
    /// When the current state began.
    pub since: Timestamp,
}

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPhase {
    /// Waiting in the queue.
    Ringing,
    /// An agent is on it.
    Active,
    /// Over: hung up or missed.
    Over,
}

/// One call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallModel {
    /// Its queue.
    pub queue: QueueId,
    /// The caller's number.
    pub caller: String,
    /// The agent on it.
    pub callee: Option<AgentId>,
    /// Life-cycle timestamps.
    pub timestamps: CallTimestamps,
}

impl CallModel {
    /// The call's phase.
    pub fn phase(&self) -> CallPhase {
        let t = &self.timestamps;
        if t.hangup.is_some() || t.miss.is_some() {
            CallPhase::Over
        } else if t.answer.is_some() {
            CallPhase::Active
        } else {
            CallPhase::Ringing
        }
    }
}

/// What a request did: the response to send and the events to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Response status.
    pub status: u16,
    /// Response params.
    pub params: Value,
    /// Events to publish, in order, with their rooms.
    pub events: Vec<(RoomName, Event)>,
}

impl Outcome {
    fn ok(params: Value, events: Vec<(RoomName, Event)>) -> Self {
        Outcome {
            status: 200,
            params,
            events,
        }
    }

    /// A failure with a human-readable `error`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Outcome {
            status,
            params: json!({ "error": message.into() }),
            events: Vec::new(),
        }
    }
}

/// A life-cycle step that could not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WorldError(pub String);

/// The whole simulated platform.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct World {
    /// Queues by id.
    pub queues: BTreeMap<QueueId, QueueModel>,
    /// Agents by id.
    pub agents: BTreeMap<AgentId, AgentModel>,
    /// Calls by id, including finished ones.
    pub calls: BTreeMap<CallId, CallModel>,
    /// Which call of several is the agent's current one.
    pub current_call: CurrentCall,
    next_call: u64,
}

impl World {
    /// An empty world whose call ids start at `first_call`.
    pub fn new(first_call: u64) -> Self {
        World {
            next_call: first_call,
            ..Default::default()
        }
    }

    /// The queues `agent` serves.
    pub fn queues_of(&self, agent: &AgentId) -> Vec<QueueId> {
        self.queues
            .iter()
            .filter(|(_, q)| q.agents.contains(agent))
            .map(|(id, _)| *id)
            .collect()
    }

    fn agent(&self, agent: &AgentId) -> Result<&AgentModel, WorldError> {
        self.agents
            .get(agent)
            .ok_or_else(|| WorldError(format!("agent {agent} does not exist")))
    }

    fn agent_mut(&mut self, agent: &AgentId) -> Result<&mut AgentModel, WorldError> {
        self.agents
            .get_mut(agent)
            .ok_or_else(|| WorldError(format!("agent {agent} does not exist")))
    }

    /// The agent's status as `GET /agents/:id/status` reports it.
    pub fn status(&self, agent: &AgentId) -> Result<AgentStatus, WorldError> {
        let a = self.agent(agent)?;
        let (name, show) = if let Some(call) = self.current_of(a) {
            (
                AgentState::Busy,
                self.calls.get(&call).map(|c| c.caller.clone()),
            )
        } else if let Some(reason) = a.paused {
            (AgentState::Paused, Some(reason.0.to_string()))
        } else {
            (AgentState::Idle, None)
        };
        Ok(AgentStatus {
            agent: agent.clone(),
            name,
            show,
            timestamp: a.since,
        })
    }

    /// The agent's current call, as the platform picks it among several.
    pub(super) fn current_of(&self, a: &AgentModel) -> Option<CallId> {
        match self.current_call {
            CurrentCall::Newest => a.calls.last().copied(),
            CurrentCall::Oldest => a.calls.first().copied(),
        }
    }

    /// Whether `agent` can take another call now, holding at most `per_agent` at once.
    pub fn is_available(&self, agent: &AgentId, per_agent: usize) -> bool {
        self.agents
            .get(agent)
            .is_some_and(|a| a.logged_in && a.paused.is_none() && a.calls.len() < per_agent)
    }

    /// Ringing calls of `queue`, oldest first.
    pub fn ringing(&self, queue: QueueId) -> Vec<CallId> {
        self.calls
            .iter()
            .filter(|(_, c)| c.queue == queue && c.phase() == CallPhase::Ringing)
            .map(|(id, _)| *id)
            .collect()
    }
}
