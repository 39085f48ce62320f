//! A store in memory, for the core's tests: a restart is a new core over the same store, and
//! a database that fails is one switch away.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;

use super::{Change, RejectedCall, Saved, Store, StoreError, StoredSession};

/// What a SQL store would hold, in memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    saved: Mutex<Saved>,
    failing: AtomicBool,
}

impl MemoryStore {
    /// Makes every write fail (or succeed again).
    pub(crate) fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// What is stored now.
    pub(crate) fn saved(&self) -> Saved {
        self.saved.lock().expect("store lock").clone()
    }
}

impl Store for MemoryStore {
    fn load(&self) -> BoxFuture<'_, Result<Saved, StoreError>> {
        let saved = self.saved();
        Box::pin(async move { Ok(saved) })
    }

    fn apply<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Query {
                    action: "write",
                    reason: "the database is down".into(),
                });
            }
            let mut saved = self.saved.lock().expect("store lock");
            for change in changes {
                apply(&mut saved, change);
            }
            Ok(())
        })
    }

    fn location(&self) -> String {
        "memory".into()
    }
}

fn apply(saved: &mut Saved, change: &Change) {
    let sessions = &mut saved.sessions;
    match change {
        Change::Session(s) => {
            sessions.retain(|x| x.username != s.username);
            sessions.push(s.clone());
            sessions.sort_by(|a, b| a.username.cmp(&b.username));
        }
        Change::Orphaned { username, at } => {
            if let Some(s) = sessions.iter_mut().find(|s| &s.username == username) {
                s.orphaned_at = Some(*at);
            }
        }
        Change::Ended(username) => {
            sessions.retain(|s: &StoredSession| &s.username != username);
            saved.pids.retain(|(_, u)| u != username);
        }
        Change::Pid { key, username } => {
            saved.pids.retain(|(k, _)| k != key);
            saved.pids.push((key.clone(), username.clone()));
        }
        Change::Rejected {
            call,
            queue,
            started,
            ..
        } => {
            if !saved.rejected.iter().any(|r| r.call == *call) {
                saved.rejected.insert(
                    0,
                    RejectedCall {
                        call: *call,
                        queue: Some(*queue),
                        started: *started,
                    },
                );
            }
        }
        Change::RejectionOver(call) => saved.rejected.retain(|r| r.call != *call),
        Change::RequestHighWater(id) => {
            saved.request_high_water = saved.request_high_water.max(*id);
        }
    }
}
