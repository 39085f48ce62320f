//! The typed platform client: one async method per request, a stream of de-duplicated events,
//! and the tasks that route what the link receives and keep the platform's rooms joined.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_xmpp::jid::BareJid;
use tracing::{Instrument, debug, info, warn};

use crate::config::{ConverjaConfig, QueueSelection};
use crate::converja::{
    Addresses, AgentId, AgentStatus, Data, Destination, Empty, Event, Message, PauseReason,
    ProtocolError, QueueAgent, QueueCalls, QueueId, QueueInfo, QueueSupervisor, Request,
    ResponseParams, RoomName, TerminalTime,
};
use crate::pending::{Disposition, Failure, PendingTable};
use crate::recent::RecentIds;
use crate::telemetry;
use crate::xmpp::{
    ConnectSettings, Inbound, InboundMessage, Link, LinkError, LinkState, LinkStatus, MessageKind,
};

pub use crate::converja::PlatformError;

/// Event ids remembered per room to drop replays and duplicates.
const EVENT_WINDOW: usize = 2048;
/// Updates buffered per subscriber before a slow one starts losing them (and is told so).
const UPDATE_BUFFER: usize = 16_384;
/// Wait before re-reading the queue list after a failure.
const QUEUE_RETRY: Duration = Duration::from_secs(5);

/// An event together with the room it was published in.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomEvent {
    /// Where it was published.
    pub room: RoomName,
    /// Its id in that room.
    pub id: u64,
    /// The event.
    pub event: Event,
}

/// What subscribers of the platform hear, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A platform event.
    Event(RoomEvent),
    /// The link is online again after an outage; state must be re-read.
    LinkUp,
    /// The link went down; events published meanwhile will be missed.
    LinkDown,
}

/// Whether the bridge can serve agents: link online, base rooms joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The link is online.
    pub online: bool,
    /// Rooms that should be joined but are not.
    pub missing: Vec<String>,
}

impl Readiness {
    /// Ready to serve.
    pub fn is_ready(&self) -> bool {
        self.online && self.missing.is_empty()
    }
}

struct Shared {
    link: Link,
    table: Arc<PendingTable>,
    addresses: Addresses,
    nickname: String,
    timeout: Duration,
    updates: broadcast::Sender<Update>,
    /// Rooms readiness depends on: filis, catraquis and the followed queues.
    base_rooms: Mutex<BTreeSet<BareJid>>,
    /// Whether the queues to follow are known: until then filis and catraquis alone would
    /// look ready, and the bridge would turn unready again as queue rooms are added.
    /// A watch, so that waiting for readiness wakes on it as on link state changes.
    queues_known: watch::Sender<bool>,
    queue_names: Mutex<HashMap<QueueId, String>>,
}

/// The typed client of the Converja platform. Cheap to clone.
#[derive(Clone)]
pub struct Platform {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("table", &self.shared.table)
            .finish()
    }
}

impl Platform {
    /// Connects to XMPP and starts following the platform's rooms.
    pub fn start(
        settings: ConnectSettings,
        nickname: String,
        cfg: &ConverjaConfig,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Platform {
        let (link, inbound) = Link::spawn(settings, tracker, cancel.clone());
        let addresses = Addresses::new(cfg.conference.clone());
        let base: BTreeSet<BareJid> = [RoomName::Filis, RoomName::Catraquis]
            .iter()
            .map(|r| addresses.room(r).expect("fixed room names are valid JIDs"))
            .collect();
        let platform = Platform {
            shared: Arc::new(Shared {
                link,
                table: PendingTable::new(cfg.max_pending),
                addresses,
                nickname,
                timeout: cfg.request_timeout.0,
                updates: broadcast::channel(UPDATE_BUFFER).0,
                base_rooms: Mutex::new(base),
                queues_known: watch::Sender::new(false),
                queue_names: Mutex::new(HashMap::new()),
            }),
        };
        let dispatcher = Dispatcher {
            platform: platform.clone(),
            seen: HashMap::new(),
        };
        tracker.spawn(
            dispatcher
                .run(inbound, cancel.clone())
                .instrument(tracing::info_span!("platform_dispatch")),
        );
        let keeper = platform
            .clone()
            .keep_rooms(cfg.queues.clone(), cfg.queue_refresh.0, cancel);
        tracker.spawn(keeper.instrument(tracing::info_span!("platform_rooms")));
        platform
    }

    /// Subscribes to events and link changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.shared.updates.subscribe()
    }

    /// The link's state.
    pub fn link_state(&self) -> tokio::sync::watch::Receiver<LinkState> {
        self.shared.link.state()
    }

    /// The platform's addresses.
    pub fn addresses(&self) -> &Addresses {
        &self.shared.addresses
    }

    /// Requests waiting for an answer now.
    pub fn pending(&self) -> usize {
        self.shared.table.len()
    }

    /// Readiness: link online and every base room joined.
    pub fn readiness(&self) -> Readiness {
        let state = self.shared.link.state().borrow().clone();
        let base = self
            .shared
            .base_rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut missing: Vec<String> = base
            .iter()
            .filter(|r| !state.joined.contains(*r))
            .map(|r| r.to_string())
            .collect();
        if !*self.shared.queues_known.borrow() {
            missing.push("the queue list (GET /queues)".into());
        }
        Readiness {
            online: state.status == LinkStatus::Online,
            missing,
        }
    }

    /// Waits until [`readiness`](Self::readiness) says ready, or `limit` passes.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let mut state = self.shared.link.state();
        let mut known = self.shared.queues_known.subscribe();
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        loop {
            if self.readiness().is_ready() {
                return true;
            }
            tokio::select! {
                changed = state.changed() => if changed.is_err() {
                    // The link is gone; nothing will change any more.
                    return self.readiness().is_ready();
                },
                // The sender lives as long as `self`, so this only ever reports a change.
                _ = known.changed() => {}
                _ = &mut deadline => return self.readiness().is_ready(),
            }
        }
    }

    /// The name of a queue from the last `GET /queues`, if known.
    pub fn queue_name(&self, queue: QueueId) -> Option<String> {
        self.shared
            .queue_names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&queue)
            .cloned()
    }

    /// The queues followed now.
    pub fn followed_queues(&self) -> Vec<QueueId> {
        let base = self
            .shared
            .base_rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        base.iter()
            .filter_map(|r| match self.shared.addresses.room_of(r) {
                Some(RoomName::Queue(q)) => Some(q),
                _ => None,
            })
            .collect()
    }

    /// Sends `request` and decodes its response as `T`.
    pub async fn call<T: ResponseParams>(&self, request: Request) -> Result<T, PlatformError> {
        let kind = request.kind();
        let started = Instant::now();
        let result = self
            .exchange(&request)
            .await
            .and_then(|params| T::decode(kind, params).map_err(bad_response));
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        metrics::counter!(telemetry::REQUESTS, "kind" => kind, "outcome" => outcome).increment(1);
        metrics::histogram!(telemetry::REQUEST_SECONDS, "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn exchange(&self, request: &Request) -> Result<Value, PlatformError> {
        let shared = &self.shared;
        let destination = request.destination();
        if let Destination::Agent(agent) = &destination {
            self.join_agent_room(agent).await?;
        }
        let occupant = shared
            .addresses
            .destination(&destination)
            .map_err(|e| PlatformError::BadResponse(e.to_string()))?;
        let mut ticket = shared
            .table
            .register(occupant.clone())
            .map_err(|_| PlatformError::Overloaded)?;
        let id = ticket.id();
        let span = tracing::debug_span!("request", id, kind = request.kind(), to = %occupant);
        async {
            metrics::gauge!(telemetry::PENDING).set(shared.table.len() as f64);
            let body = Message::Request(request.to_message(id)).to_json();
            debug!(%body, "sending request");
            shared
                .link
                .send_chat(occupant.clone(), id.to_string(), body)
                .await
                .map_err(|e| PlatformError::LinkDown(e.to_string()))?;
            let answer = tokio::time::timeout(shared.timeout, ticket.wait()).await;
            drop(ticket);
            metrics::gauge!(telemetry::PENDING).set(shared.table.len() as f64);
            let response = match answer {
                Err(_) => {
                    warn!(timeout = ?shared.timeout, "request timed out");
                    return Err(PlatformError::Timeout(shared.timeout));
                }
                Ok(Err(Failure::LinkDown(reason))) => return Err(PlatformError::LinkDown(reason)),
                Ok(Err(Failure::Bounced(condition))) => {
                    return Err(PlatformError::Bounced {
                        occupant: occupant.to_string(),
                        condition,
                    });
                }
                Ok(Ok(response)) => response,
            };
            if response.is_success() {
                Ok(response.params)
            } else {
                debug!(status = response.status, "platform refused the request");
                Err(PlatformError::Status {
                    status: response.status,
                    params: response.params,
                })
            }
        }
        .instrument(span)
        .await
    }

    /// Joins `agent.<id>` unless already joined; requests to the agent's occupant need it.
    pub async fn join_agent_room(&self, agent: &AgentId) -> Result<(), PlatformError> {
        let room = self
            .shared
            .addresses
            .room(&RoomName::Agent(agent.clone()))
            .map_err(|e| PlatformError::BadResponse(e.to_string()))?;
        if self.shared.link.state().borrow().joined.contains(&room) {
            return Ok(());
        }
        match tokio::time::timeout(
            self.shared.timeout,
            self.shared.link.join(room, &self.shared.nickname),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(LinkError::Down(reason))) => Err(PlatformError::LinkDown(reason)),
            Ok(Err(e)) => Err(PlatformError::Room(e.to_string())),
            Err(_) => Err(PlatformError::Timeout(self.shared.timeout)),
        }
    }

    /// Leaves `agent.<id>`.
    pub async fn leave_agent_room(&self, agent: &AgentId) {
        if let Ok(room) = self.shared.addresses.room(&RoomName::Agent(agent.clone())) {
            self.shared.link.leave(room).await;
        }
    }

    /// `GET /queues`.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>, PlatformError> {
        Ok(self.call::<Data<QueueInfo>>(Request::Queues).await?.data)
    }

    /// `GET /queues/:id/agents`.
    pub async fn queue_agents(&self, queue: QueueId) -> Result<Vec<QueueAgent>, PlatformError> {
        Ok(self
            .call::<Data<QueueAgent>>(Request::QueueAgents(queue))
            .await?
            .data)
    }

    /// `GET /queues/:id/supervisors`.
    pub async fn queue_supervisors(
        &self,
        queue: QueueId,
    ) -> Result<Vec<QueueSupervisor>, PlatformError> {
        Ok(self
            .call::<Data<QueueSupervisor>>(Request::QueueSupervisors(queue))
            .await?
            .data)
    }

    /// `GET /queues/:id/calls`.
    pub async fn queue_calls(&self, queue: QueueId) -> Result<QueueCalls, PlatformError> {
        self.call(Request::QueueCalls(queue)).await
    }

    /// `GET /agents/:id/status`.
    pub async fn agent_status(&self, agent: &AgentId) -> Result<AgentStatus, PlatformError> {
        self.call(Request::AgentStatus(agent.clone())).await
    }

    /// `DELETE /calls/active`: hangs up the agent's current call.
    pub async fn end_active_call(&self, agent: &AgentId) -> Result<(), PlatformError> {
        self.call::<Empty>(Request::EndActiveCall(agent.clone()))
            .await
            .map(drop)
    }

    /// `DELETE /session`: logs the agent out.
    pub async fn logout(&self, agent: &AgentId) -> Result<(), PlatformError> {
        self.call::<Empty>(Request::Logout(agent.clone()))
            .await
            .map(drop)
    }

    /// `GET /timestamp`: the agent terminal's clock in milliseconds.
    pub async fn terminal_time(&self, agent: &AgentId) -> Result<f64, PlatformError> {
        Ok(self
            .call::<TerminalTime>(Request::Timestamp(agent.clone()))
            .await?
            .timestamp)
    }

    /// `PUT /calls/active/local`: transfers the agent's current call to `number`.
    pub async fn transfer(&self, agent: &AgentId, number: &str) -> Result<(), PlatformError> {
        self.call::<Empty>(Request::Transfer(agent.clone(), number.to_owned()))
            .await
            .map(drop)
    }

    /// `PUT /session/paused`: pauses with `reason`, or resumes with `None`.
    pub async fn set_paused(
        &self,
        agent: &AgentId,
        reason: Option<PauseReason>,
    ) -> Result<(), PlatformError> {
        self.call::<Empty>(Request::SetPaused(agent.clone(), reason))
            .await
            .map(drop)
    }

    /// Joins filis and catraquis, then follows the queue rooms, re-reading the queue list
    /// periodically and after every reconnect.
    async fn keep_rooms(
        self,
        selection: QueueSelection,
        refresh: Duration,
        cancel: CancellationToken,
    ) {
        let shared = &self.shared;
        for room in [RoomName::Filis, RoomName::Catraquis] {
            let jid = shared
                .addresses
                .room(&room)
                .expect("fixed room names are valid JIDs");
            // Offline now is fine: the link remembers the room and joins it once online.
            let _ = shared.link.join(jid, &shared.nickname).await;
        }
        let mut state = shared.link.state();
        let mut updates = self.subscribe();
        let mut followed: BTreeSet<QueueId> = BTreeSet::new();
        loop {
            // Wait for the link before asking anything.
            if state
                .wait_for(|s| s.status == LinkStatus::Online)
                .await
                .is_err()
            {
                return;
            }
            let session = state.borrow().sessions;
            let next = match self.queues().await {
                Ok(queues) => {
                    let names: HashMap<QueueId, String> =
                        queues.iter().map(|q| (q.id, q.name.clone())).collect();
                    *shared.queue_names.lock().unwrap_or_else(|e| e.into_inner()) = names;
                    let wanted: BTreeSet<QueueId> = match &selection {
                        QueueSelection::All(_) => queues.iter().map(|q| q.id).collect(),
                        QueueSelection::List(list) => list.iter().copied().collect(),
                    };
                    self.follow(&mut followed, wanted).await;
                    refresh
                }
                Err(e) => {
                    warn!(error = %e, "cannot read the queue list");
                    if let QueueSelection::List(list) = &selection {
                        self.follow(&mut followed, list.iter().copied().collect())
                            .await;
                    }
                    QUEUE_RETRY
                }
            };
            // Sleep until the next refresh, or re-read at once after a reconnect that
            // happened since this read.
            let deadline = tokio::time::sleep(next);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = &mut deadline => break,
                    update = updates.recv() => match update {
                        Ok(Update::LinkUp) if state.borrow().sessions != session => break,
                        Err(broadcast::error::RecvError::Closed) => return,
                        _ => continue,
                    },
                }
            }
        }
    }

    async fn follow(&self, followed: &mut BTreeSet<QueueId>, wanted: BTreeSet<QueueId>) {
        let shared = &self.shared;
        let new: Vec<(QueueId, BareJid)> = wanted
            .difference(followed)
            .filter_map(|q| Some((*q, shared.addresses.room(&RoomName::Queue(*q)).ok()?)))
            .collect();
        // Every room readiness waits for is listed before readiness can say yes.
        shared
            .base_rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(new.iter().map(|(_, room)| room.clone()));
        shared.queues_known.send_replace(true);
        for (queue, room) in new {
            info!(%queue, "following queue");
            // A failure is logged by the link, which keeps retrying; readiness shows it.
            if let Err(e) =
                tokio::time::timeout(shared.timeout, shared.link.join(room, &shared.nickname))
                    .await
                    .unwrap_or(Err(LinkError::Down("join timed out".into())))
            {
                warn!(%queue, error = %e, "queue room not joined yet");
            }
        }
        for queue in followed.difference(&wanted) {
            let Ok(room) = shared.addresses.room(&RoomName::Queue(*queue)) else {
                continue;
            };
            info!(%queue, "no longer following queue");
            shared
                .base_rooms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&room);
            shared.link.leave(room).await;
        }
        *followed = wanted;
    }
}

fn bad_response(e: ProtocolError) -> PlatformError {
    PlatformError::BadResponse(e.to_string())
}

/// Routes what the link receives: responses to the pending table, events to subscribers.
struct Dispatcher {
    platform: Platform,
    seen: HashMap<RoomName, RecentIds>,
}

fn dropped(reason: &'static str) {
    metrics::counter!(telemetry::DROPPED, "reason" => reason).increment(1);
}

impl Dispatcher {
    async fn run(mut self, mut inbound: mpsc::Receiver<Inbound>, cancel: CancellationToken) {
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => break,
                item = inbound.recv() => item,
            };
            let Some(item) = item else { break };
            self.handle(item);
        }
        self.platform
            .shared
            .table
            .fail_all("the bridge is shutting down");
    }

    fn handle(&mut self, item: Inbound) {
        let shared = &self.platform.shared;
        match item {
            Inbound::Online { .. } => {
                let _ = shared.updates.send(Update::LinkUp);
            }
            Inbound::Offline { reason } => {
                let failed = shared.table.fail_all(&format!("XMPP link lost: {reason}"));
                if failed > 0 {
                    warn!(failed, "pending requests failed by the link loss");
                }
                metrics::gauge!(telemetry::PENDING).set(0.0);
                let _ = shared.updates.send(Update::LinkDown);
            }
            Inbound::Joined { .. } => {}
            Inbound::Message(msg) => self.on_message(msg),
        }
    }

    fn on_message(&mut self, msg: InboundMessage) {
        let shared = &self.platform.shared;
        let InboundMessage {
            from,
            kind,
            id,
            body,
        } = msg;
        match kind {
            MessageKind::Error(condition) => {
                let Some(id) = id.as_deref().and_then(|i| i.parse::<u64>().ok()) else {
                    debug!(%from, %condition, "error message without a request id");
                    return dropped("unmatched_bounce");
                };
                let disposition = shared.table.bounce(id, &from, condition.clone());
                if disposition != Disposition::Accepted {
                    warn!(%from, id, %condition, outcome = disposition.label(), "bounce not matching a pending request");
                    dropped("unmatched_bounce");
                } else {
                    info!(%from, id, %condition, "request bounced by the XMPP server");
                }
            }
            MessageKind::Chat => {
                let body = body.unwrap_or_default();
                match Message::parse(&body) {
                    Ok(Message::Response(response)) => {
                        let to = response.to;
                        let disposition = shared.table.resolve(&from, response);
                        match disposition {
                            Disposition::Accepted => {}
                            Disposition::Spoofed { expected } => {
                                warn!(%from, %expected, to, "response from the wrong occupant dropped");
                                dropped("spoofed");
                            }
                            other => {
                                warn!(%from, to, outcome = other.label(), "response without a pending request dropped");
                                dropped(other.label());
                            }
                        }
                    }
                    Ok(_) => {
                        debug!(%from, "private message that is not a response dropped");
                        dropped("unexpected_message");
                    }
                    Err(e) => {
                        warn!(%from, error = %e, "malformed private message dropped");
                        dropped("malformed");
                    }
                }
            }
            MessageKind::Groupchat => {
                let bare = from.to_bare();
                let Some(room) = shared.addresses.room_of(&bare) else {
                    return dropped("foreign_room");
                };
                if from
                    .resource()
                    .is_some_and(|nick| nick.as_str() == shared.nickname)
                {
                    return; // our own echo
                }
                let message = match Message::parse(body.as_deref().unwrap_or_default()) {
                    Ok(Message::Event(e)) => e,
                    Ok(_) => return dropped("unexpected_message"),
                    Err(e) => {
                        warn!(%room, error = %e, "malformed room message dropped");
                        return dropped("malformed");
                    }
                };
                if !self
                    .seen
                    .entry(room.clone())
                    .or_insert_with(|| RecentIds::new(EVENT_WINDOW))
                    .insert(message.id)
                {
                    debug!(%room, id = message.id, "duplicate event dropped");
                    return dropped("duplicate_event");
                }
                match message.event() {
                    Ok(event) => {
                        metrics::counter!(telemetry::EVENTS, "name" => event.name()).increment(1);
                        debug!(%room, id = message.id, name = event.name(), "platform event");
                        let _ = shared.updates.send(Update::Event(RoomEvent {
                            room,
                            id: message.id,
                            event,
                        }));
                    }
                    Err(ProtocolError::UnknownEvent(name)) => {
                        warn!(%room, %name, "unknown platform event dropped");
                        dropped("unknown_event");
                    }
                    Err(e) => {
                        warn!(%room, error = %e, "malformed platform event dropped");
                        dropped("malformed");
                    }
                }
            }
        }
    }
}
