//! The simulator's own count of a queue's calls, straight from its call records: what a
//! supervisor's figures are checked against.

use super::World;
use crate::converja::{QueueId, Timestamp};

/// What became of a queue's calls over a period, by the platform's own records.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// Calls answered in the period.
    pub answered: u64,
    /// Of those, answered within the threshold.
    pub answered_in_threshold: u64,
    /// Calls that left unanswered in the period.
    pub missed: u64,
    /// Of those, whose caller waited at least the short-abandon time.
    pub abandoned: u64,
    /// Calls that ended after being answered, in the period.
    pub ended: u64,
    /// Calls waiting at the end of the period.
    pub waiting: u64,
    /// Total wait of the calls answered in the period, in seconds.
    pub wait_seconds: f64,
    /// Total talk time of the calls ended in the period, in seconds.
    pub talk_seconds: f64,
}

impl World {
    /// The tally of `queue` for the period `(from, to]`, judging waits by `threshold` and
    /// `short_abandon` seconds.
    pub fn tally(
        &self,
        queue: QueueId,
        from: Timestamp,
        to: Timestamp,
        threshold: f64,
        short_abandon: f64,
    ) -> Tally {
        let inside = |t: Option<Timestamp>| t.is_some_and(|t| t.0 > from.0 && t.0 <= to.0);
        let mut tally = Tally::default();
        for c in self.calls.values().filter(|c| c.queue == queue) {
            let t = &c.timestamps;
            if inside(t.answer) {
                tally.answered += 1;
                let wait = t.answer.map_or(0.0, |a| a.0 - t.join.0);
                tally.answered_in_threshold += u64::from(wait <= threshold);
                tally.wait_seconds += wait;
            }
            if inside(t.miss) {
                tally.missed += 1;
                let wait = t.miss.map_or(0.0, |m| m.0 - t.join.0);
                tally.abandoned += u64::from(wait >= short_abandon);
            }
            if let (Some(answer), Some(hangup)) = (t.answer, t.hangup)
                && inside(t.hangup)
            {
                tally.ended += 1;
                tally.talk_seconds += hangup.0 - answer.0;
            }
            let over_or_answered = |x: Option<Timestamp>| x.is_some_and(|x| x.0 <= to.0);
            if t.join.0 <= to.0
                && !over_or_answered(t.answer)
                && !over_or_answered(t.miss)
                && !over_or_answered(t.hangup)
            {
                tally.waiting += 1;
            }
        }
        tally
    }
}
