//! The task that owns the XMPP stream and the handle the rest of the bridge talks to it with.

mod connection;
mod inbound;
mod rooms;

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
/// Messages received but not yet taken by the consumer; past this the link stops reading the
/// socket, which pushes back on the server instead of growing memory.
const INBOUND_QUEUE: usize = 4096;

/// What a [`Link`] asks of the link task.
enum Command {
    Send {
        stanza: Box<Message>,
        done: oneshot::Sender<Result<(), LinkError>>,
    },
    Join {
        room: BareJid,
        nick: String,
        done: oneshot::Sender<Result<(), LinkError>>,
    },
    Leave {
        room: BareJid,
    },
}

/// A cheap, cloneable handle to the link task.
#[derive(Clone, Debug)]
pub struct Link {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<LinkState>,
}

impl Link {
    /// Starts the link task; it connects at once and keeps reconnecting until `cancel`.
    pub fn spawn(
        settings: ConnectSettings,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> (Link, mpsc::Receiver<Inbound>) {
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
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
            inbound: inbound_tx,
            outq: VecDeque::new(),
            rooms: BTreeMap::new(),
            pings_sent: 0,
            state: state_tx,
            cancel,
            tracker: tracker.clone(),
        };
        let span = tracing::info_span!("xmpp_link");
        tracker.spawn(tracing::Instrument::instrument(task.run(), span));
        (Link { commands, state }, inbound_rx)
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
        self.command(|done| Command::Send { stanza, done }).await?;
        crate::telemetry::latency::stanza_written();
        Ok(())
    }

    /// Sends a message to a whole room.
    pub async fn send_groupchat(
        &self,
        room: BareJid,
        id: String,
        body: String,
    ) -> Result<(), LinkError> {
        let stanza = message(MessageType::Groupchat, room.into(), id, body);
        self.command(|done| Command::Send { stanza, done }).await
    }

    /// Joins `room` as `nick` (or a suffixed nick on conflict) and waits for the server's
    /// confirmation. The room stays joined, across reconnects, until [`Link::leave`]; an
    /// error here still leaves the link retrying in the background.
    pub async fn join(&self, room: BareJid, nick: &str) -> Result<(), LinkError> {
        let nick = nick.to_owned();
        self.command(|done| Command::Join { room, nick, done })
            .await
    }

    /// Leaves `room` and stops rejoining it.
    pub async fn leave(&self, room: BareJid) {
        let _ = self.commands.send(Command::Leave { room }).await;
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
    inbound: mpsc::Sender<Inbound>,
    outq: VecDeque<Inbound>,
    rooms: BTreeMap<BareJid, Room>,
    /// Self-pings sent on this link, numbering their ids.
    pings_sent: u64,
    state: watch::Sender<LinkState>,
    cancel: CancellationToken,
    /// Where transport tasks (a BOSH session) are spawned, to be joined at shutdown.
    tracker: TaskTracker,
}

/// Writes one stanza and flushes it.
async fn write(stream: &mut Stream, stanza: Stanza) -> Result<(), String> {
    stream
        .send(&XmppStreamElement::Stanza(stanza))
        .await
        .map_err(|e| format!("write failed: {e}"))
}
