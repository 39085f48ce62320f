//! Why the bridge refused or failed an agent UI's event, and the one place where each reason
//! becomes the sentence the UI shows: short, in English, something a person can act on.

use super::registry::AttachError;
use crate::converja::{AgentId, CallId, PlatformError};

/// What was wrong with an event's payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// USER_CONNECT without an object.
    #[error("USER_CONNECT needs an object {{username, maxCalls}}")]
    LoginNotAnObject,
    /// A call event with no payload at all.
    #[error("{0} needs {{callId}}")]
    CallMissing(&'static str),
    /// NEW_CALL_ERROR with no payload at all.
    #[error("NEW_CALL_ERROR needs {{callId, error}}")]
    RejectionMissing,
    /// `username` absent.
    #[error("username is missing")]
    UsernameMissing,
    /// `username` not a string.
    #[error("username must be a string")]
    UsernameNotText,
    /// `username` outside the allowed characters or length.
    #[error("username must be 1-64 characters of A-Z a-z 0-9 . _ -")]
    UsernameInvalid,
    /// `maxCalls` absent, zero, too big or not a whole number.
    #[error("maxCalls must be a whole number from 1 to {limit}")]
    MaxCalls {
        /// `agents.max_calls_limit`.
        limit: u32,
    },
    /// `callId` absent.
    #[error("callId is missing")]
    CallIdMissing,
    /// `callId` neither a string nor a number.
    #[error("callId must be a string or a number")]
    CallIdType,
    /// `callId` a number that is no call id.
    #[error("callId {0} is not a call id")]
    CallIdNumber(String),
    /// `callId` a string that is no call id.
    #[error("callId `{0}` is not a call id")]
    CallIdText(String),
    /// PAUSE's `reason` absent or not a pause reason id.
    #[error("PAUSE needs {{reason}}, a pause reason id above 0")]
    PauseReason,
    /// TRANSFER_CALL's `destination` absent or not a number to dial.
    #[error("destination must be a number to transfer to (digits, + * #)")]
    Destination,
}

/// Why the bridge did not do what an event asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The payload does not parse.
    #[error("{0}")]
    Payload(#[from] PayloadError),
    /// An event that needs a session, before USER_CONNECT.
    #[error("not connected: send USER_CONNECT first")]
    NotConnected,
    /// USER_CONNECT for a name the handshake token does not prove.
    #[error("this connection's token is not for {0}")]
    TokenNotFor(String),
    /// USER_CONNECT on a socket that acts for another username.
    #[error("this connection is already logged in as {0}; send USER_DISCONNECT first")]
    OtherUser(String),
    /// USER_CONNECT for an agent another username holds.
    #[error("agent {agent} is already connected as {username}")]
    AgentTaken {
        /// The agent id.
        agent: AgentId,
        /// Who holds it.
        username: String,
    },
    /// USER_DISCONNECT naming another username than the socket's.
    #[error("this connection is logged in as {0}")]
    LoggedInAs(String),
    /// END_CALL or NEW_CALL_ERROR for a call the session does not hold.
    #[error("call {0} is not one of your calls")]
    NotYourCall(CallId),
    /// NEW_CALL_ANSWERED for a call the socket's session does not hold.
    #[error("call {0} is not one of this connection's calls")]
    NotThisConnectionsCall(CallId),
    /// With several calls held, the platform's current call (the only one it can end) is
    /// another.
    #[error(
        "call {call} is not your current call on the platform, which ends only the current one (from {current}): end that call first"
    )]
    NotCurrent {
        /// The call named.
        call: CallId,
        /// The caller of the platform's current call.
        current: String,
    },
    /// With several calls held, the platform's status does not tell which is current.
    #[error("the platform does not tell whether call {0} is your current call; nothing was ended")]
    CurrentUnknown(CallId),
    /// The platform accepted the hangup but no call end followed in time.
    #[error(
        "the platform accepted the hangup but has not said which call ended; your calls are being re-read"
    )]
    Unconfirmed(CallId),
    /// The platform request failed.
    #[error("{}", describe(subject, error))]
    Platform {
        /// What the request was about.
        subject: Subject,
        /// How it failed.
        error: PlatformError,
    },
    /// The bridge is at its limits.
    #[error("the bridge is overloaded")]
    Overloaded,
    /// The connection sends more events than its limit allows.
    #[error("too many events: this connection may send {0} per second; try again in a moment")]
    RateLimited(u32),
    /// The connection tried more usernames than its limit allows.
    #[error("this connection has tried {0} usernames already; open a new connection")]
    TooManyUsernames(u32),
    /// The session store could not record the change, so it would not survive a restart.
    #[error("the bridge cannot record your session right now; try again in a moment")]
    Unsaved(crate::store::StoreError),
    /// The bridge is stopping; another instance, or this one restarted, takes over.
    #[error("the bridge is restarting; try again in a moment")]
    ShuttingDown,
    /// An event outside the contract.
    #[error("unknown event {0}")]
    UnknownEvent(String),
}

/// What a failed platform request was about, as named to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An agent, by id.
    Agent(AgentId),
    /// A call, by id.
    Call(CallId),
    /// The session's own agent.
    TheAgent,
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Agent(agent) => write!(f, "agent {agent}"),
            Subject::Call(call) => write!(f, "call {call}"),
            Subject::TheAgent => f.write_str("the agent"),
        }
    }
}

fn describe(subject: &Subject, error: &PlatformError) -> String {
    match error {
        PlatformError::Status { status: 404, .. } => {
            format!("{subject} is not known to the platform (404)")
        }
        PlatformError::Bounced { .. } => {
            format!("{subject} is not reachable on the platform right now")
        }
        other => other.to_string(),
    }
}

impl From<AttachError> for Refusal {
    fn from(e: AttachError) -> Self {
        match e {
            AttachError::OtherUser(username) => Refusal::OtherUser(username),
            AttachError::AgentTaken { agent, username } => Refusal::AgentTaken { agent, username },
        }
    }
}

impl Refusal {
    /// A stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Payload(_) => "bad_payload",
            Refusal::NotConnected => "not_connected",
            Refusal::TokenNotFor(_) => "token",
            Refusal::OtherUser(_) | Refusal::LoggedInAs(_) => "other_user",
            Refusal::AgentTaken { .. } => "agent_taken",
            Refusal::NotYourCall(_) | Refusal::NotThisConnectionsCall(_) => "unknown_call",
            Refusal::NotCurrent { .. } => "not_current",
            Refusal::CurrentUnknown(_) => "current_unknown",
            Refusal::Unconfirmed(_) => "unconfirmed",
            Refusal::Platform { error, .. } => error.outcome(),
            Refusal::Overloaded => "overloaded",
            Refusal::RateLimited(_) => "rate_limited",
            Refusal::TooManyUsernames(_) => "usernames",
            Refusal::ShuttingDown => "shutting_down",
            Refusal::Unsaved(_) => "store",
            Refusal::UnknownEvent(_) => "unknown_event",
        }
    }

    /// Whether the platform was asked and failed, rather than the event refused outright.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Refusal::Platform { .. } | Refusal::Unconfirmed(_) | Refusal::Unsaved(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn platform(error: PlatformError) -> String {
        Refusal::Platform {
            subject: Subject::Agent(AgentId::new("22010")),
            error,
        }
        .to_string()
    }

    #[test]
    fn platform_failures_read_as_sentences() {
        let status = |status| PlatformError::Status {
            status,
            params: json!({"error": "db down"}),
        };
        assert_eq!(
            platform(status(404)),
            "agent 22010 is not known to the platform (404)"
        );
        assert_eq!(
            platform(PlatformError::Timeout(Duration::from_secs(10))),
            "the platform did not answer within 10s"
        );
        assert_eq!(
            platform(status(500)),
            "the platform refused the request (500): db down"
        );
        assert_eq!(
            platform(PlatformError::Bounced {
                occupant: "agent.22010@c/22010".into(),
                condition: "item-not-found".into()
            }),
            "agent 22010 is not reachable on the platform right now"
        );
    }

    #[test]
    fn refusals_name_what_to_do() {
        assert_eq!(
            Refusal::NotConnected.to_string(),
            "not connected: send USER_CONNECT first"
        );
        assert_eq!(
            Refusal::from(PayloadError::MaxCalls { limit: 32 }).to_string(),
            "maxCalls must be a whole number from 1 to 32"
        );
        assert_eq!(
            Refusal::from(PayloadError::CallMissing("END_CALL")).to_string(),
            "END_CALL needs {callId}"
        );
        assert_eq!(
            Refusal::OtherUser("maria".into()).to_string(),
            "this connection is already logged in as maria; send USER_DISCONNECT first"
        );
    }
}
