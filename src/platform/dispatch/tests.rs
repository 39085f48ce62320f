//! The dispatcher fed directly with what a link would hand it, without XMPP.

use std::sync::Arc;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use serde_json::json;
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio_xmpp::jid::{FullJid, Jid};

use super::Dispatcher;
use crate::converja::{
    Addresses, AgentId, Event, EventMessage, Message, ResponseMessage, RoomName, Timestamp,
    UserSession,
};
use crate::pending::{Failure, PendingTable, Ticket};
use crate::platform::{RoomEvent, Update};
use crate::telemetry;
use crate::xmpp::{Inbound, InboundMessage, MessageKind};

const CONFERENCE: &str = "conference.test";
const NICKNAME: &str = "bridge";
const FILIS: &str = "filis@conference.test/filis";
const CATRAQUIS_PLATFORM: &str = "catraquis@conference.test/platform";
/// Every reason the dispatcher drops a message for.
const REASONS: [&str; 10] = [
    "spoofed",
    "duplicate",
    "late",
    "unknown_request",
    "unexpected_message",
    "malformed",
    "unmatched_bounce",
    "foreign_room",
    "duplicate_event",
    "unknown_event",
];

/// A dispatcher with its table and a subscriber, counting metrics in a recorder of its own so
/// that tests running in parallel do not see each other's drops.
struct Harness {
    dispatcher: Dispatcher,
    table: Arc<PendingTable>,
    updates: broadcast::Receiver<Update>,
    recorder: PrometheusRecorder,
    metrics: PrometheusHandle,
}

impl Harness {
    fn new() -> Self {
        let table = PendingTable::new(8, 0);
        let (tx, updates) = broadcast::channel(16);
        let addresses = Addresses::new(CONFERENCE.parse().unwrap());
        let dispatcher = Dispatcher::new(table.clone(), addresses, NICKNAME.into(), tx);
        let recorder = PrometheusBuilder::new().build_recorder();
        let metrics = recorder.handle();
        Harness {
            dispatcher,
            table,
            updates,
            recorder,
            metrics,
        }
    }

    fn feed(&mut self, item: Inbound) {
        let dispatcher = &mut self.dispatcher;
        metrics::with_local_recorder(&self.recorder, || dispatcher.route(item));
    }

    fn register(&self, occupant: &str) -> Ticket {
        self.table.register(full(occupant)).unwrap()
    }

    /// Messages dropped for `reason` so far.
    fn dropped(&self, reason: &str) -> f64 {
        telemetry::counter_in(
            &self.metrics,
            telemetry::DROPPED,
            &format!("reason=\"{reason}\""),
        )
    }

    /// Messages dropped for any reason so far.
    fn dropped_total(&self) -> f64 {
        REASONS.iter().map(|reason| self.dropped(reason)).sum()
    }

    /// The next update already published, if any.
    fn next_update(&mut self) -> Option<Update> {
        match self.updates.try_recv() {
            Ok(update) => Some(update),
            Err(TryRecvError::Empty) => None,
            Err(e) => panic!("subscriber lost updates: {e}"),
        }
    }
}

fn full(jid: &str) -> FullJid {
    jid.parse().unwrap()
}

fn message(from: &str, kind: MessageKind, id: Option<String>, body: Option<String>) -> Inbound {
    Inbound::Message(InboundMessage {
        from: from.parse::<Jid>().unwrap(),
        kind,
        id,
        body,
        read: tokio::time::Instant::now(),
    })
}

fn private(from: &str, body: &str) -> Inbound {
    message(from, MessageKind::Chat, None, Some(body.to_owned()))
}

fn response_to(to: u64) -> String {
    Message::Response(ResponseMessage {
        id: 900,
        to,
        failure: false,
        status: 200,
        params: json!({"data": []}),
    })
    .to_json()
}

fn bounce(from: &str, id: Option<&str>) -> Inbound {
    message(
        from,
        MessageKind::Error("item-not-found".into()),
        id.map(str::to_owned),
        None,
    )
}

fn session_started() -> Event {
    Event::UserSessionDidStart(UserSession {
        agent: AgentId::new("22010"),
        queues: vec![],
        timestamp: Timestamp(1_700_000_000.0),
    })
}

fn room_event(from: &str, id: u64, event: &Event) -> Inbound {
    let body = Message::Event(EventMessage::new(id, event)).to_json();
    message(from, MessageKind::Groupchat, None, Some(body))
}

#[tokio::test]
async fn a_response_resolves_its_request() {
    let mut h = Harness::new();
    let mut ticket = h.register(FILIS);
    h.feed(private(FILIS, &response_to(ticket.id())));
    let response = ticket.wait().await.unwrap();
    assert_eq!(response.to, ticket.id());
    assert_eq!(response.params, json!({"data": []}));
    assert!(h.table.is_empty());
    assert_eq!(h.dropped_total(), 0.0);
}

#[tokio::test]
async fn a_response_from_the_wrong_occupant_is_dropped_and_the_request_waits_on() {
    let mut h = Harness::new();
    let mut ticket = h.register(FILIS);
    h.feed(private(
        "filis@conference.test/impostor",
        &response_to(ticket.id()),
    ));
    assert_eq!(h.dropped("spoofed"), 1.0);
    assert_eq!(h.table.len(), 1);
    h.feed(private(FILIS, &response_to(ticket.id())));
    assert!(ticket.wait().await.is_ok());
    assert_eq!(h.dropped_total(), 1.0);
}

#[test]
fn duplicate_and_late_responses_are_dropped() {
    let mut h = Harness::new();
    let answered = h.register(FILIS);
    h.feed(private(FILIS, &response_to(answered.id())));
    h.feed(private(FILIS, &response_to(answered.id())));
    assert_eq!(h.dropped("duplicate"), 1.0);
    let gave_up = h.register(FILIS);
    let late = gave_up.id();
    drop(gave_up);
    h.feed(private(FILIS, &response_to(late)));
    assert_eq!(h.dropped("late"), 1.0);
    assert!(h.table.is_empty());
}

#[test]
fn a_response_to_an_unknown_request_is_dropped() {
    let mut h = Harness::new();
    let _waiting = h.register(FILIS);
    h.feed(private(FILIS, &response_to(42)));
    assert_eq!(h.dropped("unknown_request"), 1.0);
    assert_eq!(h.table.len(), 1);
}

#[test]
fn malformed_and_unexpected_private_messages_are_dropped() {
    let mut h = Harness::new();
    let _waiting = h.register(FILIS);
    h.feed(private(FILIS, "{not json"));
    h.feed(message(FILIS, MessageKind::Chat, None, None));
    assert_eq!(h.dropped("malformed"), 2.0);
    let event = Message::Event(EventMessage::new(1, &session_started())).to_json();
    h.feed(private(FILIS, &event));
    assert_eq!(h.dropped("unexpected_message"), 1.0);
    assert_eq!(h.table.len(), 1);
}

#[tokio::test]
async fn a_bounce_fails_its_request_at_once() {
    let mut h = Harness::new();
    let mut ticket = h.register(FILIS);
    let id = ticket.id().to_string();
    h.feed(bounce(FILIS, Some(&id)));
    assert_eq!(
        ticket.wait().await,
        Err(Failure::Bounced("item-not-found".into()))
    );
    assert!(h.table.is_empty());
    assert_eq!(h.dropped_total(), 0.0);
}

#[test]
fn bounces_matching_no_pending_request_are_dropped() {
    let mut h = Harness::new();
    let ticket = h.register(FILIS);
    let id = ticket.id().to_string();
    h.feed(bounce(FILIS, None));
    h.feed(bounce(FILIS, Some("not-a-number")));
    h.feed(bounce(FILIS, Some("42")));
    // Only the occupant the request went to can bounce it.
    h.feed(bounce("agent.7@conference.test/7", Some(&id)));
    assert_eq!(h.dropped("unmatched_bounce"), 4.0);
    assert_eq!(h.table.len(), 1);
}

#[test]
fn a_room_event_is_published_once_and_its_replay_dropped() {
    let mut h = Harness::new();
    let event = session_started();
    h.feed(room_event(CATRAQUIS_PLATFORM, 7, &event));
    assert!(matches!(
        h.next_update(),
        Some(Update::Event(RoomEvent {
            room: RoomName::Catraquis,
            id: 7,
            event: ref published,
            ..
        })) if *published == event
    ));
    h.feed(room_event(CATRAQUIS_PLATFORM, 7, &event));
    assert_eq!(h.next_update(), None);
    assert_eq!(h.dropped("duplicate_event"), 1.0);
    // Ids are per room: the same id elsewhere is another event.
    h.feed(room_event("queue.3@conference.test/platform", 7, &event));
    assert!(matches!(
        h.next_update(),
        Some(Update::Event(RoomEvent { id: 7, .. }))
    ));
}

#[test]
fn an_event_in_a_foreign_room_is_dropped() {
    let mut h = Harness::new();
    let event = session_started();
    h.feed(room_event("catraquis@elsewhere.test/platform", 1, &event));
    h.feed(room_event("lobby@conference.test/platform", 2, &event));
    assert_eq!(h.dropped("foreign_room"), 2.0);
    assert_eq!(h.next_update(), None);
}

#[test]
fn our_own_echo_is_ignored_without_taking_its_id() {
    let mut h = Harness::new();
    let event = session_started();
    h.feed(room_event(
        &format!("catraquis@{CONFERENCE}/{NICKNAME}"),
        5,
        &event,
    ));
    assert_eq!(h.next_update(), None);
    assert_eq!(h.dropped_total(), 0.0);
    h.feed(room_event(CATRAQUIS_PLATFORM, 5, &event));
    assert!(matches!(
        h.next_update(),
        Some(Update::Event(RoomEvent { id: 5, .. }))
    ));
}

#[test]
fn unknown_and_malformed_room_messages_are_dropped() {
    let mut h = Harness::new();
    let unknown = json!({"id": 1, "type": "event", "name": "CallTeleported", "params": {}});
    h.feed(message(
        CATRAQUIS_PLATFORM,
        MessageKind::Groupchat,
        None,
        Some(unknown.to_string()),
    ));
    assert_eq!(h.dropped("unknown_event"), 1.0);
    let bad = json!({"id": 2, "type": "event", "name": "UserSessionDidStart", "params": {}});
    h.feed(message(
        CATRAQUIS_PLATFORM,
        MessageKind::Groupchat,
        None,
        Some(bad.to_string()),
    ));
    h.feed(message(
        CATRAQUIS_PLATFORM,
        MessageKind::Groupchat,
        None,
        Some("]".into()),
    ));
    assert_eq!(h.dropped("malformed"), 2.0);
    assert_eq!(h.next_update(), None);
}

#[tokio::test]
async fn going_offline_fails_every_pending_request_and_tells_subscribers() {
    let mut h = Harness::new();
    let mut tickets = [h.register(FILIS), h.register("agent.7@conference.test/7")];
    h.feed(Inbound::Offline {
        reason: "connection reset".into(),
    });
    for ticket in &mut tickets {
        assert_eq!(
            ticket.wait().await,
            Err(Failure::LinkDown("XMPP link lost: connection reset".into()))
        );
    }
    assert!(h.table.is_empty());
    assert_eq!(h.next_update(), Some(Update::LinkDown));
    assert_eq!(h.next_update(), None);
}

#[test]
fn coming_online_tells_subscribers() {
    let mut h = Harness::new();
    h.feed(Inbound::Online {
        bound: full("bridge@platform.test/res"),
    });
    assert_eq!(h.next_update(), Some(Update::LinkUp));
    assert_eq!(h.next_update(), None);
}

#[test]
fn a_room_joined_again_without_a_reconnect_asks_for_a_re_read() {
    let mut h = Harness::new();
    let online = || Inbound::Online {
        bound: full("bridge@platform.test/res"),
    };
    let joined = |room: &str| Inbound::Joined {
        room: room.parse().unwrap(),
    };
    h.feed(online());
    assert_eq!(h.next_update(), Some(Update::LinkUp));
    h.feed(joined("queue.7@conference.platform.test"));
    h.feed(joined("agent.22010@conference.platform.test"));
    assert_eq!(h.next_update(), None, "first joins are not removals");
    // Kicked from queue.7 and back in it: what was published there meanwhile was missed.
    h.feed(joined("queue.7@conference.platform.test"));
    assert_eq!(h.next_update(), Some(Update::Rejoined));
    // After a reconnect every room is joined again; the LinkUp covers them.
    h.feed(Inbound::Offline {
        reason: "lost".into(),
    });
    assert_eq!(h.next_update(), Some(Update::LinkDown));
    h.feed(online());
    assert_eq!(h.next_update(), Some(Update::LinkUp));
    h.feed(joined("queue.7@conference.platform.test"));
    assert_eq!(h.next_update(), None);
}

#[test]
fn a_room_joined_again_after_the_bridge_left_it_is_no_removal() {
    let mut h = Harness::new();
    let room = "agent.22010@conference.platform.test";
    h.feed(Inbound::Online {
        bound: full("bridge@platform.test/res"),
    });
    assert_eq!(h.next_update(), Some(Update::LinkUp));
    h.feed(Inbound::Joined {
        room: room.parse().unwrap(),
    });
    h.feed(Inbound::Left {
        room: room.parse().unwrap(),
    });
    h.feed(Inbound::Joined {
        room: room.parse().unwrap(),
    });
    assert_eq!(h.next_update(), None, "nothing was missed: no re-read");
}
