//! The supervisors' board against the simulator's own records, over an hour of scripted
//! traffic run in paused time: calls arriving at random, answered after a random ring,
//! abandoned by impatient callers (some before the short-abandon time), agents pausing,
//! logging out and back in. Every five minutes the board's figures must equal the
//! simulator's own count, its waiting list the simulator's, and each agent's state the
//! simulator's.

#![allow(clippy::unwrap_used)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use converja_bridge::board::{Board, Judging, Presence};
use converja_bridge::converja::{
    AgentId, AgentState, CallId, Event, PauseReason, QueueCalls, QueueId, Request, RoomName,
    Timestamp,
};
use converja_bridge::sim::{AgentModel, QueueModel, World};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

const THRESHOLD: f64 = 20.0;
const SHORT_ABANDON: f64 = 5.0;
const QUEUES: [QueueId; 2] = [QueueId(7), QueueId(8)];
/// Platform time at the start of the run.
const EPOCH: f64 = 1_765_000_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Arrival,
    Pickup(CallId),
    GiveUp(CallId),
    HangUp(CallId),
    Break(usize),
    Checkpoint,
}

struct Run {
    world: World,
    board: Board,
    dice: StdRng,
    steps: BinaryHeap<Reverse<(Instant, Step)>>,
    start: Instant,
    agents: Vec<AgentId>,
    /// Events published while this is set are lost for the bridge (an outage).
    deaf: bool,
    /// Whether checkpoints compare the figures: an outage loses calls that ended in it.
    counting: bool,
}

impl Run {
    fn new(seed: u64) -> Run {
        let mut world = World::new(1);
        let agents: Vec<AgentId> = (0..6).map(|i| AgentId::new(format!("2201{i}"))).collect();
        for a in &agents {
            world.agents.insert(
                a.clone(),
                AgentModel {
                    name: format!("Agent {a}"),
                    logged_in: false,
                    paused: None,
                    calls: vec![],
                    since: Timestamp(EPOCH),
                },
            );
        }
        for (i, q) in QUEUES.iter().enumerate() {
            // Two agents per queue, and two serving both.
            let members = agents
                .iter()
                .enumerate()
                .filter(|(n, _)| n % 3 == i || n % 3 == 2);
            world.queues.insert(
                *q,
                QueueModel {
                    name: format!("Queue {q}"),
                    agents: members.map(|(_, a)| a.clone()).collect(),
                    supervisors: vec![],
                },
            );
        }
        let board = Board::new(Judging {
            threshold: Duration::from_secs_f64(THRESHOLD),
            short_abandon: Duration::from_secs_f64(SHORT_ABANDON),
            windows: vec![Duration::from_secs(15 * 60), Duration::from_secs(60 * 60)],
        });
        let mut run = Run {
            world,
            board,
            dice: StdRng::seed_from_u64(seed),
            steps: BinaryHeap::new(),
            start: Instant::now(),
            agents,
            deaf: false,
            counting: true,
        };
        for a in run.agents.clone() {
            let events = run.world.login(&a, run.now()).unwrap();
            run.publish(events);
        }
        for i in 0..run.agents.len() {
            let first_break = run.dice.random_range(300..1500);
            run.after(Duration::from_secs(first_break), Step::Break(i));
        }
        run.after(Duration::ZERO, Step::Arrival);
        run.after(Duration::from_secs(300), Step::Checkpoint);
        run
    }

    fn now(&self) -> Timestamp {
        Timestamp(EPOCH + self.start.elapsed().as_secs_f64())
    }

    fn after(&mut self, wait: Duration, step: Step) {
        self.steps.push(Reverse((Instant::now() + wait, step)));
    }

    fn publish(&mut self, events: Vec<(RoomName, Event)>) {
        if self.deaf {
            return;
        }
        for (_, e) in events {
            self.board.apply(&e);
        }
    }

    /// Runs until `until` after the start, checking the board at every checkpoint.
    async fn until(&mut self, until: Duration) {
        while let Some(Reverse((at, step))) = self.steps.pop() {
            if at > self.start + until {
                self.steps.push(Reverse((at, step)));
                break;
            }
            tokio::time::sleep_until(at).await;
            self.step(step);
        }
    }

    fn step(&mut self, step: Step) {
        let now = self.now();
        match step {
            Step::Arrival => {
                let queue = QUEUES[self.dice.random_range(0..QUEUES.len())];
                let caller = format!("0119{:07}", self.dice.random_range(0..10_000_000));
                let (call, events) = self.world.ring(queue, caller, now).unwrap();
                self.publish(events);
                let ring = self.dice.random_range(1.0..40.0);
                self.after(Duration::from_secs_f64(ring), Step::Pickup(call));
                let patience = self.dice.random_range(2.0..120.0);
                self.after(Duration::from_secs_f64(patience), Step::GiveUp(call));
                let next = -self.dice.random_range(f64::EPSILON..1.0).ln() * 25.0;
                self.after(Duration::from_secs_f64(next), Step::Arrival);
            }
            Step::Pickup(call) => {
                if self.world.calls[&call].timestamps.answer.is_some()
                    || self.world.calls[&call].timestamps.miss.is_some()
                {
                    return;
                }
                let queue = self.world.calls[&call].queue;
                let free = self.world.queues[&queue]
                    .agents
                    .iter()
                    .find(|a| self.world.is_available(a, 1))
                    .cloned();
                match free {
                    Some(agent) => {
                        let events = self.world.answer(call, &agent, now).unwrap();
                        self.publish(events);
                        let talk = self.dice.random_range(20.0..150.0);
                        self.after(Duration::from_secs_f64(talk), Step::HangUp(call));
                    }
                    None => self.after(Duration::from_secs(3), Step::Pickup(call)),
                }
            }
            Step::GiveUp(call) => {
                if let Ok(events) = self.world.miss(call, now) {
                    self.publish(events);
                }
            }
            Step::HangUp(call) => {
                if let Ok(events) = self.world.finish(call, now) {
                    self.publish(events);
                }
            }
            Step::Break(i) => self.take_a_break(i, now),
            Step::Checkpoint => {
                if self.counting {
                    self.check(now);
                }
                self.after(Duration::from_secs(300), Step::Checkpoint);
            }
        }
    }

    /// Agent `i` pauses, resumes, logs out or back in, by turns.
    fn take_a_break(&mut self, i: usize, now: Timestamp) {
        let agent = self.agents[i].clone();
        let model = &self.world.agents[&agent];
        let events = if !model.logged_in {
            self.world.login(&agent, now)
        } else if model.paused.is_some() {
            self.world.resume(&agent, now)
        } else if self.dice.random_range(0..4) == 0 {
            self.world.logout(&agent, now)
        } else {
            let reason = PauseReason(self.dice.random_range(1..5));
            self.world.pause(&agent, reason, now)
        };
        // A logout hangs up the agent's calls; their own hang-up steps find them over.
        let events = events.unwrap();
        self.publish(events);
        let next = self.dice.random_range(60..600);
        self.after(Duration::from_secs(next), Step::Break(i));
    }

    /// The board equals the simulator: figures, waiting calls, agents.
    fn check(&self, now: Timestamp) {
        for queue in QUEUES {
            let stats = self.board.stats(queue, now);
            for w in &stats.windows {
                let from = Timestamp(now.0 - w.length.as_secs_f64());
                let t = self.world.tally(queue, from, now, THRESHOLD, SHORT_ABANDON);
                let at = format!(
                    "queue {queue}, {:?} window, {:.0} s in",
                    w.length,
                    now.0 - EPOCH
                );
                assert_eq!(
                    (w.answered, w.answered_in_threshold, w.missed, w.abandoned),
                    (t.answered, t.answered_in_threshold, t.missed, t.abandoned),
                    "{at}"
                );
                let judged = t.answered + t.abandoned;
                let level = (judged > 0).then(|| t.answered_in_threshold as f64 / judged as f64);
                assert_eq!(w.service_level, level, "{at}");
                close(
                    w.avg_wait,
                    (t.answered > 0).then(|| t.wait_seconds / t.answered as f64),
                    &at,
                );
                close(
                    w.avg_handle,
                    (t.ended > 0).then(|| t.talk_seconds / t.ended as f64),
                    &at,
                );
            }
            let waiting = self.same_waiting_calls(queue, now);
            assert_eq!(stats.waiting, waiting);
        }
        for agent in &self.agents {
            let model = &self.world.agents[agent];
            let status = self.world.status(agent).unwrap();
            let want = if !model.logged_in {
                Presence::LoggedOut
            } else {
                match status.name {
                    AgentState::Idle => Presence::Idle,
                    AgentState::Busy => Presence::Busy {
                        caller: status.show.clone(),
                    },
                    AgentState::Paused => Presence::Paused {
                        reason: model.paused.unwrap(),
                    },
                }
            };
            let card = self.board.agent(agent).expect("every agent logged in once");
            assert_eq!(card.presence, want, "agent {agent}");
            // Busy counts from the answer: a pause or resume during a call (which the
            // simulator dates its status by) does not restart it.
            let since = match model.calls.last() {
                Some(call) => self.world.calls[call].timestamps.answer,
                None => Some(model.since),
            };
            assert_eq!(card.since, since, "since when agent {agent}");
        }
    }

    /// Asserts the board shows the calls the simulator has ringing in `queue`; how many.
    fn same_waiting_calls(&self, queue: QueueId, now: Timestamp) -> usize {
        let mut waiting = self.world.ringing(queue);
        waiting.sort();
        let mut shown: Vec<CallId> = self
            .board
            .snapshot(queue, now)
            .calls
            .iter()
            .map(|c| c.call)
            .collect();
        shown.sort();
        assert_eq!(shown, waiting, "waiting calls of queue {queue}");
        waiting.len()
    }

    /// After an outage: what the bridge reads from the platform.
    fn reconcile(&mut self) {
        let now = self.now();
        for queue in QUEUES {
            let out = self.world.handle(&Request::QueueCalls(queue), now);
            let listed: QueueCalls = serde_json::from_value(out.params).unwrap();
            self.board.reconcile_calls(&listed);
        }
        for agent in self.agents.clone() {
            let status = self.world.status(&agent).unwrap();
            self.board.reconcile_status(&status);
        }
    }
}

fn close(got: Option<f64>, want: Option<f64>, at: &str) {
    match (got, want) {
        (Some(g), Some(w)) => assert!((g - w).abs() < 1e-6, "{at}: {g} != {w}"),
        _ => assert_eq!(got, want, "{at}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_hour_of_traffic_is_counted_as_the_platform_counts_it() {
    for seed in [1, 2, 3] {
        let mut run = Run::new(seed);
        run.until(Duration::from_secs(3600)).await;
        let now = run.now();
        run.check(now);
        let t = run
            .world
            .tally(QueueId(7), Timestamp(EPOCH), now, THRESHOLD, SHORT_ABANDON);
        // The script exercises every outcome, or the comparison proves little.
        assert!(
            t.answered > 30 && t.abandoned > 3 && t.missed > t.abandoned,
            "{t:?}"
        );
        assert!(t.answered_in_threshold < t.answered, "{t:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn after_an_outage_the_listings_set_waiting_calls_and_agents_right() {
    let mut run = Run::new(7);
    run.until(Duration::from_secs(1200)).await;
    run.deaf = true;
    run.counting = false;
    run.until(Duration::from_secs(1500)).await;
    run.deaf = false;
    run.reconcile();
    let now = run.now();
    for queue in QUEUES {
        run.same_waiting_calls(queue, now);
    }
    for agent in &run.agents {
        let status = run.world.status(agent).unwrap();
        let card = run.board.agent(agent).unwrap();
        let busy = matches!(card.presence, Presence::Busy { .. });
        assert_eq!(
            busy,
            status.name == AgentState::Busy,
            "agent {agent}: {card:?} vs {status:?}"
        );
        let paused = matches!(card.presence, Presence::Paused { .. });
        assert_eq!(paused, status.name == AgentState::Paused, "agent {agent}");
    }
}
