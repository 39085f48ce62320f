//! socket.io's `/supervisor` namespace: admits supervisors only, carries out their requests
//! one after the other in the order sent (a pause then a resume must reach the platform in
//! that order), answers each through its acknowledgement (or as an event when the client
//! asked for none), and pushes the changes of the queues each one follows.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::{ConnectHandler, FromMessageParts, MessageHandler};
use socketioxide::socket::{DisconnectReason, Socket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::address;
use super::admission::{Admission, Refused};
use super::contract::supervisor::{self as wire, Request};
use crate::agents::supervision::{Ask, Following, Supervision, Supervisor};
use crate::agents::{self, Directory};
use crate::config::SupervisorsConfig;
use crate::converja::AgentId;
use crate::telemetry;

/// The namespace.
pub(super) const NAMESPACE: &str = "/supervisor";
/// Requests one supervisor socket may have waiting; more are refused at once.
const QUEUED: usize = 32;

/// What the namespace admits by and serves from.
pub(super) struct Desk<P: agents::Platform, D: Directory> {
    pub(super) admission: Arc<Admission<P>>,
    pub(super) supervision: Arc<Supervision<D>>,
    pub(super) rules: SupervisorsConfig,
}

/// One request, with how to answer it.
struct Job {
    name: String,
    data: Option<Value>,
    ack: Option<AckSender>,
}

/// Passes every event of a supervisor socket to its request task.
#[derive(Clone)]
struct Relay {
    jobs: mpsc::Sender<Job>,
}

impl MessageHandler<LocalAdapter, Relay> for Relay {
    fn call(
        &self,
        s: Arc<Socket<LocalAdapter>>,
        mut v: socketioxide::handler::Value,
        ack_id: Option<i64>,
    ) {
        let (name, data) = super::name_and_data(&s, &mut v, ack_id);
        let ack = ack_id.map(|_| {
            AckSender::from_message_parts(&s, &mut v, &ack_id)
                .unwrap_or_else(|never| match never {})
        });
        let job = Job { name, data, ack };
        if let Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) =
            self.jobs.try_send(job)
        {
            let refused = wire::refusal(
                &job.name,
                "overloaded",
                format!("more than {QUEUED} requests are waiting; try again shortly"),
            );
            metrics::counter!(telemetry::SUPERVISOR_REQUESTS, "request" => "any", "outcome" => "overloaded")
                .increment(1);
            answer(
                &s,
                job.ack,
                &job.name,
                serde_json::to_value(refused).unwrap_or(Value::Null),
            );
        }
    }
}

/// Sends `reply` to the acknowledgement, or as an event named by its `event` field.
fn answer(socket: &Socket<LocalAdapter>, ack: Option<AckSender>, name: &str, reply: Value) {
    let sent = match ack {
        Some(ack) => ack.send(&reply),
        None => {
            let event = reply
                .get("event")
                .and_then(Value::as_str)
                .unwrap_or(name)
                .to_owned();
            socket.emit(event, &reply)
        }
    };
    if let Err(e) = sent {
        debug!("supervisor reply not sent: {e}");
    }
}

/// Mounts the namespace on `io`.
pub(super) fn mount<P: agents::Platform, D: Directory>(io: &SocketIo, desk: Arc<Desk<P, D>>) {
    let admit = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let desk = desk.clone();
        async move { desk.admit(&socket, auth.ok()).await }
    };
    io.ns(NAMESPACE, (async |_: SocketRef| {}).with(admit));
}

impl<P: agents::Platform, D: Directory> Desk<P, D> {
    async fn admit(
        self: &Arc<Self>,
        socket: &SocketRef,
        auth: Option<Value>,
    ) -> Result<(), Refused> {
        let parts = socket.req_parts();
        let client = address::client(&parts.extensions, &parts.headers, &self.admission.trusted);
        let admitted = async {
            self.admission.check_origin(socket)?;
            let who = self
                .admission
                .identity
                .prove_supervisor(socket.req_parts(), auth.as_ref(), &self.rules)
                .await?;
            let slot = match client {
                Some(c) => Some(self.admission.addresses.connect(c)?),
                None => None,
            };
            Ok::<_, Refused>((who, slot))
        }
        .await;
        let (who, slot) = match admitted {
            Ok(a) => a,
            Err(refused) => {
                let reason = refused.reason();
                metrics::counter!(telemetry::SOCKETS_REFUSED, "reason" => reason).increment(1);
                warn!(client = ?client, reason, "supervisor socket refused: {refused}");
                return Err(refused);
            }
        };
        let who = Supervisor(AgentId::new(who));
        info!(supervisor = %who.0, client = ?client, "supervisor connected");
        let closed = CancellationToken::new();
        let slot = Arc::new(Mutex::new(slot));
        let on_close = closed.clone();
        socket.on_disconnect(async move |_: SocketRef, reason: DisconnectReason| {
            debug!(%reason, "supervisor socket closed");
            slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            on_close.cancel();
        });
        let (jobs, queue) = mpsc::channel(QUEUED);
        socket.on_fallback(Relay { jobs });
        let feed = self.supervision.feed();
        let following = feed.following();
        let supervision = &self.supervision;
        supervision.spawn(serve_requests(
            supervision.clone(),
            who,
            socket.clone(),
            queue,
            following,
            closed.clone(),
        ));
        supervision.spawn(push_changes(feed, socket.clone(), closed));
        Ok(())
    }
}

/// Carries out a socket's requests in order until it closes.
async fn serve_requests<D: Directory>(
    supervision: Arc<Supervision<D>>,
    who: Supervisor,
    socket: SocketRef,
    mut queue: mpsc::Receiver<Job>,
    following: Following,
    closed: CancellationToken,
) {
    loop {
        let job = tokio::select! {
            () = closed.cancelled() => return,
            job = queue.recv() => match job { Some(job) => job, None => return },
        };
        let reply = carry_out(&supervision, &who, &following, &job).await;
        answer(&socket, job.ack, &job.name, reply);
    }
}

/// One request: read, carried out, answered as JSON; counted and logged either way.
async fn carry_out<D: Directory>(
    supervision: &Arc<Supervision<D>>,
    who: &Supervisor,
    following: &Following,
    job: &Job,
) -> Value {
    let name = job.name.as_str();
    let (label, outcome, reply) = match wire::read(name, job.data.as_ref()) {
        Err(unreadable) => {
            warn!(supervisor = %who.0, request = name, "supervisor request unreadable: {unreadable}");
            let reply = wire::refusal(name, unreadable.code(), unreadable.to_string());
            (
                "unknown",
                unreadable.code(),
                serde_json::to_value(reply).unwrap_or(Value::Null),
            )
        }
        Ok(Request::Unsubscribe(queue)) => {
            following.unfollow(queue);
            (
                wire::name::UNSUBSCRIBE,
                "ok",
                wire::reply(name, serde_json::json!({ "queue": queue.0 })),
            )
        }
        Ok(request) => {
            let label = wire::name::REQUESTS
                .iter()
                .find(|n| **n == name)
                .copied()
                .unwrap_or("unknown");
            let (ask, subscribing) = match request {
                Request::Ask(ask) => (ask, None),
                Request::Subscribe(q) => (Ask::Board(q), Some(q)),
                Request::Unsubscribe(_) => unreachable!("answered above"),
            };
            // Followed before the snapshot is taken, so that no change falls between.
            if let Some(q) = subscribing
                && supervision.visible(who).await.is_ok_and(|v| v.contains(&q))
            {
                following.follow(q);
            }
            match supervision.ask(who, ask).await {
                Ok(answer) => (label, "ok", wire::reply(name, wire::answer_fields(&answer))),
                Err(denied) => {
                    if let Some(q) = subscribing {
                        following.unfollow(q);
                    }
                    info!(supervisor = %who.0, request = name, code = denied.code(), "supervisor request refused: {denied}");
                    let reply = wire::denied(name, &denied);
                    (
                        label,
                        denied.code(),
                        serde_json::to_value(reply).unwrap_or(Value::Null),
                    )
                }
            }
        }
    };
    metrics::counter!(telemetry::SUPERVISOR_REQUESTS, "request" => label, "outcome" => outcome)
        .increment(1);
    reply
}

/// Pushes the changes of the followed queues until the socket closes; a screen that does
/// not keep up gets the latest of everything once there is room.
async fn push_changes<D: Directory>(
    mut feed: crate::agents::supervision::Feed<D>,
    socket: SocketRef,
    closed: CancellationToken,
) {
    loop {
        let batch = tokio::select! {
            () = closed.cancelled() => return,
            batch = feed.next() => batch,
        };
        let mut full = false;
        for update in &batch {
            let (event, payload) = wire::update(update);
            match socket.emit(event, &payload) {
                Ok(()) => {}
                Err(socketioxide::SendError::Socket(
                    socketioxide::SocketError::InternalChannelFull,
                )) => {
                    full = true;
                    break;
                }
                Err(_) => return,
            }
        }
        if full {
            metrics::counter!(telemetry::EMITS, "event" => "supervisor", "outcome" => "held")
                .increment(1);
            feed.resend_all();
        }
    }
}
