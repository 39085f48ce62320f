//! Where things live on the platform: room names, room JIDs and the occupants requests go to.

use std::fmt;

use jid::{BareJid, FullJid};

use super::{AgentId, QueueId};

/// A platform room, by the name before `@<conference>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoomName {
    /// `filis`: the platform directory; requests about queues and agent status go here.
    Filis,
    /// `catraquis`: agent session events.
    Catraquis,
    /// `queue.<id>`: call events of one queue.
    Queue(QueueId),
    /// `agent.<id>`: requests that act on one agent.
    Agent(AgentId),
}

impl RoomName {
    /// Parses the local part of a room JID; `None` for rooms the platform does not define.
    pub fn parse(node: &str) -> Option<Self> {
        match node {
            "filis" => Some(RoomName::Filis),
            "catraquis" => Some(RoomName::Catraquis),
            _ => {
                if let Some(id) = node.strip_prefix("queue.") {
                    id.parse().ok().map(RoomName::Queue)
                } else {
                    node.strip_prefix("agent.")
                        .filter(|id| !id.is_empty())
                        .map(|id| RoomName::Agent(AgentId::new(id)))
                }
            }
        }
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomName::Filis => f.write_str("filis"),
            RoomName::Catraquis => f.write_str("catraquis"),
            RoomName::Queue(id) => write!(f, "queue.{id}"),
            RoomName::Agent(id) => write!(f, "agent.{id}"),
        }
    }
}

/// The occupant a request is sent to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// `filis@<conf>/filis`.
    Filis,
    /// `agent.<id>@<conf>/<id>`.
    Agent(AgentId),
}

impl Destination {
    /// The room the destination occupant sits in.
    pub fn room(&self) -> RoomName {
        match self {
            Destination::Filis => RoomName::Filis,
            Destination::Agent(id) => RoomName::Agent(id.clone()),
        }
    }

    /// The destination occupant's nickname in its room.
    pub fn nickname(&self) -> &str {
        match self {
            Destination::Filis => "filis",
            Destination::Agent(id) => id.as_str(),
        }
    }
}

/// Turns platform names into XMPP addresses under one conference domain.
#[derive(Clone, Debug)]
pub struct Addresses {
    conference: BareJid,
}

/// Room and occupant names reach here only after validation (JID-safe ids), so a failure to
/// build a JID is a bug; the error still carries the text rather than panicking.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a valid XMPP address")]
pub struct InvalidAddress(String);

impl Addresses {
    /// Addresses under `conference` (e.g. `conference.platform.converja.com`).
    pub fn new(conference: BareJid) -> Self {
        Self { conference }
    }

    /// The conference domain.
    pub fn conference(&self) -> &BareJid {
        &self.conference
    }

    /// The bare JID of a room.
    pub fn room(&self, room: &RoomName) -> Result<BareJid, InvalidAddress> {
        let text = format!("{room}@{}", self.conference);
        text.parse().map_err(|_| InvalidAddress(text))
    }

    /// The full JID of `nick` in `room`.
    pub fn occupant(&self, room: &RoomName, nick: &str) -> Result<FullJid, InvalidAddress> {
        let text = format!("{room}@{}/{nick}", self.conference);
        text.parse().map_err(|_| InvalidAddress(text))
    }

    /// The full JID a request for `dest` is sent to.
    pub fn destination(&self, dest: &Destination) -> Result<FullJid, InvalidAddress> {
        self.occupant(&dest.room(), dest.nickname())
    }

    /// The platform room a JID belongs to, if it is one of ours.
    pub fn room_of(&self, jid: &BareJid) -> Option<RoomName> {
        if jid.domain() != self.conference.domain() {
            return None;
        }
        jid.node().and_then(|n| RoomName::parse(n.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses() -> Addresses {
        Addresses::new("conference.platform.converja.com".parse().expect("valid"))
    }

    #[test]
    fn destinations_follow_the_api_table() {
        let a = addresses();
        assert_eq!(
            a.destination(&Destination::Filis).unwrap().to_string(),
            "filis@conference.platform.converja.com/filis"
        );
        assert_eq!(
            a.destination(&Destination::Agent(AgentId::new("22010")))
                .unwrap()
                .to_string(),
            "agent.22010@conference.platform.converja.com/22010"
        );
    }

    #[test]
    fn room_names_round_trip() {
        let a = addresses();
        for room in [
            RoomName::Filis,
            RoomName::Catraquis,
            RoomName::Queue(QueueId(7)),
            RoomName::Agent(AgentId::new("22010")),
        ] {
            let jid = a.room(&room).unwrap();
            assert_eq!(a.room_of(&jid), Some(room));
        }
        assert_eq!(
            a.room_of(&"queue.x@conference.platform.converja.com".parse().unwrap()),
            None
        );
        assert_eq!(a.room_of(&"filis@elsewhere.example".parse().unwrap()), None);
    }
}
