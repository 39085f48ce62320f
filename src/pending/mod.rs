//! The pending-request table: which requests await an answer, from whom, and where the answer
//! goes. Responses arrive asynchronously and in any order; `to` links them back, and only the
//! occupant a request was sent to may answer it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use jid::{FullJid, Jid};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::converja::ResponseMessage;
use crate::recent::RecentIds;
use crate::request_ids::IdSource;

/// How many closed request ids are remembered to tell a duplicate from a late answer.
const RECENT_CLOSED: usize = 4096;

/// Why a pending request ended without a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The XMPP server bounced the request stanza (e.g. the occupant is not in the room).
    Bounced(String),
    /// The XMPP link went down while the request was pending.
    LinkDown(String),
}

/// What became of a response handed to [`PendingTable::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// It answered a pending request, from the right occupant.
    Accepted,
    /// It came from someone other than the occupant the request went to; the request stays
    /// pending for the real answer.
    Spoofed {
        /// Who the answer must come from.
        expected: FullJid,
    },
    /// The request was already answered.
    Duplicate,
    /// The request had already timed out or failed.
    Late,
    /// No request with that id was sent by this bridge recently.
    Unknown,
}

impl Disposition {
    /// A stable label for logs and metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Disposition::Accepted => "accepted",
            Disposition::Spoofed { .. } => "spoofed",
            Disposition::Duplicate => "duplicate",
            Disposition::Late => "late",
            Disposition::Unknown => "unknown_request",
        }
    }
}

/// The table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the bridge is overloaded")]
pub(crate) struct Overloaded;

/// The response with when it was read off the stream, or why none will come.
type Answer = Result<(ResponseMessage, Instant), Failure>;
type Reply = oneshot::Sender<Answer>;

struct Entry {
    occupant: FullJid,
    reply: Reply,
}

struct Inner {
    entries: HashMap<u64, Entry>,
    answered: RecentIds,
    abandoned: RecentIds,
}

impl Inner {
    fn new() -> Self {
        Self {
            entries: HashMap::new(),
            answered: RecentIds::new(RECENT_CLOSED),
            abandoned: RecentIds::new(RECENT_CLOSED),
        }
    }
}

/// The table of requests awaiting a response.
pub(crate) struct PendingTable {
    inner: Mutex<Inner>,
    capacity: usize,
    ids: IdSource,
    /// Woken when the last request in flight is done, for shutdown to wait on.
    emptied: Notify,
}

impl std::fmt::Debug for PendingTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingTable")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// A registered request; dropping it (on timeout or cancellation) removes its entry.
#[derive(Debug)]
pub(crate) struct Ticket {
    id: u64,
    table: Arc<PendingTable>,
    rx: Option<oneshot::Receiver<Answer>>,
}

impl Ticket {
    /// The request id to send.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Waits for the response or the failure. The caller applies the timeout.
    pub(crate) async fn wait(&mut self) -> Result<ResponseMessage, Failure> {
        let rx = self
            .rx
            .as_mut()
            .expect("wait is not called after it returned");
        let result = rx
            .await
            .unwrap_or_else(|_| Err(Failure::LinkDown("the request table was dropped".into())));
        self.rx = None;
        let (response, read) = result?;
        // The waiting task goes on to emit what the response caused: measured from here.
        crate::telemetry::latency::answer_read(read);
        Ok(response)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.table.abandon(self.id);
        // Every request ends with its ticket dropped, whoever removed its entry.
        if self.table.is_empty() {
            self.table.emptied.notify_waiters();
        }
    }
}

impl PendingTable {
    /// A table holding at most `capacity` requests at once, handing out ids above `used`.
    pub(crate) fn new(capacity: usize, used: u64) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::new()),
            capacity,
            ids: IdSource::above(used),
            emptied: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the table, so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The highest request id handed out so far.
    pub(crate) fn last_id(&self) -> u64 {
        self.ids.last()
    }

    /// Requests pending now.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns once no request is pending.
    pub(crate) async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.is_empty() {
                return;
            }
            emptied.await;
        }
    }

    /// Registers a request to `occupant` under a fresh id.
    pub(crate) fn register(self: &Arc<Self>, occupant: FullJid) -> Result<Ticket, Overloaded> {
        let (tx, rx) = oneshot::channel();
        let id = self.ids.next();
        {
            let mut inner = self.lock();
            if inner.entries.len() >= self.capacity {
                return Err(Overloaded);
            }
            inner.entries.insert(
                id,
                Entry {
                    occupant,
                    reply: tx,
                },
            );
        }
        Ok(Ticket {
            id,
            table: self.clone(),
            rx: Some(rx),
        })
    }

    /// Matches a response received from `from`, read off the stream at `read`, to its
    /// request.
    pub(crate) fn resolve(
        &self,
        from: &Jid,
        response: ResponseMessage,
        read: Instant,
    ) -> Disposition {
        let mut inner = self.lock();
        let id = response.to;
        match inner.entries.get(&id) {
            Some(entry) if !same_occupant(from, &entry.occupant) => {
                return Disposition::Spoofed {
                    expected: entry.occupant.clone(),
                };
            }
            Some(_) => {}
            None if inner.answered.contains(id) => return Disposition::Duplicate,
            None if inner.abandoned.contains(id) => return Disposition::Late,
            None => return Disposition::Unknown,
        }
        let entry = inner
            .entries
            .remove(&id)
            .expect("checked above under the same lock");
        inner.answered.insert(id);
        drop(inner);
        // The waiter may have given up in this instant; its Ticket drop is then a no-op.
        let _ = entry.reply.send(Ok((response, read)));
        Disposition::Accepted
    }

    /// Fails request `id` because its stanza bounced; ignored unless the bounce comes from
    /// the occupant the request went to.
    pub(crate) fn bounce(&self, id: u64, from: &Jid, reason: String) -> Disposition {
        let mut inner = self.lock();
        match inner.entries.get(&id) {
            Some(entry) if same_occupant(from, &entry.occupant) => {
                let entry = inner
                    .entries
                    .remove(&id)
                    .expect("checked above under the same lock");
                inner.abandoned.insert(id);
                drop(inner);
                let _ = entry.reply.send(Err(Failure::Bounced(reason)));
                Disposition::Accepted
            }
            Some(entry) => Disposition::Spoofed {
                expected: entry.occupant.clone(),
            },
            None => Disposition::Unknown,
        }
    }

    /// Fails every pending request at once; used when the link drops.
    pub(crate) fn fail_all(&self, reason: &str) -> usize {
        let drained: Vec<(u64, Entry)> = {
            let mut inner = self.lock();
            let drained: Vec<_> = inner.entries.drain().collect();
            for (id, _) in &drained {
                inner.abandoned.insert(*id);
            }
            drained
        };
        let count = drained.len();
        for (_, entry) in drained {
            let _ = entry.reply.send(Err(Failure::LinkDown(reason.to_owned())));
        }
        count
    }

    fn abandon(&self, id: u64) {
        let mut inner = self.lock();
        if inner.entries.remove(&id).is_some() {
            inner.abandoned.insert(id);
        }
    }
}

fn same_occupant(from: &Jid, occupant: &FullJid) -> bool {
    from.try_as_full().is_ok_and(|full| full == occupant)
}

#[cfg(test)]
mod tests;
