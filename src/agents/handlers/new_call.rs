//! `NEW_CALL_ANSWERED` and `NEW_CALL_ERROR`: what the UI says about a NEW_CALL it received.
//! Neither has a reply event; refusals are logged, counted and told to the acknowledgement.

use std::sync::Arc;
use std::time::SystemTime;

use tracing::{debug, warn};

use crate::agents::event::{AckReply, SocketId};
use crate::agents::refusal::Refusal;
use crate::agents::{Agents, Platform, Sink, now};
use crate::converja::CallId;
use crate::store::Change;

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
            agents.answer(socket, ack, AckReply::Accepted(call));
        }
    } else {
        agents.refuse(socket, ack, Refusal::NotThisConnectionsCall(call));
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
                agents.answer(socket, ack, AckReply::Accepted(call));
            }
            agents.act_on_rejection(agent, among);
        }
        Err(refusal) => agents.refuse(socket, ack, refusal),
    }
}
