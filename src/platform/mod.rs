//! The typed platform client: one async method per request, a stream of de-duplicated events,
//! and the tasks that route what the link receives and keep the platform's rooms joined.
//!
//! This module holds the handle, its start and its readiness; `client` sends requests,
//! `rooms` keeps the rooms joined, `occupancy` orders requests in a room and the bridge's
//! leave of it, and `dispatch` routes what the link receives.

mod client;
mod dispatch;
mod occupancy;
mod rooms;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_xmpp::jid::BareJid;
use tracing::Instrument;

use crate::config::ConverjaConfig;
use crate::converja::{Addresses, Event, QueueId, RoomName};
use crate::pending::PendingTable;
use crate::telemetry;
use crate::xmpp::{ConnectSettings, Link, LinkState, LinkStatus};

pub use crate::converja::PlatformError;

use dispatch::Dispatcher;
use occupancy::Occupancy;

/// Updates buffered per subscriber before a slow one starts losing them (and is told so).
const UPDATE_BUFFER: usize = 16_384;

/// An event together with the room it was published in.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomEvent {
    /// Where it was published.
    pub room: RoomName,
    /// Its id in that room.
    pub id: u64,
    /// The event.
    pub event: Event,
    /// When its stanza was read off the stream.
    pub read: tokio::time::Instant,
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
    /// A room the bridge had been removed from is joined again; what was published there
    /// meanwhile was missed.
    Rejoined,
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
    occupancy: Occupancy,
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
pub struct Client {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("table", &self.shared.table)
            .finish()
    }
}

impl Client {
    /// Connects to XMPP and starts following the platform's rooms.
    pub fn start(
        settings: ConnectSettings,
        nickname: String,
        cfg: &ConverjaConfig,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Client {
        Self::start_after(0, settings, nickname, cfg, tracker, cancel)
    }

    /// [`Client::start`] for a process that follows another: every request id it sends is
    /// above `used`, the highest id its predecessor may have sent.
    pub fn start_after(
        used: u64,
        settings: ConnectSettings,
        nickname: String,
        cfg: &ConverjaConfig,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Client {
        let addresses = Addresses::new(cfg.conference.clone());
        let table = PendingTable::new(cfg.max_pending, used);
        // Exported beside the table's size, so that an alert can say "near full".
        metrics::gauge!(telemetry::PENDING_MAX).set(cfg.max_pending as f64);
        let updates = broadcast::channel(UPDATE_BUFFER).0;
        // Responses and events are routed on the link's own task, as each stanza is read.
        let dispatcher = Dispatcher::new(
            table.clone(),
            addresses.clone(),
            nickname.clone(),
            updates.clone(),
        );
        let link = Link::spawn_handled(settings, dispatcher, tracker, cancel.clone());
        let base: BTreeSet<BareJid> = [RoomName::Filis, RoomName::Catraquis]
            .iter()
            .map(|r| addresses.room(r).expect("fixed room names are valid JIDs"))
            .collect();
        let platform = Client {
            shared: Arc::new(Shared {
                link,
                table,
                addresses,
                nickname,
                timeout: cfg.request_timeout.0,
                updates,
                occupancy: Occupancy::default(),
                base_rooms: Mutex::new(base),
                queues_known: watch::Sender::new(false),
                queue_names: Mutex::new(HashMap::new()),
            }),
        };
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

    /// The highest request id handed out so far.
    pub fn last_request_id(&self) -> u64 {
        self.shared.table.last_id()
    }

    /// Requests waiting for an answer now.
    pub fn pending(&self) -> usize {
        self.shared.table.len()
    }

    /// Returns once no request waits for an answer.
    pub async fn idle(&self) {
        self.shared.table.wait_empty().await;
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
}
