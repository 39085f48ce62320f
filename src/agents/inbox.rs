//! A socket's inbox and the task that empties it. Events of one socket are handled one
//! after the other, in the order sent, by a task that exists only while the socket has
//! something waiting; the inbox itself sits behind the core's lock, in the socket's entry.

use std::sync::Arc;
use std::time::Duration;

use tracing::{Instrument, debug, info_span};

use super::event::ClientEvent;
use super::refusal::Refusal;
use super::{Agents, Platform, Sink, SocketId, handlers, now};
use crate::telemetry::latency;

/// How long a socket's task waits for room in the socket's buffer before it gives the
/// socket up as no longer reading.
pub(super) const STALL_AFTER: Duration = Duration::from_secs(10);
/// The step of that wait.
const PACE: Duration = Duration::from_millis(5);

/// What a socket's task receives, in the order the socket sent it.
#[derive(Debug)]
pub enum FromSocket<A> {
    /// An event, with its acknowledgement callback if the UI passed one.
    Event(ClientEvent, Option<A>),
    /// An event the edge refused (a limit), to be answered in its turn.
    Refused(ClientEvent, Option<A>, Refusal),
    /// The socket is gone; everything it sent before is handled first.
    Closed,
}

/// An event a socket sent, waiting for the ones before it.
pub(super) struct Queued<A> {
    /// The event, parsed.
    pub(super) event: ClientEvent,
    /// Its acknowledgement callback, if the UI passed one.
    pub(super) ack: Option<A>,
    /// When it was taken in.
    pub(super) arrived: tokio::time::Instant,
    /// Why it is refused, when it is: answered in its turn, so a socket hears about every
    /// event in the order it sent them.
    pub(super) refusal: Option<Refusal>,
}

/// What a socket's task does next.
pub(super) enum Next<A> {
    /// Handle (or refuse) this event.
    Event(Queued<A>),
    /// Nothing waits: the task ends, and the next event starts a new one.
    Idle,
    /// The socket closed and everything it sent is handled.
    Closed,
}

/// Why an event could not be queued.
pub(super) enum NotQueued<A> {
    /// Refused at once, with its acknowledgement.
    Refused(ClientEvent, Option<A>, Refusal),
    /// The socket sent far more than it reads: it is to be dropped.
    Flooding,
}

impl<P: Platform, S: Sink> Agents<P, S> {
    /// Takes what socket `id` sent, to be handled after everything it sent before. An event
    /// that does not fit in the socket's inbox, or comes during shutdown, is refused at once.
    pub fn submit(self: &Arc<Self>, id: SocketId, item: FromSocket<S::Ack>) {
        let queued = |event, ack, refusal| Queued {
            event,
            ack,
            arrived: tokio::time::Instant::now(),
            refusal,
        };
        let queued = match item {
            FromSocket::Event(event, ack) => self.state().queue_event(id, queued(event, ack, None)),
            FromSocket::Refused(event, ack, refusal) => self
                .state()
                .queue_event(id, queued(event, ack, Some(refusal))),
            FromSocket::Closed => Ok(self.state().queue_close(id)),
        };
        let start = match queued {
            Ok(start) => start,
            Err(not) => {
                return match *not {
                    NotQueued::Refused(event, ack, refusal) => {
                        handlers::turn_away(self, id, event, ack, refusal);
                    }
                    NotQueued::Flooding => self.state().drop_flooding(&self.sink, id),
                };
            }
        };
        if start {
            let agents = self.clone();
            self.tasks.spawn(
                async move { agents.serve_socket(id).await }
                    .instrument(info_span!("socket", id = id.0)),
            );
        }
    }

    /// Handles a socket's waiting events in order, then ends: a socket costs a task only
    /// while it has something to handle.
    async fn serve_socket(self: Arc<Self>, id: SocketId) {
        loop {
            let next = self.state().next_event(id, now());
            match next {
                Next::Event(Queued {
                    event,
                    ack,
                    arrived,
                    refusal,
                }) => {
                    if !self.paced(id).await {
                        continue;
                    }
                    if let Some(refusal) = refusal {
                        handlers::turn_away(&self, id, event, ack, refusal);
                        continue;
                    }
                    let span = info_span!("socket_event", socket = id.0, event = event.label());
                    let handled = latency::event(
                        arrived,
                        handlers::handle(&self, id, event, ack).instrument(span),
                    );
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = handled => {}
                    }
                }
                Next::Idle => break,
                Next::Closed => {
                    debug!(socket = id.0, "socket closed");
                    break;
                }
            }
        }
        self.socket_idle.notify_waiters();
    }

    /// Shutdown: refuses every event from now on and waits until the events already taken
    /// are handled, so a UI hears how its last requests ended before its socket closes.
    /// The caller bounds the wait.
    pub async fn drain(&self) {
        loop {
            let idle = self.socket_idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if !self.state().drain() {
                return;
            }
            idle.await;
        }
    }

    /// Waits until what socket `id` was sent so far is in its buffer, so that a socket that
    /// sends faster than it reads still gets every answer, in order; false if it stopped
    /// reading for [`STALL_AFTER`] and was dropped. socketioxide has no signal for room in a
    /// buffer, hence the short steps.
    async fn paced(&self, id: SocketId) -> bool {
        let deadline = tokio::time::Instant::now() + STALL_AFTER;
        loop {
            if !self.state().flush_socket(&self.sink, id) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                self.state().drop_stalled(&self.sink, id);
                return false;
            }
            tokio::time::sleep(PACE).await;
        }
    }
}
