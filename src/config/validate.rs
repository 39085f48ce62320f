//! From the file as written to the validated configuration: every check that refuses a
//! configuration, each naming the offending key.

use std::time::Duration;

use tokio_xmpp::jid::BareJid;

use super::access::secret;
use super::raw::{
    CallErrorPolicy, DisconnectPolicy, RawAgents, RawConfig, RawConverja, RawSocketIo, RawStore,
    RawXmpp, StoreBackend, Transport,
};
use super::{
    AgentsConfig, Config, ConfigError, ConverjaConfig, Endpoint, HttpUrl, OnCallError,
    OnDisconnect, QueueSelection, Secret, SocketIoConfig, StoreConfig, TlsMode, TrustedProxies,
    XmppConfig,
};
use crate::converja::PauseReason;

impl RawConfig {
    /// Checks every section; the first problem found is the error.
    pub(super) fn validate(self) -> Result<Config, ConfigError> {
        let xmpp = self.xmpp.validate()?;
        let converja = self.converja.validate()?;
        let socketio = self.socketio.validate()?;
        let agents = self.agents.validate()?;
        let (auth, trusted_proxies) = match self.auth {
            Some(a) => {
                let (auth, trusted) = a.validate()?;
                (Some(auth), trusted)
            }
            None => (None, TrustedProxies::default()),
        };
        let limits = self.limits.validate();
        let admin = self.admin.validate()?;
        if admin.listen == socketio.listen {
            return Err(ConfigError::key(
                "admin.listen",
                "must differ from socketio.listen: metrics and probes stay off the agents' port",
            ));
        }
        let store = self.store.validate()?;
        let supervisors = self.supervisors.check()?;
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            return Err(ConfigError::key("log.level", e));
        }
        Ok(Config {
            xmpp,
            converja,
            socketio,
            agents,
            auth,
            trusted_proxies,
            limits,
            admin,
            store,
            supervisors,
            log: self.log,
        })
    }
}

impl RawStore {
    fn validate(self) -> Result<StoreConfig, ConfigError> {
        let url = secret("store.url", self.url, self.url_file)?;
        let backend = self.backend.unwrap_or(if url.is_some() {
            StoreBackend::Postgres
        } else {
            StoreBackend::Sqlite
        });
        match (backend, url) {
            (StoreBackend::Postgres, None) => Err(ConfigError::key(
                "store.url",
                "required when store.backend = \"postgres\"",
            )),
            (StoreBackend::Postgres, Some(url)) => {
                if url.expose().starts_with("postgres://")
                    || url.expose().starts_with("postgresql://")
                {
                    Ok(StoreConfig::Postgres(url))
                } else {
                    Err(ConfigError::key(
                        "store.url",
                        "must be a postgres:// URL (a single bridge uses store.path)",
                    ))
                }
            }
            (_, Some(_)) => Err(ConfigError::key(
                "store.url",
                "is only for store.backend = \"postgres\"",
            )),
            (StoreBackend::Sqlite, None) if self.path.as_os_str().is_empty() => {
                Err(ConfigError::key(
                    "store.path",
                    "must name a file (or set store.backend = \"none\")",
                ))
            }
            (StoreBackend::Sqlite, None) => Ok(StoreConfig::Sqlite(self.path)),
            (StoreBackend::None, None) => Ok(StoreConfig::None),
        }
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
        let password = password(self.password, self.password_file)?;
        if self.port == 0 {
            return Err(ConfigError::key("xmpp.port", "must be 1-65535"));
        }
        let bosh_url = bosh_url(self.bosh_url, self.tls)?;
        let endpoint = match (self.transport, bosh_url) {
            (Transport::Bosh, Some(url)) => Endpoint::Bosh(url),
            (Transport::Bosh, None) => {
                return Err(ConfigError::key(
                    "xmpp.bosh_url",
                    "required when xmpp.transport = \"bosh\"",
                ));
            }
            // A bosh_url beside `transport = "tcp"` is checked but not used.
            (Transport::Tcp, _) => Endpoint::Tcp {
                host: self.host.unwrap_or_else(|| jid.domain().to_string()),
                port: self.port,
                tls: self.tls,
            },
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
        Ok(XmppConfig {
            jid,
            password,
            endpoint,
            ca_file: self.ca_file,
            nickname: self.nickname,
            connect_timeout: self.connect_timeout,
            self_ping_interval: self.self_ping_interval,
        })
    }
}

/// The password, given in the file or read from `password_file`, never both.
fn password(
    password: Option<Secret>,
    file: Option<std::path::PathBuf>,
) -> Result<Secret, ConfigError> {
    secret("xmpp.password", password, file)?.ok_or_else(|| {
        ConfigError::key(
            "xmpp.password",
            "missing (set xmpp.password or xmpp.password_file)",
        )
    })
}

/// The BOSH endpoint, if one is written; plain HTTP only where `tls = "none"` allows it.
fn bosh_url(text: Option<String>, tls: TlsMode) -> Result<Option<HttpUrl>, ConfigError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let url = HttpUrl::parse(&text).map_err(|e| ConfigError::key("xmpp.bosh_url", e))?;
    // One switch for plaintext, whatever the transport: `tls = "none"`.
    if !url.is_tls() && tls == TlsMode::Required {
        return Err(ConfigError::key(
            "xmpp.bosh_url",
            format!(
                "`{text}` is plain HTTP; use https, or set xmpp.tls = \"none\" to \
                 allow plaintext (loopback only)"
            ),
        ));
    }
    Ok(Some(url))
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
            readyz: self.readyz,
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
        let on_call_error = match self.on_call_error {
            CallErrorPolicy::None => OnCallError::None,
            CallErrorPolicy::Hangup => OnCallError::Hangup,
            CallErrorPolicy::Transfer if self.transfer_to.trim().is_empty() => {
                return Err(ConfigError::key(
                    "agents.transfer_to",
                    "required when agents.on_call_error = \"transfer\"",
                ));
            }
            CallErrorPolicy::Transfer => OnCallError::Transfer(self.transfer_to),
        };
        // Refused even when unused: 0 would resume instead of pausing if it ever were used.
        if self.pause_reason == 0 {
            return Err(ConfigError::key(
                "agents.pause_reason",
                "0 means \"resume\" on the platform; use a pause reason id",
            ));
        }
        let on_disconnect = match self.on_disconnect {
            DisconnectPolicy::Logout => OnDisconnect::Logout,
            DisconnectPolicy::Pause => OnDisconnect::Pause(PauseReason(self.pause_reason)),
            DisconnectPolicy::None => OnDisconnect::None,
        };
        check_agent_ids(&self.ids)?;
        Ok(AgentsConfig {
            max_calls_limit: self.max_calls_limit,
            ack_timeout: self.ack_timeout,
            reconnect_grace: self.reconnect_grace,
            on_disconnect,
            on_call_error,
            redeliver_unanswered: self.redeliver_unanswered,
            first_call_delay: self.first_call_delay,
            media: self.media,
            ids: self.ids,
            extensions: self.extensions,
        })
    }
}

/// Usernames and agent ids both end up in JIDs.
fn check_agent_ids(
    ids: &std::collections::BTreeMap<String, crate::converja::AgentId>,
) -> Result<(), ConfigError> {
    for (username, id) in ids {
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
    Ok(())
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
    use crate::config::AllQueues;
    use crate::converja::QueueId;

    const MINIMAL: &str = r#"
        [xmpp]
        jid = "bridge@converja.local"
        password = "secret"
    "#;

    fn bosh_url_of(c: &Config) -> &HttpUrl {
        match &c.xmpp.endpoint {
            Endpoint::Bosh(url) => url,
            other => panic!("not BOSH: {other:?}"),
        }
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = Config::from_toml(MINIMAL).expect("valid");
        assert_eq!(
            c.xmpp.endpoint,
            Endpoint::Tcp {
                host: "converja.local".into(),
                port: 5222,
                tls: TlsMode::Required,
            }
        );
        assert_eq!(c.converja.request_timeout.0, Duration::from_secs(10));
        assert_eq!(
            c.converja.conference.to_string(),
            "conference.platform.converja.com"
        );
        assert_eq!(c.socketio.paths, vec!["/callcontrol", "/socket.io"]);
        assert_eq!(c.agents.first_call_delay.0, Duration::from_millis(500));
        assert_eq!(c.agents.on_disconnect, OnDisconnect::Logout);
        assert_eq!(c.agents.on_call_error, OnCallError::None);
        assert!(c.auth.is_none());
        assert_eq!(
            c.store,
            StoreConfig::Sqlite("/var/lib/converja-bridge/sessions.db".into())
        );
    }

    #[test]
    fn the_store_is_a_file_a_database_or_nothing() {
        let store = |section: &str| {
            Config::from_toml(&format!("{MINIMAL}\n[store]\n{section}\n")).map(|c| c.store)
        };
        let valid = |section: &str| store(section).expect(section);
        assert_eq!(
            valid("path = \"/data/s.db\""),
            StoreConfig::Sqlite("/data/s.db".into())
        );
        assert_eq!(
            valid("url = \"postgres://b:pw@db/converja\""),
            StoreConfig::Postgres(Secret::new("postgres://b:pw@db/converja"))
        );
        assert_eq!(valid("backend = \"none\""), StoreConfig::None);
        let refused = |section: &str| store(section).expect_err(section).to_string();
        assert!(refused("backend = \"postgres\"").contains("store.url"));
        assert!(refused("url = \"mysql://db\"").contains("postgres://"));
        assert!(refused("backend = \"sqlite\"\nurl = \"postgres://db\"").contains("only for"));
        assert!(refused("path = \"\"").contains("store.path"));
    }

    #[test]
    fn policies_carry_their_pause_reason_and_destination() {
        let c = Config::from_toml(&format!(
            "{MINIMAL}\n[agents]\non_disconnect = \"pause\"\npause_reason = 7\n\
             on_call_error = \"transfer\"\ntransfer_to = \"11001\"\n"
        ))
        .expect("valid");
        assert_eq!(c.agents.on_disconnect, OnDisconnect::Pause(PauseReason(7)));
        assert_eq!(
            c.agents.on_call_error,
            OnCallError::Transfer("11001".into())
        );
        let c = Config::from_toml(&format!("{MINIMAL}\n[agents]\non_disconnect = \"pause\"\n"))
            .expect("valid");
        assert_eq!(c.agents.on_disconnect, OnDisconnect::Pause(PauseReason(1)));
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
            (
                "[agents]\non_call_error = \"transfer\"\ntransfer_to = \" \"",
                "agents.transfer_to",
            ),
            ("[agents]\non_disconnect = \"explode\"", "on_disconnect"),
            ("[agents]\npause_reason = 0", "agents.pause_reason"),
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
        let url = bosh_url_of(&c);
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
        let url = bosh_url_of(&c);
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
}
