//! The simulated platform's state: queues, agents and calls, and what every request and every
//! life-cycle step does to them. Pure logic: no I/O, no clock (callers pass `now`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::converja::{
    AgentId, AgentState, AgentStatus, CallDidFinish, CallDidStart, CallId, CallMissed, CallRinging,
    CallTimestamps, Data, Event, PauseReason, QueueAgent, QueueCall, QueueCalls, QueueId,
    QueueInfo, QueueSupervisor, Request, RoomName, TerminalTime, Timestamp, UserSession,
    UserSessionDidPause,
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
    next_call: u64,
}

fn to_value<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).expect("response types are plain data")
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
        let (name, show) = if let Some(call) = a.calls.last() {
            (
                AgentState::Busy,
                self.calls.get(call).map(|c| c.caller.clone()),
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

    /// Whether `agent` can take another call now, holding at most `per_agent` at once.
    pub fn is_available(&self, agent: &AgentId, per_agent: usize) -> bool {
        self.agents
            .get(agent)
            .is_some_and(|a| a.logged_in && a.paused.is_none() && a.calls.len() < per_agent)
    }

    /// Executes a routed request.
    pub fn handle(&mut self, request: &Request, now: Timestamp) -> Outcome {
        match self.try_handle(request, now) {
            Ok(outcome) => outcome,
            Err((status, message)) => Outcome::error(status, message),
        }
    }

    fn try_handle(&mut self, request: &Request, now: Timestamp) -> Result<Outcome, (u16, String)> {
        let not_found = |e: WorldError| (404, e.0);
        let queue = |q: &QueueId| {
            self.queues
                .get(q)
                .ok_or_else(|| (404, format!("queue {q} does not exist")))
        };
        Ok(match request {
            Request::Queues => {
                let data = self
                    .queues
                    .iter()
                    .map(|(id, q)| QueueInfo {
                        id: *id,
                        name: q.name.clone(),
                    })
                    .collect();
                Outcome::ok(to_value(Data { data }), vec![])
            }
            Request::QueueAgents(q) => {
                let data = queue(q)?
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
                Outcome::ok(to_value(Data { data }), vec![])
            }
            Request::QueueSupervisors(q) => {
                let data = queue(q)?
                    .supervisors
                    .iter()
                    .map(|(id, name)| QueueSupervisor {
                        supervisor: id.clone(),
                        name: name.clone(),
                    })
                    .collect();
                Outcome::ok(to_value(Data { data }), vec![])
            }
            Request::QueueCalls(q) => {
                queue(q)?;
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
                Outcome::ok(
                    to_value(QueueCalls {
                        calls,
                        queue: *q,
                        timestamp: now,
                    }),
                    vec![],
                )
            }
            Request::AgentStatus(a) => {
                Outcome::ok(to_value(self.status(a).map_err(not_found)?), vec![])
            }
            Request::EndActiveCall(a) => {
                let call = *self
                    .agent(a)
                    .map_err(not_found)?
                    .calls
                    .last()
                    .ok_or_else(|| (404, format!("agent {a} has no active call")))?;
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
                let call = *self
                    .agent(a)
                    .map_err(not_found)?
                    .calls
                    .last()
                    .ok_or_else(|| (404, format!("agent {a} has no active call")))?;
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

    /// A new call joins `queue`.
    pub fn ring(
        &mut self,
        queue: QueueId,
        caller: String,
        now: Timestamp,
    ) -> Result<(CallId, Vec<(RoomName, Event)>), WorldError> {
        if !self.queues.contains_key(&queue) {
            return Err(WorldError(format!("queue {queue} does not exist")));
        }
        let id = CallId(self.next_call);
        self.next_call += 1;
        self.calls.insert(
            id,
            CallModel {
                queue,
                caller: caller.clone(),
                callee: None,
                timestamps: CallTimestamps {
                    answer: None,
                    hangup: None,
                    join: now,
                    miss: None,
                },
            },
        );
        let event = Event::CallRinging(CallRinging {
            callid: id,
            origin: caller,
            queue,
            timestamp: now,
        });
        Ok((id, vec![(RoomName::Queue(queue), event)]))
    }

    /// `agent` answers the ringing `call`.
    pub fn answer(
        &mut self,
        call: CallId,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<(RoomName, Event)>, WorldError> {
        let c = self
            .calls
            .get(&call)
            .ok_or_else(|| WorldError(format!("call {call} does not exist")))?;
        if c.phase() != CallPhase::Ringing {
            return Err(WorldError(format!("call {call} is not ringing")));
        }
        let (queue, caller) = (c.queue, c.caller.clone());
        let a = self.agent_mut(agent)?;
        a.calls.push(call);
        a.since = now;
        let c = self.calls.get_mut(&call).expect("checked above");
        c.callee = Some(agent.clone());
        c.timestamps.answer = Some(now);
        let event = Event::CallDidStart(CallDidStart {
            callid: call,
            destination: agent.clone(),
            origin: caller,
            queue,
            timestamp: now,
        });
        Ok(vec![(RoomName::Queue(queue), event)])
    }

    /// The active `call` hangs up.
    pub fn finish(
        &mut self,
        call: CallId,
        now: Timestamp,
    ) -> Result<Vec<(RoomName, Event)>, WorldError> {
        let c = self
            .calls
            .get_mut(&call)
            .ok_or_else(|| WorldError(format!("call {call} does not exist")))?;
        if c.phase() != CallPhase::Active {
            return Err(WorldError(format!("call {call} is not active")));
        }
        c.timestamps.hangup = Some(now);
        let answered = c.timestamps.answer.unwrap_or(now);
        let agent = c.callee.clone().expect("an active call has a callee");
        let event = Event::CallDidFinish(CallDidFinish {
            callid: call,
            destination: agent.clone(),
            duration: (now.0 - answered.0).max(0.0),
            origin: c.caller.clone(),
            queue: c.queue,
            timestamp: now,
        });
        let queue = c.queue;
        if let Some(a) = self.agents.get_mut(&agent) {
            a.calls.retain(|x| *x != call);
            a.since = now;
        }
        Ok(vec![(RoomName::Queue(queue), event)])
    }

    /// The ringing `call` is abandoned.
    pub fn miss(
        &mut self,
        call: CallId,
        now: Timestamp,
    ) -> Result<Vec<(RoomName, Event)>, WorldError> {
        let c = self
            .calls
            .get_mut(&call)
            .ok_or_else(|| WorldError(format!("call {call} does not exist")))?;
        if c.phase() != CallPhase::Ringing {
            return Err(WorldError(format!("call {call} is not ringing")));
        }
        c.timestamps.miss = Some(now);
        let event = Event::CallMissed(CallMissed {
            callid: call,
            duration: (now.0 - c.timestamps.join.0).max(0.0),
            origin: c.caller.clone(),
            queue: c.queue,
            timestamp: now,
        });
        Ok(vec![(RoomName::Queue(c.queue), event)])
    }

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

    /// Ringing calls of `queue`, oldest first.
    pub fn ringing(&self, queue: QueueId) -> Vec<CallId> {
        self.calls
            .iter()
            .filter(|(_, c)| c.queue == queue && c.phase() == CallPhase::Ringing)
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        let mut w = World::new(100);
        let maria = AgentId::new("22010");
        w.agents.insert(
            maria.clone(),
            AgentModel {
                name: "Maria".into(),
                logged_in: true,
                paused: None,
                calls: vec![],
                since: Timestamp(0.0),
            },
        );
        w.queues.insert(
            QueueId(7),
            QueueModel {
                name: "Financeiro".into(),
                agents: vec![maria],
                supervisors: vec![(AgentId::new("9001"), "Ana".into())],
            },
        );
        w
    }

    #[test]
    fn a_call_rings_starts_and_finishes_with_events_in_the_queue_room() {
        let mut w = world();
        let maria = AgentId::new("22010");
        let (call, events) = w.ring(QueueId(7), "0800".into(), Timestamp(1.0)).unwrap();
        assert!(matches!(
            events[0],
            (RoomName::Queue(QueueId(7)), Event::CallRinging(_))
        ));
        let events = w.answer(call, &maria, Timestamp(2.0)).unwrap();
        assert!(matches!(&events[0].1, Event::CallDidStart(s) if s.destination == maria));
        assert_eq!(w.status(&maria).unwrap().name, AgentState::Busy);
        assert_eq!(w.status(&maria).unwrap().show.as_deref(), Some("0800"));
        let out = w.handle(&Request::EndActiveCall(maria.clone()), Timestamp(5.0));
        assert_eq!(out.status, 200);
        assert!(
            matches!(&out.events[0].1, Event::CallDidFinish(f) if f.callid == call && f.duration == 3.0)
        );
        assert_eq!(w.status(&maria).unwrap().name, AgentState::Idle);
        assert_eq!(
            w.handle(&Request::EndActiveCall(maria), Timestamp(6.0))
                .status,
            404
        );
    }

    #[test]
    fn unknown_agents_and_queues_are_404() {
        let mut w = world();
        let ghost = AgentId::new("404");
        for req in [
            Request::AgentStatus(ghost.clone()),
            Request::Logout(ghost.clone()),
            Request::Timestamp(ghost.clone()),
            Request::QueueAgents(QueueId(99)),
            Request::QueueCalls(QueueId(99)),
            Request::QueueSupervisors(QueueId(99)),
        ] {
            assert_eq!(w.handle(&req, Timestamp(1.0)).status, 404, "{req:?}");
        }
    }

    #[test]
    fn pause_resume_and_logout_publish_session_events() {
        let mut w = world();
        let maria = AgentId::new("22010");
        let out = w.handle(
            &Request::SetPaused(maria.clone(), Some(PauseReason(11))),
            Timestamp(1.0),
        );
        assert!(
            matches!(&out.events[0], (RoomName::Catraquis, Event::UserSessionDidPause(p)) if p.reason == PauseReason(11) && p.queues == vec![QueueId(7)])
        );
        assert_eq!(
            w.status(&maria).unwrap().pause_reason(),
            Some(PauseReason(11))
        );
        let out = w.handle(&Request::SetPaused(maria.clone(), None), Timestamp(2.0));
        assert!(matches!(&out.events[0].1, Event::UserSessionDidResume(_)));
        let (call, _) = w.ring(QueueId(7), "1".into(), Timestamp(3.0)).unwrap();
        w.answer(call, &maria, Timestamp(3.0)).unwrap();
        let out = w.handle(&Request::Logout(maria.clone()), Timestamp(4.0));
        assert!(matches!(&out.events[0].1, Event::CallDidFinish(_)));
        assert!(matches!(&out.events[1].1, Event::UserSessionDidFinish(_)));
        assert_eq!(
            w.handle(
                &Request::SetPaused(maria, Some(PauseReason(1))),
                Timestamp(5.0)
            )
            .status,
            400
        );
    }

    #[test]
    fn queue_calls_lists_unfinished_calls() {
        let mut w = world();
        let maria = AgentId::new("22010");
        let (a, _) = w.ring(QueueId(7), "1".into(), Timestamp(1.0)).unwrap();
        let (b, _) = w.ring(QueueId(7), "2".into(), Timestamp(1.0)).unwrap();
        let (c, _) = w.ring(QueueId(7), "3".into(), Timestamp(1.0)).unwrap();
        w.answer(a, &maria, Timestamp(2.0)).unwrap();
        w.miss(b, Timestamp(2.0)).unwrap();
        let out = w.handle(&Request::QueueCalls(QueueId(7)), Timestamp(3.0));
        let calls = crate::converja::ResponseParams::decode("queue_calls", out.params)
            .map(|c: QueueCalls| c.calls)
            .unwrap();
        let ids: Vec<CallId> = calls.iter().map(|c| c.call).collect();
        assert_eq!(ids, vec![a, c]);
        assert!(calls[0].is_active());
    }
}
