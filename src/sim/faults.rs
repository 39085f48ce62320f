//! Fault injection: which requests get a misbehaving answer, and how the answer misbehaves.

use std::time::Duration;

use tokio::time::Instant;
use tokio_xmpp::jid::FullJid;
use tracing::debug;

use super::Sim;
use crate::converja::{Message, Method, RequestMessage, ResponseMessage, RoomName};

/// A response held back by `reorder` is released after this long if nothing overtakes it.
const REORDER_HOLD: Duration = Duration::from_secs(2);

/// Misbehaviour injected into the answers to matching requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fault {
    /// Answer this much later (other answers overtake it).
    pub delay: Option<Duration>,
    /// Hold the answer until the next answer has been sent.
    pub reorder: bool,
    /// Send the answer twice.
    pub duplicate: bool,
    /// Never answer.
    pub drop: bool,
    /// Send a body that is not JSON before the real answer.
    pub malformed: bool,
    /// Send a forged answer from another occupant (catraquis) before the real one.
    pub spoof_first: bool,
    /// Answer with this failure status instead of executing the request.
    pub status: Option<u16>,
}

/// Applies `fault` to requests whose resource starts with `resource` (and method matches).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// Only this method, or any.
    pub method: Option<Method>,
    /// Resource prefix; "" matches every request.
    pub resource: String,
    /// What to do.
    pub fault: Fault,
}

impl FaultRule {
    /// A rule for every request whose resource starts with `resource`.
    pub fn new(resource: &str, fault: Fault) -> Self {
        FaultRule {
            method: None,
            resource: resource.into(),
            fault,
        }
    }

    fn matches(&self, msg: &RequestMessage) -> bool {
        self.method.is_none_or(|m| m == msg.method) && msg.resource.starts_with(&self.resource)
    }
}

/// An answer held back by `reorder`.
pub(super) struct Held {
    to: FullJid,
    id: String,
    body: String,
}

impl Sim {
    /// The fault of the first rule matching `request`, or none.
    pub(super) fn fault_for(&self, request: &RequestMessage) -> Fault {
        self.faults
            .iter()
            .find(|r| r.matches(request))
            .map(|r| r.fault.clone())
            .unwrap_or_default()
    }

    /// Sends `response`, misbehaving as `fault` says.
    pub(super) async fn answer(&mut self, to: FullJid, response: ResponseMessage, fault: &Fault) {
        if fault.drop {
            debug!(to = response.to, "answer dropped by fault injection");
            return;
        }
        let id = self.ids.next().to_string();
        if fault.malformed {
            let _ = self
                .link
                .send_chat(
                    to.clone(),
                    self.ids.next().to_string(),
                    "{\"type\": \"response\", \"to\": ".into(),
                )
                .await;
        }
        if fault.spoof_first {
            let forged = ResponseMessage {
                status: 500,
                failure: true,
                params: serde_json::json!({"error": "forged"}),
                ..response.clone()
            };
            if let Ok(other) = self
                .addresses
                .occupant(&RoomName::Catraquis, to.resource().as_str())
            {
                let _ = self
                    .link
                    .send_chat(
                        other,
                        self.ids.next().to_string(),
                        Message::Response(forged).to_json(),
                    )
                    .await;
            }
        }
        let body = Message::Response(response).to_json();
        let copies = if fault.duplicate { 2 } else { 1 };
        if let Some(delay) = fault.delay {
            let link = self.link.clone();
            self.tracker.spawn(async move {
                tokio::time::sleep(delay).await;
                for _ in 0..copies {
                    let _ = link.send_chat(to.clone(), id.clone(), body.clone()).await;
                }
            });
            return;
        }
        if fault.reorder && self.held.is_none() {
            self.held = Some(Held { to, id, body });
            self.held_until = Some(Instant::now() + REORDER_HOLD);
            return;
        }
        for _ in 0..copies {
            let _ = self
                .link
                .send_chat(to.clone(), id.clone(), body.clone())
                .await;
        }
        self.release_held().await;
    }

    /// Sends the answer held back by `reorder`, if any.
    pub(super) async fn release_held(&mut self) {
        if let Some(Held { to, id, body }) = self.held.take() {
            let _ = self.link.send_chat(to, id, body).await;
        }
    }
}
