//! `converja-sim`: a real XMPP client that plays the Converja platform. It joins the platform's
//! rooms under the platform's nicknames, answers the ten requests from its [`World`], publishes
//! the eight events, generates call traffic from a [`Scenario`], and injects faults on demand.

mod control;
mod faults;
mod scenario;
mod traffic;
mod world;

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_xmpp::jid::{BareJid, Jid};
use tracing::{Instrument, debug, info, warn};

pub use control::SimHandle;
pub use faults::{Fault, FaultRule};
pub use scenario::{AgentSpec, Breaks, CurrentCall, QueueSpec, Scenario, SupervisorSpec, Traffic};
pub use traffic::Timeline;
pub use world::{AgentModel, CallModel, CallPhase, Outcome, QueueModel, Tally, World, WorldError};

use crate::converja::{
    Addresses, Destination, EventMessage, Message, Request, RequestMessage, ResponseMessage,
    RoomName, Timestamp,
};
use crate::request_ids::IdSource;
use crate::xmpp::{ConnectSettings, Inbound, Link, MessageKind};
use control::Control;
use faults::Held;
use traffic::Effects;

/// Nickname of the simulator in rooms that have no platform-defined occupant.
pub const PLATFORM_NICK: &str = "platform";
/// Requests remembered for [`SimHandle::requests`].
const REQUEST_LOG: usize = 10_000;

/// A request as the simulator received it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenRequest {
    /// Who sent it (the bridge's occupant JID in the room).
    pub from: Jid,
    /// The occupant it was addressed to.
    pub at: Destination,
    /// The request.
    pub message: RequestMessage,
}

/// The simulator's actor: it owns the world and the link.
struct Sim {
    link: Link,
    addresses: Addresses,
    timeline: Timeline,
    faults: Vec<FaultRule>,
    ids: IdSource,
    seen: VecDeque<SeenRequest>,
    held: Option<Held>,
    /// When the held answer goes out.
    held_until: Option<Instant>,
    tracker: TaskTracker,
}

/// Starts the simulator: connects, joins the platform's rooms and serves until `cancel`.
pub fn start(
    settings: ConnectSettings,
    conference: BareJid,
    scenario: Scenario,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> SimHandle {
    let (link, inbound) = Link::spawn(settings, tracker, cancel.clone());
    let addresses = Addresses::new(conference);
    let (control_tx, control_rx) = mpsc::channel(1024);
    let timeline = Timeline::new(
        scenario,
        1 + IdSource::default().next() % 1_000_000_000,
        Timestamp::now(),
    );
    let world = &timeline.world;
    let mut rooms: Vec<(RoomName, String)> = vec![
        (RoomName::Filis, "filis".into()),
        (RoomName::Catraquis, PLATFORM_NICK.into()),
    ];
    rooms.extend(
        world
            .queues
            .keys()
            .map(|q| (RoomName::Queue(*q), PLATFORM_NICK.to_owned())),
    );
    rooms.extend(
        world
            .agents
            .keys()
            .map(|a| (RoomName::Agent(a.clone()), a.as_str().to_owned())),
    );
    let room_jids: Vec<BareJid> = rooms
        .iter()
        .filter_map(|(r, _)| addresses.room(r).ok())
        .collect();
    let handle = SimHandle::new(control_tx, link.clone(), room_jids);
    let sim = Sim {
        link,
        addresses,
        timeline,
        faults: Vec::new(),
        ids: IdSource::default(),
        seen: VecDeque::new(),
        held: None,
        held_until: None,
        tracker: tracker.clone(),
    };
    tracker.spawn(
        sim.run(rooms, inbound, control_rx, cancel)
            .instrument(tracing::info_span!("sim")),
    );
    handle
}

impl Sim {
    async fn run(
        mut self,
        rooms: Vec<(RoomName, String)>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut control: mpsc::Receiver<Control>,
        cancel: CancellationToken,
    ) {
        for (room, nick) in &rooms {
            if let Ok(jid) = self.addresses.room(room) {
                // Offline at start is normal: the link joins once connected.
                let link = self.link.clone();
                let nick = nick.clone();
                self.tracker
                    .spawn(async move { link.join(jid, &nick).await });
            }
        }
        loop {
            let next = match (self.timeline.next_at(), self.held_until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(item) = inbound.recv() => self.on_inbound(item).await,
                Some(cmd) = control.recv() => self.on_control(cmd).await,
                _ = sleep_until(next) => self.on_time().await,
            }
        }
        info!("simulator stopped");
    }

    /// Publishes what a request or an action did, then what the traffic makes of it (ringing
    /// calls handed to agents who became free, ...).
    async fn settle(&mut self, effects: Effects) {
        self.timeline.note(&effects);
        self.publish(effects).await;
        let more = self.timeline.dispatch(Timestamp::now());
        self.timeline.note(&more);
        self.publish(more).await;
    }

    async fn publish(&mut self, effects: Effects) {
        for (room, event) in effects {
            let Ok(jid) = self.addresses.room(&room) else {
                continue;
            };
            let body = Message::Event(EventMessage::new(self.ids.next(), &event)).to_json();
            debug!(%room, name = event.name(), "publishing event");
            if let Err(e) = self
                .link
                .send_groupchat(jid, self.ids.next().to_string(), body)
                .await
            {
                warn!(%room, error = %e, "event not published");
            }
        }
    }

    async fn on_inbound(&mut self, item: Inbound) {
        let Inbound::Message(msg) = item else { return };
        if msg.kind != MessageKind::Chat {
            return;
        }
        let Some(from) = msg.from.clone().try_into_full().ok() else {
            return;
        };
        let at = match self.addresses.room_of(&from.to_bare()) {
            Some(RoomName::Filis) => Destination::Filis,
            Some(RoomName::Agent(agent)) => Destination::Agent(agent),
            _ => {
                debug!(%from, "private message outside filis and agent rooms ignored");
                return;
            }
        };
        let request = match Message::parse(msg.body.as_deref().unwrap_or_default()) {
            Ok(Message::Request(r)) => r,
            Ok(_) | Err(_) => {
                warn!(%from, "private message that is not a request ignored");
                return;
            }
        };
        if self.seen.len() >= REQUEST_LOG {
            self.seen.pop_front();
        }
        self.seen.push_back(SeenRequest {
            from: from.clone().into(),
            at: at.clone(),
            message: request.clone(),
        });
        let fault = self.fault_for(&request);
        let outcome = match (fault.status, Request::route(&at, &request)) {
            (Some(status), _) => Outcome::error(status, "injected failure"),
            (None, Err(e)) => Outcome::error(e.status(), e.to_string()),
            (None, Ok(req)) => self.timeline.world.handle(&req, Timestamp::now()),
        };
        let response = ResponseMessage {
            id: self.ids.next(),
            to: request.id,
            failure: outcome.status != 200,
            status: outcome.status,
            params: outcome.params,
        };
        self.answer(from, response, &fault).await;
        self.settle(outcome.events).await;
    }

    async fn on_time(&mut self) {
        if self.held_until.is_some_and(|at| at <= Instant::now()) {
            self.held_until = None;
            self.release_held().await;
            return;
        }
        let effects = self.timeline.fire(Timestamp::now());
        self.publish(effects).await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
