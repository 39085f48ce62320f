//! The control side of the simulator: [`SimHandle`], with which tests and tools drive the
//! world, set faults and read the requests received, and the actor's end of that channel.

use tokio::sync::{mpsc, oneshot};
use tokio_xmpp::jid::BareJid;
use tracing::warn;

use super::{Effects, FaultRule, SeenRequest, Sim, World, WorldError};
use crate::converja::{AgentId, CallId, PauseReason, QueueId, RoomName, Timestamp};
use crate::xmpp::{Link, LinkStatus};

/// A change to the world, run inside the actor; it returns the events to publish.
type Action = Box<dyn FnOnce(&mut World, Timestamp) -> Effects + Send>;

/// What a [`SimHandle`] asks of the actor.
pub(super) enum Control {
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

impl SimHandle {
    /// A handle sending to `control`; [`SimHandle::ready`] waits for `rooms` on `link`.
    pub(super) fn new(control: mpsc::Sender<Control>, link: Link, rooms: Vec<BareJid>) -> Self {
        SimHandle {
            control,
            link,
            rooms,
        }
    }
}

impl Sim {
    /// Carries out what a handle asked.
    pub(super) async fn on_control(&mut self, cmd: Control) {
        match cmd {
            Control::Act(action) => {
                let effects = action(&mut self.timeline.world, Timestamp::now());
                self.settle(effects).await;
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
}
