//! Catching up after an outage: re-read every followed queue's calls and emit the NEW_CALLs
//! and CALL_ENDEDs the agent UIs missed, never one twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{Agents, NewCall, Platform, RECONCILE_PATIENCE, Sink, now};
use crate::converja::{AgentId, CallId};

/// Attempts while some queue cannot be read, and the pause between them.
const RECONCILE_ATTEMPTS: u32 = 10;
const RECONCILE_RETRY: Duration = Duration::from_secs(1);

/// Every active call of the followed queues, and whether every queue could be read.
struct Snapshot {
    active: Vec<(AgentId, NewCall)>,
    complete: bool,
}

impl<P: Platform, S: Sink> Agents<P, S> {
    pub(super) async fn reconcile(self: Arc<Self>) {
        let mut attempt = 0;
        let snapshot = loop {
            attempt += 1;
            // The platform's occupants rejoin their rooms after an outage too; until they
            // do, requests bounce. Wait for our rooms, then retry a few times.
            let read = async {
                self.platform.wait_ready(RECONCILE_PATIENCE).await;
                self.read_active_calls().await
            };
            let snapshot = tokio::select! {
                _ = self.cancel.cancelled() => return,
                snapshot = read => snapshot,
            };
            if snapshot.complete || attempt >= RECONCILE_ATTEMPTS {
                break snapshot;
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(RECONCILE_RETRY) => {}
            }
        };
        self.apply(snapshot);
    }

    async fn read_active_calls(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            active: Vec::new(),
            complete: true,
        };
        for queue in self.platform.followed_queues() {
            match self.platform.queue_calls(queue).await {
                Ok(calls) => {
                    for c in calls.calls.into_iter().filter(|c| c.is_active()) {
                        let Some(agent) = c.callee.clone() else {
                            continue;
                        };
                        let started = c.timestamps.answer.unwrap_or(c.timestamps.join);
                        let info = self.new_call(queue, &c.caller, started, c.call);
                        snapshot.active.push((agent, info));
                    }
                }
                Err(e) => {
                    warn!(%queue, error = %e, "cannot re-read the queue's calls");
                    snapshot.complete = false;
                }
            }
        }
        snapshot
    }

    fn apply(&self, snapshot: Snapshot) {
        let Snapshot { active, complete } = snapshot;
        let live: HashSet<CallId> = active.iter().map(|(_, c)| c.call).collect();
        let mut state = self.state();
        let mut started = 0;
        for (agent, info) in active {
            if state.registry.call_started(&agent, info.call, info) {
                started += 1;
            }
        }
        let mut ended = 0;
        if complete {
            for (_, call) in state.registry.held_calls() {
                if !live.contains(&call) {
                    state.end_call(&self.sink, call);
                    ended += 1;
                }
            }
        }
        state.deliver_changed(&self.sink, now());
        info!(started, ended, complete, "reconciled with the platform");
    }
}
