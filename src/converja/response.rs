//! The `params` of each successful response, by request kind.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{AgentId, CallId, PauseReason, ProtocolError, QueueId, Timestamp};

/// A response params type, decoded from the raw `params` of a response.
pub trait ResponseParams: DeserializeOwned {
    /// Decodes `params`, treating `null` as `{}` as some platform answers do.
    fn decode(kind: &str, params: Value) -> Result<Self, ProtocolError> {
        let params = if params.is_null() {
            Value::Object(Default::default())
        } else {
            params
        };
        serde_json::from_value(params).map_err(|e| ProtocolError::BadParams {
            what: kind.to_owned(),
            error: e.to_string(),
        })
    }
}

/// `{}`: the response of the agent actions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}
impl ResponseParams for Empty {}

/// A list wrapped in `data`, as the directory answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Data<T> {
    /// The list.
    #[serde(deserialize_with = "null_as_empty")]
    pub data: Vec<T>,
}
impl<T: DeserializeOwned> ResponseParams for Data<T> {}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// One queue of `GET /queues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueInfo {
    /// Queue id.
    pub id: QueueId,
    /// Display name, e.g. "Financeiro".
    pub name: String,
}

/// One agent of `GET /queues/:id/agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueAgent {
    /// Agent id.
    pub agent: AgentId,
    /// Display name.
    pub name: String,
}

/// One supervisor of `GET /queues/:id/supervisors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSupervisor {
    /// Supervisor id.
    pub supervisor: AgentId,
    /// Display name.
    pub name: String,
}

/// `GET /queues/:id/calls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueCalls {
    /// The calls the queue knows about.
    #[serde(deserialize_with = "null_as_empty")]
    pub calls: Vec<QueueCall>,
    /// The queue.
    pub queue: QueueId,
    /// When the list was taken.
    pub timestamp: Timestamp,
}
impl ResponseParams for QueueCalls {}

/// One call of a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueCall {
    /// Call id.
    pub call: CallId,
    /// The agent handling it, if any (a number in the published example).
    pub callee: Option<AgentId>,
    /// The caller's number.
    pub caller: String,
    /// The queue.
    pub queue: QueueId,
    /// Life-cycle timestamps.
    pub timestamps: CallTimestamps,
}

impl QueueCall {
    /// Whether an agent is on the call now: answered, not hung up.
    pub fn is_active(&self) -> bool {
        self.timestamps.answer.is_some()
            && self.timestamps.hangup.is_none()
            && self.timestamps.miss.is_none()
    }
}

/// When a call joined, was answered, hung up or missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallTimestamps {
    /// Answered by an agent.
    pub answer: Option<Timestamp>,
    /// Hung up.
    pub hangup: Option<Timestamp>,
    /// Joined the queue (always set).
    pub join: Timestamp,
    /// Abandoned before an answer.
    pub miss: Option<Timestamp>,
}

/// The agent states of `GET /agents/:id/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Logged in and free.
    Idle,
    /// On a call.
    Busy,
    /// Logged in but not taking calls.
    Paused,
}

/// `GET /agents/:id/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent.
    pub agent: AgentId,
    /// Its state.
    pub name: AgentState,
    /// The caller's number when busy, the pause reason when paused, else null.
    #[serde(default, deserialize_with = "loose_text")]
    pub show: Option<String>,
    /// When the state began.
    pub timestamp: Timestamp,
}
impl ResponseParams for AgentStatus {}

impl AgentStatus {
    /// The pause reason, when paused.
    pub fn pause_reason(&self) -> Option<PauseReason> {
        if self.name != AgentState::Paused {
            return None;
        }
        self.show
            .as_deref()
            .and_then(|s| s.parse().ok())
            .map(PauseReason)
    }
}

fn loose_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// `GET /timestamp`: the agent terminal's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminalTime {
    /// Milliseconds since the Unix epoch.
    pub timestamp: f64,
}
impl ResponseParams for TerminalTime {}
