//! The XMPP link: one connection for the whole process, owned by one task, that joins rooms,
//! sends private and room messages, hands every received message on, and reconnects by
//! itself. Nothing above it sees XML.

mod backoff;
mod bosh;
mod connect;
mod link;

use std::collections::BTreeSet;

use tokio_xmpp::jid::{BareJid, FullJid, Jid};

/// The server endpoint is the configuration's own type: one description of it everywhere.
pub use crate::config::Endpoint;
pub use backoff::Backoff;
pub use connect::{ConnectSettings, Io, Stream, TIMEOUTS, connect};
pub use link::{InboundHandler, Link};

/// Why the link could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not connected right now; the link is reconnecting.
    #[error("the XMPP link is down ({0})")]
    Down(String),
    /// A connection attempt failed.
    #[error("cannot connect to the XMPP server: {0}")]
    Connect(String),
    /// The server refused the credentials.
    #[error("the XMPP server refused the bridge's credentials ({0})")]
    Auth(String),
    /// A room could not be joined.
    #[error("cannot join room {room} ({condition})")]
    Join {
        /// The room.
        room: String,
        /// The XMPP error condition.
        condition: String,
    },
    /// The link has been shut down.
    #[error("the XMPP link is shut down")]
    Closed,
}

/// Whether the link is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    /// Opening a connection.
    Connecting,
    /// Connected, authenticated and bound.
    Online,
    /// Disconnected, waiting before the next attempt.
    Offline,
}

/// The link's current state, for readiness checks and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Connected or not.
    pub status: LinkStatus,
    /// The full JID of the current stream.
    pub bound: Option<FullJid>,
    /// Rooms joined on the current stream.
    pub joined: BTreeSet<BareJid>,
    /// Why the last connection ended or failed.
    pub last_error: Option<String>,
    /// How many times a stream has been established.
    pub sessions: u64,
}

/// Something the link received or noticed, in arrival order.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// A new stream is up; everything not re-read since the last one may have been missed.
    Online {
        /// Our full JID on it.
        bound: FullJid,
    },
    /// The stream is gone; anything in flight on it is lost.
    Offline {
        /// Why.
        reason: String,
    },
    /// A room join completed (the server sent our self-presence).
    Joined {
        /// The room.
        room: BareJid,
    },
    /// The bridge left a room of its own accord: joining it again later is no removal.
    Left {
        /// The room.
        room: BareJid,
    },
    /// A message.
    Message(InboundMessage),
}

/// A received message with a body or an error; replays stamped with `<delay/>` never get here.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// The sender: an occupant (`room@conf/nick`) for the platform.
    pub from: Jid,
    /// Private, room or error message.
    pub kind: MessageKind,
    /// The stanza id.
    pub id: Option<String>,
    /// The body text.
    pub body: Option<String>,
    /// When it was read off the stream.
    pub read: tokio::time::Instant,
}

/// The kind of a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    /// A private message (`chat` or `normal`).
    Chat,
    /// A room message.
    Groupchat,
    /// A bounce of a message we sent, with its XMPP error condition.
    Error(String),
}
