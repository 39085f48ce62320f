//! Request ids, for the bridge's pending table and for the platform simulator alike. A module
//! of its own, and not part of `pending`, so that the simulator takes ids without knowing the
//! bridge's table; not part of `converja` either, whose types are values: this reads the
//! clock and keeps state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Hands out request ids that are never reused, not even across restarts.
///
/// Each id is at least the current Unix time in microseconds, so a restarted bridge starts
/// above every id its predecessor used unless that one sustained over a million requests a
/// second. Microseconds stay below JSON's 2^53 until the year 2255.
#[derive(Debug, Default)]
pub(crate) struct IdSource {
    last: AtomicU64,
}

impl IdSource {
    /// A source whose ids are all above `used`.
    pub(crate) fn above(used: u64) -> Self {
        IdSource {
            last: AtomicU64::new(used),
        }
    }

    /// The highest id handed out (or the floor it started from).
    pub(crate) fn last(&self) -> u64 {
        self.last.load(Ordering::SeqCst)
    }

    /// The next id: strictly greater than every id handed out before.
    pub(crate) fn next(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let prev = self
            .last
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .expect("the closure always returns Some");
        now.max(prev + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_start_from_the_clock_and_fit_json() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        let ids = IdSource::default();
        let mut last = 0;
        for _ in 0..10_000 {
            let id = ids.next();
            assert!(id > last);
            last = id;
        }
        assert!(last >= before);
        assert!(last < (1u64 << 53));
        // A second source, as after a restart, starts above the first one's ids.
        let restarted = IdSource::default();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(restarted.next() > last);
    }

    #[test]
    fn ids_stay_above_what_a_predecessor_used_even_with_the_clock_behind() {
        // A predecessor whose clock ran an hour ahead, or that sent faster than the clock.
        let ahead = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
            + 3_600_000_000;
        let ids = IdSource::above(ahead);
        assert_eq!(ids.last(), ahead);
        assert_eq!(ids.next(), ahead + 1);
        assert_eq!(ids.last(), ahead + 1);
    }
}
