//! XMPP over BOSH (XEP-0124, XEP-0206) presented as a byte stream.
//!
//! tokio-xmpp's SASL, stream restart and resource binding want a socket. [`open`] creates a
//! BOSH session and hands back one end of an in-memory pipe; a session task on the other end
//! reads the XML stream tokio-xmpp writes, sends its stanzas as HTTP requests, and writes the
//! stanzas of the answers back as an XML stream. Everything above (login, the link, rooms,
//! pending requests) runs unchanged over either transport.
//!
//! A dead session (a `terminate` answer, an HTTP error, a request that fails every
//! retransmission) ends the stream with a `<stream:error/>` naming the cause, which the link
//! treats like any lost connection.

mod body;
mod http;
mod reader;
mod session;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufStream;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug};

use super::LinkError;
use super::connect::{ConnectSettings, Io};
use crate::config::HttpUrl;
use body::{SessionParams, terminated};
use http::Http;
use session::BoshSession;

/// The longest the server may hold a poll. Shorter than the link's read timeout, so an idle
/// session still produces traffic before the link starts pinging.
const WAIT: Duration = Duration::from_secs(30);
/// Polls the server may hold; with one held, a second request is free to carry stanzas.
const HOLD: u32 = 1;
/// Buffer of the in-memory pipe in each direction.
const PIPE_BUFFER: usize = 64 * 1024;

/// Creates a BOSH session at `url` and returns the stream to log in over. The session task
/// is spawned on `tracker` and ends when the stream is dropped or the session dies.
pub(super) async fn open(
    settings: &ConnectSettings,
    url: &HttpUrl,
    tracker: &TaskTracker,
) -> Result<Io, LinkError> {
    let http = Arc::new(Http::new(url, settings)?);
    let mut conn = http.connect().await.map_err(LinkError::Connect)?;
    // Random, and far below 2^53 so that it never wraps within a session (XEP-0124 §14.1).
    let first_rid = rand::random_range(1u64 << 20..1u64 << 40);
    let creation = body::creation(first_rid, &http.domain);
    let answer = tokio::time::timeout(
        settings.connect_timeout,
        conn.exchange(http.request(creation.into(), None)),
    )
    .await
    .map_err(|_| {
        LinkError::Connect(format!(
            "{url} did not answer the session request within {:?}",
            settings.connect_timeout
        ))
    })?
    .map_err(|e| LinkError::Connect(format!("{url}: {e}")))?;
    let body = answer
        .into_body()
        .map_err(|e| LinkError::Connect(format!("{url}: {e}")))?;
    if let Some(condition) = terminated(&body) {
        return Err(LinkError::Connect(format!(
            "{url} refused the session ({condition})"
        )));
    }
    let params = SessionParams::from_creation(&body).map_err(|e| {
        LinkError::Connect(format!("{url} answered the session request badly: {e}"))
    })?;
    debug!(sid = %params.sid, requests = params.requests, wait = ?params.wait, "BOSH session created");

    let (ours, theirs) = tokio::io::duplex(PIPE_BUFFER);
    let session =
        BoshSession::start(http, params, first_rid + 1, conn, body).map_err(LinkError::Connect)?;
    let span = tracing::info_span!("bosh", sid = %session.sid());
    tracker.spawn(session.run(theirs).instrument(span));
    Ok(Box::new(BufStream::new(ours)))
}
