//! What a restart brings back: the sessions a previous process stored, waiting for their UIs
//! for the rest of their reconnect grace, and the calls agents rejected. Their calls are not
//! stored: the next reconciliation reads them from the platform. A socket whose handshake
//! token names a waiting session takes it back without any event, which is what UIs that
//! never send USER_CONNECT again after a reconnect need.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{Instrument, info, info_span, warn};

use super::event::SocketId;
use super::resume::PidKey;
use super::state::State;
use super::{Agents, Platform, Sink, now};
use crate::converja::AgentId;
use crate::store::{Change, Saved};
use crate::telemetry;

impl<P: Platform, S: Sink> Agents<P, S> {
    /// Brings back what `saved` holds. A session cut by the restart gets the whole grace;
    /// one whose last socket left earlier keeps the rest of it. Once the platform answers,
    /// the agents' rooms are joined again, so that the grace's end can act on them.
    pub fn restore(self: &Arc<Self>, saved: Saved) {
        let (wall, instant) = (SystemTime::now(), now());
        let mut agents = Vec::new();
        {
            let mut state = self.state();
            for r in saved.rejected {
                state.registry.rejected_before(r.call, r.queue, r.started);
            }
            for s in saved.sessions {
                let away = s
                    .orphaned_at
                    .and_then(|t| wall.duration_since(t).ok())
                    .unwrap_or_default();
                let since = instant.checked_sub(away).unwrap_or(instant);
                if state
                    .registry
                    .restore(&s.username, &s.agent, s.max_calls, since)
                {
                    metrics::counter!(telemetry::RESTORED_SESSIONS, "outcome" => "restored")
                        .increment(1);
                    agents.push(s.agent);
                }
            }
            // Only the ids of sessions brought back name anything: the others bind to nothing.
            for (key, username) in saved.pids {
                state.registry.bind_pid(PidKey(key), &username);
            }
        }
        if agents.is_empty() {
            return;
        }
        info!(
            sessions = agents.len(),
            "sessions restored; waiting for their UIs"
        );
        let core = self.clone();
        self.tasks.spawn(
            async move {
                let rejoin = async {
                    for agent in &agents {
                        while !core.platform.wait_ready(Duration::from_secs(60)).await {}
                        match core.platform.check_agent(agent).await {
                            Ok(since) => core.state().registry.agent_known_since(agent, since),
                            Err(error) => {
                                warn!(%agent, %error, "restored session's agent not confirmed by the platform");
                            }
                        }
                    }
                };
                tokio::select! {
                    _ = core.cancel.cancelled() => {}
                    _ = rejoin => {}
                }
            }
            .instrument(info_span!("restore")),
        );
    }
}

/// How a reconnecting socket named its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TakenBy {
    /// Its handshake token proves the username; only a session waiting for its UI (after a
    /// restart, or a dropped connection) is taken back.
    Token,
    /// It handed back the private session id the session gave it: the same UI socket
    /// reconnecting, perhaps before the bridge noticed its previous connection was gone.
    Pid,
}

/// Attaches socket `id` to the session of `username` it named; whether it did.
pub(super) fn take_back<T, A>(
    state: &mut State<T, A>,
    id: SocketId,
    username: &str,
    by: TakenBy,
) -> bool
where
    T: Send + Sync + 'static,
    A: Send + 'static,
{
    if by == TakenBy::Token && !state.registry.is_orphaned(username) {
        return false;
    }
    let Some((agent, max_calls, restored)) = state
        .registry
        .session(username)
        .map(|s| (s.agent.clone(), s.max_calls, s.restored))
    else {
        return false;
    };
    if state
        .registry
        .attach(id, username, &agent, max_calls, now())
        .is_err()
    {
        return false;
    }
    info!(%username, %agent, socket = id.0, ?by, "socket took its session back");
    metrics::counter!(telemetry::SESSIONS_TAKEN_BACK, "by" => by.label()).increment(1);
    state.bind_pid(id, username);
    if restored {
        reclaimed(username, &agent);
    }
    let stored = state.stored_session(id, username, &agent, max_calls);
    state.journal.note(Change::Session(stored));
    true
}

impl TakenBy {
    fn label(self) -> &'static str {
        match self {
            TakenBy::Token => "token",
            TakenBy::Pid => "pid",
        }
    }
}

/// A restored session was taken back by its UI: logged and counted.
pub(super) fn reclaimed(username: &str, agent: &AgentId) {
    info!(%username, %agent, "restored session reclaimed by its UI");
    metrics::counter!(telemetry::RESTORED_SESSIONS, "outcome" => "reclaimed").increment(1);
}
