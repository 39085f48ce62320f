//! The events `agents.extensions` adds to the contract: `PAUSE {reason}` and `RESUME` for the
//! agent itself (`PUT /session/paused`), answered with `USER_PAUSED` / `USER_RESUMED` on
//! every socket of the session; and `TRANSFER_CALL {callId, destination}`
//! (`PUT /calls/active/local`), with END_CALL's care: the platform transfers the agent's
//! current call, so with several calls held it is asked which is current first. The call's
//! end then comes as `CALL_ENDED`, from the platform's own event.

use std::sync::Arc;

use super::reply;
use crate::agents::event::{AckReply, Scalar, ServerEvent, SocketId};
use crate::agents::refusal::{Refusal, Subject};
use crate::agents::{Agents, Platform, Sink};
use crate::converja::{AgentId, CallId, PauseReason};

/// The agent of `socket`'s session.
fn agent_of<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    socket: SocketId,
) -> Option<(AgentId, String)> {
    let state = agents.state();
    let session = state.registry.session_of(socket)?;
    Some((session.agent.clone(), session.username.clone()))
}

/// `PAUSE {reason}` (`Some`) or `RESUME` (`None`).
pub(super) async fn set_paused<P: Platform, S: Sink>(
    agents: &Arc<Agents<P, S>>,
    socket: SocketId,
    paused: Option<PauseReason>,
    ack: Option<S::Ack>,
) {
    let failed = |error| match paused {
        Some(_) => ServerEvent::PauseError(error),
        None => ServerEvent::ResumeError(error),
    };
    let Some((agent, username)) = agent_of(agents, socket) else {
        return reply::event(agents, socket, failed(Refusal::NotConnected), ack);
    };
    let done = match paused {
        Some(reason) => agents.platform.pause(&agent, reason).await,
        None => agents.platform.resume(&agent).await,
    };
    if let Err(error) = done {
        let error = Refusal::Platform {
            subject: Subject::TheAgent,
            error,
        };
        return reply::event(agents, socket, failed(error), ack);
    }
    let told = match paused {
        Some(reason) => ServerEvent::UserPaused { username, reason },
        None => ServerEvent::UserResumed { username },
    };
    // Every socket of the session hears of it once; the asker's own reply is that event.
    if agents.state().paused(&agents.sink, &agent, paused, true) {
        if let Some(ack) = ack {
            reply::answer(agents, socket, ack, AckReply::Event(told));
        }
    } else {
        reply::event(agents, socket, told, ack);
    }
}

/// `TRANSFER_CALL {callId, destination}`.
pub(super) async fn transfer<P: Platform, S: Sink>(
    agents: &Arc<Agents<P, S>>,
    socket: SocketId,
    call: CallId,
    destination: &str,
    ack: Option<S::Ack>,
) {
    let target = super::held_call(&agents.state().registry, socket, call);
    let result = match target {
        Err(refusal) => Err(refusal),
        Ok((agent, among)) => {
            let current = if among.alone {
                Ok(())
            } else {
                super::confirm_current(agents, &agent, &among).await
            };
            match current {
                Ok(()) => agents
                    .platform
                    .transfer(&agent, destination)
                    .await
                    .map_err(|error| Refusal::Platform {
                        subject: Subject::Call(call),
                        error,
                    }),
                Err(refusal) => Err(refusal),
            }
        }
    };
    match result {
        Ok(()) => {
            if let Some(ack) = ack {
                reply::answer(agents, socket, ack, AckReply::Accepted(call));
            }
        }
        Err(error) => refuse_transfer(agents, socket, call, error, ack),
    }
}

/// Answers TRANSFER_CALL for `call` with TRANSFER_CALL_ERROR.
pub(super) fn refuse_transfer<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    socket: SocketId,
    call: CallId,
    error: Refusal,
    ack: Option<S::Ack>,
) {
    let call = Some(Scalar::Text(call.to_string()));
    reply::event(
        agents,
        socket,
        ServerEvent::TransferCallError { call, error },
        ack,
    );
}
