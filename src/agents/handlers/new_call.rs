//! `NEW_CALL_ANSWERED` and `NEW_CALL_ERROR`: what the UI says about a NEW_CALL it received.
//! Neither has a reply event; refusals are logged, counted and told to the acknowledgement.

use std::sync::Arc;
use std::time::SystemTime;

use tracing::{debug, warn};

use super::reply;
use crate::agents::event::{AckReply, SocketId};
use crate::agents::refusal::Refusal;
use crate::agents::registry::Among;
use crate::agents::{Agents, Platform, Sink, now};
use crate::config::OnCallError;
use crate::converja::{AgentId, CallId};
use crate::store::Change;
use crate::telemetry;

/// The UI showed the call: it will not be reported as unanswered.
pub(super) fn answered<P: Platform, S: Sink>(
    agents: &Arc<Agents<P, S>>,
    socket: SocketId,
    call: CallId,
    ack: Option<S::Ack>,
) {
    if agents.state().registry.answered(socket, call) {
        debug!(%call, "call answered");
        if let Some(ack) = ack {
            reply::answer(agents, socket, ack, AckReply::Accepted(call));
        }
    } else {
        reply::refuse(agents, socket, ack, Refusal::NotThisConnectionsCall(call));
    }
}

/// The UI could not take the call: its slot is freed at once, it is not offered again while
/// the platform has it (not even after a restart: the rejection is stored before the
/// acknowledgement), and `on_call_error` is applied.
pub(super) async fn rejected<P: Platform, S: Sink>(
    agents: &Arc<Agents<P, S>>,
    socket: SocketId,
    call: CallId,
    reason: &str,
    ack: Option<S::Ack>,
) {
    let target = {
        let mut state = agents.state();
        let target = super::held_call(&state.registry, socket, call).and_then(|held| {
            let rejected = state.registry.reject(socket, call);
            rejected
                .map(|r| (held, r))
                .ok_or(Refusal::NotYourCall(call))
        });
        if target.is_ok() {
            state.deliver_changed(&agents.sink, now());
        }
        target
    };
    match target {
        Ok(((agent, among), (queue, started))) => {
            warn!(%agent, %call, %reason, "agent UI rejected a call");
            let journal = agents.journal();
            let stored = journal.commit(Change::Rejected {
                call,
                at: SystemTime::now(),
                queue,
                started,
            });
            if let Err(error) = stored.await {
                warn!(%call, %error, "rejection not stored: a restart may offer the call again");
            }
            if let Some(ack) = ack {
                reply::answer(agents, socket, ack, AckReply::Accepted(call));
            }
            act_on_rejection(agents, agent, among);
        }
        Err(refusal) => reply::refuse(agents, socket, ack, refusal),
    }
}

/// Applies `on_call_error` for a call the agent rejected, in the background. With other
/// calls held, only if the rejected call is the platform's current one: the platform's
/// hangup and transfer act on that one, and must never reach a call nobody named.
fn act_on_rejection<P: Platform, S: Sink>(
    agents: &Arc<Agents<P, S>>,
    agent: AgentId,
    among: Among,
) {
    let policy = agents.settings.on_call_error.clone();
    if policy == OnCallError::None {
        return;
    }
    let core = agents.clone();
    agents.tasks.spawn(async move {
        let call = among.call;
        if !among.alone
            && let Err(why) = super::confirm_current(&core, &agent, &among).await
        {
            warn!(%agent, %call, ?policy, reason = %why, "on_call_error action skipped");
            metrics::counter!(telemetry::SOCKET_EVENTS, "event" => "NEW_CALL_ERROR", "outcome" => "action_skipped").increment(1);
            return;
        }
        let result = match &policy {
            OnCallError::None => return,
            OnCallError::Hangup => core.platform.end_call(&agent).await,
            OnCallError::Transfer(to) => core.platform.transfer(&agent, to).await,
        };
        if let Err(e) = result {
            warn!(%agent, %call, ?policy, error = %e, "on_call_error action failed");
        }
    });
}
