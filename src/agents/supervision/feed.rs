//! A screen's feed of a board: the changes of the queues it follows, coalesced so that a
//! burst of events becomes one message per queue, call and agent, at most every `coalesce`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
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

/// The changes of the queues a screen follows.
pub struct Feed<D: Directory> {
    supervision: Arc<Supervision<D>>,
    changes: broadcast::Receiver<Arc<[Change]>>,
    every: Duration,
    queues: BTreeSet<QueueId>,
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
            queues: BTreeSet::new(),
            dirty: Dirty::default(),
            sent: None,
        }
    }

    /// Follows `queue` from now on (its snapshot is the caller's to send first).
    pub fn follow(&mut self, queue: QueueId) {
        self.queues.insert(queue);
    }

    /// Stops following `queue`.
    pub fn unfollow(&mut self, queue: QueueId) {
        self.queues.remove(&queue);
        self.dirty.stats.remove(&queue);
        self.dirty.calls.retain(|(q, _), _| *q != queue);
    }

    /// The queues followed.
    pub fn following(&self) -> &BTreeSet<QueueId> {
        &self.queues
    }

    /// Marks everything followed as changed: the screen missed messages and gets the latest
    /// of everything with the next batch.
    pub fn resend_all(&mut self) {
        self.dirty.stats.extend(self.queues.iter().copied());
        let board = self.supervision.board();
        for queue in &self.queues {
            let snapshot = board.snapshot(*queue, Timestamp::now());
            self.dirty
                .agents
                .extend(snapshot.agents.into_iter().map(|a| a.agent));
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
        match change {
            Change::Stats(q) if self.queues.contains(q) => {
                self.dirty.stats.insert(*q);
            }
            Change::Call(c) if self.queues.contains(&c.queue) => {
                self.dirty.calls.insert((c.queue, c.call), c.clone());
            }
            Change::Agent(a) => {
                self.dirty.agents.insert(a.clone());
            }
            _ => {}
        }
    }

    fn batch(&mut self) -> Vec<Update> {
        let dirty = std::mem::take(&mut self.dirty);
        let now = Timestamp::now();
        let board = self.supervision.board();
        let mut updates: Vec<Update> = dirty.calls.into_values().map(Update::Call).collect();
        for agent in dirty.agents {
            let Some(card) = board.agent(&agent) else {
                continue;
            };
            for q in card.queues.intersection(&self.queues) {
                updates.push(Update::Agent(*q, card.clone()));
            }
        }
        for q in dirty.stats {
            updates.push(Update::Stats(board.stats(q, now)));
        }
        updates
    }
}
