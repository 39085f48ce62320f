//! The agents core: sessions, capacity, delivery, the reconnect grace, reconciliation after an
//! outage, and which platform request each agent event needs. It knows neither socket.io nor
//! XMPP: it reaches the platform through [`port::Platform`] and the sockets through
//! [`port::Sink`].
//!
//! Shape: one [`Agents`] value shared by every task. Its state (the [`Registry`] and the socket
//! handles) sits behind one mutex that is only ever held for synchronous work, emits included
//! (they queue without waiting), so events reach each socket in the order the state changed.
//! Each socket has one task ([`inbox`]) that handles its events one after the other, awaiting
//! the platform between "decide" and "apply"; that is what keeps a socket's events in order
//! without a central queue. Platform events, the clock and reconciliation each come in
//! through their own method.

pub mod board;
mod clock;
mod ending;
pub(crate) mod event;
mod handlers;
mod inbox;
pub(crate) mod port;
mod reconcile;
pub(crate) mod refusal;
mod registry;
mod restore;
pub(crate) mod resume;
mod state;
pub mod supervision;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

pub(crate) use event::{AckReply, ClientEvent, NewCall, ServerEvent, SocketId};
pub(crate) use inbox::FromSocket;
pub(crate) use port::{AckError, Directory, EmitError, Platform, Sink};
pub(crate) use refusal::Refusal;
pub(crate) use registry::{Registry, Rules};
pub(crate) use resume::Resume;

use crate::config::{Config, OnCallError, OnDisconnect};
use crate::converja::{AgentId, CallDidStart, CallId, PauseReason, QueueId, Timestamp};
use crate::store::Journal;
use crate::telemetry;
use restore::TakenBy;
use resume::{PidKey, Shown};
use state::State;

/// How the core behaves, from `[agents]` and `[auth]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Delivery timing.
    pub rules: Rules,
    /// What ending a session does on the platform.
    pub on_disconnect: OnDisconnect,
    /// What NEW_CALL_ERROR does on the platform.
    pub on_call_error: OnCallError,
    /// The `media` field of NEW_CALL.
    pub media: String,
    /// Username -> agent id, for usernames that are not agent ids.
    pub ids: BTreeMap<String, AgentId>,
    /// Whether sockets prove their username with a token.
    pub authenticated: bool,
    /// Whether PAUSE, RESUME and TRANSFER_CALL are taken and USER_PAUSED / USER_RESUMED
    /// sent (`agents.extensions`); off, the contract is exactly the published one.
    pub extensions: bool,
}

impl Settings {
    /// The settings of a daemon configured by `config`.
    pub fn from_config(config: &Config) -> Self {
        let a = &config.agents;
        Settings {
            rules: Rules {
                first_call_delay: a.first_call_delay.0,
                ack_timeout: a.ack_timeout.0,
                redeliver_unanswered: a.redeliver_unanswered,
                reconnect_grace: a.reconnect_grace.0,
            },
            on_disconnect: a.on_disconnect,
            on_call_error: a.on_call_error.clone(),
            media: a.media.clone(),
            ids: a.ids.clone(),
            authenticated: config.auth.is_some(),
            extensions: a.extensions,
        }
    }

    /// The platform's agent id for `username`.
    fn agent_for(&self, username: &str) -> AgentId {
        self.ids
            .get(username)
            .cloned()
            .unwrap_or_else(|| AgentId::new(username))
    }
}

/// The agents core. Shared by reference (`Arc`) between the socket tasks, the platform
/// follower and the clock.
pub struct Agents<P: Platform, S: Sink> {
    settings: Settings,
    platform: P,
    sink: S,
    state: Mutex<State<S::Socket, S::Ack>>,
    /// Woken whenever calls end, for handlers waiting on the platform's word.
    call_ends: Notify,
    /// Woken whenever a socket's task runs out of events, for [`Agents::drain`].
    socket_idle: Notify,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl<P: Platform, S: Sink> Agents<P, S> {
    /// A core with no sessions, recording what must survive a restart in `journal`.
    /// Background work runs on `tasks` and stops with `cancel`.
    pub fn new(
        settings: Settings,
        platform: P,
        sink: S,
        journal: Journal,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let registry = Registry::new(settings.rules.clone());
        Arc::new(Agents {
            settings,
            platform,
            sink,
            state: Mutex::new(State::new(registry, journal)),
            call_ends: Notify::new(),
            socket_idle: Notify::new(),
            tasks,
            cancel,
        })
    }

    /// Starts the clock: first-call delays, grace periods, unanswered calls, gauges.
    pub fn start_clock(self: &Arc<Self>) {
        let agents = self.clone();
        self.tasks
            .spawn(async move { agents.run_clock().await }.instrument(info_span!("agents_clock")));
    }

    /// Locks the state. Never held across an `.await`: every caller is synchronous.
    fn state(&self) -> MutexGuard<'_, State<S::Socket, S::Ack>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where changes that must survive a restart are recorded.
    fn journal(&self) -> Journal {
        self.state().journal.clone()
    }

    /// A socket was admitted; `proven` is the username its token proves, if tokens are on,
    /// and `resume` what its handshake handed back from an earlier connection. A socket
    /// whose `pid` names a session ([`resume`](self::resume)), or whose token proves the
    /// username of a session waiting for its UI ([`restore`](self::restore)), takes it back
    /// at once. Returns the `pid` to give the socket: the one it named a session with, or
    /// `fresh`.
    pub(crate) fn socket_opened(
        &self,
        id: SocketId,
        socket: S::Socket,
        proven: Option<String>,
        resume: Resume,
        fresh: String,
    ) -> String {
        let mut state = self.state();
        let shown = resume.offset.as_deref().and_then(Shown::parse);
        let named = resume.pid.and_then(|pid| {
            let username = state.registry.session_by_pid(&PidKey::of(&pid))?;
            // A pid never takes the session of another username than the token proves.
            let allowed = proven.as_deref().is_none_or(|p| p == username);
            allowed.then(|| (pid.clone(), username.to_owned()))
        });
        if let Some((pid, username)) = named {
            state.open_socket(id, socket, proven, PidKey::of(&pid));
            if restore::take_back(&mut state, id, &username, TakenBy::Pid) {
                let calls = shown
                    .filter(|s| s.username == username)
                    .map(|s| s.calls)
                    .unwrap_or_default();
                state.registry.resume_view(id, &calls, now());
                state.mark_unsettled(id);
                return pid;
            }
            // Not attached after all: the socket is a new one, and must not be told otherwise.
            state.set_pid(id, PidKey::of(&fresh));
            return fresh;
        }
        state.open_socket(id, socket, proven.clone(), PidKey::of(&fresh));
        if let Some(username) = proven {
            restore::take_back(&mut state, id, &username, TakenBy::Token);
        } else if let Some(shown) = shown
            && state.registry.session(&shown.username).is_none()
        {
            // The UI still shows a session that ended while it was away (its grace ran out,
            // the platform logged the agent out, or nothing was stored across a restart):
            // it goes back to its login.
            state.farewell(id, shown.username);
        }
        fresh
    }

    /// The client of socket `id` has been told it is connected.
    pub fn socket_connected(&self, id: SocketId) {
        self.state().connected(&self.sink, id, now());
    }

    /// The platform is out of reach: until every queue is read again, what the registry
    /// holds may be behind the platform.
    pub fn platform_lost(&self) {
        self.state().set_synced(false);
    }

    /// The platform assigned a call.
    pub fn call_started(&self, start: &CallDidStart) {
        let info = self.new_call(start.queue, &start.origin, start.timestamp, start.callid);
        let mut state = self.state();
        let registry = &mut state.registry;
        let (agent, call) = (&start.destination, start.callid);
        if !registry.call_started(agent, call, start.queue, info, start.timestamp) {
            return;
        }
        if registry.session_of_agent(&start.destination).is_some() {
            info!(agent = %start.destination, call = %start.callid, "call assigned");
        } else {
            debug!(agent = %start.destination, call = %start.callid, "call kept for the agent's next session");
        }
        state.deliver_changed(&self.sink, now());
    }

    /// The platform paused (`Some`) or resumed the agent (`UserSessionDidPause` /
    /// `UserSessionDidResume`): with `agents.extensions`, its UIs are told, once.
    pub fn session_paused(&self, agent: &AgentId, paused: Option<PauseReason>) {
        if !self.settings.extensions {
            return;
        }
        self.state().paused(&self.sink, agent, paused, false);
    }

    /// The platform ended the agent's session at `at` (`UserSessionDidFinish`: logged out at
    /// the phone, by a supervisor, by the platform): the bridge session ends and its UIs go
    /// back to their login. A logout no newer than what the platform said when the session
    /// was confirmed belongs to an earlier session, and the bridge's own logouts are its own
    /// to finish.
    pub fn session_finished(self: &Arc<Self>, agent: &AgentId, at: Timestamp) {
        let ended = {
            let mut state = self.state();
            state.logged_out(agent, at);
            if state.ending(agent).is_some() {
                debug!(%agent, "logout announced while the bridge ends the session itself");
                return;
            }
            let Some(session) = state.registry.session_of_agent(agent) else {
                return;
            };
            let username = session.username.clone();
            if session.known_since.is_some_and(|since| at <= since) {
                info!(%agent, %username, at = at.0, "an older logout does not end the session");
                metrics::counter!(telemetry::PLATFORM_LOGOUTS, "outcome" => "ignored").increment(1);
                return;
            }
            let sockets = state.registry.end_session(&username);
            state
                .journal
                .note(crate::store::Change::Ended(username.clone()));
            let event = ServerEvent::UserDisconnected {
                username: username.clone(),
            };
            for id in sockets {
                if let Err(e) = state.emit_to(&self.sink, id, &event) {
                    warn!(socket = id.0, error = ?e, "USER_DISCONNECTED not delivered");
                }
            }
            username
        };
        info!(%agent, username = %ended, "the platform ended the agent's session");
        metrics::counter!(telemetry::PLATFORM_LOGOUTS, "outcome" => "ended").increment(1);
        self.leave_if_unused(agent);
    }

    /// The platform ended a call.
    pub fn call_ended(&self, call: CallId) {
        {
            let mut state = self.state();
            if state.registry.rejection_over(call) {
                state
                    .journal
                    .note(crate::store::Change::RejectionOver(call));
            }
            state.call_ended(&self.sink, call);
            state.deliver_changed(&self.sink, now());
        }
        self.call_ends.notify_waiters();
    }

    /// The platform is reachable (at start, or again after an outage), or events were missed:
    /// re-read every queue's active calls, emit what the UIs missed, and keep the calls of
    /// agents without a session for when they connect.
    pub fn resync(self: &Arc<Self>) {
        self.state().set_synced(false);
        let agents = self.clone();
        self.tasks
            .spawn(async move { agents.reconcile().await }.instrument(info_span!("reconcile")));
    }

    /// The NEW_CALL payload of a call that started at `timestamp` in `queue`.
    fn new_call(
        &self,
        queue: QueueId,
        caller: &str,
        timestamp: Timestamp,
        call: CallId,
    ) -> NewCall {
        NewCall {
            call,
            media: self.settings.media.clone(),
            start_date: timestamp.to_iso8601(),
            service: self
                .platform
                .queue_name(queue)
                .unwrap_or_else(|| format!("queue {queue}")),
            caller: caller.to_owned(),
        }
    }
}

/// The core's clock: tokio's, so that tests can pause and advance it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
