//! Configuration: one TOML file, overridden key by key by `CONVERJA_BRIDGE__SECTION__KEY`
//! environment variables, parsed strictly and validated once into types that need no
//! further checks at run time.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize, Serializer};
use tokio_xmpp::jid::BareJid;

use crate::converja::{AgentId, QueueId};

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "CONVERJA_BRIDGE__";

/// A configuration that could not be loaded; the message names the offending key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn key(key: &str, message: impl fmt::Display) -> Self {
        Self(format!("invalid value for `{key}`: {message}"))
    }
}

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

/// How the bridge reaches the XMPP server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The client-to-server TCP port.
    #[default]
    Tcp,
    /// XMPP over BOSH (XEP-0124/0206).
    Bosh,
}

/// A validated BOSH endpoint such as `https://platform.example/http-bind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoshUrl {
    uri: http::Uri,
    host: String,
    port: u16,
    tls: bool,
}

impl BoshUrl {
    /// Parses an `http://` or `https://` URL with a host.
    pub fn parse(text: &str) -> Result<BoshUrl, String> {
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
        Ok(BoshUrl {
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

impl fmt::Display for BoshUrl {
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

/// What happens on the platform when an agent's session ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDisconnect {
    /// `DELETE /session`.
    #[default]
    Logout,
    /// `PUT /session/paused` with `agents.pause_reason`.
    Pause,
    /// Leave the agent as it is.
    None,
}

/// What happens on the platform when a UI rejects a call with NEW_CALL_ERROR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnCallError {
    /// Leave the call as it is.
    #[default]
    None,
    /// `DELETE /calls/active`.
    Hangup,
    /// `PUT /calls/active/local` to `agents.transfer_to`.
    Transfer,
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

fn optional_as_text<S: Serializer>(
    value: &Option<impl fmt::Display>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

fn as_text<S: Serializer>(value: &impl fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

// ---- the file as written -------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    xmpp: RawXmpp,
    #[serde(default)]
    converja: RawConverja,
    #[serde(default)]
    socketio: RawSocketIo,
    #[serde(default)]
    agents: RawAgents,
    auth: Option<RawAuth>,
    #[serde(default)]
    log: LogConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawXmpp {
    jid: String,
    password: Option<Secret>,
    password_file: Option<PathBuf>,
    #[serde(default)]
    transport: Transport,
    host: Option<String>,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default)]
    tls: TlsMode,
    ca_file: Option<PathBuf>,
    bosh_url: Option<String>,
    #[serde(default = "default_nickname")]
    nickname: String,
    #[serde(default = "default_connect_timeout")]
    connect_timeout: HumanDuration,
}

fn default_port() -> u16 {
    5222
}
fn default_nickname() -> String {
    "converja-bridge".into()
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConverja {
    conference: String,
    request_timeout: HumanDuration,
    queues: QueueSelection,
    queue_refresh: HumanDuration,
    max_pending: usize,
}

impl Default for RawConverja {
    fn default() -> Self {
        Self {
            conference: "conference.platform.converja.com".into(),
            request_timeout: HumanDuration(Duration::from_secs(10)),
            queues: QueueSelection::default(),
            queue_refresh: HumanDuration(Duration::from_secs(300)),
            max_pending: 10_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSocketIo {
    listen: String,
    paths: Vec<String>,
    cors_origins: Vec<String>,
    max_payload: usize,
    console: bool,
}

impl Default for RawSocketIo {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:3000".into(),
            paths: vec!["/callcontrol".into(), "/socket.io".into()],
            cors_origins: vec!["*".into()],
            max_payload: 64 * 1024,
            console: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAgents {
    max_calls_limit: u32,
    ack_timeout: HumanDuration,
    reconnect_grace: HumanDuration,
    on_disconnect: OnDisconnect,
    pause_reason: u32,
    on_call_error: OnCallError,
    transfer_to: String,
    redeliver_unanswered: bool,
    first_call_delay: HumanDuration,
    media: String,
    ids: BTreeMap<String, AgentId>,
}

impl Default for RawAgents {
    fn default() -> Self {
        Self {
            max_calls_limit: 32,
            ack_timeout: HumanDuration(Duration::from_secs(15)),
            reconnect_grace: HumanDuration(Duration::from_secs(30)),
            on_disconnect: OnDisconnect::Logout,
            pause_reason: 1,
            on_call_error: OnCallError::None,
            transfer_to: String::new(),
            redeliver_unanswered: false,
            first_call_delay: HumanDuration(Duration::from_millis(500)),
            media: "CHAT".into(),
            ids: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    hmac_secret: Secret,
}

// ---- the validated configuration -----------------------------------------------------

/// The whole validated configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// The XMPP connection.
    pub xmpp: XmppConfig,
    /// The platform's addresses and request handling.
    pub converja: ConverjaConfig,
    /// The socket.io and HTTP listener.
    pub socketio: SocketIoConfig,
    /// Agent sessions and call delivery.
    pub agents: AgentsConfig,
    /// Optional handshake authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Logging.
    pub log: LogConfig,
}

/// How to reach and log in to the XMPP server.
#[derive(Clone, Debug, Serialize)]
pub struct XmppConfig {
    /// The bridge's account.
    #[serde(serialize_with = "as_text")]
    pub jid: BareJid,
    /// The account's password (from `password` or `password_file`).
    pub password: Secret,
    /// TCP or BOSH.
    pub transport: Transport,
    /// Host to connect to (TCP).
    pub host: String,
    /// Port to connect to (TCP).
    pub port: u16,
    /// STARTTLS or plaintext (TCP).
    pub tls: TlsMode,
    /// Extra CA certificate (PEM) trusted besides the system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// BOSH endpoint.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_as_text"
    )]
    pub bosh_url: Option<BoshUrl>,
    /// The nickname the bridge uses in every room.
    pub nickname: String,
    /// How long one connection attempt may take.
    pub connect_timeout: HumanDuration,
}

/// Where the platform lives and how requests to it are handled.
#[derive(Clone, Debug, Serialize)]
pub struct ConverjaConfig {
    /// The platform's MUC service domain.
    #[serde(serialize_with = "as_text")]
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
#[derive(Clone, Debug, Serialize)]
pub struct SocketIoConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// socket.io request paths.
    pub paths: Vec<String>,
    /// Allowed browser origins (`*` for any).
    pub cors_origins: Vec<String>,
    /// Largest accepted socket.io packet, in bytes.
    pub max_payload: usize,
    /// Serve the agent console at `/`.
    pub console: bool,
}

/// Agent sessions and call delivery.
#[derive(Clone, Debug, Serialize)]
pub struct AgentsConfig {
    /// Highest `maxCalls` an agent UI may ask for.
    pub max_calls_limit: u32,
    /// After this long without NEW_CALL_ANSWERED a delivery is logged as unanswered.
    pub ack_timeout: HumanDuration,
    /// How long a session outlives its last socket.
    pub reconnect_grace: HumanDuration,
    /// What ending a session does on the platform.
    pub on_disconnect: OnDisconnect,
    /// Pause reason used by `on_disconnect = "pause"`.
    pub pause_reason: u32,
    /// What NEW_CALL_ERROR does on the platform.
    pub on_call_error: OnCallError,
    /// Destination number for `on_call_error = "transfer"`.
    pub transfer_to: String,
    /// Emit an unanswered NEW_CALL again on the same socket.
    pub redeliver_unanswered: bool,
    /// Delay between USER_CONNECTED and the first NEW_CALL.
    pub first_call_delay: HumanDuration,
    /// The `media` field of NEW_CALL.
    pub media: String,
    /// Username -> agent id; usernames not listed are agent ids themselves.
    pub ids: BTreeMap<String, AgentId>,
}

/// Handshake authentication.
#[derive(Clone, Debug, Serialize)]
pub struct AuthConfig {
    /// Secret of the HMAC-SHA256 tokens.
    pub hmac_secret: Secret,
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

impl Config {
    /// Loads `path`, applies environment overrides and validates the result.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Err(ConfigError(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        Self::from_figment(
            Figment::new()
                .merge(Toml::file(path))
                .merge(Env::prefixed(ENV_PREFIX).split("__")),
        )
    }

    /// Parses a configuration from TOML text alone (no environment), for tests and tools.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(text)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let raw: RawConfig = figment.extract().map_err(|e| {
            // figment reports one error per problem; all of them name their key.
            ConfigError(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        raw.validate()
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config is plain data and always serializes")
    }
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let xmpp = self.xmpp.validate()?;
        let converja = self.converja.validate()?;
        let socketio = self.socketio.validate()?;
        let agents = self.agents.validate()?;
        let auth = match self.auth {
            Some(a) if a.hmac_secret.expose().len() < 16 => {
                return Err(ConfigError::key(
                    "auth.hmac_secret",
                    "must be at least 16 characters",
                ));
            }
            Some(a) => Some(AuthConfig {
                hmac_secret: a.hmac_secret,
            }),
            None => None,
        };
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            return Err(ConfigError::key("log.level", e));
        }
        Ok(Config {
            xmpp,
            converja,
            socketio,
            agents,
            auth,
            log: self.log,
        })
    }
}

impl RawXmpp {
    fn validate(self) -> Result<XmppConfig, ConfigError> {
        let jid: BareJid = self.jid.parse().map_err(|e| {
            ConfigError::key("xmpp.jid", format!("`{}` is not a JID ({e})", self.jid))
        })?;
        if jid.node().is_none() {
            return Err(ConfigError::key(
                "xmpp.jid",
                "needs a user part, as in bridge@converja.local",
            ));
        }
        let password = match (self.password, self.password_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::key(
                    "xmpp.password_file",
                    "set either xmpp.password or xmpp.password_file, not both",
                ));
            }
            (Some(p), None) => p,
            (None, Some(file)) => {
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    ConfigError::key(
                        "xmpp.password_file",
                        format!("cannot read {}: {e}", file.display()),
                    )
                })?;
                Secret(text.trim_end_matches(['\n', '\r']).to_owned())
            }
            (None, None) => {
                return Err(ConfigError::key(
                    "xmpp.password",
                    "missing (set xmpp.password or xmpp.password_file)",
                ));
            }
        };
        if password.expose().is_empty() {
            return Err(ConfigError::key("xmpp.password", "is empty"));
        }
        if self.port == 0 {
            return Err(ConfigError::key("xmpp.port", "must be 1-65535"));
        }
        let bosh_url = match (self.transport, self.bosh_url) {
            (Transport::Bosh, None) => {
                return Err(ConfigError::key(
                    "xmpp.bosh_url",
                    "required when xmpp.transport = \"bosh\"",
                ));
            }
            (_, Some(text)) => {
                let url =
                    BoshUrl::parse(&text).map_err(|e| ConfigError::key("xmpp.bosh_url", e))?;
                // One switch for plaintext, whatever the transport: `tls = "none"`.
                if !url.is_tls() && self.tls == TlsMode::Required {
                    return Err(ConfigError::key(
                        "xmpp.bosh_url",
                        format!(
                            "`{text}` is plain HTTP; use https, or set xmpp.tls = \"none\" to \
                             allow plaintext (loopback only)"
                        ),
                    ));
                }
                Some(url)
            }
            (Transport::Tcp, None) => None,
        };
        if !valid_nickname(&self.nickname) {
            return Err(ConfigError::key(
                "xmpp.nickname",
                "must be 1-64 characters of A-Z a-z 0-9 . _ -",
            ));
        }
        if let Some(ca) = &self.ca_file
            && !ca.exists()
        {
            return Err(ConfigError::key(
                "xmpp.ca_file",
                format!("{} does not exist", ca.display()),
            ));
        }
        let host = self.host.unwrap_or_else(|| jid.domain().to_string());
        Ok(XmppConfig {
            jid,
            password,
            transport: self.transport,
            host,
            port: self.port,
            tls: self.tls,
            ca_file: self.ca_file,
            bosh_url,
            nickname: self.nickname,
            connect_timeout: self.connect_timeout,
        })
    }
}

impl RawConverja {
    fn validate(self) -> Result<ConverjaConfig, ConfigError> {
        let conference: BareJid = self.conference.parse().map_err(|e| {
            ConfigError::key(
                "converja.conference",
                format!("`{}` is not a domain ({e})", self.conference),
            )
        })?;
        if conference.node().is_some() {
            return Err(ConfigError::key(
                "converja.conference",
                "must be a bare domain such as conference.platform.converja.com",
            ));
        }
        if self.request_timeout.0.is_zero() {
            return Err(ConfigError::key(
                "converja.request_timeout",
                "must be greater than zero",
            ));
        }
        if self.queue_refresh.0 < Duration::from_secs(1) {
            return Err(ConfigError::key(
                "converja.queue_refresh",
                "must be at least 1s",
            ));
        }
        if self.max_pending == 0 {
            return Err(ConfigError::key(
                "converja.max_pending",
                "must be at least 1",
            ));
        }
        if let QueueSelection::List(list) = &self.queues
            && list.is_empty()
        {
            return Err(ConfigError::key(
                "converja.queues",
                "an empty list follows no queue; use \"all\" or list ids",
            ));
        }
        Ok(ConverjaConfig {
            conference,
            request_timeout: self.request_timeout,
            queues: self.queues,
            queue_refresh: self.queue_refresh,
            max_pending: self.max_pending,
        })
    }
}

impl RawSocketIo {
    fn validate(self) -> Result<SocketIoConfig, ConfigError> {
        let listen = self.listen.parse().map_err(|e| {
            ConfigError::key(
                "socketio.listen",
                format!(
                    "`{}` is not an address like 0.0.0.0:3000 ({e})",
                    self.listen
                ),
            )
        })?;
        if self.paths.is_empty() {
            return Err(ConfigError::key(
                "socketio.paths",
                "needs at least one path",
            ));
        }
        for path in &self.paths {
            if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') {
                return Err(ConfigError::key(
                    "socketio.paths",
                    format!("`{path}` must start with / and not end with /"),
                ));
            }
        }
        if self.max_payload < 1024 {
            return Err(ConfigError::key(
                "socketio.max_payload",
                "must be at least 1024 bytes",
            ));
        }
        Ok(SocketIoConfig {
            listen,
            paths: self.paths,
            cors_origins: self.cors_origins,
            max_payload: self.max_payload,
            console: self.console,
        })
    }
}

impl RawAgents {
    fn validate(self) -> Result<AgentsConfig, ConfigError> {
        if self.max_calls_limit == 0 {
            return Err(ConfigError::key(
                "agents.max_calls_limit",
                "must be at least 1",
            ));
        }
        if self.on_call_error == OnCallError::Transfer && self.transfer_to.trim().is_empty() {
            return Err(ConfigError::key(
                "agents.transfer_to",
                "required when agents.on_call_error = \"transfer\"",
            ));
        }
        if self.pause_reason == 0 {
            return Err(ConfigError::key(
                "agents.pause_reason",
                "0 means \"resume\" on the platform; use a pause reason id",
            ));
        }
        for (username, id) in &self.ids {
            if !valid_nickname(username) {
                return Err(ConfigError::key(
                    "agents.ids",
                    format!("username `{username}` must be 1-64 characters of A-Z a-z 0-9 . _ -"),
                ));
            }
            if !valid_nickname(id.as_str()) {
                return Err(ConfigError::key(
                    "agents.ids",
                    format!("agent id `{id}` must be 1-64 characters of A-Z a-z 0-9 . _ -"),
                ));
            }
        }
        Ok(AgentsConfig {
            max_calls_limit: self.max_calls_limit,
            ack_timeout: self.ack_timeout,
            reconnect_grace: self.reconnect_grace,
            on_disconnect: self.on_disconnect,
            pause_reason: self.pause_reason,
            on_call_error: self.on_call_error,
            transfer_to: self.transfer_to,
            redeliver_unanswered: self.redeliver_unanswered,
            first_call_delay: self.first_call_delay,
            media: self.media,
            ids: self.ids,
        })
    }
}

/// Whether `name` may appear inside a JID as a nickname or room suffix: 1-64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_nickname(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [xmpp]
        jid = "bridge@converja.local"
        password = "secret"
    "#;

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = Config::from_toml(MINIMAL).expect("valid");
        assert_eq!(c.xmpp.host, "converja.local");
        assert_eq!(c.xmpp.port, 5222);
        assert_eq!(c.xmpp.tls, TlsMode::Required);
        assert_eq!(c.converja.request_timeout.0, Duration::from_secs(10));
        assert_eq!(
            c.converja.conference.to_string(),
            "conference.platform.converja.com"
        );
        assert_eq!(c.socketio.paths, vec!["/callcontrol", "/socket.io"]);
        assert_eq!(c.agents.first_call_delay.0, Duration::from_millis(500));
        assert_eq!(c.agents.on_disconnect, OnDisconnect::Logout);
        assert!(c.auth.is_none());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = Config::from_toml(&format!("{MINIMAL}\n[agents]\nmax_cals = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_cals"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[converja]\nrequest_timeout = \"ten\"", "request_timeout"),
            ("[socketio]\nlisten = \"nowhere\"", "socketio.listen"),
            ("[agents]\nmax_calls_limit = 0", "agents.max_calls_limit"),
            (
                "[agents]\non_call_error = \"transfer\"",
                "agents.transfer_to",
            ),
            ("[agents]\non_disconnect = \"explode\"", "on_disconnect"),
            ("[agents.ids]\n\"maria@x\" = \"22010\"", "agents.ids"),
            ("[auth]\nhmac_secret = \"short\"", "auth.hmac_secret"),
            ("[converja]\nqueues = \"some\"", "queues"),
            ("[log]\nlevel = \"[[[\"", "log.level"),
        ];
        for (extra, key) in cases {
            let err = Config::from_toml(&format!("{MINIMAL}\n{extra}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{extra:?} gave {err}");
        }
        let err = Config::from_toml("[xmpp]\njid = \"nobody\"\npassword = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("xmpp.jid"), "{err}");
        let err = Config::from_toml("[xmpp]\njid = \"a@b\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("xmpp.password"), "{err}");
        let err =
            Config::from_toml("[xmpp]\njid = \"a@b\"\npassword = \"x\"\ntransport = \"bosh\"")
                .unwrap_err()
                .to_string();
        assert!(err.contains("xmpp.bosh_url"), "{err}");
        for url in [
            "ftp://p.example/http-bind",
            "http://p.example/http-bind",
            "https://",
        ] {
            let err = Config::from_toml(&format!(
                "[xmpp]\njid = \"a@b\"\npassword = \"x\"\ntransport = \"bosh\"\nbosh_url = \"{url}\""
            ))
            .unwrap_err()
            .to_string();
            assert!(err.contains("xmpp.bosh_url"), "{url} gave {err}");
        }
    }

    #[test]
    fn bosh_urls_are_https_unless_plaintext_is_chosen() {
        let c = Config::from_toml(
            "[xmpp]\njid = \"a@b\"\npassword = \"x\"\ntransport = \"bosh\"\nbosh_url = \"https://platform.example/http-bind\"",
        )
        .expect("valid");
        let url = c.xmpp.bosh_url.expect("kept");
        assert_eq!(
            (url.host(), url.port(), url.is_tls()),
            ("platform.example", 443, true)
        );
        assert_eq!(
            (url.authority(), url.path_and_query()),
            ("platform.example", "/http-bind")
        );
        let c = Config::from_toml(
            "[xmpp]\njid = \"a@b\"\npassword = \"x\"\ntransport = \"bosh\"\ntls = \"none\"\nbosh_url = \"http://[::1]:5280/http-bind?x=1\"",
        )
        .expect("valid");
        let url = c.xmpp.bosh_url.expect("kept");
        assert_eq!(
            (url.host(), url.port(), url.is_tls(), url.authority()),
            ("::1", 5280, false, "[::1]:5280")
        );
        assert_eq!(url.path_and_query(), "/http-bind?x=1");
    }

    #[test]
    fn queue_selection_is_all_or_a_list() {
        let c =
            Config::from_toml(&format!("{MINIMAL}\n[converja]\nqueues = [7, 8]\n")).expect("valid");
        assert_eq!(
            c.converja.queues,
            QueueSelection::List(vec![QueueId(7), QueueId(8)])
        );
        let c = Config::from_toml(&format!("{MINIMAL}\n[converja]\nqueues = \"all\"\n"))
            .expect("valid");
        assert_eq!(c.converja.queues, QueueSelection::All(AllQueues));
    }

    #[test]
    fn printed_config_masks_secrets() {
        let c = Config::from_toml(&format!(
            "{MINIMAL}\n[auth]\nhmac_secret = \"0123456789abcdef-very-secret\"\n"
        ))
        .expect("valid");
        let text = c.to_masked_toml();
        assert!(!text.contains("secret\""), "{text}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("********"), "{text}");
        assert!(text.contains("request_timeout = \"10s\""), "{text}");
        assert!(!format!("{c:?}").contains("very-secret"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API, not ours
    fn environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bridge.toml", MINIMAL)?;
            jail.set_env("CONVERJA_BRIDGE__XMPP__PASSWORD", "from-env");
            jail.set_env("CONVERJA_BRIDGE__CONVERJA__REQUEST_TIMEOUT", "2s");
            jail.set_env("CONVERJA_BRIDGE__AGENTS__MAX_CALLS_LIMIT", "4");
            let c = Config::load(Path::new("bridge.toml")).expect("valid");
            assert_eq!(c.xmpp.password.expose(), "from-env");
            assert_eq!(c.converja.request_timeout.0, Duration::from_secs(2));
            assert_eq!(c.agents.max_calls_limit, 4);
            jail.set_env("CONVERJA_BRIDGE__XMPP__PORT", "seventy");
            let err = Config::load(Path::new("bridge.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.to_lowercase().contains("xmpp.port"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn password_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").expect("write");
        let text = format!(
            "[xmpp]\njid = \"a@b\"\npassword_file = \"{}\"\n",
            file.display()
        );
        let c = Config::from_toml(&text).expect("valid");
        assert_eq!(c.xmpp.password.expose(), "s3cret");
    }

    #[test]
    fn every_shipped_example_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
            let path = entry.expect("readable").path();
            if path.extension().is_some_and(|e| e == "toml")
                && path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("bridge"))
            {
                let text = std::fs::read_to_string(&path).expect("readable");
                Config::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(seen >= 1, "no bridge config found in {}", dir.display());
    }
}
