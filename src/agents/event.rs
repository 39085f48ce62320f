//! The events of the socket.io contract as types, named by direction: what an agent UI sends
//! ([`ClientEvent`]) and what the bridge sends back ([`ServerEvent`]). The gateway reads the
//! first from JSON and writes the second as JSON (`gateway::contract`); the core sees no JSON.

use super::refusal::{PayloadError, Refusal};
use crate::converja::{CallId, PauseReason};

/// Identifies one socket.io socket for the lifetime of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

/// Event names of the contract: what the gateway sends and reads them as, and what the core
/// counts and names them by in metrics, logs and refusals.
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
    /// UI (with `agents.extensions`): pause the agent.
    pub(crate) const PAUSE: &str = "PAUSE";
    /// UI (with `agents.extensions`): resume the agent.
    pub(crate) const RESUME: &str = "RESUME";
    /// UI (with `agents.extensions`): transfer a call.
    pub(crate) const TRANSFER_CALL: &str = "TRANSFER_CALL";
    /// Bridge: the agent is paused (by itself, a supervisor or the platform).
    pub(crate) const USER_PAUSED: &str = "USER_PAUSED";
    /// Bridge: the agent is taking calls again.
    pub(crate) const USER_RESUMED: &str = "USER_RESUMED";
    /// Bridge: pausing failed.
    pub(crate) const PAUSE_ERROR: &str = "PAUSE_ERROR";
    /// Bridge: resuming failed.
    pub(crate) const RESUME_ERROR: &str = "RESUME_ERROR";
    /// Bridge: the transfer failed.
    pub(crate) const TRANSFER_CALL_ERROR: &str = "TRANSFER_CALL_ERROR";
}

/// A scalar the UI sent, kept as sent so that an error reply can echo it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    Text(String),
    /// A whole number, zero or more.
    Whole(u64),
    /// A whole number below zero.
    Negative(i64),
    /// A number with a fraction or an exponent.
    Fraction(f64),
    /// `true` or `false`.
    Flag(bool),
}

/// The fields of a UI's event that its error reply echoes back, as the UI sent them; a field
/// that was absent, or not a scalar, is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Echo {
    /// `username`.
    pub username: Option<Scalar>,
    /// `maxCalls`.
    pub max_calls: Option<Scalar>,
    /// `callId`.
    pub call_id: Option<Scalar>,
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
    /// `PAUSE` (with `agents.extensions`).
    Pause,
    /// `RESUME` (with `agents.extensions`).
    Resume,
    /// `TRANSFER_CALL` (with `agents.extensions`).
    TransferCall,
}

impl ClientEventKind {
    /// Every event of the contract an agent UI may send, extensions included.
    pub const ALL: [Self; 8] = [
        Self::UserConnect,
        Self::UserDisconnect,
        Self::EndCall,
        Self::NewCallAnswered,
        Self::NewCallError,
        Self::Pause,
        Self::Resume,
        Self::TransferCall,
    ];

    /// The event's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::UserConnect => name::USER_CONNECT,
            Self::UserDisconnect => name::USER_DISCONNECT,
            Self::EndCall => name::END_CALL,
            Self::NewCallAnswered => name::NEW_CALL_ANSWERED,
            Self::NewCallError => name::NEW_CALL_ERROR,
            Self::Pause => name::PAUSE,
            Self::Resume => name::RESUME,
            Self::TransferCall => name::TRANSFER_CALL,
        }
    }

    /// Whether the event is an extension, off unless `agents.extensions` is set.
    pub fn is_extension(self) -> bool {
        matches!(self, Self::Pause | Self::Resume | Self::TransferCall)
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
    /// `PAUSE {reason}`.
    Pause(PauseReason),
    /// `RESUME`.
    Resume,
    /// `TRANSFER_CALL {callId, destination}`.
    TransferCall {
        /// The call to transfer.
        call: CallId,
        /// The number to transfer it to.
        destination: String,
    },
    /// A contract event whose payload does not parse.
    Invalid {
        /// Which event.
        kind: ClientEventKind,
        /// What was wrong.
        error: PayloadError,
        /// The fields of the payload its error reply echoes.
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
            Self::Pause(_) => name::PAUSE,
            Self::Resume => name::RESUME,
            Self::TransferCall { .. } => name::TRANSFER_CALL,
            Self::Invalid { kind, .. } => kind.name(),
            Self::Unknown(_) => "unknown",
        }
    }

    /// The extension this event is, if it is one.
    pub fn extension(&self) -> Option<ClientEventKind> {
        match self {
            Self::Pause(_) => Some(ClientEventKind::Pause),
            Self::Resume => Some(ClientEventKind::Resume),
            Self::TransferCall { .. } => Some(ClientEventKind::TransferCall),
            Self::Invalid { kind, .. } if kind.is_extension() => Some(*kind),
            _ => None,
        }
    }
}

/// The NEW_CALL payload.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCall {
    /// The platform's call id, sent as a string.
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

/// Every event the bridge emits to an agent UI.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `USER_CONNECTED {username, maxCalls}`, with the capacity the bridge applies.
    UserConnected(Login),
    /// `USER_CONNECTION_ERROR {username, maxCalls, error}`, echoing what was sent.
    UserConnectionError {
        /// The fields of the USER_CONNECT payload it echoes.
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
        call: Option<Scalar>,
        /// Why.
        error: Refusal,
    },
    /// `USER_PAUSED {username, reason}`.
    UserPaused {
        /// The session's username.
        username: String,
        /// The pause reason.
        reason: PauseReason,
    },
    /// `USER_RESUMED {username}`.
    UserResumed {
        /// The session's username.
        username: String,
    },
    /// `PAUSE_ERROR {error}`.
    PauseError(Refusal),
    /// `RESUME_ERROR {error}`.
    ResumeError(Refusal),
    /// `TRANSFER_CALL_ERROR {callId, error}`, echoing the call id as sent.
    TransferCallError {
        /// The `callId` the UI sent.
        call: Option<Scalar>,
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
            Self::UserPaused { .. } => name::USER_PAUSED,
            Self::UserResumed { .. } => name::USER_RESUMED,
            Self::PauseError(_) => name::PAUSE_ERROR,
            Self::ResumeError(_) => name::RESUME_ERROR,
            Self::TransferCallError { .. } => name::TRANSFER_CALL_ERROR,
        }
    }

    /// The refusal an error event carries.
    pub fn error(&self) -> Option<&Refusal> {
        match self {
            Self::UserConnectionError { error, .. }
            | Self::UserDisconnectionError { error, .. }
            | Self::EndCallError { error, .. }
            | Self::TransferCallError { error, .. }
            | Self::PauseError(error)
            | Self::ResumeError(error) => Some(error),
            _ => None,
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
