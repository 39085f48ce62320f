//! The socket.io contract as types, named by direction: what an agent UI sends
//! ([`ClientEvent`]) and what the bridge sends back ([`ServerEvent`]). The gateway parses into
//! the first and serialises the second; nothing in between sees JSON, except what is echoed.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::refusal::{PayloadError, Refusal};
use crate::converja::CallId;

/// Identifies one socket.io socket for the lifetime of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

/// Event names of the contract.
pub(crate) mod name {
    /// UI: log in.
    pub(crate) const USER_CONNECT: &str = "USER_CONNECT";
    /// Bridge: logged in.
    pub(crate) const USER_CONNECTED: &str = "USER_CONNECTED";
    /// Bridge: login failed.
    pub(crate) const USER_CONNECTION_ERROR: &str = "USER_CONNECTION_ERROR";
    /// UI: log out.
    pub(crate) const USER_DISCONNECT: &str = "USER_DISCONNECT";
    /// Bridge: logged out.
    pub(crate) const USER_DISCONNECTED: &str = "USER_DISCONNECTED";
    /// Bridge: logout failed.
    pub(crate) const USER_DISCONNECTION_ERROR: &str = "USER_DISCONNECTION_ERROR";
    /// Bridge: a call for the agent.
    pub(crate) const NEW_CALL: &str = "NEW_CALL";
    /// UI: the call was shown.
    pub(crate) const NEW_CALL_ANSWERED: &str = "NEW_CALL_ANSWERED";
    /// UI: the call could not be taken.
    pub(crate) const NEW_CALL_ERROR: &str = "NEW_CALL_ERROR";
    /// UI: hang up.
    pub(crate) const END_CALL: &str = "END_CALL";
    /// Bridge: the call is over.
    pub(crate) const CALL_ENDED: &str = "CALL_ENDED";
    /// Bridge: hanging up failed.
    pub(crate) const END_CALL_ERROR: &str = "END_CALL_ERROR";
}

/// What the UI sent, kept only to be echoed back in an error reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Echo(pub serde_json::Value);

impl Echo {
    fn field(&self, key: &str) -> &serde_json::Value {
        self.0.get(key).unwrap_or(&serde_json::Value::Null)
    }
}

/// A USER_CONNECT that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The username.
    pub username: String,
    /// Calls the UI can hold at once.
    pub max_calls: u32,
}

/// The events of the contract an agent UI may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEventKind {
    /// `USER_CONNECT`.
    UserConnect,
    /// `USER_DISCONNECT`.
    UserDisconnect,
    /// `END_CALL`.
    EndCall,
    /// `NEW_CALL_ANSWERED`.
    NewCallAnswered,
    /// `NEW_CALL_ERROR`.
    NewCallError,
}

impl ClientEventKind {
    /// The kind named `event`, if the contract defines it.
    pub fn from_name(event: &str) -> Option<Self> {
        Some(match event {
            name::USER_CONNECT => Self::UserConnect,
            name::USER_DISCONNECT => Self::UserDisconnect,
            name::END_CALL => Self::EndCall,
            name::NEW_CALL_ANSWERED => Self::NewCallAnswered,
            name::NEW_CALL_ERROR => Self::NewCallError,
            _ => return None,
        })
    }

    /// The event's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::UserConnect => name::USER_CONNECT,
            Self::UserDisconnect => name::USER_DISCONNECT,
            Self::EndCall => name::END_CALL,
            Self::NewCallAnswered => name::NEW_CALL_ANSWERED,
            Self::NewCallError => name::NEW_CALL_ERROR,
        }
    }
}

/// One event from an agent UI, parsed once at the socket edge.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `USER_CONNECT {username, maxCalls}`.
    UserConnect(Login),
    /// `USER_DISCONNECT {username?}`: the name it gave, if any.
    UserDisconnect(Option<String>),
    /// `END_CALL {callId}`.
    EndCall(CallId),
    /// `NEW_CALL_ANSWERED {callId}`.
    NewCallAnswered(CallId),
    /// `NEW_CALL_ERROR {callId, error}`.
    NewCallError {
        /// The rejected call.
        call: CallId,
        /// What the UI said about it.
        reason: String,
    },
    /// A contract event whose payload does not parse.
    Invalid {
        /// Which event.
        kind: ClientEventKind,
        /// What was wrong.
        error: PayloadError,
        /// The payload, echoed in the error reply.
        echo: Echo,
    },
    /// An event outside the contract.
    Unknown(String),
}

impl ClientEvent {
    /// The label this event is counted under.
    pub fn label(&self) -> &'static str {
        match self {
            Self::UserConnect(_) => name::USER_CONNECT,
            Self::UserDisconnect(_) => name::USER_DISCONNECT,
            Self::EndCall(_) => name::END_CALL,
            Self::NewCallAnswered(_) => name::NEW_CALL_ANSWERED,
            Self::NewCallError { .. } => name::NEW_CALL_ERROR,
            Self::Invalid { kind, .. } => kind.name(),
            Self::Unknown(_) => "unknown",
        }
    }
}

/// The NEW_CALL payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewCall {
    /// The platform's call id, sent as a string.
    #[serde(rename = "callId", serialize_with = "as_string")]
    pub call: CallId,
    /// From `agents.media`.
    pub media: String,
    /// ISO 8601 UTC with milliseconds.
    pub start_date: String,
    /// The queue's name.
    pub service: String,
    /// The caller's number.
    pub caller: String,
}

fn as_string<S: Serializer>(call: &CallId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(call)
}

/// Every event the bridge emits to an agent UI.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `USER_CONNECTED {username, maxCalls}`, with the capacity the bridge applies.
    UserConnected(Login),
    /// `USER_CONNECTION_ERROR {username, maxCalls, error}`, echoing what was sent.
    UserConnectionError {
        /// The USER_CONNECT payload.
        echo: Echo,
        /// Why.
        error: Refusal,
    },
    /// `USER_DISCONNECTED {username}`.
    UserDisconnected {
        /// The session's username.
        username: String,
    },
    /// `USER_DISCONNECTION_ERROR {username, error}`.
    UserDisconnectionError {
        /// The username named or held.
        username: String,
        /// Why.
        error: Refusal,
    },
    /// `NEW_CALL {callId, media, startDate, service, caller}`.
    NewCall(NewCall),
    /// `CALL_ENDED {callId}`.
    CallEnded(CallId),
    /// `END_CALL_ERROR {callId, error}`, echoing the call id as sent.
    EndCallError {
        /// The `callId` the UI sent.
        call: Echo,
        /// Why.
        error: Refusal,
    },
}

impl ServerEvent {
    /// The event's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::UserConnected(_) => name::USER_CONNECTED,
            Self::UserConnectionError { .. } => name::USER_CONNECTION_ERROR,
            Self::UserDisconnected { .. } => name::USER_DISCONNECTED,
            Self::UserDisconnectionError { .. } => name::USER_DISCONNECTION_ERROR,
            Self::NewCall(_) => name::NEW_CALL,
            Self::CallEnded(_) => name::CALL_ENDED,
            Self::EndCallError { .. } => name::END_CALL_ERROR,
        }
    }

    /// The refusal an error event carries.
    pub fn error(&self) -> Option<&Refusal> {
        match self {
            Self::UserConnectionError { error, .. }
            | Self::UserDisconnectionError { error, .. }
            | Self::EndCallError { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The payload, as the contract writes it.
impl Serialize for ServerEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::NewCall(call) => call.serialize(s),
            Self::UserConnected(login) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("username", &login.username)?;
                m.serialize_entry("maxCalls", &login.max_calls)?;
                m.end()
            }
            Self::UserConnectionError { echo, error } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("username", echo.field("username"))?;
                m.serialize_entry("maxCalls", echo.field("maxCalls"))?;
                m.serialize_entry("error", &error.to_string())?;
                m.end()
            }
            Self::UserDisconnected { username } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("username", username)?;
                m.end()
            }
            Self::UserDisconnectionError { username, error } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("username", username)?;
                m.serialize_entry("error", &error.to_string())?;
                m.end()
            }
            Self::CallEnded(call) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("callId", &call.to_string())?;
                m.end()
            }
            Self::EndCallError { call, error } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("callId", &call.0)?;
                m.serialize_entry("error", &error.to_string())?;
                m.end()
            }
        }
    }
}

/// What an acknowledgement callback receives for an event that has no reply event of its own
/// (or, for those that do, the same payload as the reply).
#[derive(Debug, Clone, PartialEq)]
pub enum AckReply {
    /// The reply event's payload.
    Event(ServerEvent),
    /// `{callId}`: the call was taken into account.
    Accepted(CallId),
    /// `{error}`.
    Refused(Refusal),
}

impl Serialize for AckReply {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Event(event) => event.serialize(s),
            Self::Accepted(call) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("callId", &call.to_string())?;
                m.end()
            }
            Self::Refused(error) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("error", &error.to_string())?;
                m.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::agents::refusal::Subject;
    use crate::converja::AgentId;

    fn payload<T: Serialize>(value: &T) -> serde_json::Value {
        serde_json::to_value(value).expect("payloads serialise")
    }

    #[test]
    fn replies_are_written_as_the_contract_says() {
        let login = Login {
            username: "22010".into(),
            max_calls: 3,
        };
        assert_eq!(
            payload(&ServerEvent::UserConnected(login)),
            json!({"username": "22010", "maxCalls": 3})
        );
        assert_eq!(
            payload(&ServerEvent::CallEnded(CallId(7))),
            json!({"callId": "7"})
        );
        let refused = ServerEvent::UserConnectionError {
            echo: Echo(json!({"username": 5, "maxCalls": "x", "extra": true})),
            error: Refusal::Platform {
                subject: Subject::Agent(AgentId::new("5")),
                error: crate::converja::PlatformError::Status {
                    status: 404,
                    params: json!({}),
                },
            },
        };
        assert_eq!(
            payload(&refused),
            json!({"username": 5, "maxCalls": "x",
                   "error": "agent 5 is not known to the platform (404)"})
        );
        assert_eq!(
            payload(&ServerEvent::EndCallError {
                call: Echo(json!(12)),
                error: Refusal::NotYourCall(CallId(12)),
            }),
            json!({"callId": 12, "error": "call 12 is not one of your calls"})
        );
        let call = NewCall {
            call: CallId(9),
            media: "CHAT".into(),
            start_date: "2016-07-13T14:12:11.721Z".into(),
            service: "Financeiro".into(),
            caller: "0800".into(),
        };
        assert_eq!(
            payload(&ServerEvent::NewCall(call)),
            json!({"callId": "9", "media": "CHAT", "startDate": "2016-07-13T14:12:11.721Z",
                   "service": "Financeiro", "caller": "0800"})
        );
        assert_eq!(
            payload(&AckReply::Refused(Refusal::NotConnected)),
            json!({"error": "not connected: send USER_CONNECT first"})
        );
        assert_eq!(
            payload(&AckReply::Accepted(CallId(4))),
            json!({"callId": "4"})
        );
    }

    #[test]
    fn every_contract_event_name_round_trips() {
        for kind in [
            ClientEventKind::UserConnect,
            ClientEventKind::UserDisconnect,
            ClientEventKind::EndCall,
            ClientEventKind::NewCallAnswered,
            ClientEventKind::NewCallError,
        ] {
            assert_eq!(ClientEventKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(ClientEventKind::from_name("NEW_CALL"), None);
    }
}
