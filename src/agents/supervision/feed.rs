//! A screen's feed of a board: the changes of the queues it follows, coalesced so that a
//! burst of events becomes one message per queue, call and agent, at most every `coalesce`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::Supervision;
use crate::agents::board::{AgentCard, CallChange, Change, QueueStats};
use crate::agents::port::Directory;
use crate::converja::{AgentId, CallId, QueueId, Timestamp};

/// One message to a screen.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A queue's figures now.
    Stats(QueueStats),
    /// A call of a followed queue changed.
    Call(CallChange),
    /// An agent of a followed queue changed.
    Agent(QueueId, AgentCard),
}

/// What changed since the last send.
#[derive(Debug, Default)]
struct Dirty {
    stats: BTreeSet<QueueId>,
    calls: BTreeMap<(QueueId, CallId), CallChange>,
    agents: BTreeSet<AgentId>,
}

impl Dirty {
    fn is_empty(&self) -> bool {
        self.stats.is_empty() && self.calls.is_empty() && self.agents.is_empty()
    }
}

/// Which queues a feed follows; shared with the handlers that subscribe, so that a queue is
/// followed before its snapshot is taken and no change falls between the two.
#[derive(Debug, Clone, Default)]
pub struct Following(Arc<Mutex<BTreeSet<QueueId>>>);

impl Following {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<QueueId>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows `queue` from now on (its snapshot is the caller's to send, after this).
    pub fn follow(&self, queue: QueueId) {
        self.lock().insert(queue);
    }

    /// Stops following `queue`.
    pub fn unfollow(&self, queue: QueueId) {
        self.lock().remove(&queue);
    }

    /// The queues followed.
    pub fn queues(&self) -> BTreeSet<QueueId> {
        self.lock().clone()
    }
}

/// The changes of the queues a screen follows.
pub struct Feed<D: Directory> {
    supervision: Arc<Supervision<D>>,
    changes: broadcast::Receiver<Arc<[Change]>>,
    every: Duration,
    following: Following,
    dirty: Dirty,
    sent: Option<Instant>,
}

impl<D: Directory> Feed<D> {
    pub(super) fn new(
        supervision: Arc<Supervision<D>>,
        changes: broadcast::Receiver<Arc<[Change]>>,
        every: Duration,
    ) -> Self {
        Feed {
            supervision,
            changes,
            every,
            following: Following::default(),
            dirty: Dirty::default(),
            sent: None,
        }
    }

    /// The handle that says which queues this feed follows.
    pub fn following(&self) -> Following {
        self.following.clone()
    }

    /// Marks everything followed as changed: the screen missed messages and gets the latest
    /// of everything with the next batch.
    pub fn resend_all(&mut self) {
        let queues = self.following.queues();
        self.dirty.stats.extend(queues.iter().copied());
        let board = self.supervision.board();
        for queue in &queues {
            let agents = board.agents_of(*queue).map(|a| a.agent.clone());
            self.dirty.agents.extend(agents);
        }
    }

    /// The next batch: waits for a change of a followed queue, then until `coalesce` has
    /// passed since the last batch, gathering every change meanwhile. Cancel-safe: what
    /// was gathered stays for the next call.
    pub async fn next(&mut self) -> Vec<Update> {
        loop {
            if !self.dirty.is_empty() {
                let due = self.sent.map_or_else(Instant::now, |s| s + self.every);
                if Instant::now() >= due {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(due) => break,
                    received = self.changes.recv() => self.take(received),
                }
            } else {
                let received = self.changes.recv().await;
                self.take(received);
            }
        }
        self.sent = Some(Instant::now());
        self.batch()
    }

    fn take(&mut self, received: Result<Arc<[Change]>, broadcast::error::RecvError>) {
        match received {
            Ok(changes) => {
                for change in changes.iter() {
                    self.note(change);
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => self.resend_all(),
            // The board outlives every feed; a closed channel means shutdown: nothing more.
            Err(broadcast::error::RecvError::Closed) => {}
        }
    }

    fn note(&mut self, change: &Change) {
        let queues = self.following.lock();
        match change {
            Change::Stats(q) if queues.contains(q) => {
                self.dirty.stats.insert(*q);
            }
            Change::Call(c) if queues.contains(&c.queue) => {
                self.dirty.calls.insert((c.queue, c.call), c.clone());
            }
            Change::Agent(a) => {
                self.dirty.agents.insert(a.clone());
            }
            _ => {}
        }
    }

    fn batch(&mut self) -> Vec<Update> {
        let queues = self.following.queues();
        let mut dirty = std::mem::take(&mut self.dirty);
        // Unfollowed since noted.
        dirty.stats.retain(|q| queues.contains(q));
        dirty.calls.retain(|(q, _), _| queues.contains(q));
        let now = Timestamp::now();
        let board = self.supervision.board();
        let mut updates: Vec<Update> = dirty.calls.into_values().map(Update::Call).collect();
        for agent in dirty.agents {
            let Some(card) = board.agent(&agent) else {
                continue;
            };
            for q in card.queues.intersection(&queues) {
                updates.push(Update::Agent(*q, card.clone()));
            }
        }
        for q in dirty.stats {
            updates.push(Update::Stats(board.stats(q, now)));
        }
        updates
    }
}
