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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rxml::Parse;
use rxml::error::EndOrError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_util::task::TaskTracker;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::minidom::tree_builder::TreeBuilder;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::stream_error::{DefinedCondition, StreamError};
use tracing::{Instrument, debug, warn};

use super::LinkError;
use super::connect::{ConnectSettings, Io, tls_config};
use crate::config::BoshUrl;
use crate::telemetry;

const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
const NS_XBOSH: &str = "urn:xmpp:xbosh";
const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// The longest the server may hold a poll. Shorter than the link's read timeout, so an idle
/// session still produces traffic before the link starts pinging.
const WAIT: Duration = Duration::from_secs(30);
/// Polls the server may hold; with one held, a second request is free to carry stanzas.
const HOLD: u32 = 1;
/// Beyond `wait`, how long an answer may take before the request counts as failed.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);
/// Tries per request: the first and its retransmissions with the same `rid`.
const ATTEMPTS: u32 = 4;
/// Delay before the first retransmission; doubled for each next one.
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// Payload bytes per request; the rest waits for the next request.
const MAX_PAYLOAD: usize = 256 * 1024;
/// Largest answer accepted.
const MAX_ANSWER: usize = 8 * 1024 * 1024;
/// Bytes received but not yet read by the stream above, past which no new empty poll is sent.
const INBOUND_HIGH_WATER: usize = 1024 * 1024;
/// Stanza bytes waiting for a request, past which the stream above is not read: its writes
/// then wait, which pushes back on the link instead of growing this queue.
const OUTGOING_HIGH_WATER: usize = 1024 * 1024;
/// Buffer of the in-memory pipe in each direction.
const PIPE_BUFFER: usize = 64 * 1024;
/// How long the session waits for the answer to its `terminate`.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(2);

/// Creates a BOSH session at `url` and returns the stream to log in over. The session task
/// is spawned on `tracker` and ends when the stream is dropped or the session dies.
pub async fn open(
    settings: &ConnectSettings,
    url: &BoshUrl,
    tracker: &TaskTracker,
) -> Result<Io, LinkError> {
    let http = Arc::new(Http::new(url, settings)?);
    let mut conn = http.connect().await.map_err(LinkError::Connect)?;
    // Random, and far below 2^53 so that it never wraps within a session (XEP-0124 §14.1).
    let first_rid = rand::random_range(1u64 << 20..1u64 << 40);
    let creation = format!(
        "<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' content='text/xml; charset=utf-8' \
         hold='{HOLD}' rid='{first_rid}' to='{}' ver='1.11' wait='{}' xml:lang='en' \
         xmpp:version='1.0'/>",
        escape(&http.domain),
        WAIT.as_secs()
    );
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
    let mut session = Session::new(http, params, first_rid + 1);
    session.idle.push(conn);
    session.push_stream_header();
    session.deliver(body).map_err(LinkError::Connect)?;
    let span = tracing::info_span!("bosh", sid = %session.params.sid);
    tracker.spawn(session.run(theirs).instrument(span));
    Ok(Box::new(BufStream::new(ours)))
}

/// The attributes of the session creation answer that shape the session.
struct SessionParams {
    sid: String,
    /// Requests that may be in flight at once.
    requests: usize,
    /// The hold the server granted; with 0 it answers polls at once.
    hold: u32,
    /// The wait the server granted.
    wait: Duration,
    /// Minimum spacing of empty requests, when polls are not held.
    polling: Duration,
}

impl SessionParams {
    fn from_creation(body: &Element) -> Result<SessionParams, String> {
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

/// The condition of a `type='terminate'` body, if it is one.
fn terminated(body: &Element) -> Option<String> {
    (body.attr("type") == Some("terminate"))
        .then(|| body.attr("condition").unwrap_or("no condition").to_owned())
}

/// Why the session task stopped.
enum Ending {
    /// The stream above closed its end or sent `</stream:stream>`.
    Closed,
    /// The session is dead; the reason goes up as a stream error.
    Lost(String),
}

struct Session {
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
}

/// The outcome of one request after its retransmissions.
struct Exchanged {
    rid: u64,
    result: Result<(Element, Conn), String>,
}

type InFlight = FuturesUnordered<Pin<Box<dyn Future<Output = Exchanged> + Send>>>;

impl Session {
    /// A session whose next request is `next_rid`, with nothing sent or received yet.
    fn new(http: Arc<Http>, params: SessionParams, next_rid: u64) -> Session {
        Session {
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
        }
    }

    async fn run(mut self, pipe: DuplexStream) {
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
            tokio::select! {
                read = from_above.read(&mut buf), if self.queued < OUTGOING_HIGH_WATER => match read {
                    Ok(0) | Err(_) => break Ending::Closed,
                    Ok(n) => match self.outgoing.feed(&buf[..n]) {
                        Ok(events) => {
                            if self.take(events) {
                                break Ending::Closed;
                            }
                        }
                        Err(e) => break Ending::Lost(format!("unreadable outgoing XML: {e}")),
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
                        break Ending::Lost(reason);
                    }
                }
                written = to_above.write(&self.inbound), if !self.inbound.is_empty() => match written {
                    Ok(n) => { self.inbound.drain(..n); }
                    Err(_) => break Ending::Closed,
                },
                _ = wait_sent(&mut sending) => sending = None,
                _ = tokio::time::sleep_until(self.poll_not_before), if idle_poll_due && self.poll_not_before > Instant::now() => {}
            }
        };
        drop(in_flight);
        match ending {
            Ending::Closed => self.terminate().await,
            Ending::Lost(reason) => {
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
            // XEP-0206 §5: a restart request carries nothing else.
            format!(
                "<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' rid='{rid}' sid='{}' \
                 to='{}' xml:lang='en' xmpp:restart='true'/>",
                self.params.sid,
                escape(&self.http.domain)
            )
            .into_bytes()
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

/// Serializes `element` with its namespace declared on itself, so that it stands alone
/// inside `<body/>` (a stanza tokio-xmpp wrote without `xmlns` gets `jabber:client`).
fn push_element(out: &mut Vec<u8>, element: &Element) {
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

/// What the stream above wrote.
enum Written {
    /// A stream header: the first opens the session, the next ones are restarts.
    Opened { first: bool },
    /// A top-level element.
    Stanza(Element),
    /// `</stream:stream>`.
    Closed,
}

/// An incremental reader of the XML stream written by tokio-xmpp.
struct Outgoing {
    parser: rxml::RawParser,
    tree: TreeBuilder,
    streams: u32,
}

impl Outgoing {
    fn new() -> Self {
        Outgoing {
            parser: rxml::RawParser::new(),
            tree: TreeBuilder::new(),
            streams: 0,
        }
    }

    /// After a restart the writer starts a new document, XML declaration and all.
    fn restart(&mut self) {
        self.parser = rxml::RawParser::new();
        self.tree = TreeBuilder::new();
    }

    fn feed(&mut self, mut data: &[u8]) -> Result<Vec<Written>, String> {
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

/// The HTTP side: where to connect and how.
struct Http {
    url: BoshUrl,
    domain: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
}

/// One kept-alive HTTP/1.1 connection. Its driver is polled only while a request is being
/// exchanged, so no task outlives the session.
struct Conn {
    sender: http1::SendRequest<OnceBody>,
    driver: Pin<Box<Driver>>,
}

/// The future that runs one HTTP/1.1 connection.
type Driver = http1::Connection<TokioIo<Box<dyn HttpIo>>, OnceBody>;

trait HttpIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> HttpIo for T {}

/// A raw HTTP answer.
struct RawAnswer {
    status: StatusCode,
    body: Bytes,
}

impl RawAnswer {
    fn into_body(self) -> Result<Element, String> {
        if !self.status.is_success() {
            return Err(format!("HTTP {}", self.status));
        }
        let text = std::str::from_utf8(&self.body).map_err(|_| "answer is not UTF-8")?;
        let body: Element = text
            .parse()
            .map_err(|e| format!("answer is not XML ({e})"))?;
        if !body.is("body", NS_HTTPBIND) {
            return Err(format!("answer is <{}/>, not a BOSH <body/>", body.name()));
        }
        Ok(body)
    }
}

impl Http {
    fn new(url: &BoshUrl, settings: &ConnectSettings) -> Result<Http, LinkError> {
        let tls = if url.is_tls() {
            let config = tls_config(settings.ca_file.as_deref())?;
            let name = ServerName::try_from(url.host().to_owned()).map_err(|e| {
                LinkError::Connect(format!("`{}` is not a TLS server name: {e}", url.host()))
            })?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Http {
            url: url.clone(),
            domain: settings.jid.domain().to_string(),
            tls,
            connect_timeout: settings.connect_timeout,
        })
    }

    async fn connect(&self) -> Result<Conn, String> {
        let address = (self.url.host(), self.url.port());
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| {
                format!(
                    "{} did not accept within {:?}",
                    self.url, self.connect_timeout
                )
            })?
            .map_err(|e| format!("cannot reach {}: {e}", self.url))?;
        // Stanzas are small and latency-bound.
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn HttpIo> = match &self.tls {
            Some((connector, name)) => Box::new(
                tokio::time::timeout(self.connect_timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| format!("TLS handshake with {} timed out", self.url))?
                    .map_err(|e| format!("TLS handshake with {} failed: {e}", self.url))?,
            ),
            None => Box::new(tcp),
        };
        let (sender, driver) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP handshake with {} failed: {e}", self.url))?;
        Ok(Conn {
            sender,
            driver: Box::pin(driver),
        })
    }

    fn request(&self, body: Bytes, sent: Option<oneshot::Sender<()>>) -> Request<OnceBody> {
        let mut request = Request::new(OnceBody {
            data: Some(body),
            sent,
        });
        *request.method_mut() = hyper::Method::POST;
        *request.uri_mut() = self
            .url
            .path_and_query()
            .parse()
            .unwrap_or_else(|_| hyper::Uri::from_static("/"));
        let headers = request.headers_mut();
        if let Ok(host) = self.url.authority().parse() {
            headers.insert(hyper::header::HOST, host);
        }
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        request
    }

    /// Sends `body` (one `rid`) until it is answered, retransmitting on a fresh connection
    /// after a failed exchange as XEP-0124 §14.3 allows; a 4xx status is final.
    async fn exchange(
        &self,
        mut conn: Option<Conn>,
        body: Bytes,
        mut sent: Option<oneshot::Sender<()>>,
        timeout: Duration,
    ) -> Result<(Element, Conn), String> {
        let mut failure = String::new();
        let mut attempt = 0;
        while attempt < ATTEMPTS {
            if attempt > 0 {
                metrics::counter!(telemetry::BOSH_REQUESTS, "outcome" => "retransmitted")
                    .increment(1);
                debug!(%failure, attempt, "retransmitting BOSH request");
                tokio::time::sleep(RETRY_DELAY * 2u32.pow(attempt - 1)).await;
            }
            let reused = conn.is_some();
            let mut c = match conn.take() {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(e) => {
                        failure = e;
                        attempt += 1;
                        continue;
                    }
                },
            };
            let request = self.request(body.clone(), sent.take());
            let outcome = tokio::time::timeout(timeout, c.exchange(request)).await;
            if reused && matches!(outcome, Ok(Err(Unsent(_)))) {
                // The server closed an idle kept-alive connection: not a failed attempt.
                continue;
            }
            attempt += 1;
            match outcome {
                Ok(Ok(answer)) if answer.status.is_client_error() => {
                    metrics::counter!(telemetry::BOSH_REQUESTS, "outcome" => "failed").increment(1);
                    return Err(format!("{} answered HTTP {}", self.url, answer.status));
                }
                Ok(Ok(answer)) if answer.status.is_success() => {
                    let body = answer.into_body().map_err(|e| {
                        metrics::counter!(telemetry::BOSH_REQUESTS, "outcome" => "failed")
                            .increment(1);
                        format!("{}: {e}", self.url)
                    })?;
                    metrics::counter!(telemetry::BOSH_REQUESTS, "outcome" => "ok").increment(1);
                    return Ok((body, c));
                }
                Ok(Ok(answer)) => failure = format!("HTTP {}", answer.status),
                Ok(Err(Unsent(e) | Failed(e))) => failure = e,
                Err(_) => failure = format!("no answer within {timeout:?}"),
            }
        }
        metrics::counter!(telemetry::BOSH_REQUESTS, "outcome" => "failed").increment(1);
        Err(format!("{}: {failure} ({ATTEMPTS} attempts)", self.url))
    }
}

/// Why an exchange on one connection failed.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    /// The request never left: the connection was already closed.
    #[error("{0}")]
    Unsent(String),
    /// The request may have reached the server.
    #[error("{0}")]
    Failed(String),
}
use ExchangeError::{Failed, Unsent};

impl Conn {
    async fn exchange(&mut self, request: Request<OnceBody>) -> Result<RawAnswer, ExchangeError> {
        let Conn { sender, driver } = self;
        let closed = |ended: hyper::Result<()>| match ended {
            Ok(()) => "the server closed the connection".to_owned(),
            Err(e) => format!("connection failed: {e}"),
        };
        tokio::select! {
            ready = sender.ready() => ready.map_err(|e| Unsent(e.to_string()))?,
            ended = driver.as_mut() => return Err(Unsent(closed(ended))),
        }
        let work = async {
            let response = sender.send_request(request).await.map_err(|e| {
                if e.is_canceled() {
                    Unsent(e.to_string())
                } else {
                    Failed(e.to_string())
                }
            })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| Failed(format!("reading the answer failed: {e}")))?
                .to_bytes();
            Ok(RawAnswer { status, body })
        };
        tokio::select! {
            answer = work => answer,
            ended = driver.as_mut() => Err(Failed(closed(ended))),
        }
    }
}

/// A request body that reports when the connection has taken it.
struct OnceBody {
    data: Option<Bytes>,
    sent: Option<oneshot::Sender<()>>,
}

impl Body for OnceBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let data = self.data.take();
        if let Some(sent) = self.sent.take() {
            let _ = sent.send(());
        }
        Poll::Ready(data.map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
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

    fn session() -> Session {
        let url = BoshUrl::parse("http://127.0.0.1:1/http-bind").expect("valid");
        let settings = ConnectSettings {
            jid: "bridge@converja.test".parse().expect("valid"),
            password: crate::config::Secret::new("x"),
            endpoint: super::super::Endpoint::Bosh(url.clone()),
            ca_file: None,
            connect_timeout: Duration::from_secs(1),
            resource: "r".into(),
        };
        let params = SessionParams {
            sid: "s1".into(),
            requests: 2,
            hold: 1,
            wait: WAIT,
            polling: Duration::ZERO,
        };
        let http = Http::new(&url, &settings).expect("plain http");
        Session::new(Arc::new(http), params, 11)
    }

    fn answer(payload: &str) -> Element {
        format!("<body xmlns='{NS_HTTPBIND}'>{payload}</body>")
            .parse()
            .expect("xml")
    }

    #[test]
    fn answers_are_passed_on_in_rid_order_whatever_order_they_arrive_in() {
        let mut s = session();
        let first = "<message xmlns='jabber:client' id='a'/>";
        let second = "<message xmlns='jabber:client' id='b'/>";
        s.settle(12, answer(second)).expect("alive");
        assert!(s.inbound.is_empty(), "rid 12 waits for rid 11");
        s.settle(11, answer(first)).expect("alive");
        let text = String::from_utf8(s.inbound.clone()).expect("utf-8");
        let (a, b) = (text.find("id='a'"), text.find("id='b'"));
        assert!(a.is_some() && a < b, "{text}");
        assert!(s.received.is_empty());
    }

    #[test]
    fn a_terminate_answer_ends_the_session_with_its_condition() {
        let mut s = session();
        let body: Element =
            format!("<body xmlns='{NS_HTTPBIND}' type='terminate' condition='item-not-found'/>")
                .parse()
                .expect("xml");
        let err = s.settle(11, body).expect_err("ended");
        assert!(err.contains("item-not-found"), "{err}");
    }

    #[test]
    fn no_rid_goes_beyond_the_window_of_the_oldest_unanswered_request() {
        let mut s = session();
        let mut in_flight = InFlight::new();
        let queue_one = |s: &mut Session| s.enqueue(b"<presence xmlns='jabber:client'/>".to_vec());
        queue_one(&mut s);
        assert!(s.issue(&mut in_flight).is_some(), "rid 11");
        queue_one(&mut s);
        assert!(s.issue(&mut in_flight).is_some(), "rid 12");
        // 12 is answered while 11 is still being retransmitted.
        s.unanswered.remove(&12);
        queue_one(&mut s);
        assert!(s.issue(&mut in_flight).is_none(), "rid 13 waits for rid 11");
        s.unanswered.remove(&11);
        assert!(
            s.issue(&mut in_flight).is_some(),
            "rid 13 once 11 is answered"
        );
        assert_eq!(s.unanswered.iter().copied().collect::<Vec<_>>(), vec![13]);
    }

    #[test]
    fn queued_stanzas_are_batched_up_to_the_payload_limit() {
        let mut s = session();
        let stanza = |n: usize| format!("<message xmlns='jabber:client' id='{n}'/>");
        for n in 0..3 {
            s.enqueue(stanza(n).into_bytes());
        }
        let body = String::from_utf8(s.payload_body(11, None)).expect("utf-8");
        assert!(body.starts_with(&format!("<body xmlns='{NS_HTTPBIND}' rid='11' sid='s1'>")));
        assert_eq!(body.matches("<message").count(), 3, "{body}");
        assert_eq!((s.queue.len(), s.queued), (0, 0));
        let big = "x".repeat(MAX_PAYLOAD);
        for _ in 0..2 {
            s.enqueue(big.clone().into_bytes());
        }
        let body = s.payload_body(12, Some("terminate"));
        assert!(
            body.len() < 2 * MAX_PAYLOAD,
            "one oversized stanza per body"
        );
        assert_eq!(s.queue.len(), 1);
        assert_eq!(s.queued, MAX_PAYLOAD);
    }

    #[test]
    fn attribute_text_is_escaped() {
        assert_eq!(escape("a'b&<c>\""), "a&apos;b&amp;&lt;c&gt;&quot;");
    }
}
