//! How the bridge writes each event and acknowledgement for a UI: the JSON payloads of the
//! contract, field by field, in the order UIs in the wild were written against.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::agents::event::{AckReply, NewCall, Scalar, ServerEvent};
use crate::converja::CallId;

/// A scalar echoed back as the UI sent it.
struct Echoed<'a>(&'a Scalar);

impl Serialize for Echoed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Scalar::Text(text) => s.serialize_str(text),
            Scalar::Whole(n) => s.serialize_u64(*n),
            Scalar::Negative(n) => s.serialize_i64(*n),
            Scalar::Fraction(n) => s.serialize_f64(*n),
            Scalar::Flag(b) => s.serialize_bool(*b),
        }
    }
}

/// `{callId}`, the call id as a string.
fn call_only<S: Serializer>(call: CallId, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(1))?;
    m.serialize_entry("callId", &call.to_string())?;
    m.end()
}

/// `NEW_CALL {callId, media, startDate, service, caller}`, the call id as a string.
fn new_call<S: Serializer>(call: &NewCall, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(5))?;
    m.serialize_entry("callId", &call.call.to_string())?;
    m.serialize_entry("media", &call.media)?;
    m.serialize_entry("startDate", &call.start_date)?;
    m.serialize_entry("service", &call.service)?;
    m.serialize_entry("caller", &call.caller)?;
    m.end()
}

/// The payload, as the contract writes it.
impl Serialize for ServerEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::NewCall(call) => new_call(call, s),
            Self::UserConnected(login) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("username", &login.username)?;
                m.serialize_entry("maxCalls", &login.max_calls)?;
                m.end()
            }
            Self::UserConnectionError { echo, error } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("username", &echo.username.as_ref().map(Echoed))?;
                m.serialize_entry("maxCalls", &echo.max_calls.as_ref().map(Echoed))?;
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
            Self::CallEnded(call) => call_only(*call, s),
            Self::EndCallError { call, error } | Self::TransferCallError { call, error } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("callId", &call.as_ref().map(Echoed))?;
                m.serialize_entry("error", &error.to_string())?;
                m.end()
            }
            Self::UserPaused { username, reason } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("username", username)?;
                // A string, as the platform's events carry pause reasons.
                m.serialize_entry("reason", &reason.to_string())?;
                m.end()
            }
            Self::UserResumed { username } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("username", username)?;
                m.end()
            }
            Self::PauseError(error) | Self::ResumeError(error) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("error", &error.to_string())?;
                m.end()
            }
        }
    }
}

/// An acknowledgement's answer: a reply event's payload, `{callId}` or `{error}`.
impl Serialize for AckReply {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Event(event) => event.serialize(s),
            Self::Accepted(call) => call_only(*call, s),
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
    use crate::agents::event::{Echo, Login};
    use crate::agents::refusal::{Refusal, Subject};
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
            echo: Echo {
                username: Some(Scalar::Whole(5)),
                max_calls: Some(Scalar::Text("x".into())),
                call_id: None,
            },
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
                call: Some(Scalar::Whole(12)),
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
}
