//! The HTTP side of the session: HTTP/1.1 connections, plain or TLS, kept alive between
//! requests, and one request's exchange with its retransmissions.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_xmpp::minidom::Element;
use tracing::debug;

use super::super::LinkError;
use super::super::connect::{ConnectSettings, tls_config};
use super::body;
use crate::config::HttpUrl;
use crate::telemetry;

/// Tries per request: the first and its retransmissions with the same `rid`.
const ATTEMPTS: u32 = 4;
/// Delay before the first retransmission; doubled for each next one.
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// Largest answer accepted.
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// The HTTP side: where to connect and how.
pub(super) struct Http {
    url: HttpUrl,
    /// The XMPP domain the session is for.
    pub(super) domain: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
}

/// One kept-alive HTTP/1.1 connection. Its driver is polled only while a request is being
/// exchanged, so no task outlives the session.
pub(super) struct Conn {
    sender: http1::SendRequest<OnceBody>,
    driver: Pin<Box<Driver>>,
}

/// The future that runs one HTTP/1.1 connection.
type Driver = http1::Connection<TokioIo<Box<dyn HttpIo>>, OnceBody>;

trait HttpIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> HttpIo for T {}

/// A raw HTTP answer.
pub(super) struct RawAnswer {
    pub(super) status: StatusCode,
    body: Bytes,
}

impl RawAnswer {
    pub(super) fn into_body(self) -> Result<Element, String> {
        if !self.status.is_success() {
            return Err(format!("HTTP {}", self.status));
        }
        body::parse(&self.body)
    }
}

impl Http {
    pub(super) fn new(url: &HttpUrl, settings: &ConnectSettings) -> Result<Http, LinkError> {
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

    pub(super) async fn connect(&self) -> Result<Conn, String> {
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

    pub(super) fn request(
        &self,
        body: Bytes,
        sent: Option<oneshot::Sender<()>>,
    ) -> Request<OnceBody> {
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
    pub(super) async fn exchange(
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
pub(super) enum ExchangeError {
    /// The request never left: the connection was already closed.
    #[error("{0}")]
    Unsent(String),
    /// The request may have reached the server.
    #[error("{0}")]
    Failed(String),
}
use ExchangeError::{Failed, Unsent};

impl Conn {
    pub(super) async fn exchange(
        &mut self,
        request: Request<OnceBody>,
    ) -> Result<RawAnswer, ExchangeError> {
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
pub(super) struct OnceBody {
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
