//! Which of a pair of bridges sharing one PostgreSQL database is active: the one holding the
//! lease row. The database's clock decides expiry; the holder renews every second and stops
//! serving on its own clock well before the lease could expire for the other one, so two
//! bridges never serve at once, even when the holder is cut from the database.
//!
//! Timeline after the holder's last successful renewal was sent at `t` (no renewal after):
//! it stops serving at `t + FENCE_AFTER`; the lease expires at the earliest at `t + TTL`; the
//! standby, trying every `RETRY`, takes it by `t + TTL + RETRY`.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{SqlStore, StoreError};

/// How long a lease lasts without renewal.
pub const TTL: Duration = Duration::from_secs(5);
/// How often the holder renews and the standby tries to take it.
pub const RETRY: Duration = Duration::from_secs(1);
/// The holder stops serving this long after sending its last successful renewal: two seconds
/// before the lease can expire, to drop its sockets and leave its rooms.
pub const FENCE_AFTER: Duration = Duration::from_secs(3);

/// The lease's row.
const NAME: &str = "active";

/// Why [`Lease::keep`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// No renewal succeeded in time, or another holder has it: stop serving now.
    Lost,
    /// `stop` was cancelled while the lease was held.
    Stopped,
}

/// This process's claim on the lease.
#[derive(Debug, Clone)]
pub struct Lease {
    store: SqlStore,
    holder: String,
}

impl Lease {
    /// A claim on `store`'s lease by this process, named after its host and process id.
    pub fn new(store: SqlStore) -> Lease {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "bridge".into());
        let holder = format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        Lease { store, holder }
    }

    /// Who this process is in the lease row.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    async fn try_hold(&self) -> Result<Option<u64>, StoreError> {
        tokio::time::timeout(RETRY, self.store.hold_lease(NAME, &self.holder, TTL))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Query {
                    action: "lease",
                    reason: format!("no answer within {RETRY:?}"),
                })
            })
    }

    /// Waits until this process holds the lease; `None` if `stop` comes first. Returns when
    /// the successful attempt was sent, for [`Lease::keep`].
    pub async fn acquire(&self, stop: &CancellationToken) -> Option<Instant> {
        let mut tick = tokio::time::interval(RETRY);
        let mut said = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tick.tick() => {}
            }
            let sent = Instant::now();
            match self.try_hold().await {
                Ok(Some(epoch)) => {
                    info!(holder = %self.holder, epoch, "lease taken: this bridge is active");
                    return Some(sent);
                }
                Ok(None) if !said => {
                    info!(holder = %self.holder, "another bridge is active: standing by");
                    said = true;
                }
                Ok(None) => {}
                Err(error) => warn!(%error, "cannot reach the lease"),
            }
        }
    }

    /// Renews the lease every [`RETRY`] from `held` (when the acquiring attempt was sent)
    /// until it is lost or `stop` is cancelled.
    pub async fn keep(&self, held: Instant, stop: &CancellationToken) -> Kept {
        let mut renewed = held;
        let mut tick = tokio::time::interval_at(held + RETRY, RETRY);
        loop {
            let fence = renewed + FENCE_AFTER;
            tokio::select! {
                _ = stop.cancelled() => return Kept::Stopped,
                _ = tokio::time::sleep_until(fence) => {
                    warn!(silent = ?FENCE_AFTER, "lease not renewed in time: stopping serving");
                    return Kept::Lost;
                }
                _ = tick.tick() => {}
            }
            let sent = Instant::now();
            let attempt = tokio::select! {
                attempt = self.try_hold() => attempt,
                _ = tokio::time::sleep_until(fence) => {
                    warn!(silent = ?FENCE_AFTER, "lease not renewed in time: stopping serving");
                    return Kept::Lost;
                }
            };
            match attempt {
                Ok(Some(_)) => renewed = sent,
                Ok(None) => {
                    warn!("the lease has another holder: stopping serving");
                    return Kept::Lost;
                }
                Err(error) => warn!(%error, "lease renewal failed"),
            }
        }
    }

    /// Gives the lease up (at shutdown), so that the standby takes over at once.
    pub async fn release(&self) {
        match tokio::time::timeout(RETRY, self.store.release_lease(NAME, &self.holder)).await {
            Ok(Ok(())) => info!("lease released"),
            Ok(Err(error)) => warn!(%error, "lease not released; it expires by itself"),
            Err(_) => warn!("lease not released in time; it expires by itself"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite() -> (tempfile::TempDir, SqlStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqlStore::sqlite(&dir.path().join("s.db"))
            .await
            .expect("open");
        (dir, store)
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_release_or_expiry() {
        let (_dir, store) = sqlite().await;
        let ttl = Duration::from_millis(300);
        assert_eq!(store.hold_lease(NAME, "a", ttl).await, Ok(Some(1)));
        assert_eq!(store.hold_lease(NAME, "b", ttl).await, Ok(None));
        assert_eq!(
            store.hold_lease(NAME, "a", ttl).await,
            Ok(Some(1)),
            "renewal"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            store.hold_lease(NAME, "b", ttl).await,
            Ok(Some(2)),
            "expired: b takes it, a new epoch"
        );
        assert_eq!(store.hold_lease(NAME, "a", ttl).await, Ok(None));
        store.release_lease(NAME, "a").await.expect("a no-op");
        assert_eq!(store.hold_lease(NAME, "a", ttl).await, Ok(None));
        store.release_lease(NAME, "b").await.expect("release");
        assert_eq!(store.hold_lease(NAME, "a", ttl).await, Ok(Some(3)));
    }

    #[tokio::test]
    async fn a_holder_cut_from_the_database_stops_before_the_lease_expires() {
        let (_dir, store) = sqlite().await;
        let lease = Lease::new(store.clone());
        let stop = CancellationToken::new();
        let held = lease.acquire(&stop).await.expect("free");
        store.close().await;
        let kept = lease.keep(held, &stop).await;
        assert_eq!(kept, Kept::Lost);
        let stopped_after = held.elapsed();
        assert!(
            stopped_after >= FENCE_AFTER && stopped_after < TTL,
            "stopped {stopped_after:?} after the last renewal; the lease lasts {TTL:?}"
        );
    }
}
