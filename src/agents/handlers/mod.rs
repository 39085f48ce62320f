//! One handler per event of the contract. Each reads top to bottom: check with the state,
//! ask the platform if the event needs it, apply the answer, reply.

mod end_call;
mod extensions;
mod new_call;
mod reply;
mod user_connect;
mod user_disconnect;

use std::sync::Arc;

use tracing::warn;

use super::event::{AckReply, ClientEvent, ClientEventKind, Echo, ServerEvent, SocketId};
use super::refusal::{Refusal, Subject};
use super::registry::{Among, Registry};
use super::{Agents, Platform, Sink};
use crate::converja::{AgentId, CallId};
use crate::telemetry;

/// Handles one event of `socket`; returns once it is fully done, reply sent.
pub(super) async fn handle<P: Platform, S: Sink>(
    agents: &Arc<Agents<P, S>>,
    socket: SocketId,
    event: ClientEvent,
    ack: Option<S::Ack>,
) {
    metrics::counter!(telemetry::SOCKET_EVENTS, "event" => event.label(), "outcome" => "received")
        .increment(1);
    // Without `agents.extensions` the contract is the published one: its additions are
    // events like any other it does not define.
    let event = match event.extension() {
        Some(kind) if !agents.settings.extensions => ClientEvent::Unknown(kind.name().to_owned()),
        _ => event,
    };
    match event {
        ClientEvent::UserConnect(login) => user_connect::handle(agents, socket, login, ack).await,
        ClientEvent::UserDisconnect(named) => {
            user_disconnect::handle(agents, socket, named, ack).await;
        }
        ClientEvent::EndCall(call) => end_call::handle(agents, socket, call, ack).await,
        ClientEvent::NewCallAnswered(call) => new_call::answered(agents, socket, call, ack),
        ClientEvent::NewCallError { call, reason } => {
            new_call::rejected(agents, socket, call, &reason, ack).await;
        }
        ClientEvent::Pause(reason) => {
            extensions::set_paused(agents, socket, Some(reason), ack).await;
        }
        ClientEvent::Resume => extensions::set_paused(agents, socket, None, ack).await,
        ClientEvent::TransferCall { call, destination } => {
            extensions::transfer(agents, socket, call, &destination, ack).await;
        }
        ClientEvent::Invalid { kind, error, echo } => {
            invalid(agents, socket, kind, Refusal::Payload(error), echo, ack);
        }
        ClientEvent::Unknown(name) => {
            warn!(%name, "unknown socket.io event ignored");
            metrics::counter!(telemetry::UNKNOWN_EVENTS).increment(1);
            if let Some(ack) = ack {
                let refusal = AckReply::Refused(Refusal::UnknownEvent(name));
                reply::answer(agents, socket, ack, refusal);
            }
        }
    }
}

/// Answers an event the core did not take (shutdown, a full inbox) as its handler answers
/// a refusal, so a UI that passed no acknowledgement hears it too.
pub(super) fn turn_away<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    socket: SocketId,
    event: ClientEvent,
    ack: Option<S::Ack>,
    error: Refusal,
) {
    match event {
        ClientEvent::UserConnect(login) => {
            let echo = user_connect::echo(&login);
            reply::event(
                agents,
                socket,
                ServerEvent::UserConnectionError { echo, error },
                ack,
            );
        }
        ClientEvent::UserDisconnect(named) => {
            let username = named.unwrap_or_default();
            reply::event(
                agents,
                socket,
                ServerEvent::UserDisconnectionError { username, error },
                ack,
            );
        }
        ClientEvent::EndCall(call) => end_call::refuse(agents, socket, call, error, ack),
        ClientEvent::TransferCall { call, .. } => {
            extensions::refuse_transfer(agents, socket, call, error, ack);
        }
        ClientEvent::Pause(_) => {
            reply::event(agents, socket, ServerEvent::PauseError(error), ack);
        }
        ClientEvent::Resume => reply::event(agents, socket, ServerEvent::ResumeError(error), ack),
        ClientEvent::Invalid { kind, echo, .. } => invalid(agents, socket, kind, error, echo, ack),
        ClientEvent::NewCallAnswered(_)
        | ClientEvent::NewCallError { .. }
        | ClientEvent::Unknown(_) => reply::refuse(agents, socket, ack, error),
    }
}

/// The agent of `socket`'s session and where `call` stands among its calls, or why the
/// socket may not act on that call.
fn held_call(
    registry: &Registry,
    socket: SocketId,
    call: CallId,
) -> Result<(AgentId, Among), Refusal> {
    let session = registry.session_of(socket).ok_or(Refusal::NotConnected)?;
    let among = session.among(call).ok_or(Refusal::NotYourCall(call))?;
    Ok((session.agent.clone(), among))
}

/// Answers an event whose payload did not parse with its own error event, if it has one.
fn invalid<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    socket: SocketId,
    kind: ClientEventKind,
    error: Refusal,
    echo: Echo,
    ack: Option<S::Ack>,
) {
    let reply = match kind {
        ClientEventKind::UserConnect => ServerEvent::UserConnectionError { echo, error },
        ClientEventKind::EndCall => ServerEvent::EndCallError {
            call: echo.call_id,
            error,
        },
        ClientEventKind::UserDisconnect => ServerEvent::UserDisconnectionError {
            username: String::new(),
            error,
        },
        ClientEventKind::TransferCall => ServerEvent::TransferCallError {
            call: echo.call_id,
            error,
        },
        ClientEventKind::Pause => ServerEvent::PauseError(error),
        ClientEventKind::Resume => ServerEvent::ResumeError(error),
        ClientEventKind::NewCallAnswered | ClientEventKind::NewCallError => {
            return reply::refuse(agents, socket, ack, error);
        }
    };
    reply::event(agents, socket, reply, ack);
}

/// With several calls held, makes sure `among.call` is the one the platform considers
/// current: the only one its call requests act on.
async fn confirm_current<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    agent: &AgentId,
    among: &Among,
) -> Result<(), Refusal> {
    if among.caller_shared {
        return Err(Refusal::CurrentUnknown(among.call));
    }
    match agents.platform.current_caller(agent).await {
        Ok(Some(current)) if current == among.caller => Ok(()),
        Ok(Some(current)) => Err(Refusal::NotCurrent {
            call: among.call,
            current,
        }),
        Ok(None) => Err(Refusal::CurrentUnknown(among.call)),
        Err(error) => Err(Refusal::Platform {
            subject: Subject::Call(among.call),
            error,
        }),
    }
}
