//! The eight events the platform publishes in its rooms.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AgentId, CallId, PauseReason, ProtocolError, QueueId, Timestamp};

/// An event on the wire: `{id, type: "event", name, params}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    /// The event's id, unique within its room.
    pub id: u64,
    /// The event name, such as `CallDidStart`.
    pub name: String,
    /// The event's fields.
    #[serde(default)]
    pub params: Value,
}

impl EventMessage {
    /// The wire form of `event` with id `id`.
    pub fn new(id: u64, event: &Event) -> Self {
        let mut value =
            serde_json::to_value(event).expect("events hold only JSON-representable data");
        let params = value
            .get_mut("params")
            .map(Value::take)
            .unwrap_or(Value::Null);
        EventMessage {
            id,
            name: event.name().to_owned(),
            params,
        }
    }

    /// The typed event.
    pub fn event(&self) -> Result<Event, ProtocolError> {
        if !Event::NAMES.contains(&self.name.as_str()) {
            return Err(ProtocolError::UnknownEvent(self.name.clone()));
        }
        let tagged = serde_json::json!({ "name": self.name, "params": self.params });
        serde_json::from_value(tagged).map_err(|e| ProtocolError::BadParams {
            what: self.name.clone(),
            error: e.to_string(),
        })
    }
}

/// A platform event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", content = "params")]
pub enum Event {
    /// A call joined a queue (`queue.<id>`).
    CallRinging(CallRinging),
    /// An agent answered a call (`queue.<id>`).
    CallDidStart(CallDidStart),
    /// An answered call ended (`queue.<id>`).
    CallDidFinish(CallDidFinish),
    /// A caller gave up before an answer (`queue.<id>`).
    CallMissed(CallMissed),
    /// An agent logged in (`catraquis`).
    UserSessionDidStart(UserSession),
    /// An agent paused (`catraquis`).
    UserSessionDidPause(UserSessionDidPause),
    /// An agent resumed (`catraquis`).
    UserSessionDidResume(UserSession),
    /// An agent logged out (`catraquis`).
    UserSessionDidFinish(UserSession),
}

impl Event {
    /// Every event name the API defines.
    pub const NAMES: [&'static str; 8] = [
        "CallRinging",
        "CallDidStart",
        "CallDidFinish",
        "CallMissed",
        "UserSessionDidStart",
        "UserSessionDidPause",
        "UserSessionDidResume",
        "UserSessionDidFinish",
    ];

    /// The event's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Event::CallRinging(_) => "CallRinging",
            Event::CallDidStart(_) => "CallDidStart",
            Event::CallDidFinish(_) => "CallDidFinish",
            Event::CallMissed(_) => "CallMissed",
            Event::UserSessionDidStart(_) => "UserSessionDidStart",
            Event::UserSessionDidPause(_) => "UserSessionDidPause",
            Event::UserSessionDidResume(_) => "UserSessionDidResume",
            Event::UserSessionDidFinish(_) => "UserSessionDidFinish",
        }
    }
}

/// `CallRinging`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRinging {
    /// The call.
    pub callid: CallId,
    /// The caller's number.
    pub origin: String,
    /// The queue.
    pub queue: QueueId,
    /// When it joined the queue.
    pub timestamp: Timestamp,
}

/// `CallDidStart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallDidStart {
    /// The call.
    pub callid: CallId,
    /// The agent who answered.
    pub destination: AgentId,
    /// The caller's number.
    pub origin: String,
    /// The queue.
    pub queue: QueueId,
    /// When it was answered.
    pub timestamp: Timestamp,
}

/// `CallDidFinish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallDidFinish {
    /// The call.
    pub callid: CallId,
    /// The agent who had it.
    pub destination: AgentId,
    /// How long it lasted, in seconds.
    pub duration: f64,
    /// The caller's number.
    pub origin: String,
    /// The queue.
    pub queue: QueueId,
    /// When it ended.
    pub timestamp: Timestamp,
}

/// `CallMissed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallMissed {
    /// The call.
    pub callid: CallId,
    /// How long the caller waited, in seconds.
    pub duration: f64,
    /// The caller's number.
    pub origin: String,
    /// The queue.
    pub queue: QueueId,
    /// When the caller gave up.
    pub timestamp: Timestamp,
}

/// `UserSessionDidStart`, `UserSessionDidResume` and `UserSessionDidFinish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSession {
    /// The agent.
    pub agent: AgentId,
    /// The agent's queues.
    #[serde(default)]
    pub queues: Vec<QueueId>,
    /// When it happened.
    pub timestamp: Timestamp,
}

/// `UserSessionDidPause`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSessionDidPause {
    /// The agent.
    pub agent: AgentId,
    /// The agent's queues.
    #[serde(default)]
    pub queues: Vec<QueueId>,
    /// Why it paused.
    pub reason: PauseReason,
    /// When it happened.
    pub timestamp: Timestamp,
}
