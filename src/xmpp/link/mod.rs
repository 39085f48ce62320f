//! The task that owns the XMPP stream and the handle the rest of the bridge talks to it with.

mod connection;
mod inbound;
mod rooms;
mod self_ping;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use futures::SinkExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::{BareJid, FullJid, Jid};
use tokio_xmpp::parsers::message::{Id, Lang, Message, MessageType};
use tokio_xmpp::xmlstream::XmppStreamElement;

use super::{ConnectSettings, Inbound, LinkError, LinkState, LinkStatus, Stream};
use rooms::Room;

/// Commands queued to the link task. Bounded: a caller waits when the link is this far behind.
const COMMAND_QUEUE: usize = 4096;
/// Messages received but not yet taken by a queued consumer; past this the link stops reading
/// the socket, which pushes back on the server instead of growing memory.
const INBOUND_QUEUE: usize = 4096;

/// Takes what the link receives on the link task itself, as it is read: no hand-off to
/// another task between a stanza read and the request or subscriber waiting for it. It runs
/// between reads, so it must neither block nor wait.
pub trait InboundHandler: Send + 'static {
    /// Takes one thing the link received.
    fn handle(&mut self, item: Inbound);
    /// The link has stopped for good; nothing more will come.
    fn stopped(&mut self);
}

/// Where the link task delivers what it receives.
enum Consumer {
    /// Handled on the link task, as it arrives.
    Inline(Box<dyn InboundHandler>),
    /// Queued to another task; the link stops reading while the queue is full.
    Queue(mpsc::Sender<Inbound>),
}

impl Consumer {
    /// The queue, if what the link receives goes to one.
    fn queue(&self) -> Option<&mpsc::Sender<Inbound>> {
        match self {
            Consumer::Queue(tx) => Some(tx),
            Consumer::Inline(_) => None,
        }
    }
}

/// Room for one item in `queue`. Never ready without one: an inline handler is fed directly
/// by [`LinkTask::deliver`].
async fn reserve(queue: Option<&mpsc::Sender<Inbound>>) -> Option<mpsc::Permit<'_, Inbound>> {
    match queue {
        Some(tx) => tx.reserve().await.ok(),
        None => std::future::pending().await,
    }
}

/// What a [`Link`] asks of the link task.
enum Command {
    Send {
        stanza: Box<Message>,
        /// Where the latency measurement of this stanza started, if it ends here.
        measured: Option<tokio::time::Instant>,
        done: oneshot::Sender<Result<(), LinkError>>,
    },
    Join {
        room: BareJid,
        nick: String,
        done: oneshot::Sender<Result<(), LinkError>>,
    },
    Leave {
        room: BareJid,
        /// Told once the link has taken the leave and no longer lists the room as joined.
        done: oneshot::Sender<()>,
    },
}

/// A cheap, cloneable handle to the link task.
#[derive(Clone, Debug)]
pub struct Link {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<LinkState>,
}

impl Link {
    /// Starts the link task; it connects at once and keeps reconnecting until `cancel`. What
    /// it receives is queued to the returned receiver.
    pub fn spawn(
        settings: ConnectSettings,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> (Link, mpsc::Receiver<Inbound>) {
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let link = Self::start(settings, Consumer::Queue(inbound_tx), tracker, cancel);
        (link, inbound_rx)
    }

    /// Like [`spawn`](Self::spawn), with what the link receives given to `handler` on the
    /// link task as it is read.
    pub fn spawn_handled(
        settings: ConnectSettings,
        handler: impl InboundHandler,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Link {
        Self::start(
            settings,
            Consumer::Inline(Box::new(handler)),
            tracker,
            cancel,
        )
    }

    fn start(
        settings: ConnectSettings,
        consumer: Consumer,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Link {
        let (task, link) = LinkTask::new(settings, consumer, tracker, cancel);
        let span = tracing::info_span!("xmpp_link");
        tracker.spawn(tracing::Instrument::instrument(task.run(), span));
        link
    }

    async fn command(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), LinkError>>) -> Command,
    ) -> Result<(), LinkError> {
        let (done, rx) = oneshot::channel();
        self.commands
            .send(make(done))
            .await
            .map_err(|_| LinkError::Closed)?;
        rx.await.unwrap_or(Err(LinkError::Closed))
    }

    /// Sends a private message to a room occupant; returns once it is written to the socket.
    pub async fn send_chat(&self, to: FullJid, id: String, body: String) -> Result<(), LinkError> {
        let stanza = message(MessageType::Chat, to.into(), id, body);
        let measured = crate::telemetry::latency::sending();
        self.command(|done| Command::Send {
            stanza,
            measured,
            done,
        })
        .await
    }

    /// Sends a message to a whole room.
    pub async fn send_groupchat(
        &self,
        room: BareJid,
        id: String,
        body: String,
    ) -> Result<(), LinkError> {
        let stanza = message(MessageType::Groupchat, room.into(), id, body);
        self.command(|done| Command::Send {
            stanza,
            measured: None,
            done,
        })
        .await
    }

    /// Joins `room` as `nick` (or a suffixed nick on conflict) and waits for the server's
    /// confirmation. The room stays joined, across reconnects, until [`Link::leave`]; an
    /// error here still leaves the link retrying in the background.
    pub async fn join(&self, room: BareJid, nick: &str) -> Result<(), LinkError> {
        let nick = nick.to_owned();
        self.command(|done| Command::Join { room, nick, done })
            .await
    }

    /// Leaves `room` and stops rejoining it. Returns once the link has taken the leave: a
    /// join after it is ordered after the leave, and the room is no longer listed as joined.
    pub async fn leave(&self, room: BareJid) {
        let (done, taken) = oneshot::channel();
        if self
            .commands
            .send(Command::Leave { room, done })
            .await
            .is_ok()
        {
            let _ = taken.await;
        }
    }

    /// Watches the link's state.
    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }

    /// Whether the link is online now.
    pub fn is_online(&self) -> bool {
        self.state.borrow().status == LinkStatus::Online
    }
}

fn message(type_: MessageType, to: Jid, id: String, body: String) -> Box<Message> {
    let mut msg = Message::new_with_type(type_, Some(to)).with_body(Lang::default(), body);
    msg.id = Some(Id(id));
    Box::new(msg)
}

/// The link task's state; its behaviour is split by concern across the submodules.
struct LinkTask {
    settings: ConnectSettings,
    commands: mpsc::Receiver<Command>,
    consumer: Consumer,
    /// Received, not yet delivered: always empty between steps for an inline handler.
    outq: VecDeque<Inbound>,
    rooms: BTreeMap<BareJid, Room>,
    /// Rooms left on this stream whose unavailable self-presence has not come yet, with when
    /// the leave went out. A join of one of them waits for it: until then, what the room sends
    /// belongs to the occupancy being left.
    leaving: BTreeMap<BareJid, tokio::time::Instant>,
    /// Which rooms to check that they still have us, and when.
    pings: self_ping::SelfPings,
    state: watch::Sender<LinkState>,
    cancel: CancellationToken,
    /// Where transport tasks (a BOSH session) are spawned, to be joined at shutdown.
    tracker: TaskTracker,
}

impl LinkTask {
    /// A link task in no room yet, not connected, and the handle that drives it.
    fn new(
        settings: ConnectSettings,
        consumer: Consumer,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> (LinkTask, Link) {
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (state_tx, state) = watch::channel(LinkState {
            status: LinkStatus::Connecting,
            bound: None,
            joined: Default::default(),
            last_error: None,
            sessions: 0,
        });
        let task = LinkTask {
            settings,
            commands: command_rx,
            consumer,
            outq: VecDeque::new(),
            rooms: BTreeMap::new(),
            leaving: BTreeMap::new(),
            pings: Default::default(),
            state: state_tx,
            cancel,
            tracker: tracker.clone(),
        };
        (task, Link { commands, state })
    }

    /// Hands everything received so far to an inline handler; a queue takes it as it has
    /// room, in the task's select loops.
    fn deliver(&mut self) {
        if let Consumer::Inline(handler) = &mut self.consumer {
            while let Some(item) = self.outq.pop_front() {
                handler.handle(item);
            }
        }
    }
}

/// Writes one stanza and flushes it.
async fn write(stream: &mut Stream, stanza: Stanza) -> Result<(), String> {
    stream
        .send(&XmppStreamElement::Stanza(stanza))
        .await
        .map_err(|e| format!("write failed: {e}"))
}
