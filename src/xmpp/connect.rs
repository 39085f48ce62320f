//! Opening one authenticated, resource-bound XMPP stream: TCP with Nagle off and STARTTLS with
//! rustls, or a BOSH session; then SASL and resource binding, the same over both. Each step
//! has the connect timeout.

use std::borrow::Cow;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, pki_types::ServerName};
use tokio_util::task::TaskTracker;
use tokio_xmpp::connect::AsyncReadAndWrite;
use tokio_xmpp::jid::{BareJid, FullJid};
use tokio_xmpp::parsers::bind::{BindQuery, BindResponse};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::starttls;
use tokio_xmpp::parsers::stream_features::StreamFeatures;
use tokio_xmpp::xmlstream::{
    ReadError, StreamHeader, Timeouts, XmppStream, XmppStreamElement, initiate_stream,
};
use tokio_xmpp::{Stanza, parsers::ns};

use super::LinkError;
use crate::config::{Endpoint, Secret, TlsMode, XmppConfig};

/// The transport under an XML stream, whatever it is (TCP, TLS, BOSH).
pub type Io = Box<dyn AsyncReadAndWrite + Send + 'static>;

/// An established stream, ready for stanzas.
pub type Stream = XmppStream<Io>;

/// Silence on the stream after which the bridge pings the server, and the time it then waits
/// for any data before declaring the connection dead. Short enough that a half-open TCP
/// connection is noticed within a minute and a half.
pub const TIMEOUTS: Timeouts = Timeouts {
    read_timeout: Duration::from_secs(60),
    response_timeout: Duration::from_secs(30),
};

/// Everything needed to (re)open the stream.
#[derive(Clone, Debug)]
pub struct ConnectSettings {
    /// The account.
    pub jid: BareJid,
    /// Its password.
    pub password: Secret,
    /// The server.
    pub endpoint: Endpoint,
    /// Extra CA certificate (PEM).
    pub ca_file: Option<std::path::PathBuf>,
    /// Bound on each step of the handshake.
    pub connect_timeout: Duration,
    /// Resource to ask the server for.
    pub resource: String,
    /// How often to check, per room, that the server still has us in it.
    pub self_ping_every: Duration,
}

impl ConnectSettings {
    /// Settings from the `[xmpp]` section. The resource is the nickname, the same for every
    /// process of this bridge: a restarted process (or the standby taking over) binds the
    /// same full JID, so the server closes the predecessor's stream (also one it keeps
    /// hibernating after a crash) and its room occupants go with it, instead of lingering
    /// and receiving what the platform sends to them.
    pub fn from_config(cfg: &XmppConfig) -> Self {
        Self {
            jid: cfg.jid.clone(),
            password: cfg.password.clone(),
            endpoint: cfg.endpoint.clone(),
            ca_file: cfg.ca_file.clone(),
            connect_timeout: cfg.connect_timeout.0,
            resource: cfg.nickname.clone(),
            self_ping_every: cfg.self_ping_interval.0,
        }
    }
}

/// Opens, secures, authenticates and binds a stream. A BOSH session's task is spawned on
/// `tracker`; it lives as long as the returned stream.
pub async fn connect(
    settings: &ConnectSettings,
    tracker: &TaskTracker,
) -> Result<(Stream, FullJid), LinkError> {
    tokio::time::timeout(
        settings.connect_timeout * 3,
        connect_inner(settings, tracker),
    )
    .await
    .map_err(|_| {
        LinkError::Connect(format!(
            "no session within {:?}",
            settings.connect_timeout * 3
        ))
    })?
}

async fn connect_inner(
    s: &ConnectSettings,
    tracker: &TaskTracker,
) -> Result<(Stream, FullJid), LinkError> {
    let io = match &s.endpoint {
        Endpoint::Tcp { host, port, tls } => tcp(s, host, *port, *tls).await?,
        Endpoint::Bosh(url) => super::bosh::open(s, url, tracker).await?,
    };
    let (features, stream) = open_stream(io, &s.jid).await?;
    let creds = Credentials::default()
        .with_username(s.jid.node().map(|n| n.as_str()).unwrap_or_default())
        .with_password(s.password.expose())
        .with_channel_binding(ChannelBinding::None);
    let stream = tokio_xmpp::client_login(stream, features.sasl_mechanisms, creds)
        .await
        .map_err(|e| match e {
            tokio_xmpp::Error::Auth(e) => LinkError::Auth(e.to_string()),
            other => LinkError::Connect(format!("SASL negotiation failed: {other}")),
        })?;
    let stream = stream.send_header(header(&s.jid)).await.map_err(io_err)?;
    let (_features, mut stream): (StreamFeatures, Stream) = stream
        .recv_features()
        .await
        .map_err(|e| LinkError::Connect(e.to_string()))?;
    let bound = bind(&mut stream, &s.resource).await?;
    Ok((stream, bound))
}

async fn tcp(s: &ConnectSettings, host: &str, port: u16, tls: TlsMode) -> Result<Io, LinkError> {
    let address = format!("{host}:{port}");
    let tcp = tokio::time::timeout(s.connect_timeout, TcpStream::connect(&address))
        .await
        .map_err(|_| {
            LinkError::Connect(format!(
                "{address} did not accept within {:?}",
                s.connect_timeout
            ))
        })?
        .map_err(|e| LinkError::Connect(format!("cannot reach {address}: {e}")))?;
    // Requests and responses are small, latency-bound messages: Nagle's algorithm would hold
    // each one back until the previous segment is acknowledged.
    tcp.set_nodelay(true)
        .map_err(|e| LinkError::Connect(format!("cannot set TCP_NODELAY: {e}")))?;
    Ok(match tls {
        TlsMode::None => Box::new(BufStream::new(tcp)),
        TlsMode::Required => Box::new(BufStream::new(starttls(tcp, s, host, port).await?)),
    })
}

fn header(jid: &BareJid) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(Cow::Borrowed(jid.domain().as_str())),
        from: None,
        id: None,
    }
}

fn io_err(e: io::Error) -> LinkError {
    LinkError::Connect(e.to_string())
}

async fn open_stream(io: Io, jid: &BareJid) -> Result<(StreamFeatures, Stream), LinkError> {
    let pending = initiate_stream(io, ns::JABBER_CLIENT, header(jid), TIMEOUTS)
        .await
        .map_err(io_err)?;
    pending
        .recv_features()
        .await
        .map_err(|e| LinkError::Connect(format!("no stream features: {e}")))
}

async fn starttls(
    tcp: TcpStream,
    s: &ConnectSettings,
    host: &str,
    port: u16,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, LinkError> {
    let plain = initiate_stream(
        BufStream::new(tcp),
        ns::JABBER_CLIENT,
        header(&s.jid),
        TIMEOUTS,
    )
    .await
    .map_err(io_err)?;
    let (features, mut stream): (StreamFeatures, XmppStream<BufStream<TcpStream>>) = plain
        .recv_features()
        .await
        .map_err(|e| LinkError::Connect(format!("no stream features: {e}")))?;
    if !features.can_starttls() {
        return Err(LinkError::Connect(format!(
            "{host}:{port} does not offer STARTTLS; set xmpp.tls = \"none\" only for a loopback server"
        )));
    }
    stream
        .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
            starttls::Request,
        )))
        .await
        .map_err(io_err)?;
    loop {
        match stream.next().await {
            Some(Ok(el)) => match el.into_read_error() {
                Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_))) => break,
                Ok(other) => {
                    return Err(LinkError::Connect(format!(
                        "server refused STARTTLS: {other:?}"
                    )));
                }
                Err(e) => return Err(LinkError::Connect(e.to_string())),
            },
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(e)) => return Err(LinkError::Connect(format!("STARTTLS failed: {e}"))),
            None => {
                return Err(LinkError::Connect(
                    "connection closed during STARTTLS".into(),
                ));
            }
        }
    }
    let tcp = stream.into_inner().into_inner();
    let connector = TlsConnector::from(Arc::new(tls_config(s.ca_file.as_deref())?));
    let domain = ServerName::try_from(s.jid.domain().as_str().to_owned()).map_err(|e| {
        LinkError::Connect(format!(
            "`{}` is not a TLS server name: {e}",
            s.jid.domain()
        ))
    })?;
    connector
        .connect(domain, tcp)
        .await
        .map_err(|e| LinkError::Connect(format!("TLS handshake failed: {e}")))
}

/// TLS client settings: the system's roots, plus the certificates in `ca_file` when given.
pub(crate) fn tls_config(ca_file: Option<&std::path::Path>) -> Result<ClientConfig, LinkError> {
    crate::tls::client_config(ca_file).map_err(LinkError::Connect)
}

async fn bind(stream: &mut Stream, resource: &str) -> Result<FullJid, LinkError> {
    const BIND_ID: &str = "bind-1";
    let iq = Iq::from_set(BIND_ID, BindQuery::new(Some(resource.to_owned())));
    stream
        .send(&XmppStreamElement::Stanza(Stanza::Iq(iq)))
        .await
        .map_err(io_err)?;
    loop {
        match stream.next().await {
            Some(Ok(el)) => match el.into_read_error() {
                Ok(XmppStreamElement::Stanza(Stanza::Iq(Iq::Result {
                    id,
                    payload: Some(payload),
                    ..
                }))) if id == BIND_ID => {
                    let response = BindResponse::try_from(payload)
                        .map_err(|e| LinkError::Connect(format!("bad bind response: {e}")))?;
                    return Ok(response.into());
                }
                Ok(XmppStreamElement::Stanza(Stanza::Iq(Iq::Error { id, error, .. })))
                    if id == BIND_ID =>
                {
                    return Err(LinkError::Connect(format!(
                        "resource binding refused: {:?}",
                        error.defined_condition
                    )));
                }
                // Anything else before the bind result is of no interest yet.
                Ok(_) => continue,
                Err(e) => return Err(LinkError::Connect(e.to_string())),
            },
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(e)) => {
                return Err(LinkError::Connect(format!("resource binding failed: {e}")));
            }
            None => {
                return Err(LinkError::Connect(
                    "connection closed during resource binding".into(),
                ));
            }
        }
    }
}
