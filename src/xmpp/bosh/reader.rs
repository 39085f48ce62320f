//! Reads the XML stream tokio-xmpp writes and cuts it into stanzas, so that each can be
//! carried inside a `<body/>`.

use rxml::Parse;
use rxml::error::EndOrError;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::minidom::tree_builder::TreeBuilder;

/// What the stream above wrote.
pub(super) enum Written {
    /// A stream header: the first opens the session, the next ones are restarts.
    Opened { first: bool },
    /// A top-level element.
    Stanza(Element),
    /// `</stream:stream>`.
    Closed,
}

/// An incremental reader of the XML stream written by tokio-xmpp.
pub(super) struct Outgoing {
    parser: rxml::RawParser,
    tree: TreeBuilder,
    streams: u32,
}

impl Outgoing {
    pub(super) fn new() -> Self {
        Outgoing {
            parser: rxml::RawParser::new(),
            tree: TreeBuilder::new(),
            streams: 0,
        }
    }

    /// After a restart the writer starts a new document, XML declaration and all.
    pub(super) fn restart(&mut self) {
        self.parser = rxml::RawParser::new();
        self.tree = TreeBuilder::new();
    }

    /// Takes the next bytes written; returns what they completed.
    pub(super) fn feed(&mut self, mut data: &[u8]) -> Result<Vec<Written>, String> {
        let mut events = Vec::new();
        loop {
            let event = match self.parser.parse(&mut data, false) {
                Ok(Some(event)) => event,
                Ok(None) | Err(EndOrError::NeedMoreData) => return Ok(events),
                Err(EndOrError::Error(e)) => return Err(e.to_string()),
            };
            let (head_closed, foot) = match &event {
                rxml::RawEvent::ElementHeadClose(_) => (true, false),
                rxml::RawEvent::ElementFoot(_) => (false, true),
                // Whitespace between stanzas would pile up as text of the stream element.
                rxml::RawEvent::Text(..) if self.tree.depth() <= 1 => continue,
                _ => (false, false),
            };
            self.tree.process_event(event).map_err(|e| e.to_string())?;
            if head_closed && self.tree.depth() == 1 {
                self.streams += 1;
                events.push(Written::Opened {
                    first: self.streams == 1,
                });
            } else if foot && self.tree.depth() == 1 {
                if let Some(element) = self.tree.unshift_child() {
                    events.push(Written::Stanza(element));
                }
            } else if foot && self.tree.depth() == 0 {
                events.push(Written::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::body::push_element;
    use super::*;

    fn stanzas(events: &[Written]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                Written::Stanza(el) => {
                    let mut out = Vec::new();
                    push_element(&mut out, el);
                    Some(String::from_utf8(out).expect("utf-8"))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stanzas_written_without_a_namespace_get_jabber_client() {
        let mut reader = Outgoing::new();
        let stream = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                      xmlns:stream='http://etherx.jabber.org/streams' to='d' version='1.0'>";
        let events = reader.feed(stream.as_bytes()).expect("valid");
        assert!(matches!(events[..], [Written::Opened { first: true }]));
        // Split mid-element: the reader waits for the rest.
        let message = "<message to='r@c/n' type='chat' id='1'><body>a &lt; b</body></message> ";
        let (head, tail) = message.split_at(20);
        assert!(reader.feed(head.as_bytes()).expect("valid").is_empty());
        let events = reader.feed(tail.as_bytes()).expect("valid");
        let out = stanzas(&events);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].starts_with("<message xmlns='jabber:client'"),
            "{}",
            out[0]
        );
        assert!(out[0].contains("a &lt; b"), "{}", out[0]);
        let x = "<presence to='r@c/n'><x xmlns='http://jabber.org/protocol/muc'/></presence>";
        let out = stanzas(&reader.feed(x.as_bytes()).expect("valid"));
        assert!(
            out[0].contains("<x xmlns='http://jabber.org/protocol/muc'"),
            "{}",
            out[0]
        );
        let events = reader.feed(b"</stream:stream>").expect("valid");
        assert!(matches!(events[..], [Written::Closed]));
    }

    #[test]
    fn a_restart_is_a_second_stream_in_a_new_document() {
        let mut reader = Outgoing::new();
        let open = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                    xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
        reader.feed(open.as_bytes()).expect("valid");
        reader
            .feed(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AA==</auth>")
            .expect("valid");
        reader.restart();
        let events = reader.feed(open.as_bytes()).expect("valid");
        assert!(matches!(events[..], [Written::Opened { first: false }]));
    }

    #[test]
    fn garbage_from_above_is_an_error_not_a_panic() {
        let mut reader = Outgoing::new();
        assert!(reader.feed(b"<a><b></a>").is_err());
    }
}
