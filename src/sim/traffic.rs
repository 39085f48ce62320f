//! The simulated platform in time ([`Timeline`]): its world and every step a scenario's
//! traffic takes at a set time. Calls arrive as a Poisson stream, ring in a random queue, are
//! answered by available agents after a random delay or abandoned by callers of random
//! patience, and last a random time; agents take breaks. Every choice comes from one seeded
//! generator. No I/O: the simulator's actor publishes what it returns, and a test can run it
//! in paused time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

use super::scenario::Scenario;
use super::world::World;
use crate::converja::{AgentId, CallId, Event, PauseReason, QueueId, RoomName, Timestamp};

/// Events to publish, with their rooms.
pub(super) type Effects = Vec<(RoomName, Event)>;

/// Something that happens at a set time.
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
}

/// Every random choice of a run, from one seeded generator: same seed, same run.
pub(super) struct Dice(StdRng);

impl Dice {
    pub(super) fn new(seed: u64) -> Self {
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

    /// A duration drawn uniformly between `low` and `high`.
    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        if high <= low {
            return low;
        }
        low + (high - low).mul_f64(self.0.random_range(0.0..1.0))
    }

    /// Call duration relative to the mean, uniform in 0.5-1.5.
    fn duration_factor(&mut self) -> f64 {
        self.0.random_range(0.5..1.5)
    }
}

/// The simulated platform in time: the world, and the steps due at set instants (tokio's
/// clock, so that paused time runs an hour in a moment).
pub struct Timeline {
    /// The platform's state.
    pub world: World,
    scenario: Scenario,
    dice: Dice,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// Ringing calls not answerable before their answer delay is over.
    not_before: HashMap<CallId, Instant>,
}

impl Timeline {
    /// The world of `scenario` at `now`, its call ids from `first_call`, its traffic (if any)
    /// scheduled from now.
    pub fn new(scenario: Scenario, first_call: u64, now: Timestamp) -> Self {
        let mut timeline = Timeline {
            world: scenario.world(first_call, now),
            dice: Dice::new(scenario.seed),
            scenario,
            timers: BinaryHeap::new(),
            not_before: HashMap::new(),
        };
        timeline.schedule_arrival();
        timeline.schedule_breaks();
        timeline
    }

    /// When the next step is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the step due first, if it is due, and hands out ringing calls; what to publish.
    pub fn fire(&mut self, now: Timestamp) -> Effects {
        let due = self.next_at().is_some_and(|at| at <= Instant::now());
        let step = if due { self.timers.pop() } else { None };
        let mut effects = match step {
            Some(Reverse((_, timer))) => self.step(timer, now),
            None => Vec::new(),
        };
        self.note(&effects);
        effects.extend(self.dispatch(now));
        effects
    }

    /// Schedules what published events call for: an agent logged out logs in again after
    /// `relogin_after`.
    pub fn note(&mut self, effects: &Effects) {
        let Some(after) = self.scenario.traffic.as_ref().and_then(|t| t.relogin_after) else {
            return;
        };
        for (_, event) in effects {
            if let Event::UserSessionDidFinish(s) = event {
                self.after(after.0, Timer::Relogin(s.agent.clone()));
            }
        }
    }

    fn after(&mut self, wait: Duration, timer: Timer) {
        self.timers.push(Reverse((Instant::now() + wait, timer)));
    }

    fn step(&mut self, timer: Timer, now: Timestamp) -> Effects {
        // A step may find its call or agent moved on another way meanwhile: then it does
        // nothing.
        match timer {
            Timer::Arrival => self.arrive(now),
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
        }
    }

    /// A call arrives in a random queue.
    fn arrive(&mut self, now: Timestamp) -> Effects {
        self.schedule_arrival();
        let queues: Vec<QueueId> = self.world.queues.keys().copied().collect();
        if queues.is_empty() {
            return Vec::new();
        }
        let queue = queues[self.dice.pick(queues.len())];
        let caller = self.dice.caller();
        let Ok((call, effects)) = self.world.ring(queue, caller, now) else {
            return Vec::new();
        };
        if let Some(t) = self.scenario.traffic.clone() {
            let patience = match t.patience_min {
                Some(min) => self.dice.between(min.0, t.patience.0),
                None => t.patience.0,
            };
            self.after(patience, Timer::Patience(call));
            if let Some(delay) = t.answer_delay {
                let wait = self.dice.between(Duration::ZERO, delay.0);
                self.not_before.insert(call, Instant::now() + wait);
                self.after(wait, Timer::Answerable(call));
            }
        }
        effects
    }

    /// Schedules each agent's first break, when the scenario has breaks.
    fn schedule_breaks(&mut self) {
        let Some(breaks) = self
            .scenario
            .traffic
            .as_ref()
            .and_then(|t| t.breaks.clone())
        else {
            return;
        };
        let agents: Vec<AgentId> = self.world.agents.keys().cloned().collect();
        for agent in agents {
            let wait = self.dice.between(Duration::ZERO, breaks.every.0 * 2);
            self.after(wait, Timer::Break(agent));
        }
    }

    /// `agent` pauses with a random reason (once free of calls, as agents do), and its break
    /// ends about `length` later; the next one about `every` after that.
    fn take_break(&mut self, agent: &AgentId, now: Timestamp) -> Effects {
        let Some(breaks) = self
            .scenario
            .traffic
            .as_ref()
            .and_then(|t| t.breaks.clone())
        else {
            return Vec::new();
        };
        let model = self.world.agents.get(agent);
        if !model.is_some_and(|a| a.logged_in && a.paused.is_none() && a.calls.is_empty()) {
            // Busy or away: try again shortly.
            self.after(Duration::from_secs(10), Timer::Break(agent.clone()));
            return Vec::new();
        }
        let reason = PauseReason(breaks.reasons[self.dice.pick(breaks.reasons.len())]);
        let length = self
            .dice
            .between(breaks.length.0 / 2, breaks.length.0 * 3 / 2);
        self.after(length, Timer::BreakOver(agent.clone()));
        self.world.pause(agent, reason, now).unwrap_or_default()
    }

    /// `agent`'s break is over.
    fn end_break(&mut self, agent: &AgentId, now: Timestamp) -> Effects {
        if let Some(breaks) = self
            .scenario
            .traffic
            .as_ref()
            .and_then(|t| t.breaks.clone())
        {
            let next = self
                .dice
                .between(breaks.every.0 / 2, breaks.every.0 * 3 / 2);
            self.after(next, Timer::Break(agent.clone()));
        }
        let paused = self
            .world
            .agents
            .get(agent)
            .is_some_and(|a| a.paused.is_some());
        if paused {
            self.world.resume(agent, now).unwrap_or_default()
        } else {
            Vec::new()
        }
    }

    /// Schedules the next arrival, when the scenario has traffic.
    fn schedule_arrival(&mut self) {
        let Some(t) = &self.scenario.traffic else {
            return;
        };
        // Exponential inter-arrival times: a Poisson stream of calls.
        let wait = self.dice.arrival_wait(t.arrival_interval.0);
        self.after(wait, Timer::Arrival);
    }

    /// Hands ringing calls to available agents of their queue, oldest call first.
    pub fn dispatch(&mut self, now: Timestamp) -> Effects {
        let Some(traffic) = self.scenario.traffic.clone() else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        let queues: Vec<(QueueId, Vec<AgentId>)> = self
            .world
            .queues
            .iter()
            .map(|(id, q)| (*id, q.agents.clone()))
            .collect();
        for (queue, agents) in queues {
            for call in self.world.ringing(queue) {
                if self.not_before.contains_key(&call) {
                    continue;
                }
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
                    self.after(traffic.duration.0.mul_f64(factor), Timer::Finish(call));
                }
            }
        }
        effects
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
