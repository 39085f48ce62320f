//! What happened to a queue's calls lately, kept as timestamped records and summed over
//! sliding windows on demand: an hour of a busy queue is a few thousand records, and summing
//! them when a screen asks is cheaper than keeping one running sum per window in step.

use std::time::Duration;

use crate::converja::Timestamp;

/// The figures of one sliding window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowStats {
    /// The window's length.
    pub length: Duration,
    /// Calls answered in the window.
    pub answered: u64,
    /// Of those, the ones answered within the service-level threshold.
    pub answered_in_threshold: u64,
    /// Calls that left the queue unanswered (the platform's `CallMissed`).
    pub missed: u64,
    /// Of those, the ones whose caller waited at least the short-abandon time.
    pub abandoned: u64,
    /// `answered_in_threshold / (answered + abandoned)`; `None` with nothing to measure.
    pub service_level: Option<f64>,
    /// Mean wait of the answered calls, in seconds.
    pub avg_wait: Option<f64>,
    /// Mean talk time of the calls that ended in the window, in seconds.
    pub avg_handle: Option<f64>,
}

/// One minute of the last hour, for sparklines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minute {
    /// Start of the minute.
    pub at: Timestamp,
    /// Calls that joined the queue.
    pub offered: u64,
    /// Calls answered.
    pub answered: u64,
    /// Calls that left unanswered.
    pub missed: u64,
}

/// Minutes of history kept for sparklines.
pub const HISTORY_MINUTES: usize = 60;

/// How calls are judged: the service-level threshold and the short-abandon time.
#[derive(Debug, Clone, PartialEq)]
pub struct Judging {
    /// Answered within this is "within service level".
    pub threshold: Duration,
    /// Callers who hang up sooner than this are missed but not abandoned: they count neither
    /// for nor against the service level (wrong numbers, callers who changed their mind).
    pub short_abandon: Duration,
    /// The sliding windows reported, shortest first.
    pub windows: Vec<Duration>,
}

/// The records of one queue.
#[derive(Debug, Default, Clone)]
pub(super) struct Records {
    /// Join times.
    offered: Vec<Timestamp>,
    /// Answer time and wait.
    answered: Vec<(Timestamp, f64)>,
    /// Miss time and wait.
    missed: Vec<(Timestamp, f64)>,
    /// Hang-up time and talk time.
    handled: Vec<(Timestamp, f64)>,
}

impl Records {
    pub(super) fn offered(&mut self, at: Timestamp) {
        self.offered.push(at);
    }

    pub(super) fn answered(&mut self, at: Timestamp, wait: f64) {
        self.answered.push((at, wait.max(0.0)));
    }

    pub(super) fn missed(&mut self, at: Timestamp, wait: f64) {
        self.missed.push((at, wait.max(0.0)));
    }

    pub(super) fn handled(&mut self, at: Timestamp, talk: f64) {
        self.handled.push((at, talk.max(0.0)));
    }

    /// Forgets records older than `keep` before `now`.
    pub(super) fn prune(&mut self, now: Timestamp, keep: Duration) {
        let from = now.0 - keep.as_secs_f64();
        self.offered.retain(|t| t.0 > from);
        self.answered.retain(|(t, _)| t.0 > from);
        self.missed.retain(|(t, _)| t.0 > from);
        self.handled.retain(|(t, _)| t.0 > from);
    }

    /// The figures of the window of `length` ending at `now`.
    pub(super) fn window(
        &self,
        judging: &Judging,
        length: Duration,
        now: Timestamp,
    ) -> WindowStats {
        let from = now.0 - length.as_secs_f64();
        let inside = |t: &Timestamp| t.0 > from && t.0 <= now.0;
        let waits: Vec<f64> = self
            .answered
            .iter()
            .filter(|(t, _)| inside(t))
            .map(|(_, w)| *w)
            .collect();
        let threshold = judging.threshold.as_secs_f64();
        let short = judging.short_abandon.as_secs_f64();
        let answered = waits.len() as u64;
        let answered_in_threshold = waits.iter().filter(|w| **w <= threshold).count() as u64;
        let missed_waits: Vec<f64> = self
            .missed
            .iter()
            .filter(|(t, _)| inside(t))
            .map(|(_, w)| *w)
            .collect();
        let abandoned = missed_waits.iter().filter(|w| **w >= short).count() as u64;
        let talks: Vec<f64> = self
            .handled
            .iter()
            .filter(|(t, _)| inside(t))
            .map(|(_, d)| *d)
            .collect();
        let judged = answered + abandoned;
        WindowStats {
            length,
            answered,
            answered_in_threshold,
            missed: missed_waits.len() as u64,
            abandoned,
            service_level: (judged > 0).then(|| answered_in_threshold as f64 / judged as f64),
            avg_wait: mean(&waits),
            avg_handle: mean(&talks),
        }
    }

    /// The last [`HISTORY_MINUTES`] whole minutes up to the one holding `now`, oldest first.
    pub(super) fn history(&self, now: Timestamp) -> Vec<Minute> {
        let current = (now.0 / 60.0).floor() * 60.0;
        let first = current - 60.0 * (HISTORY_MINUTES as f64 - 1.0);
        let mut minutes: Vec<Minute> = (0..HISTORY_MINUTES)
            .map(|i| Minute {
                at: Timestamp(first + 60.0 * i as f64),
                offered: 0,
                answered: 0,
                missed: 0,
            })
            .collect();
        let slot = |t: &Timestamp| {
            let i = ((t.0 - first) / 60.0).floor();
            (i >= 0.0 && i < HISTORY_MINUTES as f64).then_some(i as usize)
        };
        for t in &self.offered {
            if let Some(i) = slot(t) {
                minutes[i].offered += 1;
            }
        }
        for (t, _) in &self.answered {
            if let Some(i) = slot(t) {
                minutes[i].answered += 1;
            }
        }
        for (t, _) in &self.missed {
            if let Some(i) = slot(t) {
                minutes[i].missed += 1;
            }
        }
        minutes
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}
