//! The Converja platform protocol: identifiers, room and occupant addresses, and the three
//! kinds of JSON message (request, response, event) with a typed form for each.

mod address;
mod error;
mod event;
mod ids;
mod message;
mod request;
mod response;

pub use address::{Addresses, Destination, RoomName};
pub use error::PlatformError;
pub use event::{
    CallDidFinish, CallDidStart, CallMissed, CallRinging, Event, EventMessage, UserSession,
    UserSessionDidPause,
};
pub use ids::{AgentId, CallId, PauseReason, QueueId, Timestamp};
pub use message::{Message, ProtocolError, ResponseMessage};
pub use request::{Method, Request, RequestMessage, RouteError};
pub use response::{
    AgentState, AgentStatus, CallTimestamps, Data, Empty, QueueAgent, QueueCall, QueueCalls,
    QueueInfo, QueueSupervisor, ResponseParams, TerminalTime,
};

#[cfg(test)]
mod api_examples;
