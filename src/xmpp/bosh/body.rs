//! The `<body/>` wrapper of XEP-0124: the requests built for the session and what its
//! answers say about it.

use std::time::Duration;

use tokio_xmpp::minidom::Element;
use tracing::warn;

use super::{HOLD, WAIT};

/// The namespace of `<body/>`.
pub(super) const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
const NS_XBOSH: &str = "urn:xmpp:xbosh";

/// The attributes of the session creation answer that shape the session.
pub(super) struct SessionParams {
    /// The session id the server chose.
    pub(super) sid: String,
    /// Requests that may be in flight at once.
    pub(super) requests: usize,
    /// The hold the server granted; with 0 it answers polls at once.
    pub(super) hold: u32,
    /// The wait the server granted.
    pub(super) wait: Duration,
    /// Minimum spacing of empty requests, when polls are not held.
    pub(super) polling: Duration,
}

impl SessionParams {
    /// Reads the creation answer, capping what the server granted at what was asked.
    pub(super) fn from_creation(body: &Element) -> Result<SessionParams, String> {
        let sid = body.attr("sid").ok_or("no sid")?;
        // The sid goes into every request as an attribute: refuse anything needing escapes.
        if sid.is_empty()
            || !sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:~".contains(&b))
        {
            return Err(format!("unusable sid `{sid}`"));
        }
        let number = |name: &str| -> Result<Option<u64>, String> {
            body.attr(name)
                .map(|v| {
                    v.parse()
                        .map_err(|_| format!("{name}=`{v}` is not a number"))
                })
                .transpose()
        };
        let hold = number("hold")?.map_or(HOLD, |h| h.min(u64::from(HOLD)) as u32);
        let requests = number("requests")?
            .unwrap_or(u64::from(hold) + 1)
            .clamp(1, 8) as usize;
        let wait = number("wait")?.map_or(WAIT, |w| Duration::from_secs(w.min(WAIT.as_secs())));
        let polling = Duration::from_secs(number("polling")?.unwrap_or(0).min(60));
        Ok(SessionParams {
            sid: sid.to_owned(),
            requests,
            hold,
            wait,
            polling,
        })
    }
}

/// The session creation request (XEP-0124 §7.1, XEP-0206 §4) for `domain`.
pub(super) fn creation(rid: u64, domain: &str) -> String {
    format!(
        "<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' content='text/xml; charset=utf-8' \
         hold='{HOLD}' rid='{rid}' to='{}' ver='1.11' wait='{}' xml:lang='en' \
         xmpp:version='1.0'/>",
        escape(domain),
        WAIT.as_secs()
    )
}

/// A restart request; XEP-0206 §5 has it carry nothing else.
pub(super) fn restart(rid: u64, sid: &str, domain: &str) -> Vec<u8> {
    format!(
        "<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' rid='{rid}' sid='{sid}' \
         to='{}' xml:lang='en' xmpp:restart='true'/>",
        escape(domain)
    )
    .into_bytes()
}

/// Parses an answer, which must be a BOSH `<body/>`.
pub(super) fn parse(bytes: &[u8]) -> Result<Element, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "answer is not UTF-8")?;
    let body: Element = text
        .parse()
        .map_err(|e| format!("answer is not XML ({e})"))?;
    if !body.is("body", NS_HTTPBIND) {
        return Err(format!("answer is <{}/>, not a BOSH <body/>", body.name()));
    }
    Ok(body)
}

/// The condition of a `type='terminate'` body, if it is one.
pub(super) fn terminated(body: &Element) -> Option<String> {
    (body.attr("type") == Some("terminate"))
        .then(|| body.attr("condition").unwrap_or("no condition").to_owned())
}

/// Serializes `element` with its namespace declared on itself, so that it stands alone
/// inside `<body/>` (a stanza tokio-xmpp wrote without `xmlns` gets `jabber:client`).
pub(super) fn push_element(out: &mut Vec<u8>, element: &Element) {
    if let Err(e) = element.write_to(out) {
        // Only elements parsed or built here reach this point, so this does not happen.
        warn!(error = %e, "cannot serialize an element; dropped");
    }
}

/// Escapes text for a single-quoted XML attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_parameters_are_bounded_and_the_sid_checked() {
        let body: Element = format!(
            "<body xmlns='{NS_HTTPBIND}' sid='abc-1' requests='2' hold='1' wait='60' polling='5'/>"
        )
        .parse()
        .expect("xml");
        let p = SessionParams::from_creation(&body).expect("valid");
        assert_eq!((p.sid.as_str(), p.requests, p.hold), ("abc-1", 2, 1));
        assert_eq!(p.wait, WAIT, "a longer wait than asked is capped");
        let bad: Element = format!("<body xmlns='{NS_HTTPBIND}' sid=\"a'b\"/>")
            .parse()
            .expect("xml");
        assert!(SessionParams::from_creation(&bad).is_err());
        let no_sid: Element =
            format!("<body xmlns='{NS_HTTPBIND}' type='terminate' condition='host-unknown'/>")
                .parse()
                .expect("xml");
        assert_eq!(terminated(&no_sid).as_deref(), Some("host-unknown"));
    }

    #[test]
    fn attribute_text_is_escaped() {
        assert_eq!(escape("a'b&<c>\""), "a&apos;b&amp;&lt;c&gt;&quot;");
    }
}
