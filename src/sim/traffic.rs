//! Call traffic of a scenario: calls arrive as a Poisson stream, ring in a random queue, are
//! handed to available agents and last a random time, all drawn from one seeded generator.

use std::cmp::Reverse;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

use super::{Effects, Sim, Timer};
use crate::converja::{AgentId, PauseReason, QueueId, Timestamp};

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

impl Sim {
    /// A call arrives in a random queue; `None` when there is nothing to publish.
    pub(super) fn arrive(&mut self, now: Timestamp) -> Option<Effects> {
        self.schedule_arrival();
        let queues: Vec<QueueId> = self.world.queues.keys().copied().collect();
        if queues.is_empty() {
            return None;
        }
        let queue = queues[self.dice.pick(queues.len())];
        let caller = self.dice.caller();
        let (call, effects) = self.world.ring(queue, caller, now).ok()?;
        if let Some(t) = self.scenario.traffic.clone() {
            let patience = match t.patience_min {
                Some(min) => self.dice.between(min.0, t.patience.0),
                None => t.patience.0,
            };
            self.timers
                .push(Reverse((Instant::now() + patience, Timer::Patience(call))));
            if let Some(delay) = t.answer_delay {
                let at = Instant::now() + self.dice.between(Duration::ZERO, delay.0);
                self.not_before.insert(call, at);
                self.timers.push(Reverse((at, Timer::Answerable(call))));
            }
        }
        Some(effects)
    }

    /// Schedules each agent's first break, when the scenario has breaks.
    pub(super) fn schedule_breaks(&mut self) {
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
            self.timers
                .push(Reverse((Instant::now() + wait, Timer::Break(agent))));
        }
    }

    /// `agent` pauses with a random reason (once free of calls, as agents do), and its break
    /// ends about `length` later; the next one about `every` after that.
    pub(super) fn take_break(&mut self, agent: &AgentId, now: Timestamp) -> Effects {
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
            self.timers.push(Reverse((
                Instant::now() + Duration::from_secs(10),
                Timer::Break(agent.clone()),
            )));
            return Vec::new();
        }
        let reason = PauseReason(breaks.reasons[self.dice.pick(breaks.reasons.len())]);
        let length = self
            .dice
            .between(breaks.length.0 / 2, breaks.length.0 * 3 / 2);
        self.timers.push(Reverse((
            Instant::now() + length,
            Timer::BreakOver(agent.clone()),
        )));
        self.world.pause(agent, reason, now).unwrap_or_default()
    }

    /// `agent`'s break is over.
    pub(super) fn end_break(&mut self, agent: &AgentId, now: Timestamp) -> Effects {
        if let Some(breaks) = self
            .scenario
            .traffic
            .as_ref()
            .and_then(|t| t.breaks.clone())
        {
            let next = self
                .dice
                .between(breaks.every.0 / 2, breaks.every.0 * 3 / 2);
            self.timers.push(Reverse((
                Instant::now() + next,
                Timer::Break(agent.clone()),
            )));
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
    pub(super) fn schedule_arrival(&mut self) {
        let Some(t) = &self.scenario.traffic else {
            return;
        };
        // Exponential inter-arrival times: a Poisson stream of calls.
        let wait = self.dice.arrival_wait(t.arrival_interval.0);
        self.timers
            .push(Reverse((Instant::now() + wait, Timer::Arrival)));
    }

    /// Hands ringing calls to available agents of their queue, oldest call first.
    pub(super) async fn dispatch(&mut self) {
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
