//! Catching up with the platform: each followed queue's active calls are re-read and applied
//! queue by queue, as each answers. What an event told us after a queue's read was sent is
//! newer than that read, so the read never overrides it: a call that started since is not
//! ended, a call that ended since is not brought back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{Agents, Platform, Sink, now};
use crate::converja::{CallId, QueueCalls, QueueId};
use crate::store::Change;

/// How long to wait for the platform's rooms before re-reading calls after an outage.
const RECONCILE_PATIENCE: Duration = Duration::from_secs(30);
/// Attempts while some queue cannot be read, and the pause between them.
const RECONCILE_ATTEMPTS: u32 = 10;
const RECONCILE_RETRY: Duration = Duration::from_secs(1);

impl<P: Platform, S: Sink> Agents<P, S> {
    pub(super) async fn reconcile(self: Arc<Self>) {
        let work = async {
            let mut queues: Option<Vec<QueueId>> = None;
            for attempt in 1..=RECONCILE_ATTEMPTS {
                // The platform's occupants rejoin their rooms after an outage too; until
                // they do, requests bounce. Wait for our rooms, then retry a few times.
                self.platform.wait_ready(RECONCILE_PATIENCE).await;
                // At start the queue list is known only once ready.
                let pending = queues
                    .take()
                    .unwrap_or_else(|| self.platform.followed_queues());
                let failed = self.reconcile_queues(pending).await;
                if failed.is_empty() {
                    let mut state = self.state();
                    state.set_synced(true);
                    // Only now can a call a reconnected UI shows be known to have ended.
                    state.settle_all(&self.sink);
                    return;
                }
                queues = Some(failed);
                if attempt < RECONCILE_ATTEMPTS {
                    tokio::time::sleep(RECONCILE_RETRY).await;
                }
            }
            warn!(queues = ?queues.unwrap_or_default(), "gave up re-reading these queues' calls");
        };
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            _ = work => {}
        }
    }

    /// Reads and applies each queue; returns those that could not be read.
    async fn reconcile_queues(&self, queues: Vec<QueueId>) -> Vec<QueueId> {
        let mut failed = Vec::new();
        for queue in queues {
            let since = self.state().registry.seq();
            match self.platform.queue_calls(queue).await {
                Ok(calls) => self.apply_queue(queue, calls, since),
                Err(e) => {
                    warn!(%queue, error = %e, "cannot re-read the queue's calls");
                    failed.push(queue);
                }
            }
        }
        failed
    }

    /// Applies a read of `queue` sent when `since` events had been applied.
    fn apply_queue(&self, queue: QueueId, read: QueueCalls, since: u64) {
        let active: Vec<_> = read
            .calls
            .into_iter()
            .filter(|c| c.is_active())
            .filter_map(|c| {
                let agent = c.callee.clone()?;
                let started = c.timestamps.answer.unwrap_or(c.timestamps.join);
                Some((
                    agent,
                    started,
                    self.new_call(queue, &c.caller, started, c.call),
                ))
            })
            .collect();
        let live: HashSet<CallId> = active.iter().map(|(_, _, info)| info.call).collect();
        let mut state = self.state();
        let mut started = 0;
        for (agent, at, info) in active {
            // Known calls, and calls an event has ended or the UI rejected, are left alone.
            if state
                .registry
                .call_started(&agent, info.call, queue, info, at)
            {
                started += 1;
            }
        }
        // A rejected call the platform no longer has is forgotten: its id may come again.
        for call in state.registry.rejections_gone(queue, &live, since) {
            state.journal.note(Change::RejectionOver(call));
        }
        let mut ended = 0;
        for (call, seq) in state.registry.calls_in_queue(queue) {
            // A call the platform told us about after the read was sent is newer than it.
            if !live.contains(&call) && seq <= since {
                state.call_ended(&self.sink, call);
                ended += 1;
            }
        }
        state.deliver_changed(&self.sink, now());
        info!(%queue, started, ended, "queue reconciled with the platform");
    }
}
