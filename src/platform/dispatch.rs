//! Routing what the link receives: responses and bounces to the pending table, room events to
//! subscribers once each, link changes to subscribers and the pending requests they doom.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_xmpp::jid::{BareJid, Jid};
use tracing::{debug, info, warn};

use super::{RoomEvent, Update};
use crate::converja::{Addresses, EventMessage, Message, ProtocolError, RoomName};
use crate::pending::{Disposition, PendingTable};
use crate::recent::RecentIds;
use crate::telemetry;
use crate::xmpp::{Inbound, InboundHandler, InboundMessage, MessageKind};

/// Event ids remembered per room to drop replays and duplicates.
const EVENT_WINDOW: usize = 2048;

/// Routes what the link receives: responses to the pending table, events to subscribers.
pub(super) struct Dispatcher {
    table: Arc<PendingTable>,
    addresses: Addresses,
    /// Our nickname in every room, to recognise the echo of what we publish.
    nickname: String,
    updates: broadcast::Sender<Update>,
    seen: HashMap<RoomName, RecentIds>,
    /// Rooms joined since the link came online and not left since: joining one of them again
    /// means the bridge was removed from it meanwhile, and missed what was published there.
    joined: HashSet<BareJid>,
}

fn dropped(reason: &'static str) {
    metrics::counter!(telemetry::DROPPED, "reason" => reason).increment(1);
}

impl InboundHandler for Dispatcher {
    fn handle(&mut self, item: Inbound) {
        self.route(item);
    }

    fn stopped(&mut self) {
        self.table.fail_all("the bridge is shutting down");
    }
}

impl Dispatcher {
    /// A dispatcher answering requests in `table` and publishing to `updates`.
    pub(super) fn new(
        table: Arc<PendingTable>,
        addresses: Addresses,
        nickname: String,
        updates: broadcast::Sender<Update>,
    ) -> Self {
        Self {
            table,
            addresses,
            nickname,
            updates,
            seen: HashMap::new(),
            joined: HashSet::new(),
        }
    }

    /// Routes one thing the link received.
    pub(super) fn route(&mut self, item: Inbound) {
        match item {
            Inbound::Online { .. } => {
                // Every room is joined again after a reconnect; LinkUp covers them all.
                self.joined.clear();
                let _ = self.updates.send(Update::LinkUp);
            }
            Inbound::Offline { reason } => {
                let failed = self.table.fail_all(&format!("XMPP link lost: {reason}"));
                if failed > 0 {
                    warn!(failed, "pending requests failed by the link loss");
                }
                metrics::gauge!(telemetry::PENDING).set(0.0);
                let _ = self.updates.send(Update::LinkDown);
            }
            Inbound::Joined { room } => {
                if !self.joined.insert(room.clone()) {
                    info!(%room, "room joined again after a removal; re-reading calls");
                    let _ = self.updates.send(Update::Rejoined);
                }
            }
            Inbound::Left { room } => {
                self.joined.remove(&room);
            }
            Inbound::Message(msg) => {
                let InboundMessage {
                    from,
                    kind,
                    id,
                    body,
                    read,
                } = msg;
                match kind {
                    MessageKind::Error(condition) => self.on_bounce(&from, id, condition),
                    MessageKind::Chat => self.on_private(&from, body, read),
                    MessageKind::Groupchat => self.on_room_message(&from, body, read),
                }
            }
        }
    }

    /// A request stanza came back as an XMPP error: its request fails now, not at the timeout.
    fn on_bounce(&self, from: &Jid, id: Option<String>, condition: String) {
        let Some(id) = id.as_deref().and_then(|i| i.parse::<u64>().ok()) else {
            debug!(%from, %condition, "error message without a request id");
            return dropped("unmatched_bounce");
        };
        let disposition = self.table.bounce(id, from, condition.clone());
        if disposition != Disposition::Accepted {
            warn!(%from, id, %condition, outcome = disposition.label(), "bounce not matching a pending request");
            dropped("unmatched_bounce");
        } else {
            info!(%from, id, %condition, "request bounced by the XMPP server");
        }
    }

    /// A private message: the platform's only private messages are responses.
    fn on_private(&self, from: &Jid, body: Option<String>, read: Instant) {
        let body = body.unwrap_or_default();
        match Message::parse(&body) {
            Ok(Message::Response(response)) => {
                let to = response.to;
                match self.table.resolve(from, response, read) {
                    Disposition::Accepted => {}
                    Disposition::Spoofed { expected } => {
                        warn!(%from, %expected, to, "response from the wrong occupant dropped");
                        dropped("spoofed");
                    }
                    other => {
                        warn!(%from, to, outcome = other.label(), "response without a pending request dropped");
                        dropped(other.label());
                    }
                }
            }
            Ok(_) => {
                debug!(%from, "private message that is not a response dropped");
                dropped("unexpected_message");
            }
            Err(e) => {
                warn!(%from, error = %e, "malformed private message dropped");
                dropped("malformed");
            }
        }
    }

    /// A room message: an event, published once however often the room repeats it.
    fn on_room_message(&mut self, from: &Jid, body: Option<String>, read: Instant) {
        let bare = from.to_bare();
        let Some(room) = self.addresses.room_of(&bare) else {
            return dropped("foreign_room");
        };
        if from
            .resource()
            .is_some_and(|nick| nick.as_str() == self.nickname)
        {
            return; // our own echo
        }
        let message = match Message::parse(body.as_deref().unwrap_or_default()) {
            Ok(Message::Event(e)) => e,
            Ok(_) => return dropped("unexpected_message"),
            Err(e) => {
                warn!(%room, error = %e, "malformed room message dropped");
                return dropped("malformed");
            }
        };
        if !self
            .seen
            .entry(room.clone())
            .or_insert_with(|| RecentIds::new(EVENT_WINDOW))
            .insert(message.id)
        {
            debug!(%room, id = message.id, "duplicate event dropped");
            return dropped("duplicate_event");
        }
        self.publish(room, &message, read);
    }

    /// Hands a first-seen event to subscribers, if it is one the API defines.
    fn publish(&self, room: RoomName, message: &EventMessage, read: Instant) {
        match message.event() {
            Ok(event) => {
                metrics::counter!(telemetry::EVENTS, "name" => event.name()).increment(1);
                debug!(%room, id = message.id, name = event.name(), "platform event");
                let _ = self.updates.send(Update::Event(RoomEvent {
                    room,
                    id: message.id,
                    event,
                    read,
                }));
            }
            Err(ProtocolError::UnknownEvent(name)) => {
                warn!(%room, %name, "unknown platform event dropped");
                dropped("unknown_event");
            }
            Err(e) => {
                warn!(%room, error = %e, "malformed platform event dropped");
                dropped("malformed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
