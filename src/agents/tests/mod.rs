//! The in-memory tier: the agents core against a fake platform and a recording sink, on
//! tokio's paused clock. Each test drives sockets as a UI would and asserts what each socket
//! received and what the platform was asked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod calls;
mod connect;
mod outage;
mod platform_logout;
mod properties;
mod restart;
mod resume;
mod sessions;
mod several;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::event::{AckReply, ClientEvent, Login, ServerEvent, SocketId};
use super::port::{AckError, EmitError, Platform, Sink};
use super::{Agents, FromSocket, Resume, Rules, Settings};
use crate::config::{OnCallError, OnDisconnect};
use crate::converja::{
    AgentId, CallDidStart, CallId, CallTimestamps, PauseReason, PlatformError, QueueCall,
    QueueCalls, QueueId, Timestamp,
};
use crate::store::memory::MemoryStore;
use crate::store::{Journal, Store};

/// A request the core made, as the fake platform saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Asked {
    CheckAgent(String),
    CurrentCaller(String),
    EndCall(String),
    Transfer(String, String),
    Logout(String),
    Pause(String, u32),
    Resume(String),
    Leave(String),
    QueueCalls(u64),
}

impl Asked {
    fn kind(&self) -> &'static str {
        match self {
            Asked::CheckAgent(_) => "check",
            Asked::CurrentCaller(_) => "status",
            Asked::EndCall(_) => "end",
            Asked::Transfer(..) => "transfer",
            Asked::Logout(_) => "logout",
            Asked::Pause(..) => "pause",
            Asked::Resume(_) => "resume",
            Asked::Leave(_) => "leave",
            Asked::QueueCalls(_) => "queue_calls",
        }
    }
}

/// The timestamp agent statuses carry unless a test says otherwise.
pub(super) const STATUS_SINCE: Timestamp = Timestamp(1_468_418_000.0);

/// How the fake platform answers the next request of a kind.
enum Script {
    Fail(PlatformError),
    /// Answers when the test releases it.
    Hold(oneshot::Receiver<Result<(), PlatformError>>),
}

#[derive(Default)]
struct FakeState {
    asked: Vec<Asked>,
    scripts: HashMap<&'static str, VecDeque<Script>>,
    queues: Vec<(QueueId, Result<Vec<QueueCall>, PlatformError>)>,
    /// The caller of each agent's current call, as the status shows it.
    current: HashMap<String, String>,
    /// The timestamp every agent status carries, if not [`STATUS_SINCE`].
    status_since: Option<Timestamp>,
}

/// A platform that answers every request with success unless told otherwise.
#[derive(Clone, Default)]
pub(super) struct FakePlatform {
    state: Arc<Mutex<FakeState>>,
}

/// A request held in flight by the fake platform until released.
pub(super) struct Held(oneshot::Sender<Result<(), PlatformError>>);

impl Held {
    pub(super) fn release(self, result: Result<(), PlatformError>) {
        let _ = self.0.send(result);
    }
}

impl FakePlatform {
    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Everything asked so far.
    pub(super) fn asked(&self) -> Vec<Asked> {
        self.lock().asked.clone()
    }

    /// The next request of `kind` fails with `error`.
    pub(super) fn fail(&self, kind: &'static str, error: PlatformError) {
        self.lock()
            .scripts
            .entry(kind)
            .or_default()
            .push_back(Script::Fail(error));
    }

    /// The next request of `kind` waits until the returned handle is released.
    pub(super) fn hold(&self, kind: &'static str) -> Held {
        let (tx, rx) = oneshot::channel();
        self.lock()
            .scripts
            .entry(kind)
            .or_default()
            .push_back(Script::Hold(rx));
        Held(tx)
    }

    /// The agent's current call on the platform, by caller.
    pub(super) fn set_current(&self, agent: &str, call: Option<u64>) {
        let mut state = self.lock();
        match call {
            Some(call) => state.current.insert(agent.to_owned(), caller(call)),
            None => state.current.remove(agent),
        };
    }

    /// The timestamp agent statuses carry from now on.
    pub(super) fn set_status_since(&self, since: Timestamp) {
        self.lock().status_since = Some(since);
    }

    /// What `GET /queues/:id/calls` answers from now on, queue by queue.
    pub(super) fn set_queues(&self, queues: Vec<(QueueId, Result<Vec<QueueCall>, PlatformError>)>) {
        self.lock().queues = queues;
    }

    async fn answer(&self, asked: Asked) -> Result<(), PlatformError> {
        let script = {
            let mut state = self.lock();
            let kind = asked.kind();
            state.asked.push(asked);
            state.scripts.get_mut(kind).and_then(VecDeque::pop_front)
        };
        match script {
            None => Ok(()),
            Some(Script::Fail(e)) => Err(e),
            Some(Script::Hold(rx)) => rx
                .await
                .unwrap_or_else(|_| Err(PlatformError::LinkDown("released".into()))),
        }
    }
}

impl Platform for FakePlatform {
    async fn check_agent(&self, agent: &AgentId) -> Result<Timestamp, PlatformError> {
        self.answer(Asked::CheckAgent(agent.to_string())).await?;
        Ok(self.lock().status_since.unwrap_or(STATUS_SINCE))
    }
    async fn current_caller(&self, agent: &AgentId) -> Result<Option<String>, PlatformError> {
        self.answer(Asked::CurrentCaller(agent.to_string())).await?;
        Ok(self.lock().current.get(agent.as_str()).cloned())
    }
    async fn end_call(&self, agent: &AgentId) -> Result<(), PlatformError> {
        self.answer(Asked::EndCall(agent.to_string())).await
    }
    async fn transfer(&self, agent: &AgentId, number: &str) -> Result<(), PlatformError> {
        self.answer(Asked::Transfer(agent.to_string(), number.into()))
            .await
    }
    async fn logout(&self, agent: &AgentId) -> Result<(), PlatformError> {
        self.answer(Asked::Logout(agent.to_string())).await
    }
    async fn pause(&self, agent: &AgentId, reason: PauseReason) -> Result<(), PlatformError> {
        self.answer(Asked::Pause(agent.to_string(), reason.0)).await
    }
    async fn resume(&self, agent: &AgentId) -> Result<(), PlatformError> {
        self.answer(Asked::Resume(agent.to_string())).await
    }
    async fn leave_agent_room(&self, agent: &AgentId) {
        self.lock().asked.push(Asked::Leave(agent.to_string()));
    }
    async fn queue_calls(&self, queue: QueueId) -> Result<QueueCalls, PlatformError> {
        self.answer(Asked::QueueCalls(queue.0)).await?;
        let calls = self
            .lock()
            .queues
            .iter()
            .find(|(q, _)| *q == queue)
            .map(|(_, calls)| calls.clone())
            .unwrap_or_else(|| Ok(Vec::new()))?;
        Ok(QueueCalls {
            calls,
            queue,
            timestamp: Timestamp(0.0),
        })
    }
    fn followed_queues(&self) -> Vec<QueueId> {
        self.lock().queues.iter().map(|(q, _)| *q).collect()
    }
    fn queue_name(&self, queue: QueueId) -> Option<String> {
        (queue == QueueId(7)).then(|| "Financeiro".to_owned())
    }
    async fn wait_ready(&self, _limit: Duration) -> bool {
        true
    }
}

/// Every emit so far: to which socket, which event, which payload.
type Emitted = Arc<Mutex<Vec<(SocketId, &'static str, Value)>>>;

/// A sink that records every emit, per socket, and can play a full socket buffer.
#[derive(Clone, Default)]
pub(super) struct Recorder {
    emitted: Emitted,
    full: Arc<Mutex<HashSet<SocketId>>>,
    disconnected: Arc<Mutex<HashSet<SocketId>>>,
    closed: Arc<Mutex<HashSet<SocketId>>>,
    /// The last offset each socket received, as socket.io-client keeps it.
    offsets: Arc<Mutex<HashMap<SocketId, String>>>,
}

/// An acknowledgement callback, with the socket it came from so that a full buffer can be
/// played for it too.
pub(super) struct TestAck {
    socket: SocketId,
    answer: oneshot::Sender<Value>,
}

impl Recorder {
    /// The last offset `socket` received: what socket.io-client hands back on a reconnect.
    pub(super) fn offset(&self, socket: SocketId) -> Option<String> {
        self.offsets.lock().unwrap().get(&socket).cloned()
    }
}

impl Sink for Recorder {
    type Socket = SocketId;
    type Ack = TestAck;

    fn emit(
        &self,
        socket: &SocketId,
        event: &ServerEvent,
        offset: Option<&str>,
    ) -> Result<(), EmitError> {
        if self.full.lock().unwrap().contains(socket) {
            return Err(EmitError::Full);
        }
        if let Some(offset) = offset {
            self.offsets
                .lock()
                .unwrap()
                .insert(*socket, offset.to_owned());
        }
        let payload = serde_json::to_value(event).unwrap();
        self.emitted
            .lock()
            .unwrap()
            .push((*socket, event.name(), payload));
        Ok(())
    }

    fn ack(&self, ack: Self::Ack, reply: &AckReply) -> Result<(), AckError<TestAck>> {
        if self.full.lock().unwrap().contains(&ack.socket) {
            return Err(AckError::Full(ack));
        }
        let _ = ack.answer.send(serde_json::to_value(reply).unwrap());
        Ok(())
    }

    fn disconnect(&self, socket: &SocketId) -> bool {
        self.disconnected.lock().unwrap().insert(*socket);
        if self.full.lock().unwrap().contains(socket) {
            return false;
        }
        self.closed.lock().unwrap().insert(*socket);
        true
    }
}

/// The core with its fakes, on the paused clock.
pub(super) struct Bench {
    pub(super) core: Arc<Agents<FakePlatform, Recorder>>,
    pub(super) platform: FakePlatform,
    sink: Recorder,
    cancel: CancellationToken,
    tasks: TaskTracker,
    next_socket: u64,
}

/// The settings of the README's defaults.
pub(super) fn settings() -> Settings {
    Settings {
        rules: Rules {
            first_call_delay: Duration::from_millis(500),
            ack_timeout: Duration::from_secs(15),
            redeliver_unanswered: false,
            reconnect_grace: Duration::from_secs(30),
        },
        on_disconnect: OnDisconnect::Logout,
        on_call_error: OnCallError::None,
        media: "CHAT".into(),
        ids: Default::default(),
        authenticated: false,
        extensions: false,
    }
}

impl Bench {
    pub(super) fn new() -> Self {
        Self::with(settings())
    }

    pub(super) fn with(settings: Settings) -> Self {
        Self::build(settings, FakePlatform::default(), None)
    }

    /// A core that records to `store` and starts from what it holds, as a bridge (re)started
    /// over that store does, in front of `platform`.
    pub(super) async fn on_store(
        settings: Settings,
        platform: FakePlatform,
        store: &Arc<MemoryStore>,
    ) -> Self {
        let bench = Self::build(settings, platform, Some(store.clone()));
        let saved = store.load().await.unwrap();
        bench.core.restore(saved);
        bench
    }

    fn build(settings: Settings, platform: FakePlatform, store: Option<Arc<MemoryStore>>) -> Self {
        let sink = Recorder::default();
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let journal = match store {
            Some(store) => Journal::open(store, &tasks, cancel.clone()),
            None => Journal::off(),
        };
        let core = Agents::new(
            settings,
            platform.clone(),
            sink.clone(),
            journal,
            tasks.clone(),
            cancel.clone(),
        );
        core.start_clock();
        Bench {
            core,
            platform,
            sink,
            cancel,
            tasks,
            next_socket: 1,
        }
    }

    /// A new socket, optionally with the username its token proves.
    pub(super) fn open(&mut self, proven: Option<&str>) -> Ui {
        self.open_with(proven, Resume::default())
    }

    /// The same UI socket connecting again, as socket.io-client 4.6+ does: it hands back the
    /// `pid` it was given and the last offset it received, on this connection or before.
    pub(super) fn reconnect(&mut self, ui: &Ui) -> Ui {
        let resume = Resume {
            pid: Some(ui.pid.clone()),
            offset: self.sink.offset(ui.id).or_else(|| ui.offset.clone()),
        };
        self.open_with(None, resume)
    }

    /// A new socket whose handshake carries `resume`.
    pub(super) fn open_with(&mut self, proven: Option<&str>, resume: Resume) -> Ui {
        let id = SocketId(self.next_socket);
        self.next_socket += 1;
        let fresh = format!("pid-of-socket-{}", id.0);
        let offset = resume.offset.clone();
        let pid = self
            .core
            .socket_opened(id, id, proven.map(str::to_owned), resume, fresh);
        self.core.socket_connected(id);
        Ui {
            id,
            pid,
            offset,
            core: self.core.clone(),
            sink: self.sink.clone(),
            seen: 0,
        }
    }

    /// A socket logged in as `username` with `max_calls`, its USER_CONNECTED consumed.
    pub(super) async fn login(&mut self, username: &str, max_calls: u32) -> Ui {
        let mut ui = self.open(None);
        let reply = ui.send(connect(username, max_calls)).await;
        assert_eq!(reply["username"], username, "{reply}");
        assert_eq!(ui.take(), vec![("USER_CONNECTED", reply)]);
        ui
    }

    /// The platform assigns `call` to `agent` in queue 7.
    pub(super) fn start_call(&self, agent: &str, call: u64) {
        self.core.call_started(&started(agent, call));
    }

    /// Stops the core and waits for every task it started.
    pub(super) async fn stop(self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// A first start: an empty store, a platform, and the core over them.
pub(super) async fn first_start(settings: Settings) -> (Arc<MemoryStore>, FakePlatform, Bench) {
    let store = Arc::new(MemoryStore::default());
    let platform = FakePlatform::default();
    let bench = Bench::on_store(settings, platform.clone(), &store).await;
    (store, platform, bench)
}

/// A `CallDidStart` of `call` for `agent` in queue 7.
pub(super) fn started(agent: &str, call: u64) -> CallDidStart {
    started_in(agent, call, QueueId(7))
}

/// A `CallDidStart` of `call` for `agent` in `queue`.
pub(super) fn started_in(agent: &str, call: u64, queue: QueueId) -> CallDidStart {
    CallDidStart {
        callid: CallId(call),
        destination: AgentId::new(agent),
        origin: caller(call),
        queue,
        timestamp: Timestamp(1_468_418_331.721),
    }
}

/// An active call of queue 7 answered by `agent`, as `GET /queues/:id/calls` lists it.
pub(super) fn active(agent: &str, call: u64) -> QueueCall {
    QueueCall {
        call: CallId(call),
        callee: Some(AgentId::new(agent)),
        caller: caller(call),
        queue: QueueId(7),
        timestamps: CallTimestamps {
            answer: Some(Timestamp(1_468_418_331.721)),
            hangup: None,
            join: Timestamp(1_468_418_300.0),
            miss: None,
        },
    }
}

/// The caller of test call `call`: each call has its own.
pub(super) fn caller(call: u64) -> String {
    format!("0192121{call:04}")
}

/// `USER_CONNECT` as parsed.
pub(super) fn connect(username: &str, max_calls: u32) -> ClientEvent {
    ClientEvent::UserConnect(Login {
        username: username.into(),
        max_calls,
    })
}

/// One agent UI's socket.
pub(super) struct Ui {
    pub(super) id: SocketId,
    /// The private session id the bridge gave the socket.
    pub(super) pid: String,
    /// The offset the socket handed back when it connected.
    offset: Option<String>,
    core: Arc<Agents<FakePlatform, Recorder>>,
    sink: Recorder,
    seen: usize,
}

impl Ui {
    /// Sends `event` with an acknowledgement and waits for it: once it returns, the event is
    /// fully handled, so it doubles as a barrier.
    pub(super) async fn send(&self, event: ClientEvent) -> Value {
        let answer = self.send_later(event).await;
        tokio::time::timeout(Duration::from_secs(60), answer)
            .await
            .expect("the event is answered")
            .expect("the acknowledgement is sent")
    }

    /// Sends `event` without an acknowledgement; returns at once.
    pub(super) async fn send_only(&self, event: ClientEvent) {
        self.submit(FromSocket::Event(event, None));
    }

    fn submit(&self, item: FromSocket<TestAck>) {
        self.core.submit(self.id, item);
    }

    /// Sends `event` with an acknowledgement to be awaited later.
    pub(super) async fn send_later(&self, event: ClientEvent) -> oneshot::Receiver<Value> {
        let (tx, answer) = oneshot::channel();
        let ack = TestAck {
            socket: self.id,
            answer: tx,
        };
        self.submit(FromSocket::Event(event, Some(ack)));
        answer
    }

    /// The socket closes.
    pub(super) async fn close(&self) {
        self.submit(FromSocket::Closed);
    }

    /// Plays a socket whose buffer is full (or not).
    pub(super) fn set_full(&self, full: bool) {
        let mut set = self.sink.full.lock().unwrap();
        if full {
            set.insert(self.id);
        } else {
            set.remove(&self.id);
        }
    }

    /// Whether the core gave up on this socket.
    pub(super) fn dropped(&self) -> bool {
        self.sink.disconnected.lock().unwrap().contains(&self.id)
    }

    /// Whether the socket's close got through (not while its buffer is full).
    pub(super) fn closed(&self) -> bool {
        self.sink.closed.lock().unwrap().contains(&self.id)
    }

    /// How many events this socket has received so far.
    pub(super) fn log_len(&self) -> usize {
        self.log_since(0).len()
    }

    /// Every event this socket received from position `mark` on.
    pub(super) fn log_since(&self, mark: usize) -> Vec<(&'static str, Value)> {
        let emitted = self.sink.emitted.lock().unwrap();
        emitted
            .iter()
            .filter(|(s, _, _)| *s == self.id)
            .skip(mark)
            .map(|(_, name, payload)| (*name, payload.clone()))
            .collect()
    }

    /// Events received since the last call.
    pub(super) fn take(&mut self) -> Vec<(&'static str, Value)> {
        let emitted = self.sink.emitted.lock().unwrap();
        let mine: Vec<_> = emitted
            .iter()
            .filter(|(s, _, _)| *s == self.id)
            .map(|(_, name, payload)| (*name, payload.clone()))
            .collect();
        let new = mine[self.seen..].to_vec();
        self.seen = mine.len();
        new
    }

    /// The call ids of the NEW_CALLs received since the last call (other events dropped).
    pub(super) fn new_calls(&mut self) -> Vec<String> {
        self.take()
            .into_iter()
            .filter(|(name, _)| *name == "NEW_CALL")
            .map(|(_, p)| p["callId"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Lets every task run until all wait on the clock or on each other, then advances the
/// paused clock by `by`.
pub(super) async fn after(by: Duration) {
    tokio::time::sleep(by).await;
}

/// A CALL_ENDED payload.
pub(super) fn ended(call: u64) -> (&'static str, Value) {
    ("CALL_ENDED", json!({"callId": call.to_string()}))
}

/// Past any first-call delay.
pub(super) const SETTLE: Duration = Duration::from_millis(600);
