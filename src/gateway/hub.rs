//! The hub: one task that owns the session registry and every socket handle. Socket events,
//! platform events and the results of platform requests arrive on one queue; requests run in
//! their own tasks and report back, so the hub never waits on the platform.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::{SendError, SocketError};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use super::payload::{self, CallReply, ConnectReply, DisconnectReply, Login, event};
use crate::agents::{NewCall, Notice, Registry, Rules, SocketId};
use crate::config::{AgentsConfig, Config, OnCallError, OnDisconnect};
use crate::converja::{AgentId, CallId, Event, QueueId, Timestamp};
use crate::platform::{Platform, PlatformError, Update};
use crate::telemetry;

/// How often first-call delays, grace periods and failed emits are looked at.
const TICK: Duration = Duration::from_millis(100);

/// How long reconciliation waits for the base rooms after the link comes back.
const RECONCILE_PATIENCE: Duration = Duration::from_secs(30);
/// Reconciliation attempts while some queue cannot be read, and the pause between them.
const RECONCILE_ATTEMPTS: u32 = 10;
const RECONCILE_RETRY: Duration = Duration::from_secs(1);

/// The NEW_CALL payload of a call that started at `timestamp` in `queue`.
fn new_call(
    platform: &Platform,
    media: &str,
    queue: QueueId,
    caller: &str,
    timestamp: Timestamp,
    call: CallId,
) -> NewCall {
    NewCall {
        call_id: call.to_string(),
        media: media.to_owned(),
        start_date: timestamp.to_iso8601(),
        service: platform
            .queue_name(queue)
            .unwrap_or_else(|| format!("queue {queue}")),
        caller: caller.to_owned(),
    }
}

/// Every active call of every followed queue, and whether every queue could be read.
async fn read_active_calls(
    platform: &Platform,
    media: &str,
) -> (Vec<(AgentId, CallId, NewCall)>, bool) {
    let mut active = Vec::new();
    let mut complete = true;
    for queue in platform.followed_queues() {
        match platform.queue_calls(queue).await {
            Ok(calls) => {
                for c in calls.calls.into_iter().filter(|c| c.is_active()) {
                    let Some(agent) = c.callee.clone() else {
                        continue;
                    };
                    let started = c.timestamps.answer.unwrap_or(c.timestamps.join);
                    let info = new_call(platform, media, queue, &c.caller, started, c.call);
                    active.push((agent, c.call, info));
                }
            }
            Err(e) => {
                warn!(%queue, error = %e, "cannot re-read the queue's calls");
                complete = false;
            }
        }
    }
    (active, complete)
}

/// What reaches the hub.
pub(super) enum HubMsg {
    /// A socket was admitted.
    Connected {
        id: SocketId,
        socket: SocketRef,
        auth_user: Option<String>,
        polling: bool,
    },
    /// A socket sent an event.
    Incoming {
        id: SocketId,
        name: String,
        data: Option<Value>,
        ack: Option<AckSender>,
    },
    /// A socket is gone.
    Closed { id: SocketId },
    /// A platform request finished.
    Done(Done),
}

/// The result of a platform request started by the hub, with what it needs to reply.
pub(super) enum Done {
    Login {
        id: SocketId,
        ack: Option<AckSender>,
        raw: Value,
        login: Login,
        agent: AgentId,
        result: Result<(), PlatformError>,
    },
    Logout {
        id: Option<SocketId>,
        ack: Option<AckSender>,
        username: String,
        result: Result<(), PlatformError>,
    },
    EndCall {
        id: SocketId,
        ack: Option<AckSender>,
        call: CallId,
        result: Result<(), PlatformError>,
    },
    Reconciled {
        active: Vec<(AgentId, CallId, NewCall)>,
        complete: bool,
    },
}

struct Incoming {
    name: String,
    data: Option<Value>,
    ack: Option<AckSender>,
}

/// A socket's handle and the events waiting while its previous one is still being served.
struct SocketCtx {
    socket: SocketRef,
    auth_user: Option<String>,
    busy: bool,
    queue: VecDeque<Incoming>,
    closed: bool,
}

pub(super) struct Hub {
    rules: AgentsConfig,
    authenticated: bool,
    platform: Platform,
    registry: Registry,
    sockets: HashMap<SocketId, SocketCtx>,
    tx: mpsc::Sender<HubMsg>,
    tracker: TaskTracker,
}

fn emit<T: Serialize + ?Sized>(
    socket: &SocketRef,
    name: &'static str,
    payload: &T,
) -> Result<(), SendError> {
    let result = socket.emit(name, payload);
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    metrics::counter!(telemetry::EMITS, "event" => name, "outcome" => outcome).increment(1);
    result
}

impl Hub {
    pub(super) fn new(
        config: &Config,
        platform: Platform,
        tx: mpsc::Sender<HubMsg>,
        tracker: TaskTracker,
    ) -> Hub {
        let a = &config.agents;
        let rules = Rules {
            first_call_delay: a.first_call_delay.0,
            ack_timeout: a.ack_timeout.0,
            redeliver_unanswered: a.redeliver_unanswered,
            reconnect_grace: a.reconnect_grace.0,
        };
        Hub {
            rules: a.clone(),
            authenticated: config.auth.is_some(),
            platform,
            registry: Registry::new(rules),
            sockets: HashMap::new(),
            tx,
            tracker,
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<HubMsg>, cancel: CancellationToken) {
        let mut updates = self.platform.subscribe();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(msg) = rx.recv() => self.on_msg(msg),
                update = updates.recv() => match update {
                    Ok(update) => self.on_update(update),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(missed, "platform events missed; reconciling");
                        self.reconcile();
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => {
                    self.on_tick();
                    self.deliver(true);
                    self.publish_gauges();
                    continue;
                }
            }
            self.deliver(false);
        }
        info!("gateway stopped");
    }

    fn on_msg(&mut self, msg: HubMsg) {
        match msg {
            HubMsg::Connected {
                id,
                socket,
                auth_user,
                polling,
            } => {
                debug!(socket = id.0, polling, "socket connected");
                self.sockets.insert(
                    id,
                    SocketCtx {
                        socket,
                        auth_user,
                        busy: false,
                        queue: VecDeque::new(),
                        closed: false,
                    },
                );
            }
            HubMsg::Incoming {
                id,
                name,
                data,
                ack,
            } => self.enqueue(id, Incoming { name, data, ack }),
            HubMsg::Closed { id } => {
                // Behind any event the socket sent before closing: those are served first.
                if let Some(ctx) = self.sockets.get_mut(&id) {
                    ctx.closed = true;
                }
                self.drain(id);
            }
            HubMsg::Done(done) => self.on_done(done),
        }
    }

    fn enqueue(&mut self, id: SocketId, incoming: Incoming) {
        let Some(ctx) = self.sockets.get_mut(&id) else {
            return;
        };
        ctx.queue.push_back(incoming);
        self.drain(id);
    }

    /// Serves the socket's queued events until one starts a platform request.
    fn drain(&mut self, id: SocketId) {
        loop {
            let Some(ctx) = self.sockets.get_mut(&id) else {
                return;
            };
            if ctx.busy {
                return;
            }
            let Some(incoming) = ctx.queue.pop_front() else {
                if ctx.closed {
                    self.sockets.remove(&id);
                    self.registry.socket_closed(id, Instant::now().into_std());
                }
                return;
            };
            let socket = ctx.socket.clone();
            let name = incoming.name.clone();
            let span = info_span!("socket_event", socket = id.0, event = %name);
            let _enter = span.enter();
            let busy = self.on_event(id, &socket, incoming);
            if let Some(ctx) = self.sockets.get_mut(&id) {
                ctx.busy = busy;
            }
        }
    }

    fn finish(&mut self, id: SocketId) {
        if let Some(ctx) = self.sockets.get_mut(&id) {
            ctx.busy = false;
        }
        self.drain(id);
    }

    /// Serves one event; true if it started a platform request the socket must wait for.
    fn on_event(&mut self, id: SocketId, socket: &SocketRef, incoming: Incoming) -> bool {
        let Incoming { name, data, ack } = incoming;
        let label = match name.as_str() {
            event::USER_CONNECT
            | event::USER_DISCONNECT
            | event::END_CALL
            | event::NEW_CALL_ANSWERED
            | event::NEW_CALL_ERROR => name.clone(),
            _ => "unknown".into(),
        };
        metrics::counter!(telemetry::SOCKET_EVENTS, "event" => label, "outcome" => "received")
            .increment(1);
        match name.as_str() {
            event::USER_CONNECT => self.user_connect(id, socket, data, ack),
            event::USER_DISCONNECT => self.user_disconnect(id, socket, data, ack),
            event::END_CALL => self.end_call(id, socket, data, ack),
            event::NEW_CALL_ANSWERED => {
                match data.as_ref().map(payload::parse_call_id) {
                    Some(Ok(call)) if self.registry.answered(id, call) => {
                        debug!(%call, "call answered")
                    }
                    Some(Ok(call)) => self.refuse(
                        ack,
                        "unknown_call",
                        format!("call {call} is not one of this connection's calls"),
                    ),
                    Some(Err(e)) => self.refuse(ack, "bad_payload", e),
                    None => self.refuse(
                        ack,
                        "bad_payload",
                        "NEW_CALL_ANSWERED needs {callId}".into(),
                    ),
                }
                false
            }
            event::NEW_CALL_ERROR => {
                self.new_call_error(id, data, ack);
                false
            }
            _ => {
                warn!(%name, "unknown socket.io event ignored");
                metrics::counter!(telemetry::UNKNOWN_EVENTS).increment(1);
                if let Some(ack) = ack {
                    let _ = ack.send(&json!({ "error": format!("unknown event {name}") }));
                }
                false
            }
        }
    }

    /// Logs and counts an event that has no error event of its own; answers its ack if any.
    fn refuse(&self, ack: Option<AckSender>, reason: &'static str, error: String) {
        warn!(%error, "event refused");
        metrics::counter!(telemetry::SOCKET_EVENTS, "event" => reason, "outcome" => "refused")
            .increment(1);
        if let Some(ack) = ack {
            let _ = ack.send(&json!({ "error": error }));
        }
    }

    fn reply<T: Serialize>(
        &self,
        socket: &SocketRef,
        name: &'static str,
        payload: &T,
        ack: Option<AckSender>,
    ) {
        if let Err(e) = emit(socket, name, payload) {
            warn!(event = name, error = %e, "reply not delivered");
        }
        if let Some(ack) = ack {
            let _ = ack.send(payload);
        }
    }

    fn agent_for(&self, username: &str) -> AgentId {
        self.rules
            .ids
            .get(username)
            .cloned()
            .unwrap_or_else(|| AgentId::new(username))
    }

    fn user_connect(
        &mut self,
        id: SocketId,
        socket: &SocketRef,
        data: Option<Value>,
        ack: Option<AckSender>,
    ) -> bool {
        let raw = data.unwrap_or(Value::Null);
        let fail = |this: &Self, error: String, ack| {
            metrics::counter!(telemetry::SOCKET_EVENTS, "event" => event::USER_CONNECT, "outcome" => "refused").increment(1);
            let reply = ConnectReply {
                username: raw.get("username").cloned().unwrap_or(Value::Null),
                max_calls: raw.get("maxCalls").cloned().unwrap_or(Value::Null),
                error: Some(error),
            };
            this.reply(socket, event::USER_CONNECTION_ERROR, &reply, ack);
        };
        let login = match payload::parse_login(&raw, self.rules.max_calls_limit) {
            Ok(login) => login,
            Err(e) => {
                fail(self, e, ack);
                return false;
            }
        };
        if self.authenticated {
            let allowed = self.sockets.get(&id).and_then(|c| c.auth_user.as_deref());
            if allowed != Some(login.username.as_str()) {
                fail(
                    self,
                    format!("this connection's token is not for {}", login.username),
                    ack,
                );
                return false;
            }
        }
        let agent = self.agent_for(&login.username);
        if let Err(e) = self.registry.can_attach(id, &login.username, &agent) {
            fail(self, e.to_string(), ack);
            return false;
        }
        if self.registry.username_of(id) == Some(login.username.as_str()) {
            // A repeated USER_CONNECT on the same socket: same session, nothing re-delivered.
            let _ = self.registry.attach(
                id,
                &login.username,
                &agent,
                login.max_calls,
                Instant::now().into_std(),
            );
            let reply = ConnectReply {
                username: raw["username"].clone(),
                max_calls: raw["maxCalls"].clone(),
                error: None,
            };
            self.reply(socket, event::USER_CONNECTED, &reply, ack);
            return false;
        }
        let platform = self.platform.clone();
        let span = info_span!("user_connect", username = %login.username, %agent);
        self.spawn_op(span, async move {
            let result = async {
                platform.join_agent_room(&agent).await?;
                platform.agent_status(&agent).await.map(drop)
            }
            .await;
            Done::Login {
                id,
                ack,
                raw,
                login,
                agent,
                result,
            }
        });
        true
    }

    fn user_disconnect(
        &mut self,
        id: SocketId,
        socket: &SocketRef,
        data: Option<Value>,
        ack: Option<AckSender>,
    ) -> bool {
        let named = payload::parse_logout(data.as_ref());
        let current = self.registry.username_of(id).map(str::to_owned);
        let fail = |this: &Self, username: String, error: String, ack| {
            metrics::counter!(telemetry::SOCKET_EVENTS, "event" => event::USER_DISCONNECT, "outcome" => "refused").increment(1);
            this.reply(
                socket,
                event::USER_DISCONNECTION_ERROR,
                &DisconnectReply {
                    username,
                    error: Some(error),
                },
                ack,
            );
        };
        let Some(username) = current else {
            fail(
                self,
                named.unwrap_or_default(),
                "not connected: send USER_CONNECT first".into(),
                ack,
            );
            return false;
        };
        if let Some(named) = named.filter(|n| *n != username) {
            fail(
                self,
                named,
                format!("this connection is logged in as {username}"),
                ack,
            );
            return false;
        }
        self.end_session(Some(id), username, ack);
        true
    }

    /// Applies `on_disconnect` on the platform, then leaves the agent room.
    fn end_session(&mut self, id: Option<SocketId>, username: String, ack: Option<AckSender>) {
        let Some(session) = self.registry.session(&username) else {
            return;
        };
        let agent = session.agent.clone();
        let policy = self.rules.on_disconnect;
        let platform = self.platform.clone();
        let span = info_span!("end_session", %username, %agent, ?policy);
        self.spawn_op(span, async move {
            let result = match policy {
                OnDisconnect::Logout => platform.logout(&agent).await,
                OnDisconnect::Pause(reason) => platform.set_paused(&agent, Some(reason)).await,
                OnDisconnect::None => Ok(()),
            };
            if result.is_ok() {
                platform.leave_agent_room(&agent).await;
            }
            Done::Logout {
                id,
                ack,
                username,
                result,
            }
        });
    }

    fn end_call(
        &mut self,
        id: SocketId,
        socket: &SocketRef,
        data: Option<Value>,
        ack: Option<AckSender>,
    ) -> bool {
        let raw_id = data
            .as_ref()
            .and_then(|d| d.get("callId"))
            .cloned()
            .unwrap_or(Value::Null);
        let fail = |this: &Self, error: String, ack| {
            metrics::counter!(telemetry::SOCKET_EVENTS, "event" => event::END_CALL, "outcome" => "refused").increment(1);
            this.reply(
                socket,
                event::END_CALL_ERROR,
                &CallReply {
                    call_id: raw_id.clone(),
                    error: Some(error),
                },
                ack,
            );
        };
        let call = match data.as_ref().map(payload::parse_call_id) {
            Some(Ok(call)) => call,
            Some(Err(e)) => {
                fail(self, e, ack);
                return false;
            }
            None => {
                fail(self, "END_CALL needs {callId}".into(), ack);
                return false;
            }
        };
        let Some(session) = self.registry.session_of(id) else {
            fail(self, "not connected: send USER_CONNECT first".into(), ack);
            return false;
        };
        if !session.holds(call) {
            fail(self, format!("call {call} is not one of your calls"), ack);
            return false;
        }
        let agent = session.agent.clone();
        let platform = self.platform.clone();
        let span = info_span!("end_call", %agent, %call);
        self.spawn_op(span, async move {
            let result = platform.end_active_call(&agent).await;
            Done::EndCall {
                id,
                ack,
                call,
                result,
            }
        });
        true
    }

    fn new_call_error(&mut self, id: SocketId, data: Option<Value>, ack: Option<AckSender>) {
        let call = match data.as_ref().map(payload::parse_call_id) {
            Some(Ok(call)) => call,
            Some(Err(e)) => return self.refuse(ack, "bad_payload", e),
            None => {
                return self.refuse(
                    ack,
                    "bad_payload",
                    "NEW_CALL_ERROR needs {callId, error}".into(),
                );
            }
        };
        let Some(session) = self.registry.session_of(id) else {
            return self.refuse(
                ack,
                "not_connected",
                "not connected: send USER_CONNECT first".into(),
            );
        };
        if !session.holds(call) {
            return self.refuse(
                ack,
                "unknown_call",
                format!("call {call} is not one of your calls"),
            );
        }
        let agent = session.agent.clone();
        let reason = data
            .as_ref()
            .and_then(|d| d.get("error"))
            .map(|e| e.to_string())
            .unwrap_or_default();
        warn!(%agent, %call, %reason, "agent UI rejected a call");
        // The slot is freed at once and the call is never offered again.
        self.registry.call_ended(call);
        if let Some(ack) = ack {
            let _ = ack.send(&json!({ "callId": call.to_string() }));
        }
        let platform = self.platform.clone();
        let policy = self.rules.on_call_error.clone();
        self.tracker.spawn(async move {
            let result = match &policy {
                OnCallError::None => return,
                OnCallError::Hangup => platform.end_active_call(&agent).await,
                OnCallError::Transfer(to) => platform.transfer(&agent, to).await,
            };
            if let Err(e) = result {
                warn!(%agent, %call, ?policy, error = %e, "on_call_error action failed");
            }
        });
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Login {
                id,
                ack,
                raw,
                login,
                agent,
                result,
            } => {
                let Some(socket) = self.sockets.get(&id).map(|c| c.socket.clone()) else {
                    return self.leave_if_unused(&agent);
                };
                let outcome = result
                    .map_err(|e| payload::describe(&e, &format!("agent {agent}")))
                    .and_then(|()| {
                        self.registry
                            .attach(
                                id,
                                &login.username,
                                &agent,
                                login.max_calls,
                                Instant::now().into_std(),
                            )
                            .map_err(|e| e.to_string())
                    });
                let mut reply = ConnectReply {
                    username: raw["username"].clone(),
                    max_calls: raw["maxCalls"].clone(),
                    error: None,
                };
                match outcome {
                    Ok(()) => {
                        info!(username = %login.username, %agent, max_calls = login.max_calls, "agent connected");
                        self.reply(&socket, event::USER_CONNECTED, &reply, ack);
                    }
                    Err(error) => {
                        info!(username = %login.username, %agent, %error, "agent connection refused");
                        metrics::counter!(telemetry::SOCKET_EVENTS, "event" => event::USER_CONNECT, "outcome" => "failed").increment(1);
                        reply.error = Some(error);
                        self.reply(&socket, event::USER_CONNECTION_ERROR, &reply, ack);
                        self.leave_if_unused(&agent);
                    }
                }
                self.finish(id);
            }
            Done::Logout {
                id,
                ack,
                username,
                result,
            } => {
                let socket = id
                    .and_then(|id| self.sockets.get(&id))
                    .map(|c| c.socket.clone());
                match result {
                    Ok(()) => {
                        self.registry.end_session(&username);
                        info!(%username, "agent disconnected");
                        if let Some(socket) = &socket {
                            self.reply(
                                socket,
                                event::USER_DISCONNECTED,
                                &DisconnectReply {
                                    username,
                                    error: None,
                                },
                                ack,
                            );
                        }
                    }
                    Err(e) => {
                        let error = payload::describe(&e, "the agent");
                        warn!(%username, %error, "on_disconnect action failed");
                        if id.is_none() {
                            // Grace expired: nobody to tell, and the session cannot stay.
                            self.registry.end_session(&username);
                        } else if let Some(socket) = &socket {
                            metrics::counter!(telemetry::SOCKET_EVENTS, "event" => event::USER_DISCONNECT, "outcome" => "failed").increment(1);
                            self.reply(
                                socket,
                                event::USER_DISCONNECTION_ERROR,
                                &DisconnectReply {
                                    username,
                                    error: Some(error),
                                },
                                ack,
                            );
                        }
                    }
                }
                if let Some(id) = id {
                    self.finish(id);
                }
            }
            Done::EndCall {
                id,
                ack,
                call,
                result,
            } => {
                if let Some(socket) = self.sockets.get(&id).map(|c| c.socket.clone()) {
                    match result {
                        Ok(()) => {
                            let reply = CallReply {
                                call_id: Value::String(call.to_string()),
                                error: None,
                            };
                            // CALL_ENDED goes to every socket once; if the platform's event
                            // came first, the asker still gets its acknowledgement.
                            self.call_ended(call);
                            if let Some(ack) = ack {
                                let _ = ack.send(&reply);
                            }
                        }
                        Err(e) => {
                            metrics::counter!(telemetry::SOCKET_EVENTS, "event" => event::END_CALL, "outcome" => "failed").increment(1);
                            let error = payload::describe(&e, &format!("call {call}"));
                            self.reply(
                                &socket,
                                event::END_CALL_ERROR,
                                &CallReply {
                                    call_id: Value::String(call.to_string()),
                                    error: Some(error),
                                },
                                ack,
                            );
                        }
                    }
                }
                self.finish(id);
            }
            Done::Reconciled { active, complete } => self.apply_reconcile(active, complete),
        }
    }

    /// Runs a platform request in its own task; its outcome comes back as a message.
    fn spawn_op(
        &self,
        span: tracing::Span,
        op: impl std::future::Future<Output = Done> + Send + 'static,
    ) {
        let tx = self.tx.clone();
        self.tracker.spawn(
            async move {
                let done = op.await;
                let _ = tx.send(HubMsg::Done(done)).await;
            }
            .instrument(span),
        );
    }

    fn leave_if_unused(&self, agent: &AgentId) {
        if self.registry.session_of_agent(agent).is_none() {
            let platform = self.platform.clone();
            let agent = agent.clone();
            self.tracker
                .spawn(async move { platform.leave_agent_room(&agent).await });
        }
    }

    fn on_update(&mut self, update: Update) {
        match update {
            Update::Event(e) => match e.event {
                Event::CallDidStart(start) => {
                    let info = new_call(
                        &self.platform,
                        &self.rules.media,
                        start.queue,
                        &start.origin,
                        start.timestamp,
                        start.callid,
                    );
                    if self
                        .registry
                        .call_started(&start.destination, start.callid, info)
                    {
                        info!(agent = %start.destination, call = %start.callid, "call assigned");
                    }
                }
                Event::CallDidFinish(finish) => self.call_ended(finish.callid),
                _ => {}
            },
            Update::LinkUp => self.reconcile(),
            Update::LinkDown => {}
        }
    }

    /// Tells every socket of the session holding `call` that it ended, once.
    fn call_ended(&mut self, call: CallId) {
        let Some((username, sockets)) = self.registry.call_ended(call) else {
            return;
        };
        info!(%username, %call, "call ended");
        let payload = CallReply {
            call_id: Value::String(call.to_string()),
            error: None,
        };
        for id in sockets {
            if let Some(ctx) = self.sockets.get(&id)
                && let Err(e) = emit(&ctx.socket, event::CALL_ENDED, &payload)
            {
                warn!(socket = id.0, %call, error = %e, "CALL_ENDED not delivered");
            }
        }
    }

    /// Re-reads the calls of every followed queue after an outage.
    fn reconcile(&mut self) {
        if self.registry.sessions().next().is_none() {
            return;
        }
        let platform = self.platform.clone();
        let media = self.rules.media.clone();
        self.spawn_op(info_span!("reconcile"), async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                // The platform's occupants rejoin their rooms after an outage too; until
                // they do, requests bounce. Wait for our rooms, then retry a few times.
                platform.wait_ready(RECONCILE_PATIENCE).await;
                let (active, complete) = read_active_calls(&platform, &media).await;
                if complete || attempt >= RECONCILE_ATTEMPTS {
                    return Done::Reconciled { active, complete };
                }
                tokio::time::sleep(RECONCILE_RETRY).await;
            }
        });
    }

    fn apply_reconcile(&mut self, active: Vec<(AgentId, CallId, NewCall)>, complete: bool) {
        let live: HashSet<CallId> = active.iter().map(|(_, c, _)| *c).collect();
        let mut started = 0;
        for (agent, call, info) in active {
            if self.registry.call_started(&agent, call, info) {
                started += 1;
            }
        }
        let mut ended = 0;
        if complete {
            for (_, call) in self.registry.held_calls() {
                if !live.contains(&call) {
                    self.call_ended(call);
                    ended += 1;
                }
            }
        }
        info!(started, ended, complete, "reconciled with the platform");
    }

    fn on_tick(&mut self) {
        let now = Instant::now().into_std();
        for username in self.registry.expired(now) {
            info!(%username, "reconnect grace expired");
            self.end_session(None, username.clone(), None);
            // No more deliveries while the platform action runs.
            self.registry.end_session(&username);
        }
        for notice in self.registry.notices(now) {
            let Notice::Unanswered { username, call } = notice;
            warn!(%username, %call, "NEW_CALL not answered by the agent UI");
            metrics::counter!(telemetry::UNANSWERED).increment(1);
        }
    }

    /// Emits the NEW_CALLs that are due: for changed sessions after each message, for all on
    /// each tick (first-call delays, redelivery, and emits that failed on a full buffer).
    fn deliver(&mut self, all: bool) {
        let now = Instant::now().into_std();
        let due = if all {
            self.registry.due(now)
        } else {
            self.registry.due_changed(now)
        };
        for (id, call) in due {
            let Some(ctx) = self.sockets.get(&id) else {
                continue;
            };
            let call_id = CallId(call.call_id.parse().unwrap_or_default());
            match emit(&ctx.socket, event::NEW_CALL, &call) {
                Ok(()) => self.registry.delivered(id, call_id, now),
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                    debug!(socket = id.0, call = %call.call_id, "socket buffer full; NEW_CALL retried");
                }
                Err(e) => {
                    warn!(socket = id.0, call = %call.call_id, error = %e, "NEW_CALL not delivered")
                }
            }
        }
    }

    fn publish_gauges(&self) {
        let (sessions, sockets, offered, waiting) = self.registry.counts();
        metrics::gauge!(telemetry::SESSIONS).set(sessions as f64);
        metrics::gauge!(telemetry::SOCKETS).set(self.sockets.len() as f64);
        metrics::gauge!(telemetry::SESSION_SOCKETS).set(sockets as f64);
        metrics::gauge!(telemetry::CALLS, "state" => "offered").set(offered as f64);
        metrics::gauge!(telemetry::CALLS, "state" => "waiting").set(waiting as f64);
    }
}
