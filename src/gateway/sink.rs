//! The agents core's [`Sink`] on socket.io: an emit queues a packet on the socket without
//! waiting; a full buffer is reported so that a NEW_CALL can be sent again later.

use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::{SendError, SocketError};

use tracing::warn;

use crate::agents::{AckReply, EmitError, ServerEvent, Sink};
use crate::telemetry;
use crate::telemetry::latency;

/// Emits to socket.io sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketSink;

impl Sink for SocketSink {
    type Socket = SocketRef;
    type Ack = AckSender;

    fn emit(
        &self,
        socket: &SocketRef,
        event: &ServerEvent,
        offset: Option<&str>,
    ) -> Result<(), EmitError> {
        // A tuple is sent as that many arguments; socket.io-client keeps a last string
        // argument as the offset it hands back on a reconnect.
        let sent = match offset {
            Some(offset) => socket.emit(event.name(), &(event, offset)),
            None => socket.emit(event.name(), event),
        };
        match sent {
            Ok(()) => {
                latency::emitted();
                Ok(())
            }
            Err(SendError::Socket(SocketError::InternalChannelFull)) => Err(EmitError::Full),
            Err(_) => Err(EmitError::Closed),
        }
    }

    fn ack(&self, ack: AckSender, reply: &AckReply) -> Result<(), EmitError> {
        let (outcome, result) = match ack.send(reply) {
            Ok(()) => ("ok", Ok(())),
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                // socketioxide consumes the acknowledgement: it cannot wait for room.
                warn!("acknowledgement lost: the client sent far more than it reads");
                ("full", Err(EmitError::Full))
            }
            Err(_) => ("closed", Err(EmitError::Closed)),
        };
        metrics::counter!(telemetry::EMITS, "event" => "ack", "outcome" => outcome).increment(1);
        result
    }

    fn disconnect(&self, socket: &SocketRef) -> bool {
        // socketioxide closes a socket only once its disconnect packet is queued; with the
        // buffer full, a client that resumes reading would otherwise find a live socket
        // the core has forgotten.
        !matches!(
            socket.clone().disconnect(),
            Err(SocketError::InternalChannelFull)
        )
    }
}
