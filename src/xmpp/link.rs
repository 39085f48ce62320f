//! The task that owns the XMPP stream and the handle the rest of the bridge talks to it with.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::{BareJid, FullJid, Jid};
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::{Id, Lang, Message, MessageType};
use tokio_xmpp::parsers::muc::Muc;
use tokio_xmpp::parsers::muc::muc::History;
use tokio_xmpp::parsers::muc::user::{MucUser, Status};
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::xmlstream::{FallibleStreamElement, ReadError, XmppStreamElement};
use tracing::{debug, info, warn};

use super::{
    Backoff, ConnectSettings, Inbound, InboundMessage, LinkError, LinkState, LinkStatus,
    MessageKind, Stream, connect,
};
use crate::telemetry;

/// Commands queued to the link task. Bounded: a caller waits when the link is this far behind.
const COMMAND_QUEUE: usize = 4096;
/// Messages received but not yet taken by the consumer; past this the link stops reading the
/// socket, which pushes back on the server instead of growing memory.
const INBOUND_QUEUE: usize = 4096;
/// Stanzas written before one flush, so bursts share TCP segments.
const WRITE_BATCH: usize = 64;
/// A room join unanswered for this long is sent again.
const JOIN_ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// Nickname conflicts tolerated per room before it counts as a join failure.
const MAX_NICK_SUFFIX: u32 = 20;
/// First reconnection delay and its cap.
const RECONNECT_BASE: Duration = Duration::from_millis(250);
const RECONNECT_CAP: Duration = Duration::from_secs(30);

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
        self.command(|done| Command::Send { stanza, done }).await
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

/// What woke the online loop.
enum Wake {
    Cancelled,
    Command(Command),
    Read(Box<Option<Result<FallibleStreamElement, ReadError>>>),
    Tick,
}

fn unparseable(error: &dyn std::fmt::Display) {
    warn!(%error, "unparseable stanza ignored");
    metrics::counter!(telemetry::DROPPED, "reason" => "unparseable_stanza").increment(1);
}

struct Room {
    /// The nickname asked for in the configuration or by the caller.
    base_nick: String,
    /// The nickname in use (base plus a suffix after conflicts).
    nick: String,
    conflicts: u32,
    joined: bool,
    /// When the last join presence went out, while unanswered.
    join_sent: Option<Instant>,
    /// When to try again after a join error.
    retry_at: Option<Instant>,
    retry: Backoff,
    waiters: Vec<oneshot::Sender<Result<(), LinkError>>>,
}

impl Room {
    fn new(nick: String) -> Self {
        Room {
            base_nick: nick.clone(),
            nick,
            conflicts: 0,
            joined: false,
            join_sent: None,
            retry_at: None,
            retry: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            waiters: Vec::new(),
        }
    }

    fn settle(&mut self, result: Result<(), LinkError>) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(result.clone());
        }
    }
}

struct LinkTask {
    settings: ConnectSettings,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<Inbound>,
    outq: VecDeque<Inbound>,
    rooms: BTreeMap<BareJid, Room>,
    state: watch::Sender<LinkState>,
    cancel: CancellationToken,
    /// Where transport tasks (a BOSH session) are spawned, to be joined at shutdown.
    tracker: TaskTracker,
}

impl LinkTask {
    async fn run(mut self) {
        let mut backoff = Backoff::new(RECONNECT_BASE, RECONNECT_CAP);
        loop {
            self.state
                .send_modify(|s| s.status = LinkStatus::Connecting);
            let settings = self.settings.clone();
            let tracker = self.tracker.clone();
            let attempt = async move { connect(&settings, &tracker).await };
            let Some(outcome) = self.serve_offline(attempt).await else {
                break;
            };
            match outcome {
                Ok((stream, bound)) => {
                    metrics::counter!(telemetry::CONNECTS, "result" => "ok").increment(1);
                    backoff.reset();
                    let reason = self.online(stream, bound).await;
                    if self.cancel.is_cancelled() {
                        break;
                    }
                    warn!(%reason, "XMPP link lost; reconnecting");
                    self.went_offline(reason);
                }
                Err(e) => {
                    let result = if matches!(e, LinkError::Auth(_)) {
                        "auth_failed"
                    } else {
                        "error"
                    };
                    metrics::counter!(telemetry::CONNECTS, "result" => result).increment(1);
                    warn!(error = %e, endpoint = %self.settings.endpoint, "XMPP connection attempt failed");
                    self.state.send_modify(|s| {
                        s.status = LinkStatus::Offline;
                        s.last_error = Some(e.to_string());
                    });
                }
            }
            let delay = backoff.next_delay();
            debug!(?delay, "waiting before the next connection attempt");
            if self
                .serve_offline(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                break;
            }
        }
        for room in self.rooms.values_mut() {
            room.settle(Err(LinkError::Closed));
        }
        self.state.send_modify(|s| {
            s.status = LinkStatus::Offline;
            s.joined.clear();
            s.last_error = Some("shut down".into());
        });
        metrics::gauge!(telemetry::LINK_UP).set(0.0);
        info!("XMPP link stopped");
    }

    /// Runs `fut` while answering commands as an offline link does; `None` once cancelled.
    async fn serve_offline<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        loop {
            let cmd = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return None,
                result = &mut fut => return Some(result),
                Ok(permit) = self.inbound.reserve(), if !self.outq.is_empty() => {
                    if let Some(item) = self.outq.pop_front() {
                        permit.send(item);
                    }
                    continue;
                }
                Some(cmd) = self.commands.recv() => cmd,
            };
            self.command_offline(cmd);
        }
    }

    fn down_error(&self) -> LinkError {
        LinkError::Down(
            self.state
                .borrow()
                .last_error
                .clone()
                .unwrap_or_else(|| "connecting".into()),
        )
    }

    fn command_offline(&mut self, cmd: Command) {
        match cmd {
            Command::Send { done, .. } => {
                let _ = done.send(Err(self.down_error()));
            }
            Command::Join { room, nick, done } => {
                // Remembered, and joined as soon as the link is back.
                self.rooms.entry(room).or_insert_with(|| Room::new(nick));
                let _ = done.send(Err(self.down_error()));
            }
            Command::Leave { room } => {
                if let Some(mut r) = self.rooms.remove(&room) {
                    r.settle(Err(LinkError::Down("left".into())));
                }
            }
        }
    }

    fn went_offline(&mut self, reason: String) {
        for room in self.rooms.values_mut() {
            room.joined = false;
            room.join_sent = None;
            room.retry_at = None;
            room.settle(Err(LinkError::Down(reason.clone())));
        }
        self.state.send_modify(|s| {
            s.status = LinkStatus::Offline;
            s.bound = None;
            s.joined.clear();
            s.last_error = Some(reason.clone());
        });
        metrics::gauge!(telemetry::LINK_UP).set(0.0);
        metrics::gauge!(telemetry::ROOMS_JOINED).set(0.0);
        self.outq.push_back(Inbound::Offline { reason });
    }

    /// Serves one stream until it breaks or the link is cancelled; returns why it ended.
    async fn online(&mut self, mut stream: Stream, bound: FullJid) -> String {
        info!(jid = %bound, endpoint = %self.settings.endpoint, "XMPP link online");
        self.state.send_modify(|s| {
            s.status = LinkStatus::Online;
            s.bound = Some(bound.clone());
            s.joined.clear();
            s.last_error = None;
            s.sessions += 1;
        });
        metrics::gauge!(telemetry::LINK_UP).set(1.0);
        self.outq.push_back(Inbound::Online { bound });
        let rooms: Vec<BareJid> = self.rooms.keys().cloned().collect();
        for room in rooms {
            if let Err(e) = self.send_join(&mut stream, &room).await {
                return e;
            }
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pings = 0u64;
        loop {
            let wake = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => Wake::Cancelled,
                Ok(permit) = self.inbound.reserve(), if !self.outq.is_empty() => {
                    if let Some(item) = self.outq.pop_front() {
                        permit.send(item);
                    }
                    continue;
                }
                Some(cmd) = self.commands.recv() => Wake::Command(cmd),
                item = stream.next(), if self.outq.len() < INBOUND_QUEUE => Wake::Read(Box::new(item)),
                _ = tick.tick() => Wake::Tick,
            };
            let step = match wake {
                Wake::Cancelled => {
                    self.close(&mut stream).await;
                    return "shutting down".into();
                }
                Wake::Command(cmd) => self.commands_online(cmd, &mut stream).await,
                Wake::Tick => self.retry_joins(&mut stream).await,
                Wake::Read(item) => match *item {
                    Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(stanza)))) => {
                        self.on_stanza(stanza, &mut stream).await
                    }
                    Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::StreamError(e)))) => {
                        Err(e.to_string())
                    }
                    Some(Ok(FallibleStreamElement::Ok(_))) => Ok(()),
                    Some(Ok(FallibleStreamElement::Err(e))) => {
                        unparseable(&e);
                        Ok(())
                    }
                    Some(Err(ReadError::ParseError(e))) => {
                        unparseable(&e);
                        Ok(())
                    }
                    Some(Err(ReadError::SoftTimeout)) => {
                        pings += 1;
                        let to: Jid = self.settings.jid.domain().to_owned().into();
                        let ping = Iq::from_get(format!("ping-{pings}"), Ping).with_to(to);
                        write(&mut stream, Stanza::Iq(ping)).await
                    }
                    Some(Err(ReadError::HardError(e))) => Err(format!("connection error: {e}")),
                    Some(Err(ReadError::StreamFooterReceived)) | None => {
                        Err("the server closed the stream".into())
                    }
                },
            };
            if let Err(reason) = step {
                return reason;
            }
        }
    }

    async fn close(&mut self, stream: &mut Stream) {
        for (room, r) in &self.rooms {
            if r.joined
                && let Ok(occupant) = room.with_resource_str(&r.nick)
            {
                let _ = stream
                    .feed(&XmppStreamElement::Stanza(Stanza::Presence(
                        Presence::unavailable().with_to(occupant),
                    )))
                    .await;
            }
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            <Stream as SinkExt<&XmppStreamElement>>::close(stream),
        )
        .await;
    }

    /// Handles `first` and whatever else is already queued, with one flush for all.
    async fn commands_online(&mut self, first: Command, stream: &mut Stream) -> Result<(), String> {
        let mut sent = Vec::new();
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Send { stanza, done } => {
                    if let Err(e) = stream
                        .feed(&XmppStreamElement::Stanza(Stanza::Message(*stanza)))
                        .await
                    {
                        let reason = format!("write failed: {e}");
                        let _ = done.send(Err(LinkError::Down(reason.clone())));
                        return Err(reason);
                    }
                    sent.push(done);
                }
                Command::Join { room, nick, done } => {
                    let r = self
                        .rooms
                        .entry(room.clone())
                        .or_insert_with(|| Room::new(nick));
                    if r.joined {
                        let _ = done.send(Ok(()));
                    } else {
                        r.waiters.push(done);
                        if r.join_sent.is_none() {
                            self.send_join(stream, &room).await?;
                        }
                    }
                }
                Command::Leave { room } => {
                    if let Some(mut r) = self.rooms.remove(&room) {
                        r.settle(Err(LinkError::Down("left".into())));
                        if let Ok(occupant) = room.with_resource_str(&r.nick) {
                            let presence = Presence::unavailable().with_to(occupant);
                            stream
                                .feed(&XmppStreamElement::Stanza(Stanza::Presence(presence)))
                                .await
                                .map_err(|e| format!("write failed: {e}"))?;
                        }
                        self.publish_joined();
                    }
                }
            }
            if sent.len() < WRITE_BATCH {
                next = self.commands.try_recv().ok();
            }
        }
        let flushed = <Stream as SinkExt<&XmppStreamElement>>::flush(stream)
            .await
            .map_err(|e| format!("write failed: {e}"));
        for done in sent {
            let _ = done.send(flushed.clone().map_err(LinkError::Down));
        }
        flushed
    }

    async fn send_join(&mut self, stream: &mut Stream, room: &BareJid) -> Result<(), String> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Ok(());
        };
        let Ok(occupant) = room.with_resource_str(&r.nick) else {
            let error = LinkError::Join {
                room: room.to_string(),
                condition: format!("invalid nickname `{}`", r.nick),
            };
            r.settle(Err(error));
            self.rooms.remove(room);
            return Ok(());
        };
        r.join_sent = Some(Instant::now());
        r.retry_at = None;
        debug!(%room, nick = %r.nick, "joining room");
        // No history: old events replayed on join must not be acted on again.
        let muc = Muc::new().with_history(History::new().with_maxstanzas(0));
        let presence = Presence::available().with_to(occupant).with_payload(muc);
        write(stream, Stanza::Presence(presence)).await
    }

    async fn retry_joins(&mut self, stream: &mut Stream) -> Result<(), String> {
        let now = Instant::now();
        let due: Vec<BareJid> = self
            .rooms
            .iter()
            .filter(|(_, r)| {
                !r.joined
                    && (r.retry_at.is_some_and(|t| t <= now)
                        || r.join_sent
                            .is_some_and(|t| now.duration_since(t) > JOIN_ANSWER_TIMEOUT))
            })
            .map(|(room, _)| room.clone())
            .collect();
        for room in due {
            self.send_join(stream, &room).await?;
        }
        Ok(())
    }

    fn publish_joined(&mut self) {
        let joined: std::collections::BTreeSet<BareJid> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.joined)
            .map(|(room, _)| room.clone())
            .collect();
        metrics::gauge!(telemetry::ROOMS_JOINED).set(joined.len() as f64);
        self.state.send_modify(|s| s.joined = joined);
    }

    async fn on_stanza(&mut self, stanza: Stanza, stream: &mut Stream) -> Result<(), String> {
        match stanza {
            Stanza::Message(msg) => {
                self.on_message(msg);
                Ok(())
            }
            Stanza::Presence(presence) => self.on_presence(presence, stream).await,
            Stanza::Iq(Iq::Get {
                from, id, payload, ..
            })
            | Stanza::Iq(Iq::Set {
                from, id, payload, ..
            }) => {
                // Answer server pings so the server keeps us; refuse anything else politely.
                let reply = if payload.is("ping", ns::PING) {
                    Iq::Result {
                        from: None,
                        to: from,
                        id,
                        payload: None,
                    }
                } else {
                    let error = tokio_xmpp::parsers::stanza_error::StanzaError::new(
                        tokio_xmpp::parsers::stanza_error::ErrorType::Cancel,
                        tokio_xmpp::parsers::stanza_error::DefinedCondition::ServiceUnavailable,
                        "en",
                        "not supported",
                    );
                    Iq::Error {
                        from: None,
                        to: from,
                        id,
                        error,
                        payload: None,
                    }
                };
                write(stream, Stanza::Iq(reply)).await
            }
            Stanza::Iq(_) => Ok(()),
        }
    }

    fn on_message(&mut self, msg: Message) {
        let Some(from) = msg.from.clone() else { return };
        let kind = match msg.type_ {
            MessageType::Error => MessageKind::Error(
                error_condition(&msg.payloads).unwrap_or_else(|| "undefined-condition".into()),
            ),
            MessageType::Groupchat => MessageKind::Groupchat,
            MessageType::Chat | MessageType::Normal => MessageKind::Chat,
            MessageType::Headline => return,
        };
        if msg.payloads.iter().any(|p| p.is("delay", ns::DELAY)) {
            // A replay of something sent before we joined: acted on then, or lost for good.
            metrics::counter!(telemetry::DROPPED, "reason" => "delayed_replay").increment(1);
            debug!(%from, "delayed message ignored");
            return;
        }
        let body = msg.bodies.into_values().next();
        if body.is_none() && !matches!(kind, MessageKind::Error(_)) {
            // Room subjects, chat states and receipts carry no platform message.
            return;
        }
        self.outq.push_back(Inbound::Message(InboundMessage {
            from,
            kind,
            id: msg.id.map(|i| i.0),
            body,
        }));
    }

    async fn on_presence(&mut self, presence: Presence, stream: &mut Stream) -> Result<(), String> {
        let Some(from) = presence.from.clone().and_then(|j| j.try_into_full().ok()) else {
            return Ok(());
        };
        let room = from.to_bare();
        let Some(r) = self.rooms.get_mut(&room) else {
            return Ok(());
        };
        let is_self = presence
            .payloads
            .iter()
            .filter_map(|p| MucUser::try_from(p.clone()).ok())
            .any(|x| x.status.contains(&Status::SelfPresence));
        match presence.type_ {
            PresenceType::Error => {
                if from.resource().as_str() != r.nick {
                    return Ok(());
                }
                let condition = error_condition(&presence.payloads)
                    .unwrap_or_else(|| "undefined-condition".into());
                r.join_sent = None;
                if condition == "conflict" && r.conflicts < MAX_NICK_SUFFIX {
                    r.conflicts += 1;
                    r.nick = format!("{}-{}", r.base_nick, r.conflicts + 1);
                    info!(%room, nick = %r.nick, "nickname taken; retrying with a suffix");
                    return self.send_join(stream, &room).await;
                }
                let delay = r.retry.next_delay();
                warn!(%room, %condition, retry_in = ?delay, "cannot join room");
                metrics::counter!(telemetry::JOIN_FAILURES, "condition" => condition.clone())
                    .increment(1);
                r.retry_at = Some(Instant::now() + delay);
                r.settle(Err(LinkError::Join {
                    room: room.to_string(),
                    condition,
                }));
            }
            PresenceType::None if is_self => {
                r.joined = true;
                r.join_sent = None;
                r.retry.reset();
                r.settle(Ok(()));
                debug!(%room, nick = %r.nick, "joined room");
                self.outq.push_back(Inbound::Joined { room });
                self.publish_joined();
            }
            PresenceType::Unavailable if is_self && r.joined => {
                // Kicked, or the room went away: join again shortly.
                warn!(%room, "removed from room; rejoining");
                r.joined = false;
                r.retry_at = Some(Instant::now() + r.retry.next_delay());
                self.publish_joined();
            }
            _ => {}
        }
        Ok(())
    }
}

async fn write(stream: &mut Stream, stanza: Stanza) -> Result<(), String> {
    stream
        .send(&XmppStreamElement::Stanza(stanza))
        .await
        .map_err(|e| format!("write failed: {e}"))
}

/// The defined condition of the `<error/>` among `payloads`, such as `item-not-found`.
fn error_condition(payloads: &[Element]) -> Option<String> {
    let error = payloads.iter().find(|p| p.name() == "error")?;
    error
        .children()
        .find(|c| c.ns() == ns::XMPP_STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
}
