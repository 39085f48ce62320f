//! A call's life in the world: it rings, is answered, and ends hung up or missed.

use super::{CallModel, CallPhase, World, WorldError};
use crate::converja::{
    AgentId, CallDidFinish, CallDidStart, CallId, CallMissed, CallRinging, CallTimestamps, Event,
    QueueId, RoomName, Timestamp,
};

impl World {
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
        let c = self.call_in(call, CallPhase::Ringing)?;
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
        let c = self.call_in(call, CallPhase::Active)?;
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
        let c = self.call_in(call, CallPhase::Ringing)?;
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

    /// `call`, if it is in `phase`.
    fn call_in(&mut self, call: CallId, phase: CallPhase) -> Result<&mut CallModel, WorldError> {
        let c = self
            .calls
            .get_mut(&call)
            .ok_or_else(|| WorldError(format!("call {call} does not exist")))?;
        if c.phase() != phase {
            let what = match phase {
                CallPhase::Ringing => "ringing",
                CallPhase::Active => "active",
                CallPhase::Over => "over",
            };
            return Err(WorldError(format!("call {call} is not {what}")));
        }
        Ok(c)
    }
}
