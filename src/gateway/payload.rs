//! The socket.io contract's payloads: liberal parsing of what agent UIs send, the replies the
//! bridge emits, and the one place where errors become sentences a person can act on.

use serde::Serialize;
use serde_json::Value;

use crate::config::valid_nickname;
use crate::converja::CallId;
use crate::platform::PlatformError;

/// Event names of the contract.
pub mod event {
    /// UI: log in.
    pub const USER_CONNECT: &str = "USER_CONNECT";
    /// Bridge: logged in.
    pub const USER_CONNECTED: &str = "USER_CONNECTED";
    /// Bridge: login failed.
    pub const USER_CONNECTION_ERROR: &str = "USER_CONNECTION_ERROR";
    /// UI: log out.
    pub const USER_DISCONNECT: &str = "USER_DISCONNECT";
    /// Bridge: logged out.
    pub const USER_DISCONNECTED: &str = "USER_DISCONNECTED";
    /// Bridge: logout failed.
    pub const USER_DISCONNECTION_ERROR: &str = "USER_DISCONNECTION_ERROR";
    /// Bridge: a call for the agent.
    pub const NEW_CALL: &str = "NEW_CALL";
    /// UI: the call was shown.
    pub const NEW_CALL_ANSWERED: &str = "NEW_CALL_ANSWERED";
    /// UI: the call could not be taken.
    pub const NEW_CALL_ERROR: &str = "NEW_CALL_ERROR";
    /// UI: hang up.
    pub const END_CALL: &str = "END_CALL";
    /// Bridge: the call is over.
    pub const CALL_ENDED: &str = "CALL_ENDED";
    /// Bridge: hanging up failed.
    pub const END_CALL_ERROR: &str = "END_CALL_ERROR";
}

/// A USER_CONNECT that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The username.
    pub username: String,
    /// Calls the UI can hold at once.
    pub max_calls: u32,
}

/// USER_CONNECTED / USER_CONNECTION_ERROR payloads echo what the UI sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectReply {
    /// As sent.
    pub username: Value,
    /// As sent.
    pub max_calls: Value,
    /// Why it failed, on error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// USER_DISCONNECTED / USER_DISCONNECTION_ERROR.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisconnectReply {
    /// The session's username.
    pub username: String,
    /// Why it failed, on error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// CALL_ENDED / END_CALL_ERROR (and NEW_CALL_ERROR's parse errors).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallReply {
    /// The call, as a string.
    pub call_id: Value,
    /// Why it failed, on error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn field<'a>(data: &'a Value, name: &str) -> &'a Value {
    data.get(name).unwrap_or(&Value::Null)
}

/// Validates USER_CONNECT's `{username, maxCalls}`.
pub fn parse_login(data: &Value, max_calls_limit: u32) -> Result<Login, String> {
    if !data.is_object() {
        return Err("USER_CONNECT needs an object {username, maxCalls}".into());
    }
    let username = match field(data, "username") {
        Value::String(s) if valid_nickname(s) => s.clone(),
        Value::String(_) => {
            return Err("username must be 1-64 characters of A-Z a-z 0-9 . _ -".into());
        }
        Value::Null => return Err("username is missing".into()),
        _ => return Err("username must be a string".into()),
    };
    let max_calls = match field(data, "maxCalls") {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let Some(max_calls) = max_calls.filter(|n| (1..=u64::from(max_calls_limit)).contains(n)) else {
        return Err(format!(
            "maxCalls must be a whole number from 1 to {max_calls_limit}"
        ));
    };
    Ok(Login {
        username,
        max_calls: max_calls as u32,
    })
}

/// USER_DISCONNECT's username, from `username` or `userName`; `None` when absent.
pub fn parse_logout(data: Option<&Value>) -> Option<String> {
    let data = data?;
    ["username", "userName"]
        .iter()
        .find_map(|k| data.get(*k).and_then(Value::as_str).map(str::to_owned))
}

/// The `callId` of END_CALL, NEW_CALL_ANSWERED and NEW_CALL_ERROR: a string or a number.
pub fn parse_call_id(data: &Value) -> Result<CallId, String> {
    match field(data, "callId") {
        Value::Number(n) => n
            .as_u64()
            .map(CallId)
            .ok_or_else(|| format!("callId {n} is not a call id")),
        Value::String(s) => s
            .trim()
            .parse()
            .map(CallId)
            .map_err(|_| format!("callId `{s}` is not a call id")),
        Value::Null => Err("callId is missing".into()),
        _ => Err("callId must be a string or a number".into()),
    }
}

/// The text an agent UI shows for a platform failure.
pub fn describe(error: &PlatformError, what: &str) -> String {
    match error {
        PlatformError::Status { status: 404, .. } => {
            format!("{what} is not known to the platform (404)")
        }
        PlatformError::Bounced { .. } => {
            format!("{what} is not reachable on the platform right now")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn logins_accept_numeric_strings_and_refuse_the_rest() {
        assert_eq!(
            parse_login(&json!({"username": "22010", "maxCalls": 8}), 32),
            Ok(Login {
                username: "22010".into(),
                max_calls: 8
            })
        );
        assert_eq!(
            parse_login(&json!({"username": "maria.s", "maxCalls": "3"}), 32)
                .unwrap()
                .max_calls,
            3
        );
        for bad in [
            json!({"username": "22010", "maxCalls": 0}),
            json!({"username": "22010", "maxCalls": null}),
            json!({"username": "22010"}),
            json!({"username": "22010", "maxCalls": 33}),
            json!({"username": "22010", "maxCalls": 2.5}),
            json!({"username": "22010", "maxCalls": "many"}),
        ] {
            assert!(
                parse_login(&bad, 32).unwrap_err().contains("maxCalls"),
                "{bad}"
            );
        }
        for bad in [
            json!({"username": "a@b", "maxCalls": 1}),
            json!({"username": "", "maxCalls": 1}),
            json!({"username": "x/y", "maxCalls": 1}),
            json!({"username": "a".repeat(65), "maxCalls": 1}),
        ] {
            assert!(
                parse_login(&bad, 32).unwrap_err().contains("username"),
                "{bad}"
            );
        }
        assert!(parse_login(&json!("22010"), 32).is_err());
    }

    #[test]
    fn logouts_take_either_spelling_or_nothing() {
        assert_eq!(
            parse_logout(Some(&json!({"username": "a"}))),
            Some("a".into())
        );
        assert_eq!(
            parse_logout(Some(&json!({"userName": "b"}))),
            Some("b".into())
        );
        assert_eq!(parse_logout(Some(&json!({}))), None);
        assert_eq!(parse_logout(None), None);
    }

    #[test]
    fn call_ids_are_strings_or_numbers() {
        assert_eq!(parse_call_id(&json!({"callId": "123"})), Ok(CallId(123)));
        assert_eq!(parse_call_id(&json!({"callId": 123})), Ok(CallId(123)));
        assert!(parse_call_id(&json!({"callId": "abc"})).is_err());
        assert!(parse_call_id(&json!({})).unwrap_err().contains("missing"));
    }

    #[test]
    fn platform_failures_read_as_sentences() {
        let e = PlatformError::Status {
            status: 404,
            params: json!({}),
        };
        assert_eq!(
            describe(&e, "agent 22010"),
            "agent 22010 is not known to the platform (404)"
        );
        let e = PlatformError::Timeout(std::time::Duration::from_secs(10));
        assert_eq!(
            describe(&e, "agent 22010"),
            "the platform did not answer within 10s"
        );
        let e = PlatformError::Status {
            status: 500,
            params: json!({"error": "db down"}),
        };
        assert_eq!(
            describe(&e, "agent 22010"),
            "the platform refused the request (500): db down"
        );
    }
}
