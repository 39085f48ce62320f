//! `converja-sim`: a real XMPP client that plays the Converja platform. It joins the platform's
//! rooms under the platform's nicknames, answers the ten requests from its [`World`], publishes
//! the eight events, generates call traffic from a [`Scenario`], and injects faults on demand.

mod scenario;
mod world;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_xmpp::jid::{BareJid, FullJid, Jid};
use tracing::{Instrument, debug, info, warn};

pub use scenario::{AgentSpec, QueueSpec, Scenario, SupervisorSpec, Traffic};
pub use world::{AgentModel, CallModel, CallPhase, Outcome, QueueModel, World, WorldError};

use crate::converja::{
    Addresses, AgentId, CallId, Destination, Event, EventMessage, Message, Method, PauseReason,
    QueueId, Request, RequestMessage, ResponseMessage, RoomName, Timestamp,
};
use crate::pending::IdSource;
use crate::xmpp::{ConnectSettings, Inbound, Link, LinkStatus, MessageKind};

/// Nickname of the simulator in rooms that have no platform-defined occupant.
pub const PLATFORM_NICK: &str = "platform";
/// Requests remembered for [`SimHandle::requests`].
const REQUEST_LOG: usize = 10_000;
/// A response held back by `reorder` is released after this long if nothing overtakes it.
const REORDER_HOLD: Duration = Duration::from_secs(2);

/// Misbehaviour injected into the answers to matching requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fault {
    /// Answer this much later (other answers overtake it).
    pub delay: Option<Duration>,
    /// Hold the answer until the next answer has been sent.
    pub reorder: bool,
    /// Send the answer twice.
    pub duplicate: bool,
    /// Never answer.
    pub drop: bool,
    /// Send a body that is not JSON before the real answer.
    pub malformed: bool,
    /// Send a forged answer from another occupant (catraquis) before the real one.
    pub spoof_first: bool,
    /// Answer with this failure status instead of executing the request.
    pub status: Option<u16>,
}

/// Applies `fault` to requests whose resource starts with `resource` (and method matches).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// Only this method, or any.
    pub method: Option<Method>,
    /// Resource prefix; "" matches every request.
    pub resource: String,
    /// What to do.
    pub fault: Fault,
}

impl FaultRule {
    /// A rule for every request whose resource starts with `resource`.
    pub fn new(resource: &str, fault: Fault) -> Self {
        FaultRule {
            method: None,
            resource: resource.into(),
            fault,
        }
    }

    fn matches(&self, msg: &RequestMessage) -> bool {
        self.method.is_none_or(|m| m == msg.method) && msg.resource.starts_with(&self.resource)
    }
}

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

type Effects = Vec<(RoomName, Event)>;
type Action = Box<dyn FnOnce(&mut World, Timestamp) -> Effects + Send>;

enum Control {
    Act(Action),
    SetFaults(Vec<FaultRule>, oneshot::Sender<()>),
    Publish {
        room: RoomName,
        body: String,
        done: oneshot::Sender<()>,
    },
    Requests(oneshot::Sender<Vec<SeenRequest>>),
}

/// Controls a running simulator from tests and tools. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SimHandle {
    control: mpsc::Sender<Control>,
    link: Link,
    rooms: Vec<BareJid>,
}

impl SimHandle {
    /// Runs `f` on the world and publishes the events it returns.
    pub async fn act<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut World, Timestamp) -> Result<(T, Effects), WorldError> + Send + 'static,
    ) -> Result<T, WorldError> {
        let (tx, rx) = oneshot::channel();
        let action: Action = Box::new(move |world, now| match f(world, now) {
            Ok((value, effects)) => {
                let _ = tx.send(Ok(value));
                effects
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                Vec::new()
            }
        });
        self.control
            .send(Control::Act(action))
            .await
            .map_err(|_| WorldError("the simulator stopped".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(WorldError("the simulator stopped".into())))
    }

    /// Rings a call in `queue` and has `agent` answer it at once; returns the call id.
    pub async fn start_call(
        &self,
        queue: QueueId,
        agent: &AgentId,
        caller: &str,
    ) -> Result<CallId, WorldError> {
        let (agent, caller) = (agent.clone(), caller.to_owned());
        self.act(move |w, now| {
            let (call, mut effects) = w.ring(queue, caller, now)?;
            effects.extend(w.answer(call, &agent, now)?);
            Ok((call, effects))
        })
        .await
    }

    /// Rings a call in `queue` that nobody answers yet.
    pub async fn ring(&self, queue: QueueId, caller: &str) -> Result<CallId, WorldError> {
        let caller = caller.to_owned();
        self.act(move |w, now| w.ring(queue, caller, now)).await
    }

    /// The caller of an active call hangs up.
    pub async fn finish_call(&self, call: CallId) -> Result<(), WorldError> {
        self.act(move |w, now| Ok(((), w.finish(call, now)?))).await
    }

    /// The caller of a ringing call gives up.
    pub async fn miss_call(&self, call: CallId) -> Result<(), WorldError> {
        self.act(move |w, now| Ok(((), w.miss(call, now)?))).await
    }

    /// The agent pauses.
    pub async fn pause(&self, agent: &AgentId, reason: PauseReason) -> Result<(), WorldError> {
        let agent = agent.clone();
        self.act(move |w, now| Ok(((), w.pause(&agent, reason, now)?)))
            .await
    }

    /// The agent logs out.
    pub async fn logout(&self, agent: &AgentId) -> Result<(), WorldError> {
        let agent = agent.clone();
        self.act(move |w, now| Ok(((), w.logout(&agent, now)?)))
            .await
    }

    /// The agent logs in.
    pub async fn login(&self, agent: &AgentId) -> Result<(), WorldError> {
        let agent = agent.clone();
        self.act(move |w, now| Ok(((), w.login(&agent, now)?)))
            .await
    }

    /// A copy of the world now.
    pub async fn world(&self) -> World {
        self.act(|w, _| Ok((w.clone(), Vec::new())))
            .await
            .unwrap_or_default()
    }

    /// Replaces the fault rules; the first matching rule applies to a request.
    pub async fn set_faults(&self, rules: Vec<FaultRule>) {
        // Returns once the rules apply, so a request sent next is sure to meet them.
        let (done, applied) = oneshot::channel();
        if self
            .control
            .send(Control::SetFaults(rules, done))
            .await
            .is_ok()
        {
            let _ = applied.await;
        }
    }

    /// Publishes a raw body in a room, as the platform would (for replays and bad events).
    pub async fn publish_raw(&self, room: RoomName, body: String) {
        let (done, rx) = oneshot::channel();
        if self
            .control
            .send(Control::Publish { room, body, done })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// The requests received so far, oldest first.
    pub async fn requests(&self) -> Vec<SeenRequest> {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Requests(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Waits until the simulator's link is online with every platform room joined.
    pub async fn ready(&self) {
        let mut state = self.link.state();
        let _ = state
            .wait_for(|s| {
                s.status == LinkStatus::Online && self.rooms.iter().all(|r| s.joined.contains(r))
            })
            .await;
    }

    /// The simulator's XMPP link.
    pub fn link(&self) -> &Link {
        &self.link
    }
}

/// Every random choice of a run, from one seeded generator: same seed, same run.
struct Dice(StdRng);

impl Dice {
    fn new(seed: u64) -> Self {
        Dice(StdRng::seed_from_u64(seed))
    }

    /// An index below `n` (n > 0).
    fn pick(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    /// A caller number such as 01921215544.
    fn caller(&mut self) -> String {
        format!(
            "0{}{:08}",
            self.0.random_range(11..99),
            self.0.random_range(0..100_000_000u64)
        )
    }

    /// Time to the next call: exponential around `mean` (a Poisson stream), capped at 10x.
    fn arrival_wait(&mut self, mean: Duration) -> Duration {
        let u: f64 = self.0.random_range(f64::EPSILON..1.0);
        mean.mul_f64(-u.ln()).min(mean * 10)
    }

    /// Call duration relative to the mean, uniform in 0.5-1.5.
    fn duration_factor(&mut self) -> f64 {
        self.0.random_range(0.5..1.5)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Arrival,
    Finish(CallId),
    Patience(CallId),
    Relogin(AgentId),
    ReleaseHeld,
}

struct Held {
    to: FullJid,
    id: String,
    body: String,
}

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
    let handle = SimHandle {
        control: control_tx,
        link: link.clone(),
        rooms: room_jids,
    };
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

    async fn on_control(&mut self, cmd: Control) {
        match cmd {
            Control::Act(action) => {
                let effects = action(&mut self.world, Timestamp::now());
                self.publish(effects).await;
                self.dispatch().await;
            }
            Control::SetFaults(rules, done) => {
                self.faults = rules;
                let _ = done.send(());
            }
            Control::Publish { room, body, done } => {
                if let Ok(jid) = self.addresses.room(&room) {
                    let id = self.ids.next().to_string();
                    if let Err(e) = self.link.send_groupchat(jid, id, body).await {
                        warn!(error = %e, "cannot publish");
                    }
                }
                let _ = done.send(());
            }
            Control::Requests(reply) => {
                let _ = reply.send(self.seen.iter().cloned().collect());
            }
        }
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
        let fault = self
            .faults
            .iter()
            .find(|r| r.matches(&request))
            .map(|r| r.fault.clone())
            .unwrap_or_default();
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

    async fn answer(&mut self, to: FullJid, response: ResponseMessage, fault: &Fault) {
        if fault.drop {
            debug!(to = response.to, "answer dropped by fault injection");
            return;
        }
        let id = self.ids.next().to_string();
        if fault.malformed {
            let _ = self
                .link
                .send_chat(
                    to.clone(),
                    self.ids.next().to_string(),
                    "{\"type\": \"response\", \"to\": ".into(),
                )
                .await;
        }
        if fault.spoof_first {
            let forged = ResponseMessage {
                status: 500,
                failure: true,
                params: serde_json::json!({"error": "forged"}),
                ..response.clone()
            };
            if let Ok(other) = self
                .addresses
                .occupant(&RoomName::Catraquis, to.resource().as_str())
            {
                let _ = self
                    .link
                    .send_chat(
                        other,
                        self.ids.next().to_string(),
                        Message::Response(forged).to_json(),
                    )
                    .await;
            }
        }
        let body = Message::Response(response).to_json();
        let copies = if fault.duplicate { 2 } else { 1 };
        if let Some(delay) = fault.delay {
            let link = self.link.clone();
            self.tracker.spawn(async move {
                tokio::time::sleep(delay).await;
                for _ in 0..copies {
                    let _ = link.send_chat(to.clone(), id.clone(), body.clone()).await;
                }
            });
            return;
        }
        if fault.reorder && self.held.is_none() {
            self.held = Some(Held { to, id, body });
            self.timers
                .push(Reverse((Instant::now() + REORDER_HOLD, Timer::ReleaseHeld)));
            return;
        }
        for _ in 0..copies {
            let _ = self
                .link
                .send_chat(to.clone(), id.clone(), body.clone())
                .await;
        }
        self.release_held().await;
    }

    async fn release_held(&mut self) {
        if let Some(Held { to, id, body }) = self.held.take() {
            let _ = self.link.send_chat(to, id, body).await;
        }
    }

    async fn on_timer(&mut self, timer: Timer) {
        let now = Timestamp::now();
        let effects = match timer {
            Timer::ReleaseHeld => {
                self.release_held().await;
                return;
            }
            Timer::Arrival => {
                self.schedule_arrival();
                let queues: Vec<QueueId> = self.world.queues.keys().copied().collect();
                if queues.is_empty() {
                    return;
                }
                let queue = queues[self.dice.pick(queues.len())];
                let caller = self.dice.caller();
                match self.world.ring(queue, caller, now) {
                    Ok((call, effects)) => {
                        if let Some(t) = &self.scenario.traffic {
                            self.timers.push(Reverse((
                                Instant::now() + t.patience.0,
                                Timer::Patience(call),
                            )));
                        }
                        effects
                    }
                    Err(_) => return,
                }
            }
            // The call may have ended another way meanwhile; then there is nothing to do.
            Timer::Finish(call) => self.world.finish(call, now).unwrap_or_default(),
            Timer::Patience(call) => self.world.miss(call, now).unwrap_or_default(),
            Timer::Relogin(agent) => self.world.login(&agent, now).unwrap_or_default(),
        };
        self.publish(effects).await;
        self.dispatch().await;
    }

    fn schedule_arrival(&mut self) {
        let Some(t) = &self.scenario.traffic else {
            return;
        };
        // Exponential inter-arrival times: a Poisson stream of calls.
        let wait = self.dice.arrival_wait(t.arrival_interval.0);
        self.timers
            .push(Reverse((Instant::now() + wait, Timer::Arrival)));
    }

    /// Hands ringing calls to available agents of their queue, oldest call first.
    async fn dispatch(&mut self) {
        let Some(traffic) = self.scenario.traffic.clone() else {
            return;
        };
        let now = Timestamp::now();
        let mut effects = Vec::new();
        let queues: Vec<(QueueId, Vec<AgentId>)> = self
            .world
            .queues
            .iter()
            .map(|(id, q)| (*id, q.agents.clone()))
            .collect();
        for (queue, agents) in queues {
            for call in self.world.ringing(queue) {
                let Some(agent) = agents
                    .iter()
                    .find(|a| self.world.is_available(a, traffic.calls_per_agent))
                    .cloned()
                else {
                    break;
                };
                if let Ok(e) = self.world.answer(call, &agent, now) {
                    effects.extend(e);
                    let factor = self.dice.duration_factor();
                    self.timers.push(Reverse((
                        Instant::now() + traffic.duration.0.mul_f64(factor),
                        Timer::Finish(call),
                    )));
                }
            }
        }
        self.publish(effects).await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64) -> Vec<(usize, String, Duration, u64)> {
        let mut dice = Dice::new(seed);
        (0..50)
            .map(|_| {
                let wait = dice.arrival_wait(Duration::from_secs(4));
                (
                    dice.pick(3),
                    dice.caller(),
                    wait,
                    (dice.duration_factor() * 1000.0) as u64,
                )
            })
            .collect()
    }

    #[test]
    fn the_same_seed_makes_the_same_run() {
        assert_eq!(run(2016), run(2016));
        assert_ne!(run(2016), run(2017));
        let calls = run(7);
        assert!(calls.iter().all(|(q, c, w, f)| *q < 3
            && c.len() == 11
            && *w <= Duration::from_secs(40)
            && (500..1500).contains(f)));
        assert!(
            calls
                .iter()
                .map(|(q, ..)| *q)
                .collect::<std::collections::HashSet<_>>()
                .len()
                == 3,
            "every queue gets calls"
        );
    }
}
