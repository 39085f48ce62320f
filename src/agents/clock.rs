//! What happens because time passed: sessions whose grace ran out, NEW_CALLs whose
//! first-call delay is over or that wait to be sent again, and calls nobody answered. Each
//! tick looks only at the sessions whose wakeup came due (the registry queues one for every
//! first-call delay, delivered call and grace), so idle agents cost it nothing.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::registry::Notice;
use super::{Agents, Platform, Sink, now};
use crate::store::Change;
use crate::telemetry;

/// How often the clock looks; the resolution of `first_call_delay` and `reconnect_grace`.
const TICK: Duration = Duration::from_millis(100);
/// How often the gauges are published: counting costs a pass over every session.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

impl<P: Platform, S: Sink> Agents<P, S> {
    pub(super) async fn run_clock(self: Arc<Self>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gauges = tokio::time::interval(GAUGES_EVERY);
        gauges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tick.tick() => self.on_tick(),
                _ = gauges.tick() => self.state().publish_gauges(),
            }
        }
    }

    fn on_tick(self: &Arc<Self>) {
        let now = now();
        let expired = {
            let mut state = self.state();
            let expired: Vec<_> = state
                .registry
                .expired(now)
                .into_iter()
                .filter_map(|username| {
                    let session = state.registry.session(&username)?;
                    let (agent, restored) = (session.agent.clone(), session.restored);
                    // No more deliveries while the platform action runs.
                    state.registry.end_session(&username);
                    state.journal.note(Change::Ended(username.clone()));
                    if restored {
                        metrics::counter!(telemetry::RESTORED_SESSIONS, "outcome" => "expired")
                            .increment(1);
                    }
                    Some((username, agent))
                })
                .collect();
            for notice in state.registry.notices(now) {
                let Notice::Unanswered { username, call } = notice;
                warn!(%username, %call, "NEW_CALL not answered by the agent UI");
                metrics::counter!(telemetry::UNANSWERED).increment(1);
            }
            state.flush_backlogs(&self.sink);
            state.retry_closes(&self.sink);
            state.deliver_all(&self.sink, now);
            expired
        };
        for (username, agent) in expired {
            info!(%username, %agent, "reconnect grace expired");
            let agents = self.clone();
            self.tasks.spawn(async move {
                if let Err(e) = agents.end_on_platform(&agent).await {
                    warn!(%username, %agent, error = %e, "on_disconnect action failed");
                }
            });
        }
    }
}
