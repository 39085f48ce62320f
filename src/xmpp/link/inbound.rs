//! Stanzas received on the stream: messages passed on to the consumer, pings answered,
//! presences handed to room membership.

use tokio_xmpp::Stanza;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::{Message, MessageType};
use tokio_xmpp::parsers::ns;
use tracing::debug;

use super::super::{Inbound, InboundMessage, MessageKind, Stream};
use super::self_ping::ID_PREFIX as SELF_PING_ID;
use super::{LinkTask, write};
use crate::telemetry;

impl LinkTask {
    pub(super) async fn on_stanza(
        &mut self,
        stanza: Stanza,
        stream: &mut Stream,
    ) -> Result<(), String> {
        match stanza {
            Stanza::Message(msg) => {
                self.on_message(msg);
                Ok(())
            }
            Stanza::Presence(presence) => self.on_presence(presence, stream).await,
            Stanza::Iq(Iq::Get {
                from, id, payload, ..
            })
            | Stanza::Iq(Iq::Set {
                from, id, payload, ..
            }) => {
                // Answer server pings so the server keeps us; refuse anything else politely.
                let reply = if payload.is("ping", ns::PING) {
                    Iq::Result {
                        from: None,
                        to: from,
                        id,
                        payload: None,
                    }
                } else {
                    let error = tokio_xmpp::parsers::stanza_error::StanzaError::new(
                        tokio_xmpp::parsers::stanza_error::ErrorType::Cancel,
                        tokio_xmpp::parsers::stanza_error::DefinedCondition::ServiceUnavailable,
                        "en",
                        "not supported",
                    );
                    Iq::Error {
                        from: None,
                        to: from,
                        id,
                        error,
                        payload: None,
                    }
                };
                write(stream, Stanza::Iq(reply)).await
            }
            Stanza::Iq(Iq::Result { from, id, .. }) if id.starts_with(SELF_PING_ID) => {
                self.on_self_ping_answer(from.map(|j| j.to_bare()), &id, None);
                Ok(())
            }
            Stanza::Iq(Iq::Error {
                from, id, error, ..
            }) if id.starts_with(SELF_PING_ID) => {
                let condition = format!("{:?}", error.defined_condition);
                self.on_self_ping_answer(
                    from.map(|j| j.to_bare()),
                    &id,
                    Some(kebab(&condition).as_str()),
                );
                Ok(())
            }
            Stanza::Iq(_) => Ok(()),
        }
    }

    fn on_message(&mut self, msg: Message) {
        let Some(from) = msg.from.clone() else { return };
        let kind = match msg.type_ {
            MessageType::Error => MessageKind::Error(
                error_condition(&msg.payloads).unwrap_or_else(|| "undefined-condition".into()),
            ),
            MessageType::Groupchat => MessageKind::Groupchat,
            MessageType::Chat | MessageType::Normal => MessageKind::Chat,
            MessageType::Headline => return,
        };
        if msg.payloads.iter().any(|p| p.is("delay", ns::DELAY)) {
            // A replay of something sent before we joined: acted on then, or lost for good.
            metrics::counter!(telemetry::DROPPED, "reason" => "delayed_replay").increment(1);
            debug!(%from, "delayed message ignored");
            return;
        }
        let body = msg.bodies.into_values().next();
        if body.is_none() && !matches!(kind, MessageKind::Error(_)) {
            // Room subjects, chat states and receipts carry no platform message.
            return;
        }
        self.outq.push_back(Inbound::Message(InboundMessage {
            from,
            kind,
            id: msg.id.map(|i| i.0),
            body,
            read: tokio::time::Instant::now(),
        }));
    }
}

/// The defined condition of the `<error/>` among `payloads`, such as `item-not-found`.
pub(super) fn error_condition(payloads: &[Element]) -> Option<String> {
    let error = payloads.iter().find(|p| p.name() == "error")?;
    error
        .children()
        .find(|c| c.ns() == ns::XMPP_STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// `NotAcceptable` as the wire writes it: `not-acceptable`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('-');
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use tokio_xmpp::parsers::stanza_error::DefinedCondition;

    use super::kebab;

    #[test]
    fn error_conditions_read_as_on_the_wire() {
        let wire = |c: DefinedCondition| kebab(&format!("{c:?}"));
        assert_eq!(wire(DefinedCondition::NotAcceptable), "not-acceptable");
        assert_eq!(wire(DefinedCondition::ItemNotFound), "item-not-found");
        assert_eq!(
            wire(DefinedCondition::ServiceUnavailable),
            "service-unavailable"
        );
    }
}
