//! The core's side of the store: changes go into a channel without waiting, and one writer
//! task applies whatever has gathered in one transaction. A login or a rejection waits for
//! its own write (and so for every change recorded before it); nothing else ever waits.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info_span, warn};

use super::{Change, Store, StoreError};
use crate::telemetry;

/// Changes written in one transaction at most.
const BATCH: usize = 1024;

/// The first wait before writing again changes nobody waits for, after a failure; it doubles
/// up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

type Done = oneshot::Sender<Result<(), StoreError>>;

struct Entry {
    change: Option<Change>,
    done: Option<Done>,
}

/// Where the core records what must survive a restart. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Journal {
    tx: Option<mpsc::UnboundedSender<Entry>>,
}

impl Journal {
    /// A journal that stores nothing: sessions live and die with the process.
    pub fn off() -> Journal {
        Journal { tx: None }
    }

    /// Starts the writer for `store`. Once `cancel` is cancelled it writes what was recorded
    /// until then and stops.
    pub fn open(store: Arc<dyn Store>, tasks: &TaskTracker, cancel: CancellationToken) -> Journal {
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.spawn(write(store, rx, cancel).instrument(info_span!("store_writer")));
        Journal { tx: Some(tx) }
    }

    /// Whether changes are stored at all.
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// Records `change` without waiting for it to be written.
    pub fn note(&self, change: Change) {
        if let Some(tx) = &self.tx
            && tx
                .send(Entry {
                    change: Some(change),
                    done: None,
                })
                .is_err()
        {
            warn!("session store closed: a change was not recorded");
            metrics::counter!(telemetry::STORE_WRITES, "outcome" => "closed").increment(1);
        }
    }

    /// Records `change` and returns once it (and everything recorded before it) is written.
    pub async fn commit(&self, change: Change) -> Result<(), StoreError> {
        self.send(Some(change)).await
    }

    /// Returns once everything recorded so far is written.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.send(None).await
    }

    async fn send(&self, change: Option<Change>) -> Result<(), StoreError> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        let (done, written) = oneshot::channel();
        tx.send(Entry {
            change,
            done: Some(done),
        })
        .map_err(|_| StoreError::Closed)?;
        written.await.unwrap_or(Err(StoreError::Closed))
    }
}

/// The writer: gathers what was recorded, writes it in one transaction, tells the waiters.
/// Changes nobody waits for are kept and written again after a failure; a waiter hears of
/// the failure at once.
async fn write(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Entry>,
    cancel: CancellationToken,
) {
    let mut entries = Vec::with_capacity(BATCH);
    let mut kept: Vec<Change> = Vec::new();
    let mut retry = RETRY_FIRST;
    loop {
        let stopping = if kept.is_empty() {
            tokio::select! {
                n = rx.recv_many(&mut entries, BATCH) => n == 0,
                _ = cancel.cancelled() => true,
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(retry) => false,
                _ = cancel.cancelled() => true,
            }
        };
        while entries.len() < BATCH
            && let Ok(entry) = rx.try_recv()
        {
            entries.push(entry);
        }
        let mut changes = std::mem::take(&mut kept);
        // Whether somebody waits for each change, in the same order.
        let mut awaited = vec![false; changes.len()];
        let mut waiters = Vec::new();
        for entry in entries.drain(..) {
            if let Some(change) = entry.change {
                changes.push(change);
                awaited.push(entry.done.is_some());
            }
            waiters.extend(entry.done);
        }
        let result = if changes.is_empty() {
            Ok(())
        } else {
            store.apply(&changes).await
        };
        match &result {
            Ok(()) => {
                retry = RETRY_FIRST;
                if !changes.is_empty() {
                    metrics::counter!(telemetry::STORE_WRITES, "outcome" => "ok").increment(1);
                }
            }
            Err(error) => {
                warn!(%error, changes = changes.len(), "session store write failed");
                metrics::counter!(telemetry::STORE_WRITES, "outcome" => "failed").increment(1);
                // A change somebody waited for was refused to them; the others are tried again.
                kept = changes
                    .into_iter()
                    .zip(awaited)
                    .filter(|(_, awaited)| !awaited)
                    .map(|(change, _)| change)
                    .collect();
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
        for done in waiters {
            let _ = done.send(result.clone());
        }
        if stopping && rx.is_empty() {
            if !kept.is_empty() {
                warn!(
                    changes = kept.len(),
                    "session store unreachable at shutdown: changes not written"
                );
            }
            return;
        }
    }
}
