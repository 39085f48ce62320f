//! The configuration file exactly as it is written: these structs fix the public keys, their
//! defaults and the refusal of unknown keys. They serialize back too, so that the effective
//! configuration prints as a file that loads again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HumanDuration, LogConfig, QueueSelection, Secret, TlsMode};
use crate::converja::AgentId;

/// How the bridge reaches the XMPP server, as `xmpp.transport` says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The client-to-server TCP port.
    #[default]
    Tcp,
    /// XMPP over BOSH (XEP-0124/0206).
    Bosh,
}

/// `agents.on_disconnect`; `pause` takes its reason from `agents.pause_reason`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum DisconnectPolicy {
    /// `DELETE /session`.
    #[default]
    Logout,
    /// `PUT /session/paused`.
    Pause,
    /// Leave the agent as it is.
    None,
}

/// `agents.on_call_error`; `transfer` takes its destination from `agents.transfer_to`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum CallErrorPolicy {
    /// Leave the call as it is.
    #[default]
    None,
    /// `DELETE /calls/active`.
    Hangup,
    /// `PUT /calls/active/local`.
    Transfer,
}

/// The whole file.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) xmpp: RawXmpp,
    #[serde(default)]
    pub(super) converja: RawConverja,
    #[serde(default)]
    pub(super) socketio: RawSocketIo,
    #[serde(default)]
    pub(super) agents: RawAgents,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) auth: Option<RawAuth>,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) supervisors: super::SupervisorsConfig,
    #[serde(default)]
    pub(super) log: LogConfig,
}

/// `[xmpp]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawXmpp {
    pub(super) jid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) password_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) transport: Transport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) host: Option<String>,
    #[serde(default = "default_port")]
    pub(super) port: u16,
    #[serde(default)]
    pub(super) tls: TlsMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ca_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) bosh_url: Option<String>,
    #[serde(default = "default_nickname")]
    pub(super) nickname: String,
    #[serde(default = "default_connect_timeout")]
    pub(super) connect_timeout: HumanDuration,
    #[serde(default = "default_self_ping_interval")]
    pub(super) self_ping_interval: HumanDuration,
}

/// The default `xmpp.port`.
pub(super) fn default_port() -> u16 {
    5222
}
fn default_nickname() -> String {
    "converja-bridge".into()
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_self_ping_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(120))
}

/// `[converja]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConverja {
    pub(super) conference: String,
    pub(super) request_timeout: HumanDuration,
    pub(super) queues: QueueSelection,
    pub(super) queue_refresh: HumanDuration,
    pub(super) max_pending: usize,
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

/// `[socketio]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSocketIo {
    pub(super) listen: String,
    pub(super) paths: Vec<String>,
    pub(super) cors_origins: Vec<String>,
    pub(super) max_payload: usize,
    pub(super) console: bool,
    pub(super) readyz: bool,
}

impl Default for RawSocketIo {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:3000".into(),
            paths: vec!["/callcontrol".into(), "/socket.io".into()],
            cors_origins: Vec::new(),
            max_payload: 64 * 1024,
            console: true,
            readyz: false,
        }
    }
}

/// `[agents]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAgents {
    pub(super) max_calls_limit: u32,
    pub(super) ack_timeout: HumanDuration,
    pub(super) reconnect_grace: HumanDuration,
    pub(super) on_disconnect: DisconnectPolicy,
    pub(super) pause_reason: u32,
    pub(super) on_call_error: CallErrorPolicy,
    pub(super) transfer_to: String,
    pub(super) redeliver_unanswered: bool,
    pub(super) first_call_delay: HumanDuration,
    pub(super) media: String,
    pub(super) ids: BTreeMap<String, AgentId>,
    pub(super) extensions: bool,
}

/// The default `agents.pause_reason`.
pub(super) const DEFAULT_PAUSE_REASON: u32 = 1;

impl Default for RawAgents {
    fn default() -> Self {
        Self {
            max_calls_limit: 32,
            ack_timeout: HumanDuration(Duration::from_secs(15)),
            reconnect_grace: HumanDuration(Duration::from_secs(30)),
            on_disconnect: DisconnectPolicy::Logout,
            pause_reason: DEFAULT_PAUSE_REASON,
            on_call_error: CallErrorPolicy::None,
            transfer_to: String::new(),
            redeliver_unanswered: false,
            first_call_delay: HumanDuration(Duration::from_millis(500)),
            media: "CHAT".into(),
            ids: BTreeMap::new(),
            extensions: false,
        }
    }
}

/// `store.backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum StoreBackend {
    /// A SQLite file at `store.path`.
    Sqlite,
    /// The PostgreSQL database at `store.url`.
    Postgres,
    /// Nothing stored: sessions die with the process.
    None,
}

/// `[store]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStore {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) backend: Option<StoreBackend>,
    pub(super) path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) url: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) url_file: Option<PathBuf>,
}

/// Where the container image keeps its volume.
pub(super) const DEFAULT_STORE_PATH: &str = "/var/lib/converja-bridge/sessions.db";

impl Default for RawStore {
    fn default() -> Self {
        Self {
            backend: None,
            path: PathBuf::from(DEFAULT_STORE_PATH),
            url: None,
            url_file: None,
        }
    }
}

/// `auth.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum AuthMode {
    /// `<username>.<HMAC>` tokens.
    Hmac,
    /// A header set by a trusted reverse proxy.
    Proxy,
    /// JSON Web Tokens.
    Jwt,
}

/// `[auth]`: one mode's keys; the others stay unset.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAuth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) mode: Option<AuthMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) hmac_secret: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) hmac_secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) header: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) trusted_proxies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) jwt_secret: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) jwt_secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) jwt_public_key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) jwks_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) jwks_ca_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) jwt_algorithms: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) jwt_issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) jwt_audience: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) username_claim: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) leeway: Option<HumanDuration>,
}

/// `[limits]`: per client address; 0 means no limit.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLimits {
    pub(super) connections_per_address: u32,
    pub(super) handshakes_per_second_per_address: u32,
    pub(super) events_per_second_per_socket: u32,
    pub(super) usernames_per_socket: u32,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            connections_per_address: 100,
            handshakes_per_second_per_address: 20,
            events_per_second_per_socket: 20,
            usernames_per_socket: 3,
        }
    }
}

/// `[admin]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAdmin {
    pub(super) listen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) token: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) token_file: Option<PathBuf>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9600".into(),
            token: None,
            token_file: None,
        }
    }
}
