//! The JSON envelope every platform message travels in, and how a message body is parsed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{EventMessage, RequestMessage};

/// A body that is not a valid platform message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// An event whose name the API does not define.
    #[error("unknown event `{0}`")]
    UnknownEvent(String),
    /// A known message whose `params` do not have the documented shape.
    #[error("bad params in {what}: {error}")]
    BadParams {
        /// Which message or response kind.
        what: String,
        /// What did not parse.
        error: String,
    },
}

/// Any message the platform (or the bridge) sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Message {
    /// A request, sent by the bridge.
    Request(RequestMessage),
    /// A response to a request.
    Response(ResponseMessage),
    /// An event published in a room.
    Event(EventMessage),
}

impl Message {
    /// Parses a message body.
    pub fn parse(body: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(body).map_err(|e| ProtocolError::Malformed(e.to_string()))
    }

    /// The message as a JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("messages hold only JSON-representable data")
    }
}

/// A response: `{id, type: "response", to, failure, status, params}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// The response's own id.
    pub id: u64,
    /// The id of the request it answers.
    pub to: u64,
    /// Whether the request failed.
    #[serde(default)]
    pub failure: bool,
    /// HTTP-like status: 200, 400, 404, 405, 500.
    pub status: u16,
    /// The response content, typed by the request kind that expects it.
    #[serde(default)]
    pub params: Value,
}

impl ResponseMessage {
    /// Whether the platform reports success.
    pub fn is_success(&self) -> bool {
        !self.failure && (200..300).contains(&self.status)
    }
}
