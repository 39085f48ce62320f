//! The calls that ended or were rejected, so that a late event or an older snapshot does not
//! bring them back, without hiding a new call that reuses an id (a platform restarted with
//! its call ids starting again): a call that started later than the remembered one is
//! another call. Rejections are remembered apart, for as long as the platform has the call.

use std::collections::{HashMap, HashSet};

use crate::converja::{CallId, QueueId, Timestamp};
use crate::recent::RecentIds;

/// How much later than a remembered call a call with the same id must start to be another
/// call. The platform's `CallDidStart` and its call list give the same start, but as floats
/// through two paths; a reused id starts minutes or days later.
const REUSE_MARGIN_SECS: f64 = 1.0;

/// A call an agent rejected.
#[derive(Debug, Clone, Copy)]
struct Rejection {
    /// Its queue, when known (a rejection stored by an older version has none).
    queue: Option<QueueId>,
    /// The registry's event count when it was rejected.
    seq: u64,
}

/// Ended and rejected calls, bounded.
#[derive(Debug)]
pub(super) struct EndedCalls {
    ids: RecentIds,
    /// When each remembered call started, where known.
    started: HashMap<u64, Timestamp>,
    /// Rejected calls the platform may still have.
    rejected: HashMap<CallId, Rejection>,
}

impl EndedCalls {
    pub(super) fn new(capacity: usize) -> Self {
        EndedCalls {
            ids: RecentIds::new(capacity),
            started: HashMap::new(),
            rejected: HashMap::new(),
        }
    }

    /// `call`, which started at `started` if known, has ended.
    pub(super) fn insert(&mut self, call: CallId, started: Option<Timestamp>) {
        let (_, evicted) = self.ids.insert_evicting(call.0);
        if let Some(old) = evicted {
            self.started.remove(&old);
            self.rejected.remove(&CallId(old));
        }
        if let Some(started) = started {
            self.started.entry(call.0).or_insert(started);
        }
    }

    /// The agent rejected `call` of `queue`, which started at `started`, when `seq` events
    /// had been applied.
    pub(super) fn reject(
        &mut self,
        call: CallId,
        queue: Option<QueueId>,
        started: Timestamp,
        seq: u64,
    ) {
        self.insert(call, Some(started));
        self.rejected.insert(call, Rejection { queue, seq });
    }

    /// Whether a start of `call` at `started` is news of a remembered call, to be ignored.
    /// A call that starts later is another call reusing the id: the old one is forgotten.
    pub(super) fn hides(&mut self, call: CallId, started: Timestamp) -> bool {
        if !self.ids.contains(call.0) {
            return false;
        }
        match self.started.get(&call.0) {
            Some(before) if started.0 > before.0 + REUSE_MARGIN_SECS => {
                self.ids.remove(call.0);
                self.started.remove(&call.0);
                self.rejected.remove(&call);
                false
            }
            _ => true,
        }
    }

    /// The platform ended `call`; true if it was a rejection, now forgotten.
    pub(super) fn rejection_over(&mut self, call: CallId) -> bool {
        self.rejected.remove(&call).is_some()
    }

    /// A read of `queue`, sent when `since` events had been applied, lists `live` as its
    /// active calls: the calls of that queue rejected before the read and not in it are
    /// gone from the platform, and their rejections are forgotten. Returns them.
    pub(super) fn rejections_gone(
        &mut self,
        queue: QueueId,
        live: &HashSet<CallId>,
        since: u64,
    ) -> Vec<CallId> {
        let gone: Vec<CallId> = self
            .rejected
            .iter()
            .filter(|(call, r)| r.queue == Some(queue) && r.seq <= since && !live.contains(call))
            .map(|(call, _)| *call)
            .collect();
        for call in &gone {
            self.rejected.remove(call);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: QueueId = QueueId(7);
    const T: Timestamp = Timestamp(1_468_418_331.721);

    #[test]
    fn an_ended_call_stays_ended_but_a_newer_call_with_its_id_is_another() {
        let mut ended = EndedCalls::new(8);
        ended.insert(CallId(5), Some(T));
        assert!(ended.hides(CallId(5), T), "a late start of the same call");
        assert!(ended.hides(CallId(5), Timestamp(T.0 + 0.5)));
        assert!(!ended.hides(CallId(5), Timestamp(T.0 + 600.0)));
        assert!(
            !ended.hides(CallId(5), T),
            "the old call is forgotten once its id is reused"
        );
        ended.insert(CallId(6), None);
        assert!(
            ended.hides(CallId(6), Timestamp(T.0 + 600.0)),
            "a call whose start is unknown hides every start"
        );
    }

    #[test]
    fn a_rejection_lasts_as_long_as_the_platform_has_the_call() {
        let mut ended = EndedCalls::new(8);
        ended.reject(CallId(5), Some(Q), T, 3);
        ended.reject(CallId(6), Some(Q), T, 3);
        ended.reject(CallId(7), Some(QueueId(8)), T, 3);
        assert!(ended.hides(CallId(5), T));
        assert!(ended.rejection_over(CallId(5)));
        assert!(!ended.rejection_over(CallId(5)), "once");
        let live = HashSet::from([CallId(6)]);
        assert!(
            ended.rejections_gone(Q, &live, 2).is_empty(),
            "a read older than the rejection"
        );
        assert!(
            ended.rejections_gone(Q, &live, 3).is_empty(),
            "call 6 is still there"
        );
        let live = HashSet::new();
        assert_eq!(ended.rejections_gone(Q, &live, 4), vec![CallId(6)]);
        assert!(
            ended.hides(CallId(6), T),
            "still ended: a late event does not bring it back"
        );
        assert!(!ended.hides(CallId(6), Timestamp(T.0 + 60.0)));
    }
}
