//! The session task: it carries the stanzas the stream above writes in requests, keeps
//! polls open for the server, and writes the answers back in `rid` order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hyper::body::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::stream_error::{DefinedCondition, StreamError};
use tracing::{debug, warn};

use super::body::{self, NS_HTTPBIND, SessionParams, push_element, terminated};
use super::http::{Conn, Http};
use super::reader::{Outgoing, Written};

const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// Beyond `wait`, how long an answer may take before the request counts as failed.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);
/// Payload bytes per request; the rest waits for the next request.
const MAX_PAYLOAD: usize = 256 * 1024;
/// Bytes received but not yet read by the stream above, past which no new empty poll is sent.
const INBOUND_HIGH_WATER: usize = 1024 * 1024;
/// Stanza bytes waiting for a request, past which the stream above is not read: its writes
/// then wait, which pushes back on the link instead of growing this queue.
const OUTGOING_HIGH_WATER: usize = 1024 * 1024;
/// How long after a request that is still unanswered the next one may follow. Requests
/// travel on separate connections, so one sent right after another can reach the server
/// first. Servers must put them back in `rid` order, but ejabberd (23.01 to this day) then
/// leaves the later one unprocessed while it holds the earlier, so stanzas sent just after a
/// poll would wait up to `wait` for it to be answered.
const ORDER_GUARD: Duration = Duration::from_millis(10);
/// After an answer, how long the next empty poll waits for the stream above to answer in
/// turn, so that its reply rides in the request that becomes the poll.
const POLL_DEFER: Duration = Duration::from_millis(10);
/// How long the session waits for the answer to its `terminate`.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the session task stopped.
enum StopReason {
    /// The stream above closed its end or sent `</stream:stream>`.
    Closed,
    /// The session is dead; the reason goes up as a stream error.
    Lost(String),
}

/// One BOSH session, between the stream above and the HTTP connections to the server.
pub(super) struct BoshSession {
    http: Arc<Http>,
    params: SessionParams,
    next_rid: u64,
    next_to_deliver: u64,
    /// Requests sent and not yet answered (retransmissions included).
    unanswered: BTreeSet<u64>,
    /// Kept-alive HTTP connections not carrying a request.
    idle: Vec<Conn>,
    outgoing: Outgoing,
    /// Stanzas from above, serialized, waiting for a request to carry them.
    queue: VecDeque<Vec<u8>>,
    /// Total bytes in `queue`.
    queued: usize,
    /// The stream above restarted; the next request is an `xmpp:restart`.
    restart: bool,
    /// Bytes for the stream above, not yet written to the pipe.
    inbound: Vec<u8>,
    /// Answers (`<body/>`s) that arrived before the answer to an earlier request.
    received: BTreeMap<u64, Element>,
    /// Earliest time for the next empty request when the server does not hold polls.
    poll_not_before: Instant,
    /// When the last request's body was handed to its connection.
    last_sent: Option<Instant>,
}

/// The outcome of one request after its retransmissions.
struct Exchanged {
    rid: u64,
    result: Result<(Element, Conn), String>,
}

type InFlight = FuturesUnordered<Pin<Box<dyn Future<Output = Exchanged> + Send>>>;

impl BoshSession {
    /// A session whose next request is `next_rid`, with nothing sent or received yet.
    fn new(http: Arc<Http>, params: SessionParams, next_rid: u64) -> BoshSession {
        BoshSession {
            http,
            params,
            next_rid,
            next_to_deliver: next_rid,
            unanswered: BTreeSet::new(),
            idle: Vec::new(),
            outgoing: Outgoing::new(),
            queue: VecDeque::new(),
            queued: 0,
            restart: false,
            inbound: Vec::new(),
            received: BTreeMap::new(),
            poll_not_before: Instant::now(),
            last_sent: None,
        }
    }

    /// A session whose first answer, `first`, arrived on `conn`: the stream above gets its
    /// header and that answer's stanzas before anything else.
    pub(super) fn start(
        http: Arc<Http>,
        params: SessionParams,
        next_rid: u64,
        conn: Conn,
        first: Element,
    ) -> Result<BoshSession, String> {
        let mut session = BoshSession::new(http, params, next_rid);
        session.idle.push(conn);
        session.push_stream_header();
        session.deliver(first)?;
        Ok(session)
    }

    /// The session id, for logs.
    pub(super) fn sid(&self) -> &str {
        &self.params.sid
    }

    /// Runs the session until the stream above closes or the session dies.
    pub(super) async fn run(mut self, pipe: DuplexStream) {
        let (mut from_above, mut to_above) = tokio::io::split(pipe);
        let mut in_flight = InFlight::new();
        // Set while the last request's body has not been handed to its connection: the next
        // request waits, so that requests reach the server in `rid` order.
        let mut sending: Option<oneshot::Receiver<()>> = None;
        let mut buf = vec![0u8; 16 * 1024];
        let ending = loop {
            if sending.is_none() {
                sending = self.issue(&mut in_flight);
            }
            let idle_poll_due = self.unanswered.is_empty() && sending.is_none();
            let guarded = sending.is_none().then(|| self.guarded_until()).flatten();
            tokio::select! {
                read = from_above.read(&mut buf), if self.queued < OUTGOING_HIGH_WATER => match read {
                    Ok(0) | Err(_) => break StopReason::Closed,
                    Ok(n) => match self.outgoing.feed(&buf[..n]) {
                        Ok(events) => {
                            if self.take(events) {
                                break StopReason::Closed;
                            }
                        }
                        Err(e) => break StopReason::Lost(format!("unreadable outgoing XML: {e}")),
                    },
                },
                Some(Exchanged { rid, result }) = in_flight.next() => {
                    self.unanswered.remove(&rid);
                    let settled = result.and_then(|(body, conn)| {
                        if self.idle.len() < self.params.requests {
                            self.idle.push(conn);
                        }
                        self.settle(rid, body)
                    });
                    if let Err(reason) = settled {
                        break StopReason::Lost(reason);
                    }
                }
                written = to_above.write(&self.inbound), if !self.inbound.is_empty() => match written {
                    Ok(n) => { self.inbound.drain(..n); }
                    Err(_) => break StopReason::Closed,
                },
                _ = wait_sent(&mut sending) => {
                    sending = None;
                    self.last_sent = Some(Instant::now());
                }
                _ = tokio::time::sleep_until(guarded.unwrap_or_else(Instant::now)), if guarded.is_some() => {}
                _ = tokio::time::sleep_until(self.poll_not_before), if idle_poll_due && self.poll_not_before > Instant::now() => {}
            }
        };
        drop(in_flight);
        match ending {
            StopReason::Closed => self.terminate().await,
            StopReason::Lost(reason) => {
                warn!(%reason, "BOSH session lost");
                let error = StreamError::new(
                    DefinedCondition::ConnectionTimeout,
                    "en",
                    format!("BOSH session lost: {reason}"),
                );
                push_element(&mut self.inbound, &Element::from(error));
                self.inbound.extend_from_slice(b"</stream:stream>");
                // The stream above may already be gone; it gets a moment to read the cause.
                let _ = tokio::time::timeout(TERMINATE_TIMEOUT, async {
                    to_above.write_all(&self.inbound).await?;
                    to_above.shutdown().await
                })
                .await;
            }
        }
        debug!("BOSH session task ended");
    }

    /// Queues what the stream above wrote; true once it closed its stream.
    fn take(&mut self, events: Vec<Written>) -> bool {
        for event in events {
            match event {
                Written::Opened { first: true } => {}
                Written::Opened { first: false } => {
                    // The server's features may come back on any held request, even one sent
                    // before the restart: the stream above gets its new header now.
                    self.restart = true;
                    self.push_stream_header();
                }
                Written::Stanza(element) => {
                    let mut bytes = Vec::new();
                    push_element(&mut bytes, &element);
                    self.enqueue(bytes);
                }
                Written::Closed => return true,
            }
        }
        false
    }

    /// Queues one serialized stanza for the next request.
    fn enqueue(&mut self, stanza: Vec<u8>) {
        self.queued += stanza.len();
        self.queue.push_back(stanza);
    }

    /// Sends the next request if one is due and allowed; returns the signal that its body
    /// has been handed to a connection.
    fn issue(&mut self, in_flight: &mut InFlight) -> Option<oneshot::Receiver<()>> {
        // XEP-0124 §9: no rid beyond the window that starts at the oldest unanswered request,
        // even while that one is being retransmitted; the server keeps only that many
        // answers to replay.
        if self
            .unanswered
            .first()
            .is_some_and(|&oldest| self.next_rid >= oldest + self.params.requests as u64)
        {
            return None;
        }
        if self.guarded_until().is_some() {
            return None;
        }
        let has_payload = self.restart || !self.queue.is_empty();
        let poll_due = self.unanswered.is_empty()
            && self.inbound.len() < INBOUND_HIGH_WATER
            && Instant::now() >= self.poll_not_before;
        if !has_payload && !poll_due {
            return None;
        }
        let rid = self.next_rid;
        self.next_rid += 1;
        self.unanswered.insert(rid);
        let body = if std::mem::take(&mut self.restart) {
            body::restart(rid, &self.params.sid, &self.http.domain)
        } else {
            self.payload_body(rid, None)
        };
        if self.params.hold == 0 && !has_payload {
            self.poll_not_before = Instant::now() + self.params.polling;
        }
        let (sent, sent_rx) = oneshot::channel();
        let http = self.http.clone();
        let conn = self.idle.pop();
        let timeout = self.params.wait + ANSWER_MARGIN;
        in_flight.push(Box::pin(async move {
            let result = http
                .exchange(conn, Bytes::from(body), Some(sent), timeout)
                .await;
            Exchanged { rid, result }
        }));
        Some(sent_rx)
    }

    /// Until when queued stanzas wait for the request before them to reach the server first
    /// ([`ORDER_GUARD`]); `None` when they need not wait.
    fn guarded_until(&self) -> Option<Instant> {
        let has_payload = self.restart || !self.queue.is_empty();
        if self.unanswered.is_empty() || !has_payload {
            return None;
        }
        let until = self.last_sent? + ORDER_GUARD;
        (until > Instant::now()).then_some(until)
    }

    /// A body carrying as many queued stanzas as fit, typed `kind` if given.
    fn payload_body(&mut self, rid: u64, kind: Option<&str>) -> Vec<u8> {
        let type_attr = kind.map(|k| format!(" type='{k}'")).unwrap_or_default();
        let mut body = format!(
            "<body xmlns='{NS_HTTPBIND}' rid='{rid}' sid='{}'{type_attr}>",
            self.params.sid
        )
        .into_bytes();
        let mut carried = 0;
        while let Some(next) = self.queue.front() {
            if carried > 0 && carried + next.len() > MAX_PAYLOAD {
                break;
            }
            carried += next.len();
            if let Some(stanza) = self.queue.pop_front() {
                body.extend_from_slice(&stanza);
            }
        }
        self.queued -= carried;
        body.extend_from_slice(b"</body>");
        body
    }

    /// Takes the answer to `rid` and passes answers on in `rid` order (XEP-0124 §9.1).
    fn settle(&mut self, rid: u64, body: Element) -> Result<(), String> {
        self.poll_not_before = self.poll_not_before.max(Instant::now() + POLL_DEFER);
        self.received.insert(rid, body);
        while let Some(body) = self.received.remove(&self.next_to_deliver) {
            self.next_to_deliver += 1;
            self.deliver(body)?;
        }
        Ok(())
    }

    /// Starts a stream for the stream above, as a server would.
    fn push_stream_header(&mut self) {
        self.inbound.extend_from_slice(
            format!(
                "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{NS_STREAMS}' \
                 id='{}' version='1.0'>",
                ns::JABBER_CLIENT,
                self.params.sid
            )
            .as_bytes(),
        );
    }

    /// Writes an answer's stanzas for the stream above; an error if it ended the session.
    fn deliver(&mut self, body: Element) -> Result<(), String> {
        for child in body.children() {
            if child.is("success", ns::SASL) {
                // tokio-xmpp opens a new stream once it reads this; expect a new document.
                self.outgoing.restart();
            }
            push_element(&mut self.inbound, child);
        }
        match terminated(&body) {
            Some(condition) => Err(format!("the server ended the session ({condition})")),
            None => Ok(()),
        }
    }

    /// Ends the session politely, carrying any stanzas still queued (the last presences).
    async fn terminate(mut self) {
        let rid = self.next_rid;
        let body = self.payload_body(rid, Some("terminate"));
        let conn = self.idle.pop();
        let outcome = tokio::time::timeout(
            TERMINATE_TIMEOUT,
            self.http
                .exchange(conn, Bytes::from(body), None, TERMINATE_TIMEOUT),
        )
        .await;
        match outcome {
            Ok(Ok(_)) => debug!("BOSH session terminated"),
            Ok(Err(e)) => debug!(error = %e, "BOSH terminate failed"),
            Err(_) => debug!("BOSH terminate unanswered"),
        }
    }
}

async fn wait_sent(sending: &mut Option<oneshot::Receiver<()>>) {
    match sending {
        // A dropped sender means the attempt failed before sending: nothing to wait for.
        Some(rx) => {
            let _ = rx.await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
