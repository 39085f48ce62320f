//! Configuration: one TOML file, overridden key by key by `CONVERJA_BRIDGE__SECTION__KEY`
//! environment variables, parsed strictly and validated once into types that need no
//! further checks at run time.
//!
//! `raw` holds the file as written, `validate` turns it into the types of `validated`,
//! and this module loads it and prints it back with secrets masked.

mod access;
mod raw;
mod supervisors;
mod validate;
mod validated;

use std::fmt;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};

pub use raw::Transport;
pub use supervisors::SupervisorsConfig;
pub use validate::valid_nickname;
pub use validated::{
    AdminConfig, AgentsConfig, AllQueues, AuthConfig, Config, ConverjaConfig, Endpoint, HttpUrl,
    HumanDuration, JwtConfig, JwtKeySource, LimitsConfig, LogConfig, LogFormat, OnCallError,
    OnDisconnect, QueueSelection, Secret, SocketIoConfig, StoreConfig, TlsMode, TrustedProxies,
    XmppConfig,
};

use raw::{
    AuthMode, CallErrorPolicy, DEFAULT_PAUSE_REASON, DisconnectPolicy, RawAdmin, RawAgents,
    RawAuth, RawConfig, RawConverja, RawLimits, RawSocketIo, RawStore, RawXmpp, StoreBackend,
    default_port,
};

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
        // Printed in the file's own terms, so the output loads again as a configuration.
        toml::to_string_pretty(&written(self))
            .expect("the config is plain data and always serializes")
    }
}

fn written_store(store: &StoreConfig) -> RawStore {
    let mut raw = RawStore::default();
    match store {
        StoreConfig::Sqlite(path) => raw.path = path.clone(),
        StoreConfig::Postgres(url) => raw.url = Some(url.clone()),
        StoreConfig::None => raw.backend = Some(StoreBackend::None),
    }
    raw
}

fn written_auth(c: &Config) -> Option<RawAuth> {
    let mut raw = RawAuth {
        trusted_proxies: c
            .trusted_proxies
            .0
            .iter()
            .map(ToString::to_string)
            .collect(),
        ..RawAuth::default()
    };
    match c.auth.as_ref()? {
        AuthConfig::Hmac { secret } => {
            raw.mode = Some(AuthMode::Hmac);
            raw.hmac_secret = Some(secret.clone());
        }
        AuthConfig::Proxy { header } => {
            raw.mode = Some(AuthMode::Proxy);
            raw.header = Some(header.to_string());
        }
        AuthConfig::Jwt(jwt) => {
            raw.mode = Some(AuthMode::Jwt);
            match &jwt.keys {
                JwtKeySource::Secret(secret) => raw.jwt_secret = Some(secret.clone()),
                JwtKeySource::PublicKey { path, .. } => {
                    raw.jwt_public_key_file = Some(path.clone())
                }
                JwtKeySource::Jwks { url, ca_file } => {
                    raw.jwks_url = Some(url.clone());
                    raw.jwks_ca_file.clone_from(ca_file);
                }
            }
            raw.jwt_algorithms = jwt.algorithms.iter().map(|a| format!("{a:?}")).collect();
            raw.jwt_issuer.clone_from(&jwt.issuer);
            raw.jwt_audience.clone_from(&jwt.audience);
            raw.username_claim = Some(jwt.username_claim.clone());
            raw.leeway = Some(jwt.leeway);
        }
    }
    Some(raw)
}

fn written_limits(l: &LimitsConfig) -> RawLimits {
    let n = |v: Option<std::num::NonZeroU32>| v.map_or(0, std::num::NonZeroU32::get);
    RawLimits {
        connections_per_address: n(l.connections_per_address),
        handshakes_per_second_per_address: n(l.handshakes_per_second_per_address),
        events_per_second_per_socket: n(l.events_per_second_per_socket),
        usernames_per_socket: n(l.usernames_per_socket),
    }
}

/// The file that would load as `c`; secrets stay wrapped, so they serialize masked.
fn written(c: &Config) -> RawConfig {
    RawConfig {
        xmpp: written_xmpp(&c.xmpp),
        converja: RawConverja {
            conference: c.converja.conference.to_string(),
            request_timeout: c.converja.request_timeout,
            queues: c.converja.queues.clone(),
            queue_refresh: c.converja.queue_refresh,
            max_pending: c.converja.max_pending,
        },
        socketio: RawSocketIo {
            listen: c.socketio.listen.to_string(),
            paths: c.socketio.paths.clone(),
            cors_origins: c.socketio.cors_origins.clone(),
            max_payload: c.socketio.max_payload,
            console: c.socketio.console,
            readyz: c.socketio.readyz,
        },
        agents: written_agents(&c.agents),
        auth: written_auth(c),
        limits: written_limits(&c.limits),
        admin: RawAdmin {
            listen: c.admin.listen.to_string(),
            token: c.admin.token.clone(),
            token_file: None,
        },
        store: written_store(&c.store),
        supervisors: c.supervisors.clone(),
        log: c.log.clone(),
    }
}

fn written_xmpp(x: &XmppConfig) -> RawXmpp {
    let (transport, host, port, tls, bosh_url) = match &x.endpoint {
        Endpoint::Tcp { host, port, tls } => {
            (Transport::Tcp, Some(host.clone()), *port, *tls, None)
        }
        Endpoint::Bosh(url) => {
            // Plain HTTP loads again only beside `tls = "none"`.
            let tls = if url.is_tls() {
                TlsMode::Required
            } else {
                TlsMode::None
            };
            (
                Transport::Bosh,
                None,
                default_port(),
                tls,
                Some(url.to_string()),
            )
        }
    };
    RawXmpp {
        jid: x.jid.to_string(),
        password: Some(x.password.clone()),
        password_file: None,
        transport,
        host,
        port,
        tls,
        ca_file: x.ca_file.clone(),
        bosh_url,
        nickname: x.nickname.clone(),
        connect_timeout: x.connect_timeout,
        self_ping_interval: x.self_ping_interval,
    }
}

fn written_agents(a: &AgentsConfig) -> RawAgents {
    let (on_disconnect, pause_reason) = match a.on_disconnect {
        OnDisconnect::Logout => (DisconnectPolicy::Logout, DEFAULT_PAUSE_REASON),
        OnDisconnect::Pause(reason) => (DisconnectPolicy::Pause, reason.0),
        OnDisconnect::None => (DisconnectPolicy::None, DEFAULT_PAUSE_REASON),
    };
    let (on_call_error, transfer_to) = match &a.on_call_error {
        OnCallError::None => (CallErrorPolicy::None, String::new()),
        OnCallError::Hangup => (CallErrorPolicy::Hangup, String::new()),
        OnCallError::Transfer(to) => (CallErrorPolicy::Transfer, to.clone()),
    };
    RawAgents {
        max_calls_limit: a.max_calls_limit,
        ack_timeout: a.ack_timeout,
        reconnect_grace: a.reconnect_grace,
        on_disconnect,
        pause_reason,
        on_call_error,
        transfer_to,
        redeliver_unanswered: a.redeliver_unanswered,
        first_call_delay: a.first_call_delay,
        media: a.media.clone(),
        ids: a.ids.clone(),
        extensions: a.extensions,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MINIMAL: &str = r#"
        [xmpp]
        jid = "bridge@converja.local"
        password = "secret"
    "#;

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = Config::from_toml(&format!("{MINIMAL}\n[agents]\nmax_cals = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_cals"), "{err}");
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
    fn printed_config_loads_again_as_the_same_config() {
        let configs = [
            format!(
                "{MINIMAL}\n[agents]\non_disconnect = \"pause\"\npause_reason = 7\n\
                 on_call_error = \"transfer\"\ntransfer_to = \"11001\"\n"
            ),
            "[xmpp]\njid = \"a@b\"\npassword = \"x\"\ntransport = \"bosh\"\ntls = \"none\"\n\
             bosh_url = \"http://[::1]:5280/http-bind\"\n"
                .to_owned(),
        ];
        for text in configs {
            let c = Config::from_toml(&text).expect("valid");
            // The password comes back masked; put the real one in to load the print.
            let printed = c.to_masked_toml().replace("\"********\"", "\"x\"");
            let again = Config::from_toml(&printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
            assert_eq!(again.xmpp.endpoint, c.xmpp.endpoint, "{printed}");
            assert_eq!(again.agents.on_disconnect, c.agents.on_disconnect);
            assert_eq!(again.agents.on_call_error, c.agents.on_call_error);
        }
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
        // The Debian package's conffile, which its check only reads once it is installed.
        let packaged = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/bridge.toml");
        let text = std::fs::read_to_string(&packaged).expect("readable");
        Config::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", packaged.display()));
    }
}
