//! The ten platform requests executed against the world.

use serde_json::{Value, json};

use super::{CallPhase, Outcome, QueueModel, World, WorldError};
use crate::converja::{
    AgentId, CallId, Data, QueueAgent, QueueCall, QueueCalls, QueueId, QueueInfo, QueueSupervisor,
    Request, TerminalTime, Timestamp,
};

/// A failed request: its status and message.
type Failure = (u16, String);

fn to_value<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).expect("response types are plain data")
}

fn not_found(e: WorldError) -> Failure {
    (404, e.0)
}

impl World {
    /// Executes a routed request.
    pub fn handle(&mut self, request: &Request, now: Timestamp) -> Outcome {
        match self.try_handle(request, now) {
            Ok(outcome) => outcome,
            Err((status, message)) => Outcome::error(status, message),
        }
    }

    fn try_handle(&mut self, request: &Request, now: Timestamp) -> Result<Outcome, Failure> {
        Ok(match request {
            Request::Queues => Outcome::ok(self.queue_list(), vec![]),
            Request::QueueAgents(q) => Outcome::ok(self.queue_agents(q)?, vec![]),
            Request::QueueSupervisors(q) => Outcome::ok(self.queue_supervisors(q)?, vec![]),
            Request::QueueCalls(q) => Outcome::ok(self.queue_calls(q, now)?, vec![]),
            Request::AgentStatus(a) => {
                Outcome::ok(to_value(self.status(a).map_err(not_found)?), vec![])
            }
            Request::EndActiveCall(a) => {
                let call = self.active_call(a)?;
                let events = self.finish(call, now).map_err(not_found)?;
                Outcome::ok(json!({}), events)
            }
            Request::Logout(a) => Outcome::ok(json!({}), self.logout(a, now).map_err(not_found)?),
            Request::Timestamp(a) => {
                self.agent(a).map_err(not_found)?;
                Outcome::ok(
                    to_value(TerminalTime {
                        timestamp: (now.0 * 1000.0).round(),
                    }),
                    vec![],
                )
            }
            Request::Transfer(a, _number) => {
                // The call leaves this platform's queues: for us it simply ends.
                let call = self.active_call(a)?;
                Outcome::ok(json!({}), self.finish(call, now).map_err(not_found)?)
            }
            Request::SetPaused(a, reason) => {
                if !self.agent(a).map_err(not_found)?.logged_in {
                    return Err((400, format!("agent {a} is not logged in")));
                }
                let events = match reason {
                    Some(r) => self.pause(a, *r, now),
                    None => self.resume(a, now),
                }
                .map_err(not_found)?;
                Outcome::ok(json!({}), events)
            }
        })
    }

    fn queue(&self, q: &QueueId) -> Result<&QueueModel, Failure> {
        self.queues
            .get(q)
            .ok_or_else(|| (404, format!("queue {q} does not exist")))
    }

    /// The call `agent` is on: its current one if several.
    fn active_call(&self, a: &AgentId) -> Result<CallId, Failure> {
        let agent = self.agent(a).map_err(not_found)?;
        self.current_of(agent)
            .ok_or_else(|| (404, format!("agent {a} has no active call")))
    }

    fn queue_list(&self) -> Value {
        let data = self
            .queues
            .iter()
            .map(|(id, q)| QueueInfo {
                id: *id,
                name: q.name.clone(),
            })
            .collect();
        to_value(Data { data })
    }

    fn queue_agents(&self, q: &QueueId) -> Result<Value, Failure> {
        let data = self
            .queue(q)?
            .agents
            .iter()
            .map(|a| QueueAgent {
                agent: a.clone(),
                name: self
                    .agents
                    .get(a)
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(to_value(Data { data }))
    }

    fn queue_supervisors(&self, q: &QueueId) -> Result<Value, Failure> {
        let data = self
            .queue(q)?
            .supervisors
            .iter()
            .map(|(id, name)| QueueSupervisor {
                supervisor: id.clone(),
                name: name.clone(),
            })
            .collect();
        Ok(to_value(Data { data }))
    }

    fn queue_calls(&self, q: &QueueId, now: Timestamp) -> Result<Value, Failure> {
        self.queue(q)?;
        let calls = self
            .calls
            .iter()
            .filter(|(_, c)| c.queue == *q && c.phase() != CallPhase::Over)
            .map(|(id, c)| QueueCall {
                call: *id,
                callee: c.callee.clone(),
                caller: c.caller.clone(),
                queue: c.queue,
                timestamps: c.timestamps.clone(),
            })
            .collect();
        Ok(to_value(QueueCalls {
            calls,
            queue: *q,
            timestamp: now,
        }))
    }
}
