//! `END_CALL {callId}`: `DELETE /calls/active` for the session's agent, then `CALL_ENDED` to
//! every socket of the session, or `END_CALL_ERROR` to the asker.
//!
//! The platform's request names no call: it ends the agent's current one. With one call
//! held that is the named call. With several, the platform is asked which is current first,
//! and the call the platform then reports ended is the one the UIs are told about.

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use super::reply;
use crate::agents::event::{AckReply, Scalar, ServerEvent, SocketId};
use crate::agents::refusal::{Refusal, Subject};
use crate::agents::registry::Among;
use crate::agents::{Agents, Platform, Sink};
use crate::converja::{AgentId, CallId};

/// How long the platform's `CallDidFinish` may follow its answer to the hangup.
const FINISH_PATIENCE: Duration = Duration::from_secs(5);

/// Ends the named call on the platform and tells the session, or tells the asker why not.
pub(super) async fn handle<P: Platform, S: Sink>(
    agents: &Arc<Agents<P, S>>,
    socket: SocketId,
    call: CallId,
    ack: Option<S::Ack>,
) {
    let target = super::held_call(&agents.state().registry, socket, call);
    let result = match target {
        Err(refusal) => Err(refusal),
        Ok((agent, among)) if among.alone => end_only_call(agents, &agent, call).await,
        Ok((agent, among)) => end_one_of_several(agents, socket, &agent, &among).await,
    };
    match result {
        Ok(()) => {
            if let Some(ack) = ack {
                reply::answer(
                    agents,
                    socket,
                    ack,
                    AckReply::Event(ServerEvent::CallEnded(call)),
                );
            }
        }
        Err(error) => refuse(agents, socket, call, error, ack),
    }
}

/// Answers END_CALL for `call` with END_CALL_ERROR.
pub(super) fn refuse<P: Platform, S: Sink>(
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
        ServerEvent::EndCallError { call, error },
        ack,
    );
}

fn refused(call: CallId) -> impl FnOnce(crate::converja::PlatformError) -> Refusal {
    move |error| Refusal::Platform {
        subject: Subject::Call(call),
        error,
    }
}

async fn end_only_call<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    agent: &AgentId,
    call: CallId,
) -> Result<(), Refusal> {
    agents
        .platform
        .end_call(agent)
        .await
        .map_err(refused(call))?;
    // CALL_ENDED goes to every socket once; if the platform's event came first, the asker
    // still gets its acknowledgement.
    agents.call_ended(call);
    Ok(())
}

async fn end_one_of_several<P: Platform, S: Sink>(
    agents: &Arc<Agents<P, S>>,
    socket: SocketId,
    agent: &AgentId,
    among: &Among,
) -> Result<(), Refusal> {
    super::confirm_current(agents, agent, among).await?;
    agents
        .platform
        .end_call(agent)
        .await
        .map_err(refused(among.call))?;
    // The platform's CallDidFinish says which call really ended; the UIs hear of that one.
    if call_gone(agents, socket, among.call, FINISH_PATIENCE).await {
        return Ok(());
    }
    warn!(%agent, call = %among.call, "hangup accepted but no call end followed; re-reading calls");
    agents.resync();
    Err(Refusal::Unconfirmed(among.call))
}

/// Waits until `socket`'s session no longer holds `call`, at most `limit`; whether it
/// happened.
async fn call_gone<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    socket: SocketId,
    call: CallId,
    limit: Duration,
) -> bool {
    let wait = async {
        loop {
            let ended = agents.call_ends.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let held = agents
                .state()
                .registry
                .session_of(socket)
                .is_some_and(|s| s.holds(call));
            if !held {
                return;
            }
            ended.await;
        }
    };
    tokio::time::timeout(limit, wait).await.is_ok()
}
