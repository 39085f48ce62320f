//! One admitted socket as the core keeps it: its handle, its inbox, and what its buffer
//! did not take yet, held in order until there is room.

use std::collections::VecDeque;

use crate::agents::event::{AckReply, ServerEvent};
use crate::agents::inbox::Queued;
use crate::agents::port::{AckError, EmitError, Sink};
use crate::agents::resume::PidKey;

/// Something the socket's buffer did not take yet.
pub(super) enum Outgoing<A> {
    /// An event, with its offset.
    Event(ServerEvent, Option<String>),
    /// An acknowledgement's answer.
    Answer(A, AckReply),
}

/// One admitted socket.
pub(super) struct SocketEntry<T, A> {
    pub(super) handle: T,
    /// The username its handshake token proves, when tokens are on.
    pub(super) proven: Option<String>,
    /// Its private session id, as bound to the session it acts for.
    pub(super) pid: PidKey,
    /// Admitted, but the client is not yet told it is connected: events wait in the backlog.
    pub(super) connecting: bool,
    /// It took its session back with calls on screen whose end it may have missed: they are
    /// checked once the registry holds what the platform has.
    pub(super) unsettled: bool,
    /// The username of a session its UI still shows but that ended while it was away: the
    /// UI is told once connected.
    pub(super) farewell: Option<String>,
    /// What the socket's buffer did not take yet, oldest first.
    pub(super) backlog: VecDeque<Outgoing<A>>,
    /// Events the socket sent that wait for the one being handled, oldest first.
    pub(super) inbox: VecDeque<Queued<A>>,
    /// Whether a task is handling the socket's events now.
    pub(super) serving: bool,
    /// The socket is gone; it is forgotten once its inbox is empty.
    pub(super) closing: bool,
}

/// What became of something handed to a socket's buffer.
pub(super) enum Handed<A> {
    /// In the buffer.
    Sent,
    /// No room: it comes back.
    Full(Outgoing<A>),
    /// The socket is gone.
    Closed,
}

impl<T, A> SocketEntry<T, A> {
    /// Whether what is sent now may go straight to the buffer: nothing waits before it.
    pub(super) fn open(&self) -> bool {
        self.backlog.is_empty() && !self.connecting
    }

    /// Hands `out` to the socket's buffer.
    pub(super) fn hand<S: Sink<Socket = T, Ack = A>>(
        &self,
        sink: &S,
        out: Outgoing<A>,
    ) -> Handed<A> {
        match out {
            Outgoing::Event(event, offset) => {
                match sink.emit(&self.handle, &event, offset.as_deref()) {
                    Ok(()) => Handed::Sent,
                    Err(EmitError::Full) => Handed::Full(Outgoing::Event(event, offset)),
                    Err(EmitError::Closed) => Handed::Closed,
                }
            }
            Outgoing::Answer(ack, reply) => match sink.ack(ack, &reply) {
                Ok(()) => Handed::Sent,
                Err(AckError::Full(ack)) => Handed::Full(Outgoing::Answer(ack, reply)),
                Err(AckError::Closed) => Handed::Closed,
            },
        }
    }

    /// Sends what the buffer accepts of the backlog; whether some is left.
    pub(super) fn flush<S: Sink<Socket = T, Ack = A>>(&mut self, sink: &S) -> bool {
        while let Some(next) = self.backlog.pop_front() {
            match self.hand(sink, next) {
                Handed::Sent => {}
                Handed::Full(back) => {
                    self.backlog.push_front(back);
                    return true;
                }
                Handed::Closed => self.backlog.clear(),
            }
        }
        false
    }
}
