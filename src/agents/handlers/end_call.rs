//! `END_CALL {callId}`: `DELETE /calls/active` for the session's agent, then `CALL_ENDED` to
//! every socket of the session, or `END_CALL_ERROR` to the asker.

use std::sync::Arc;

use crate::agents::event::{AckReply, Echo, ServerEvent, SocketId};
use crate::agents::refusal::{Refusal, Subject};
use crate::agents::{Agents, Platform, Sink};
use crate::converja::CallId;

pub(super) async fn handle<P: Platform, S: Sink>(
    agents: &Arc<Agents<P, S>>,
    socket: SocketId,
    call: CallId,
    ack: Option<S::Ack>,
) {
    let agent = {
        let state = agents.state();
        match state.registry.session_of(socket) {
            None => Err(Refusal::NotConnected),
            Some(session) if !session.holds(call) => Err(Refusal::NotYourCall(call)),
            Some(session) => Ok(session.agent.clone()),
        }
    };
    let result = match agent {
        Ok(agent) => agents
            .platform
            .end_active_call(&agent)
            .await
            .map_err(|error| Refusal::Platform {
                subject: Subject::Call(call),
                error,
            }),
        Err(refusal) => Err(refusal),
    };
    match result {
        Ok(()) => {
            // CALL_ENDED goes to every socket once; if the platform's event came first, the
            // asker still gets its acknowledgement.
            agents.call_finished(call);
            if let Some(ack) = ack {
                agents
                    .sink
                    .ack(ack, &AckReply::Event(ServerEvent::CallEnded(call)));
            }
        }
        Err(error) => {
            let call = Echo(serde_json::Value::String(call.to_string()));
            agents.reply(socket, ServerEvent::EndCallError { call, error }, ack);
        }
    }
}
