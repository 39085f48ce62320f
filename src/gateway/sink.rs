//! The agents core's [`Sink`] on socket.io: an emit queues a packet on the socket without
//! waiting; a full buffer is reported so that a NEW_CALL can be sent again later.

use std::convert::Infallible;
use std::sync::Arc;

use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::handler::{FromMessageParts, Value};
use socketioxide::socket::Socket;
use socketioxide::{SendError, SocketError};

use crate::agents::{AckError, AckReply, EmitError, ServerEvent, Sink};
use crate::telemetry;
use crate::telemetry::latency;

/// An acknowledgement callback: the socket and the id its client waits on. Unlike
/// socketioxide's `AckSender`, it survives a full buffer and is answered once there is room.
pub struct SocketAck {
    socket: Arc<Socket<LocalAdapter>>,
    id: i64,
}

impl SocketAck {
    /// The callback `id` of `socket`.
    pub(super) fn new(socket: Arc<Socket<LocalAdapter>>, id: i64) -> Self {
        Self { socket, id }
    }

    fn sender(&self) -> AckSender {
        // The acknowledgement extractor reads the socket and the id alone.
        let mut unused = Value::Bytes(bytes::Bytes::new());
        AckSender::from_message_parts(&self.socket, &mut unused, &Some(self.id))
            .unwrap_or_else(|never: Infallible| match never {})
    }
}

/// Emits to socket.io sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketSink;

impl Sink for SocketSink {
    type Socket = SocketRef;
    type Ack = SocketAck;

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

    fn ack(&self, ack: SocketAck, reply: &AckReply) -> Result<(), AckError<SocketAck>> {
        let (outcome, result) = match ack.sender().send(reply) {
            Ok(()) => ("ok", Ok(())),
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                ("held", Err(AckError::Full(ack)))
            }
            Err(_) => ("closed", Err(AckError::Closed)),
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
