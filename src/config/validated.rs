//! The validated configuration: the types the rest of the bridge reads, shaped so that a
//! configuration that makes no sense cannot be represented at all.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use tokio_xmpp::jid::BareJid;

use crate::converja::{AgentId, PauseReason, QueueId};

/// A string that never shows up in logs or printed configs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"********\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("********")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A duration written as `"10s"` or `"500ms"` in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration like \"10s\" or \"500ms\" ({e})"
                ))
            })
    }
}

/// A validated http(s) URL with a host, such as the BOSH endpoint
/// `https://platform.example/http-bind` or an identity provider's key set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    uri: http::Uri,
    host: String,
    port: u16,
    tls: bool,
}

impl HttpUrl {
    /// Parses an `http://` or `https://` URL with a host.
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("`{text}` is not a URL ({e})"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("`{text}` is not an http(s) URL")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("`{text}` has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(HttpUrl {
            uri,
            host,
            port,
            tls,
        })
    }

    /// The host name or address to connect to (without IPv6 brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the endpoint is `https`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The value of the HTTP `Host` header.
    pub fn authority(&self) -> &str {
        self.uri.authority().map_or("", |a| a.as_str())
    }

    /// Path and query of the endpoint, `/` when empty.
    pub fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.uri.fmt(f)
    }
}

/// Whether the TCP stream is encrypted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// STARTTLS is mandatory; a server that does not offer it is refused.
    #[default]
    Required,
    /// Plaintext, for loopback deployments and tests only.
    None,
}

/// Where the XMPP server is and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The client-to-server TCP port.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// STARTTLS or plaintext.
        tls: TlsMode,
    },
    /// An XMPP-over-BOSH HTTP endpoint; TLS or not follows its scheme.
    Bosh(HttpUrl),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port, .. } => write!(f, "{host}:{port}"),
            Endpoint::Bosh(url) => write!(f, "{url}"),
        }
    }
}

/// What happens on the platform when an agent's session ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDisconnect {
    /// `DELETE /session`.
    Logout,
    /// `PUT /session/paused` with this reason.
    Pause(PauseReason),
    /// Leave the agent as it is.
    None,
}

/// What happens on the platform when a UI rejects a call with NEW_CALL_ERROR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnCallError {
    /// Leave the call as it is.
    None,
    /// `DELETE /calls/active`.
    Hangup,
    /// `PUT /calls/active/local` to this destination number.
    Transfer(String),
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `converja_bridge=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// Which queues the bridge follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QueueSelection {
    /// The literal `"all"`: every queue `GET /queues` lists.
    All(AllQueues),
    /// A fixed list of queue ids.
    List(Vec<QueueId>),
}

/// The literal string `"all"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllQueues;

impl Serialize for AllQueues {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("all")
    }
}

impl<'de> Deserialize<'de> for AllQueues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "all" => Ok(AllQueues),
            other => Err(serde::de::Error::custom(format!(
                "expected \"all\" or a list of queue ids, got `{other}`"
            ))),
        }
    }
}

impl Default for QueueSelection {
    fn default() -> Self {
        QueueSelection::All(AllQueues)
    }
}

/// The whole validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The XMPP connection.
    pub xmpp: XmppConfig,
    /// The platform's addresses and request handling.
    pub converja: ConverjaConfig,
    /// The socket.io and HTTP listener.
    pub socketio: SocketIoConfig,
    /// Agent sessions and call delivery.
    pub agents: AgentsConfig,
    /// How sockets prove who they are; `None`: they do not.
    pub auth: Option<AuthConfig>,
    /// Proxies whose forwarded client address (and, with `auth.mode = "proxy"`, username)
    /// the bridge believes.
    pub trusted_proxies: TrustedProxies,
    /// What one client may cost.
    pub limits: LimitsConfig,
    /// Metrics and probes.
    pub admin: AdminConfig,
    /// Where sessions survive a restart.
    pub store: StoreConfig,
    /// Supervisors and the queues' figures.
    pub supervisors: super::SupervisorsConfig,
    /// Logging.
    pub log: LogConfig,
}

/// Where sessions survive a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// A SQLite file, for a single bridge.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://...`), which a pair of bridges can share.
    Postgres(Secret),
    /// Nothing stored: sessions die with the process.
    None,
}

/// How to reach and log in to the XMPP server.
#[derive(Clone, Debug)]
pub struct XmppConfig {
    /// The bridge's account.
    pub jid: BareJid,
    /// The account's password (from `password` or `password_file`).
    pub password: Secret,
    /// The server, over TCP or BOSH.
    pub endpoint: Endpoint,
    /// Extra CA certificate (PEM) trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// The nickname the bridge uses in every room.
    pub nickname: String,
    /// How long one connection attempt may take.
    pub connect_timeout: HumanDuration,
    /// How often the bridge checks it is still in each room (XEP-0410 self-ping).
    pub self_ping_interval: HumanDuration,
}

/// Where the platform lives and how requests to it are handled.
#[derive(Clone, Debug)]
pub struct ConverjaConfig {
    /// The platform's MUC service domain.
    pub conference: BareJid,
    /// How long a request waits for its response.
    pub request_timeout: HumanDuration,
    /// Which queue rooms to join.
    pub queues: QueueSelection,
    /// How often `GET /queues` is re-read.
    pub queue_refresh: HumanDuration,
    /// Bound of the pending-request table.
    pub max_pending: usize,
}

/// The socket.io and HTTP listener.
#[derive(Clone, Debug)]
pub struct SocketIoConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// socket.io request paths.
    pub paths: Vec<String>,
    /// Browser origins allowed besides the bridge's own (`*` for any).
    pub cors_origins: Vec<String>,
    /// Largest accepted socket.io packet, in bytes.
    pub max_payload: usize,
    /// Serve the agent console at `/`.
    pub console: bool,
    /// Serve `/readyz` here too, for load balancers that cannot reach the admin listener.
    pub readyz: bool,
}

/// Agent sessions and call delivery.
#[derive(Clone, Debug)]
pub struct AgentsConfig {
    /// Highest `maxCalls` an agent UI may ask for.
    pub max_calls_limit: u32,
    /// After this long without NEW_CALL_ANSWERED a delivery is logged as unanswered.
    pub ack_timeout: HumanDuration,
    /// How long a session outlives its last socket.
    pub reconnect_grace: HumanDuration,
    /// What ending a session does on the platform.
    pub on_disconnect: OnDisconnect,
    /// What NEW_CALL_ERROR does on the platform.
    pub on_call_error: OnCallError,
    /// Emit an unanswered NEW_CALL again on the same socket.
    pub redeliver_unanswered: bool,
    /// Delay between USER_CONNECTED and the first NEW_CALL.
    pub first_call_delay: HumanDuration,
    /// The `media` field of NEW_CALL.
    pub media: String,
    /// Username -> agent id; usernames not listed are agent ids themselves.
    pub ids: BTreeMap<String, AgentId>,
    /// PAUSE, RESUME, TRANSFER_CALL and USER_PAUSED / USER_RESUMED for agent UIs.
    pub extensions: bool,
}

/// How the bridge knows who a socket is.
#[derive(Clone, Debug)]
pub enum AuthConfig {
    /// `<username>.<hex HMAC-SHA256>` tokens in the handshake's `auth.token`.
    Hmac {
        /// The tokens' secret.
        secret: Secret,
    },
    /// The username in a header that a trusted reverse proxy sets.
    Proxy {
        /// The header.
        header: http::HeaderName,
    },
    /// A JSON Web Token in the handshake's `auth.token` or `Authorization: Bearer`.
    Jwt(JwtConfig),
}

/// JSON Web Token verification.
#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// Where the verification keys come from.
    pub keys: JwtKeySource,
    /// The signature algorithms accepted.
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// The `iss` a token must carry, when set.
    pub issuer: Option<String>,
    /// The `aud` a token must carry, when set.
    pub audience: Option<String>,
    /// The claim that holds the username.
    pub username_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: HumanDuration,
}

/// Where JWT verification keys come from.
#[derive(Clone, Debug)]
pub enum JwtKeySource {
    /// An HS256 shared secret.
    Secret(Secret),
    /// A PEM public key (RSA or EC), read from `path` at load.
    PublicKey {
        /// The file it was read from.
        path: PathBuf,
        /// Its text.
        pem: String,
    },
    /// A JWKS document fetched over HTTPS, refreshed when a token names an unknown key.
    Jwks {
        /// Its URL.
        url: String,
        /// Extra CA certificate (PEM) trusted for it besides the system roots.
        ca_file: Option<PathBuf>,
    },
}

/// Addresses whose forwarded headers the bridge believes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Whether a request from `peer` comes from a trusted proxy.
    pub fn contains(&self, peer: std::net::IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|net| net.contains(&peer))
    }
}

/// What one client address may cost; `None` means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Open socket.io connections per client address.
    pub connections_per_address: Option<NonZeroU32>,
    /// New socket.io handshakes per second per client address.
    pub handshakes_per_second_per_address: Option<NonZeroU32>,
    /// Events per second per socket.
    pub events_per_second_per_socket: Option<NonZeroU32>,
    /// Distinct usernames one socket may try in `USER_CONNECT`.
    pub usernames_per_socket: Option<NonZeroU32>,
}

/// The admin listener: metrics and probes, away from the agents.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Bearer token `/metrics` requires, when set.
    pub token: Option<Secret>,
}
