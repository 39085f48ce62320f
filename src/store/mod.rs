//! What the bridge remembers across its own restarts: only what the platform cannot tell it
//! again. The sessions agents opened through the bridge (username, agent, `maxCalls`, the
//! identity the handshake proved, since when their last socket is gone), the calls agents
//! rejected (never offered again), the private session ids UI sockets may take their session
//! back with, and the request-id high-water mark. Active calls are not
//! stored: after a restart they are re-read from the platform, which is their authority.
//!
//! The core never waits on the store for a call. It records changes in a [`Journal`]; one
//! writer task ([`Journal::open`]) applies them to a [`Store`] in batches. Only the changes a
//! UI is told about (a login, a logout, a rejection) are awaited before the reply, so that a
//! crash after the reply loses nothing the UI was told.

mod journal;
pub mod lease;
#[cfg(test)]
pub(crate) mod memory;
mod sql;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;

pub use journal::Journal;
pub use lease::Lease;
pub use sql::SqlStore;

use crate::config::StoreConfig;
use crate::converja::{AgentId, CallId, QueueId, Timestamp};

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The agent UI's username.
    pub username: String,
    /// The platform's agent id.
    pub agent: AgentId,
    /// Calls held at once.
    pub max_calls: u32,
    /// The username the socket's handshake token proved, when tokens are on.
    pub proven: Option<String>,
    /// When the session's last socket left; `None` while a socket was attached.
    pub orphaned_at: Option<SystemTime>,
}

/// A call an agent rejected, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedCall {
    /// The call.
    pub call: CallId,
    /// Its queue (unknown for a rejection stored by an older version).
    pub queue: Option<QueueId>,
    /// When it started (for a rejection stored by an older version, when it was rejected:
    /// a call that started later is another call).
    pub started: Timestamp,
}

/// Everything stored, as read at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Saved {
    /// Sessions, by username order.
    pub sessions: Vec<StoredSession>,
    /// Calls agents rejected, recent first.
    pub rejected: Vec<RejectedCall>,
    /// The highest request id a previous process recorded as handed out.
    pub request_high_water: u64,
    /// Private session ids (their keys) and the username each is bound to.
    pub pids: Vec<(String, String)>,
}

/// One change to what is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A session started, or a socket joined it again: stored as it is now.
    Session(StoredSession),
    /// The session's last socket left at that time.
    Orphaned {
        /// The session.
        username: String,
        /// When.
        at: SystemTime,
    },
    /// The session ended: nobody waits for it any more, and its private session ids name
    /// nothing.
    Ended(String),
    /// A UI socket's private session id (its key) now names this session.
    Pid {
        /// The id's key.
        key: String,
        /// The session.
        username: String,
    },
    /// The agent rejected the call: it is not offered again while the platform has it.
    Rejected {
        /// The call.
        call: CallId,
        /// When.
        at: SystemTime,
        /// Its queue.
        queue: QueueId,
        /// When it started.
        started: Timestamp,
    },
    /// The platform no longer has a rejected call: its id may be used again.
    RejectionOver(CallId),
    /// Request ids up to this one may have been handed out.
    RequestHighWater(u64),
}

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open the session store {location}: {reason}")]
    Open {
        /// The file or server, without credentials.
        location: String,
        /// Why.
        reason: String,
    },
    /// A read or a write failed.
    #[error("session store {action} failed: {reason}")]
    Query {
        /// What was attempted.
        action: &'static str,
        /// Why.
        reason: String,
    },
    /// The writer stopped (shutdown).
    #[error("the session store is closed")]
    Closed,
}

/// A place sessions survive the process: SQLite or PostgreSQL ([`SqlStore`]).
pub trait Store: Send + Sync + 'static {
    /// Everything stored.
    fn load(&self) -> BoxFuture<'_, Result<Saved, StoreError>>;
    /// Applies `changes` in order, all or none.
    fn apply<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Where the data lives, for logs (never a password).
    fn location(&self) -> String;
}

/// Opens the store `config` names; `None` when nothing is to be stored.
pub async fn open(config: &StoreConfig) -> Result<Option<SqlStore>, StoreError> {
    Ok(match config {
        StoreConfig::Sqlite(path) => Some(SqlStore::sqlite(path).await?),
        StoreConfig::Postgres(url) => Some(SqlStore::postgres(url.expose()).await?),
        StoreConfig::None => None,
    })
}

/// How far above a predecessor's last recorded request id a new process starts. The mark is
/// recorded every [`HIGH_WATER_EVERY`] and ids follow the clock's microseconds, so a
/// predecessor killed just before its next record used ids below mark + 10 s unless it sent
/// ten million requests a second.
const HIGH_WATER_MARGIN: u64 = 10_000_000;

/// How often the request-id high-water mark is recorded.
pub const HIGH_WATER_EVERY: Duration = Duration::from_secs(1);

impl Saved {
    /// Every request id a predecessor may have sent is at or below this one.
    pub fn request_ids_used(&self) -> u64 {
        if self.request_high_water == 0 {
            0
        } else {
            self.request_high_water.saturating_add(HIGH_WATER_MARGIN)
        }
    }
}

/// How long a rejected call is remembered: far longer than any call lasts.
pub const REJECTED_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// Milliseconds since the Unix epoch, as stored.
fn to_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time a stored millisecond count stands for.
fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
