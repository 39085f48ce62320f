//! `converja-sim`: a real XMPP client that plays the Converja platform. It joins the platform's
//! rooms under the platform's nicknames, answers the ten requests from its [`World`], publishes
//! the eight events, generates call traffic from a [`Scenario`], and injects faults on demand.

mod control;
mod faults;
mod scenario;
mod traffic;
mod world;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_xmpp::jid::{BareJid, Jid};
use tracing::{Instrument, debug, info, warn};

pub use control::SimHandle;
pub use faults::{Fault, FaultRule};
pub use scenario::{AgentSpec, Breaks, CurrentCall, QueueSpec, Scenario, SupervisorSpec, Traffic};
pub use world::{AgentModel, CallModel, CallPhase, Outcome, QueueModel, Tally, World, WorldError};

use crate::converja::{
    Addresses, AgentId, CallId, Destination, Event, EventMessage, Message, Request, RequestMessage,
    ResponseMessage, RoomName, Timestamp,
};
use crate::request_ids::IdSource;
use crate::xmpp::{ConnectSettings, Inbound, Link, MessageKind};
use control::Control;
use faults::Held;
use traffic::Dice;

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

/// Events to publish, with their rooms.
type Effects = Vec<(RoomName, Event)>;

/// Something the actor does at a set time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Arrival,
    Finish(CallId),
    Patience(CallId),
    /// A ringing call may now be answered (after its answer delay).
    Answerable(CallId),
    /// An agent goes on a break.
    Break(AgentId),
    /// An agent's break is over.
    BreakOver(AgentId),
    Relogin(AgentId),
    ReleaseHeld,
}

/// The simulator's actor: it owns the world and the link.
struct Sim {
    link: Link,
    addresses: Addresses,
    world: World,
    scenario: Scenario,
    dice: Dice,
    faults: Vec<FaultRule>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    ids: IdSource,
    seen: VecDeque<SeenRequest>,
    held: Option<Held>,
    /// Ringing calls not answerable before their answer delay is over.
    not_before: std::collections::HashMap<CallId, Instant>,
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
    let world = scenario.world(
        1 + IdSource::default().next() % 1_000_000_000,
        Timestamp::now(),
    );
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
        world,
        dice: Dice::new(scenario.seed),
        scenario,
        faults: Vec::new(),
        timers: BinaryHeap::new(),
        ids: IdSource::default(),
        seen: VecDeque::new(),
        held: None,
        not_before: std::collections::HashMap::new(),
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
        if self.scenario.traffic.is_some() {
            self.schedule_arrival();
            self.schedule_breaks();
        }
        loop {
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(item) = inbound.recv() => self.on_inbound(item).await,
                Some(cmd) = control.recv() => self.on_control(cmd).await,
                _ = sleep_until(next_timer) => {
                    if let Some(Reverse((_, timer))) = self.timers.pop() {
                        self.on_timer(timer).await;
                    }
                }
            }
        }
        info!("simulator stopped");
    }

    async fn publish(&mut self, effects: Effects) {
        for (room, event) in effects {
            let Ok(jid) = self.addresses.room(&room) else {
                continue;
            };
            if let Event::UserSessionDidFinish(s) = &event
                && let Some(after) = self.scenario.traffic.as_ref().and_then(|t| t.relogin_after)
            {
                self.timers.push(Reverse((
                    Instant::now() + after.0,
                    Timer::Relogin(s.agent.clone()),
                )));
            }
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
            (None, Ok(req)) => self.world.handle(&req, Timestamp::now()),
        };
        let response = ResponseMessage {
            id: self.ids.next(),
            to: request.id,
            failure: outcome.status != 200,
            status: outcome.status,
            params: outcome.params,
        };
        self.answer(from, response, &fault).await;
        self.publish(outcome.events).await;
        self.dispatch().await;
    }

    async fn on_timer(&mut self, timer: Timer) {
        let now = Timestamp::now();
        let effects = match timer {
            Timer::ReleaseHeld => {
                self.release_held().await;
                return;
            }
            Timer::Arrival => match self.arrive(now) {
                Some(effects) => effects,
                None => return,
            },
            // The call may have ended another way meanwhile; then there is nothing to do.
            Timer::Finish(call) => self.world.finish(call, now).unwrap_or_default(),
            Timer::Patience(call) => {
                self.not_before.remove(&call);
                self.world.miss(call, now).unwrap_or_default()
            }
            Timer::Answerable(call) => {
                self.not_before.remove(&call);
                Vec::new()
            }
            Timer::Break(agent) => self.take_break(&agent, now),
            Timer::BreakOver(agent) => self.end_break(&agent, now),
            Timer::Relogin(agent) => self.world.login(&agent, now).unwrap_or_default(),
        };
        self.publish(effects).await;
        self.dispatch().await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
