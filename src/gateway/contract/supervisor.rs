//! The supervisors' contract on the wire, for socket.io's `/supervisor` namespace and the
//! REST API alike: what each request reads, and the JSON of every answer, refusal and pushed
//! change. Field names are camelCase, times are the platform's epoch seconds.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::agents::board::{
    AgentCard, CallChange, CallFate, Minute, Presence, QueueSnapshot, QueueStats, WaitingCall,
    WindowStats,
};
use crate::agents::supervision::{Answer, Ask, Denied, Update};
use crate::converja::{AgentId, AgentStatus, CallId, PauseReason, QueueCall, QueueId};

/// Request names, as sent on `/supervisor`.
pub mod name {
    /// The queues this supervisor may see.
    pub const QUEUES: &str = "QUEUES";
    /// A queue's agents.
    pub const QUEUE_AGENTS: &str = "QUEUE_AGENTS";
    /// A queue's supervisors.
    pub const QUEUE_SUPERVISORS: &str = "QUEUE_SUPERVISORS";
    /// A queue's calls.
    pub const QUEUE_CALLS: &str = "QUEUE_CALLS";
    /// An agent's status.
    pub const AGENT_STATUS: &str = "AGENT_STATUS";
    /// Pause an agent.
    pub const PAUSE_AGENT: &str = "PAUSE_AGENT";
    /// Resume an agent.
    pub const RESUME_AGENT: &str = "RESUME_AGENT";
    /// Transfer an agent's call.
    pub const TRANSFER_CALL: &str = "TRANSFER_CALL";
    /// Log an agent out.
    pub const LOGOUT_AGENT: &str = "LOGOUT_AGENT";
    /// The agent terminal's clock.
    pub const TERMINAL_TIME: &str = "TERMINAL_TIME";
    /// Follow a queue: its snapshot, then its changes.
    pub const SUBSCRIBE: &str = "SUBSCRIBE";
    /// Stop following a queue.
    pub const UNSUBSCRIBE: &str = "UNSUBSCRIBE";
    /// Pushed: a queue's figures.
    pub const QUEUE_STATS: &str = "QUEUE_STATS";
    /// Pushed: a call of a followed queue.
    pub const QUEUE_CALL: &str = "QUEUE_CALL";
    /// Pushed: an agent of a followed queue.
    pub const AGENT_STATE: &str = "AGENT_STATE";
    /// Every request name.
    pub const REQUESTS: [&str; 12] = [
        QUEUES,
        QUEUE_AGENTS,
        QUEUE_SUPERVISORS,
        QUEUE_CALLS,
        AGENT_STATUS,
        PAUSE_AGENT,
        RESUME_AGENT,
        TRANSFER_CALL,
        LOGOUT_AGENT,
        TERMINAL_TIME,
        SUBSCRIBE,
        UNSUBSCRIBE,
    ];
}

/// A supervisor's event, read.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A request the core carries out.
    Ask(Ask),
    /// Follow a queue.
    Subscribe(QueueId),
    /// Stop following a queue.
    Unsubscribe(QueueId),
}

/// A request that could not be read; its text is for a person.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unreadable {
    /// No such request.
    #[error("unknown request {0}")]
    Unknown(String),
    /// A field is missing or of the wrong type.
    #[error("{request} needs {field}")]
    Field {
        /// The request.
        request: &'static str,
        /// What it needs, e.g. "queue (a number)".
        field: &'static str,
    },
}

impl Unreadable {
    /// A short code for programs.
    pub fn code(&self) -> &'static str {
        match self {
            Unreadable::Unknown(_) => "unknown_request",
            Unreadable::Field { .. } => "bad_request",
        }
    }
}

/// Reads the request `name` with payload `data`.
pub fn read(name: &str, data: Option<&Value>) -> Result<Request, Unreadable> {
    let request = name::REQUESTS
        .iter()
        .find(|n| **n == name)
        .copied()
        .ok_or_else(|| Unreadable::Unknown(name.chars().take(64).collect()))?;
    let field = |key: &str| data.and_then(|d| d.get(key));
    let queue = || {
        field("queue")
            .and_then(number)
            .map(QueueId)
            .ok_or(Unreadable::Field {
                request,
                field: "queue (a number)",
            })
    };
    let agent = || {
        field("agent")
            .and_then(text_or_number)
            .filter(|a| crate::config::valid_nickname(a))
            .map(AgentId::new)
            .ok_or(Unreadable::Field {
                request,
                field: "agent (an agent id)",
            })
    };
    Ok(match request {
        name::QUEUES => Request::Ask(Ask::Queues),
        name::QUEUE_AGENTS => Request::Ask(Ask::QueueAgents(queue()?)),
        name::QUEUE_SUPERVISORS => Request::Ask(Ask::QueueSupervisors(queue()?)),
        name::QUEUE_CALLS => Request::Ask(Ask::QueueCalls(queue()?)),
        name::AGENT_STATUS => Request::Ask(Ask::AgentStatus(agent()?)),
        name::PAUSE_AGENT => {
            let reason = field("reason")
                .and_then(number)
                .and_then(|r| u32::try_from(r).ok())
                .filter(|r| *r > 0)
                .ok_or(Unreadable::Field {
                    request,
                    field: "reason (a pause reason id above 0)",
                })?;
            Request::Ask(Ask::Pause(agent()?, PauseReason(reason)))
        }
        name::RESUME_AGENT => Request::Ask(Ask::Resume(agent()?)),
        name::TRANSFER_CALL => {
            let call = field("callId")
                .and_then(number)
                .map(CallId)
                .ok_or(Unreadable::Field {
                    request,
                    field: "callId (the call to transfer)",
                })?;
            let destination = field("destination")
                .and_then(text_or_number)
                .filter(|d| {
                    !d.is_empty()
                        && d.len() <= 64
                        && d.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+*#".contains(c))
                })
                .ok_or(Unreadable::Field {
                    request,
                    field: "destination (a number to transfer to)",
                })?;
            Request::Ask(Ask::Transfer {
                agent: agent()?,
                call,
                destination,
            })
        }
        name::LOGOUT_AGENT => Request::Ask(Ask::Logout(agent()?)),
        name::TERMINAL_TIME => Request::Ask(Ask::TerminalTime(agent()?)),
        name::SUBSCRIBE => Request::Subscribe(queue()?),
        _ => Request::Unsubscribe(queue()?),
    })
}

/// A whole number sent as a number or a string of digits.
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn text_or_number(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// A queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueJson {
    /// Queue id.
    pub id: u64,
    /// Display name.
    pub name: String,
}

/// A queue's member or supervisor.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonJson {
    /// Agent or supervisor id.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A call as the platform lists it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListedCallJson {
    /// Call id.
    pub call: u64,
    /// The caller's number.
    pub caller: String,
    /// The agent on it, once answered.
    pub callee: Option<String>,
    /// When it joined the queue.
    pub join: f64,
    /// When it was answered.
    pub answer: Option<f64>,
    /// When it hung up.
    pub hangup: Option<f64>,
    /// When it left unanswered.
    pub miss: Option<f64>,
}

/// An agent on a supervisor's screen.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentJson {
    /// Agent id.
    pub agent: String,
    /// Display name, once known.
    pub name: Option<String>,
    /// `idle`, `busy`, `paused`, `loggedOut` or `unknown`.
    pub state: &'static str,
    /// The caller's number, when busy.
    pub caller: Option<String>,
    /// The pause reason, when paused.
    pub reason: Option<String>,
    /// Since when, when known.
    pub since: Option<f64>,
}

/// The figures of one sliding window.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowJson {
    /// Length in minutes.
    pub minutes: u64,
    /// Calls answered.
    pub answered: u64,
    /// Of those, within the threshold.
    pub answered_in_threshold: u64,
    /// Calls that left unanswered.
    pub missed: u64,
    /// Of those, past the short-abandon time.
    pub abandoned: u64,
    /// answeredInThreshold / (answered + abandoned); null with nothing to measure.
    pub service_level: Option<f64>,
    /// Mean wait of the answered calls, seconds.
    pub avg_wait: Option<f64>,
    /// Mean talk time of the calls that ended, seconds.
    pub avg_handle: Option<f64>,
}

/// One minute of the last hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct MinuteJson {
    /// Start of the minute.
    pub at: f64,
    /// Calls that joined.
    pub offered: u64,
    /// Calls answered.
    pub answered: u64,
    /// Calls that left unanswered.
    pub missed: u64,
}

/// A queue's figures.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsJson {
    /// Queue id.
    pub queue: u64,
    /// When they were taken.
    pub at: f64,
    /// Calls waiting.
    pub waiting: usize,
    /// When the call waiting longest joined.
    pub longest_wait_since: Option<f64>,
    /// The service-level threshold, seconds.
    pub threshold_seconds: f64,
    /// One per configured window, shortest first.
    pub windows: Vec<WindowJson>,
    /// The last hour, minute by minute, oldest first.
    pub history: Vec<MinuteJson>,
}

/// A call waiting.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingJson {
    /// Call id.
    pub call: u64,
    /// The caller's number.
    pub caller: String,
    /// When it joined the queue.
    pub since: f64,
}

/// A queue's board: what a screen starts from.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotJson {
    /// Queue id.
    pub queue: u64,
    /// Display name, once known.
    pub name: Option<String>,
    /// When it was taken.
    pub at: f64,
    /// Its figures.
    pub stats: StatsJson,
    /// Calls waiting, longest first.
    pub calls: Vec<WaitingJson>,
    /// Its agents.
    pub agents: Vec<AgentJson>,
}

/// A call's change (`QUEUE_CALL`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CallJson {
    /// Queue id.
    pub queue: u64,
    /// Call id.
    pub call: u64,
    /// The caller's number.
    pub caller: String,
    /// `waiting`, `answered`, `missed` or `gone` (no longer listed, outcome unknown).
    pub state: &'static str,
    /// When that happened (waiting: when it joined).
    pub since: f64,
    /// Who answered.
    pub agent: Option<String>,
}

/// An agent's status as the platform reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusJson {
    /// Agent id.
    pub agent: String,
    /// `idle`, `busy` or `paused` (the platform has no "logged out").
    pub state: &'static str,
    /// The caller's number (busy) or the pause reason (paused).
    pub show: Option<String>,
    /// Since when.
    pub since: f64,
}

/// A refusal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorJson {
    /// The request's name followed by `_ERROR`.
    pub event: String,
    /// A short code for programs: not_your_queue, not_your_agent, call_not_held,
    /// not_the_current_call, not_found, refused, timeout, unavailable, bad_request,
    /// unknown_request.
    pub code: &'static str,
    /// A sentence for a person.
    pub message: String,
}

fn stats(s: &QueueStats) -> StatsJson {
    StatsJson {
        queue: s.queue.0,
        at: s.at.0,
        waiting: s.waiting,
        longest_wait_since: s.longest_wait_since.map(|t| t.0),
        threshold_seconds: s.threshold.as_secs_f64(),
        windows: s.windows.iter().map(window).collect(),
        history: s.history.iter().map(minute).collect(),
    }
}

fn window(w: &WindowStats) -> WindowJson {
    WindowJson {
        minutes: w.length.as_secs() / 60,
        answered: w.answered,
        answered_in_threshold: w.answered_in_threshold,
        missed: w.missed,
        abandoned: w.abandoned,
        service_level: w.service_level,
        avg_wait: w.avg_wait,
        avg_handle: w.avg_handle,
    }
}

fn minute(m: &Minute) -> MinuteJson {
    MinuteJson {
        at: m.at.0,
        offered: m.offered,
        answered: m.answered,
        missed: m.missed,
    }
}

/// An agent's card as JSON.
pub fn agent(card: &AgentCard) -> AgentJson {
    let (state, caller, reason) = match &card.presence {
        Presence::Idle => ("idle", None, None),
        Presence::Busy { caller } => ("busy", caller.clone(), None),
        Presence::Paused { reason } => ("paused", None, Some(reason.to_string())),
        Presence::LoggedOut => ("loggedOut", None, None),
        Presence::Unknown => ("unknown", None, None),
    };
    AgentJson {
        agent: card.agent.to_string(),
        name: card.name.clone(),
        state,
        caller,
        reason,
        since: card.since.map(|t| t.0),
    }
}

fn waiting(w: &WaitingCall) -> WaitingJson {
    WaitingJson {
        call: w.call.0,
        caller: w.caller.clone(),
        since: w.since.0,
    }
}

/// A queue's board as JSON.
pub fn snapshot(s: &QueueSnapshot) -> SnapshotJson {
    SnapshotJson {
        queue: s.queue.0,
        name: s.name.clone(),
        at: s.stats.at.0,
        stats: stats(&s.stats),
        calls: s.calls.iter().map(waiting).collect(),
        agents: s.agents.iter().map(agent).collect(),
    }
}

fn call(c: &CallChange) -> CallJson {
    let (state, agent) = match &c.fate {
        CallFate::Waiting => ("waiting", None),
        CallFate::Answered { agent } => ("answered", agent.as_ref().map(ToString::to_string)),
        CallFate::Missed => ("missed", None),
        CallFate::Gone => ("gone", None),
    };
    CallJson {
        queue: c.queue.0,
        call: c.call.0,
        caller: c.caller.clone(),
        state,
        since: c.since.0,
        agent,
    }
}

fn listed(c: &QueueCall) -> ListedCallJson {
    let t = &c.timestamps;
    ListedCallJson {
        call: c.call.0,
        caller: c.caller.clone(),
        callee: c.callee.as_ref().map(ToString::to_string),
        join: t.join.0,
        answer: t.answer.map(|x| x.0),
        hangup: t.hangup.map(|x| x.0),
        miss: t.miss.map(|x| x.0),
    }
}

/// An agent's platform status as JSON.
pub fn status(s: &AgentStatus) -> StatusJson {
    StatusJson {
        agent: s.agent.to_string(),
        state: match s.name {
            crate::converja::AgentState::Idle => "idle",
            crate::converja::AgentState::Busy => "busy",
            crate::converja::AgentState::Paused => "paused",
        },
        show: s.show.clone(),
        since: s.timestamp.0,
    }
}

fn to_value<T: Serialize>(v: T) -> Value {
    // Plain structs of strings and numbers: serializing cannot fail.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `QUEUES`: the queues this supervisor may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuesJson {
    /// The queues.
    pub queues: Vec<QueueJson>,
}

/// `QUEUE_AGENTS`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembersJson {
    /// Queue id.
    pub queue: u64,
    /// Its agents.
    pub agents: Vec<PersonJson>,
}

/// `QUEUE_SUPERVISORS`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SupervisorsJson {
    /// Queue id.
    pub queue: u64,
    /// Its supervisors.
    pub supervisors: Vec<PersonJson>,
}

/// `QUEUE_CALLS`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallsJson {
    /// Queue id.
    pub queue: u64,
    /// Its calls not over yet.
    pub calls: Vec<ListedCallJson>,
}

/// Done to an agent: paused (with `reason`), resumed, logged out, or its call transferred
/// (with `callId` and `destination`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoneJson {
    /// Agent id.
    pub agent: String,
    /// The pause reason, when paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The call transferred.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<u64>,
    /// Where it was transferred.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// `TERMINAL_TIME`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TerminalTimeJson {
    /// Agent id.
    pub agent: String,
    /// The terminal's clock, milliseconds since the epoch.
    pub timestamp: f64,
}

/// `SUBSCRIBE`: the board to start from.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoardJson {
    /// The board.
    pub snapshot: SnapshotJson,
}

fn done(agent: &AgentId) -> DoneJson {
    DoneJson {
        agent: agent.to_string(),
        reason: None,
        call_id: None,
        destination: None,
    }
}

/// The fields of an answer, without the `event` field.
pub fn answer_fields(answer: &Answer) -> Value {
    let people = |list: Vec<(String, String)>| -> Vec<PersonJson> {
        list.into_iter()
            .map(|(id, name)| PersonJson { id, name })
            .collect()
    };
    match answer {
        Answer::Queues(qs) => to_value(QueuesJson {
            queues: qs
                .iter()
                .map(|q| QueueJson {
                    id: q.id.0,
                    name: q.name.clone(),
                })
                .collect(),
        }),
        Answer::QueueAgents(q, agents) => to_value(MembersJson {
            queue: q.0,
            agents: people(
                agents
                    .iter()
                    .map(|a| (a.agent.to_string(), a.name.clone()))
                    .collect(),
            ),
        }),
        Answer::QueueSupervisors(q, sups) => to_value(SupervisorsJson {
            queue: q.0,
            supervisors: people(
                sups.iter()
                    .map(|s| (s.supervisor.to_string(), s.name.clone()))
                    .collect(),
            ),
        }),
        Answer::QueueCalls(q, calls) => to_value(CallsJson {
            queue: q.0,
            calls: calls.iter().map(listed).collect(),
        }),
        Answer::AgentStatus(s) => to_value(status(s)),
        Answer::Paused(a, r) => to_value(DoneJson {
            reason: Some(r.to_string()),
            ..done(a)
        }),
        Answer::Resumed(a) | Answer::LoggedOut(a) => to_value(done(a)),
        Answer::Transferred(a, c, d) => to_value(DoneJson {
            call_id: Some(c.0),
            destination: Some(d.clone()),
            ..done(a)
        }),
        Answer::TerminalTime(a, ms) => to_value(TerminalTimeJson {
            agent: a.to_string(),
            timestamp: *ms,
        }),
        Answer::Board(s) => to_value(BoardJson {
            snapshot: snapshot(s),
        }),
    }
}

/// The acknowledgement of request `name`: `{"event": name, ...fields}`.
pub fn reply(name: &str, mut fields: Value) -> Value {
    if let Value::Object(map) = &mut fields {
        map.insert("event".into(), Value::String(name.to_owned()));
    }
    fields
}

/// The refusal of request `name`.
pub fn refusal(name: &str, code: &'static str, message: String) -> ErrorJson {
    ErrorJson {
        event: format!("{name}_ERROR"),
        code,
        message,
    }
}

/// A denied request's refusal.
pub fn denied(name: &str, d: &Denied) -> ErrorJson {
    refusal(name, d.code(), d.to_string())
}

/// A pushed change: its event name and payload.
pub fn update(u: &Update) -> (&'static str, Value) {
    match u {
        Update::Stats(s) => (name::QUEUE_STATS, to_value(stats(s))),
        Update::Call(c) => (name::QUEUE_CALL, to_value(call(c))),
        Update::Agent(q, card) => {
            let mut v = to_value(agent(card));
            if let Value::Object(map) = &mut v {
                map.insert("queue".into(), Value::from(q.0));
            }
            (name::AGENT_STATE, v)
        }
    }
}
