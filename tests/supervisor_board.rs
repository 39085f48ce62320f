//! The supervisors' board against the simulator's own records, over an hour of the
//! simulator's own traffic (its `Timeline`, the steps its actor takes) run in paused time:
//! calls arriving at random, answered after a random delay, abandoned by callers of random
//! patience (some before the short-abandon time), agents taking breaks, logged out and back
//! in. Every five minutes the board's figures must equal the simulator's own count
//! (`World::tally`), its waiting list the simulator's, and each agent's state the
//! simulator's.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use converja_bridge::board::{Board, Judging, Presence};
use converja_bridge::converja::{
    AgentId, AgentState, CallId, Event, QueueAgent, QueueCalls, QueueId, Request, RoomName,
    Timestamp,
};
use converja_bridge::sim::{Scenario, Tally, Timeline};
use tokio::time::Instant;

const THRESHOLD: f64 = 20.0;
const SHORT_ABANDON: f64 = 5.0;
const QUEUES: [QueueId; 2] = [QueueId(7), QueueId(8)];
/// Platform time at the start of the run.
const EPOCH: f64 = 1_765_000_000.0;

/// Two queues, six agents (two serving both), traffic that offers every outcome: answers
/// within and past the threshold, short and late abandons, breaks, logouts and relogins.
const SCENARIO: &str = r#"
    [[queues]]
    id = 7
    name = "Financeiro"
    agents = ["22010", "22011", "22014", "22015"]
    [[queues]]
    id = 8
    name = "Suporte"
    agents = ["22012", "22013", "22014", "22015"]
    [[agents]]
    id = "22010"
    name = "Maria"
    [[agents]]
    id = "22011"
    name = "João"
    [[agents]]
    id = "22012"
    name = "Carla"
    [[agents]]
    id = "22013"
    name = "Pedro"
    [[agents]]
    id = "22014"
    name = "Luíza"
    [[agents]]
    id = "22015"
    name = "Rafael"
    [traffic]
    arrival_interval = "25s"
    duration = "85s"
    patience = "90s"
    patience_min = "1s"
    answer_delay = "40s"
    calls_per_agent = 1
    relogin_after = "3m"
    [traffic.breaks]
    every = "10m"
    length = "2m"
    reasons = [1, 2, 3, 4]
"#;

struct Run {
    /// The simulator's own traffic and world.
    timeline: Timeline,
    board: Board,
    start: Instant,
    agents: Vec<AgentId>,
    /// Events published while this is set are lost for the bridge (an outage).
    deaf: bool,
    /// Whether checkpoints compare the figures: an outage loses calls that ended in it.
    counting: bool,
}

impl Run {
    fn new(seed: u64) -> Run {
        let mut scenario: Scenario = toml::from_str(SCENARIO).unwrap();
        scenario.seed = seed;
        scenario.check().unwrap();
        let agents = scenario.agents.iter().map(|a| a.id.clone()).collect();
        let board = Board::new(Judging {
            threshold: Duration::from_secs_f64(THRESHOLD),
            short_abandon: Duration::from_secs_f64(SHORT_ABANDON),
            windows: vec![Duration::from_secs(15 * 60), Duration::from_secs(60 * 60)],
        });
        let mut run = Run {
            timeline: Timeline::new(scenario, 1, Timestamp(EPOCH)),
            board,
            start: Instant::now(),
            agents,
            deaf: false,
            counting: true,
        };
        // What the bridge reads at start.
        run.reconcile();
        run
    }

    fn now(&self) -> Timestamp {
        Timestamp(EPOCH + self.start.elapsed().as_secs_f64())
    }

    fn publish(&mut self, events: Vec<(RoomName, Event)>) {
        if self.deaf {
            return;
        }
        for (_, e) in events {
            self.board.apply(&e);
        }
    }

    /// Runs the simulator's traffic until `until` after the start, checking the board every
    /// five minutes and logging an agent out at each check (the traffic logs it back in).
    async fn until(&mut self, until: Duration) {
        let mut checkpoint = self.start.elapsed() + Duration::from_secs(300);
        loop {
            let next = self.timeline.next_at().expect("traffic goes on");
            let check = self.start + checkpoint;
            if next.min(check) > self.start + until {
                break;
            }
            if check <= next {
                tokio::time::sleep_until(check).await;
                let now = self.now();
                if self.counting {
                    self.check(now);
                }
                let agent =
                    self.agents[(checkpoint.as_secs() / 300) as usize % self.agents.len()].clone();
                let events = self.timeline.world.logout(&agent, now).unwrap();
                self.timeline.note(&events);
                self.publish(events);
                checkpoint += Duration::from_secs(300);
                continue;
            }
            tokio::time::sleep_until(next).await;
            let events = self.timeline.fire(self.now());
            self.publish(events);
        }
        tokio::time::sleep_until(self.start + until).await;
    }

    /// The board equals the simulator: figures, waiting calls, agents.
    fn check(&self, now: Timestamp) {
        for queue in QUEUES {
            let stats = self.board.stats(queue, now);
            for w in &stats.windows {
                let from = Timestamp(now.0 - w.length.as_secs_f64());
                let t = self
                    .timeline
                    .world
                    .tally(queue, from, now, THRESHOLD, SHORT_ABANDON);
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
            let model = &self.timeline.world.agents[agent];
            let status = self.timeline.world.status(agent).unwrap();
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
                Some(call) => self.timeline.world.calls[call].timestamps.answer,
                None => Some(model.since),
            };
            assert_eq!(card.since, since, "since when agent {agent}");
        }
    }

    /// Asserts the board shows the calls the simulator has ringing in `queue`; how many.
    fn same_waiting_calls(&self, queue: QueueId, now: Timestamp) -> usize {
        let mut waiting = self.timeline.world.ringing(queue);
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

    /// At start and after an outage: what the bridge reads from the platform.
    fn reconcile(&mut self) {
        let now = self.now();
        for queue in QUEUES {
            let out = self
                .timeline
                .world
                .handle(&Request::QueueAgents(queue), now);
            let members: Vec<QueueAgent> =
                serde_json::from_value(out.params["data"].clone()).unwrap();
            self.board.reconcile_members(queue, None, &members);
            let out = self.timeline.world.handle(&Request::QueueCalls(queue), now);
            let listed: QueueCalls = serde_json::from_value(out.params).unwrap();
            self.board.reconcile_calls(&listed);
        }
        for agent in self.agents.clone() {
            let status = self.timeline.world.status(&agent).unwrap();
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
        let tally = |q| {
            let world = &run.timeline.world;
            world.tally(q, Timestamp(EPOCH), now, THRESHOLD, SHORT_ABANDON)
        };
        let (a, b) = (tally(QueueId(7)), tally(QueueId(8)));
        // The traffic offers every outcome, or the comparison proves little: answers within
        // and past the threshold, abandons, and short ones.
        let t = Tally {
            answered: a.answered + b.answered,
            answered_in_threshold: a.answered_in_threshold + b.answered_in_threshold,
            missed: a.missed + b.missed,
            abandoned: a.abandoned + b.abandoned,
            ..a
        };
        assert!(
            t.answered > 60 && t.abandoned > 5 && t.missed > t.abandoned,
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
        let status = run.timeline.world.status(agent).unwrap();
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
