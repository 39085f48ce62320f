//! Why a platform request failed, in terms of the platform alone, so that code above the
//! bridge's transport can handle failures without knowing about XMPP.

use std::time::Duration;

use serde_json::Value;

/// Why a platform request failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlatformError {
    /// No response within the request timeout.
    #[error("the platform did not answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The XMPP link is down, or went down while the request was pending.
    #[error("the platform is unreachable right now ({0})")]
    LinkDown(String),
    /// The pending-request table is full.
    #[error("the bridge is overloaded")]
    Overloaded,
    /// The platform answered with a failure status.
    #[error("the platform refused the request ({status}){}", detail(params))]
    Status {
        /// 400, 404, 405 or 500.
        status: u16,
        /// The response params, which may explain the failure.
        params: Value,
    },
    /// The XMPP server bounced the request: the occupant is not there.
    #[error("{occupant} is not reachable ({condition})")]
    Bounced {
        /// Where the request went.
        occupant: String,
        /// The XMPP error condition.
        condition: String,
    },
    /// The response did not have the documented shape.
    #[error("the platform sent an unexpected response: {0}")]
    BadResponse(String),
    /// The agent's room could not be joined; the text is the transport's own explanation.
    #[error("{0}")]
    Room(String),
}

fn detail(params: &Value) -> String {
    for key in ["error", "message", "reason"] {
        if let Some(text) = params.get(key).and_then(Value::as_str) {
            return format!(": {text}");
        }
    }
    String::new()
}

impl PlatformError {
    /// A stable label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            PlatformError::Timeout(_) => "timeout",
            PlatformError::LinkDown(_) => "link_down",
            PlatformError::Overloaded => "overloaded",
            PlatformError::Status { .. } => "status",
            PlatformError::Bounced { .. } => "bounced",
            PlatformError::BadResponse(_) => "bad_response",
            PlatformError::Room(_) => "room",
        }
    }

    /// The platform status, when it answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            PlatformError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
