//! How a handler answers its socket: the reply event, the acknowledgement, or both; and a
//! refusal of an event that has no error event of its own. Every answer goes through the
//! core's lock, so it reaches the socket in order with what the state sent it.

use tracing::{info, warn};

use crate::agents::event::{AckReply, ServerEvent, SocketId};
use crate::agents::refusal::Refusal;
use crate::agents::{Agents, Platform, Sink};
use crate::telemetry;

/// Emits `event` to `socket` and answers the acknowledgement with the same payload.
pub(super) fn event<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    socket: SocketId,
    event: ServerEvent,
    ack: Option<S::Ack>,
) {
    if let Some(error) = event.error() {
        let outcome = if error.is_failure() {
            "failed"
        } else {
            "refused"
        };
        info!(event = event.name(), reason = error.reason(), %error, "event not done");
        metrics::counter!(telemetry::SOCKET_EVENTS, "event" => event.name(), "outcome" => outcome)
            .increment(1);
    }
    if let Err(e) = agents.state().emit_to(&agents.sink, socket, &event) {
        warn!(socket = socket.0, event = event.name(), error = ?e, "reply not delivered");
    }
    if let Some(ack) = ack {
        answer(agents, socket, ack, AckReply::Event(event));
    }
}

/// Refuses an event that has no error event of its own: logged, counted, and told to the
/// acknowledgement callback if there is one.
pub(super) fn refuse<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    socket: SocketId,
    ack: Option<S::Ack>,
    error: Refusal,
) {
    warn!(reason = error.reason(), %error, "event refused");
    metrics::counter!(telemetry::SOCKET_EVENTS, "event" => error.reason(), "outcome" => "refused")
        .increment(1);
    if let Some(ack) = ack {
        answer(agents, socket, ack, AckReply::Refused(error));
    }
}

/// Answers an acknowledgement of `socket`, in order with its events.
pub(super) fn answer<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    socket: SocketId,
    ack: S::Ack,
    reply: AckReply,
) {
    agents.state().answer_to(&agents.sink, socket, ack, reply);
}
