//! Validation of who may connect and what they may cost: `[auth]`, `[limits]`, `[admin]`,
//! and secrets given inline or as `..._file` (container secrets).

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::raw::{AuthMode, RawAdmin, RawAuth, RawLimits};
use super::{
    AdminConfig, AuthConfig, ConfigError, HttpUrl, HumanDuration, JwtConfig, JwtKeySource,
    LimitsConfig, Secret, TrustedProxies,
};

/// Shortest HMAC or HS256 secret accepted.
const MIN_SECRET: usize = 16;

/// A secret written inline as `key` or read from `key_file`, never both; `None` if neither.
pub(super) fn secret(
    key: &str,
    inline: Option<Secret>,
    file: Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    let secret = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::key(
                &format!("{key}_file"),
                format!("set either {key} or {key}_file, not both"),
            ));
        }
        (Some(s), None) => s,
        (None, Some(file)) => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                ConfigError::key(
                    &format!("{key}_file"),
                    format!("cannot read {}: {e}", file.display()),
                )
            })?;
            // Files written by editors and `echo` end with a newline that is not the secret's.
            Secret::new(text.trim_end_matches(['\n', '\r']))
        }
        (None, None) => return Ok(None),
    };
    if secret.expose().is_empty() {
        return Err(ConfigError::key(key, "is empty"));
    }
    Ok(Some(secret))
}

impl RawAuth {
    /// The auth mode, and the proxies trusted for forwarded addresses in any mode.
    pub(super) fn validate(mut self) -> Result<(AuthConfig, TrustedProxies), ConfigError> {
        let trusted = trusted_proxies(&self.trusted_proxies)?;
        let hmac = secret(
            "auth.hmac_secret",
            self.hmac_secret.take(),
            self.hmac_secret_file.take(),
        )?;
        let mode = match self.mode {
            Some(mode) => mode,
            None if hmac.is_some() => AuthMode::Hmac,
            None => {
                return Err(ConfigError::key(
                    "auth.mode",
                    "missing: set \"hmac\", \"proxy\" or \"jwt\"",
                ));
            }
        };
        let auth = match mode {
            AuthMode::Hmac => {
                let secret = hmac.ok_or_else(|| {
                    ConfigError::key("auth.hmac_secret", "required when auth.mode = \"hmac\"")
                })?;
                long_enough("auth.hmac_secret", &secret)?;
                AuthConfig::Hmac { secret }
            }
            AuthMode::Proxy => {
                if trusted.0.is_empty() {
                    return Err(ConfigError::key(
                        "auth.trusted_proxies",
                        "required when auth.mode = \"proxy\": the addresses of the proxies \
                         that set the header",
                    ));
                }
                let header = self.header.as_deref().unwrap_or("X-Forwarded-User");
                let header = http::HeaderName::from_str(header).map_err(|_| {
                    ConfigError::key("auth.header", format!("`{header}` is not a header name"))
                })?;
                AuthConfig::Proxy { header }
            }
            AuthMode::Jwt => AuthConfig::Jwt(self.jwt()?),
        };
        Ok((auth, trusted))
    }

    fn jwt(self) -> Result<JwtConfig, ConfigError> {
        let shared = secret("auth.jwt_secret", self.jwt_secret, self.jwt_secret_file)?;
        let keys = match (shared, self.jwt_public_key_file, self.jwks_url) {
            (Some(secret), None, None) => {
                long_enough("auth.jwt_secret", &secret)?;
                JwtKeySource::Secret(secret)
            }
            (None, Some(path), None) => {
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::key(
                        "auth.jwt_public_key_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                JwtKeySource::PublicKey { path, pem }
            }
            (None, None, Some(url)) => {
                let parsed =
                    HttpUrl::parse(&url).map_err(|e| ConfigError::key("auth.jwks_url", e))?;
                if !parsed.is_tls() {
                    return Err(ConfigError::key(
                        "auth.jwks_url",
                        format!("`{url}` must be an https:// URL"),
                    ));
                }
                JwtKeySource::Jwks {
                    url,
                    ca_file: self.jwks_ca_file,
                }
            }
            _ => {
                return Err(ConfigError::key(
                    "auth.mode",
                    "\"jwt\" needs exactly one of auth.jwt_secret(_file), \
                     auth.jwt_public_key_file, auth.jwks_url",
                ));
            }
        };
        let algorithms = algorithms(&self.jwt_algorithms, &keys)?;
        Ok(JwtConfig {
            keys,
            algorithms,
            issuer: self.jwt_issuer,
            audience: self.jwt_audience,
            username_claim: self.username_claim.unwrap_or_else(|| "sub".into()),
            leeway: self
                .leeway
                .unwrap_or(HumanDuration(Duration::from_secs(30))),
        })
    }
}

fn long_enough(key: &str, secret: &Secret) -> Result<(), ConfigError> {
    if secret.expose().len() < MIN_SECRET {
        return Err(ConfigError::key(
            key,
            format!("must be at least {MIN_SECRET} characters"),
        ));
    }
    Ok(())
}

fn trusted_proxies(written: &[String]) -> Result<TrustedProxies, ConfigError> {
    written
        .iter()
        .map(|text| {
            // A bare address is a network of one.
            ipnet::IpNet::from_str(text)
                .or_else(|_| std::net::IpAddr::from_str(text).map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::key(
                        "auth.trusted_proxies",
                        format!("`{text}` is not an address or CIDR network"),
                    )
                })
        })
        .collect::<Result<_, _>>()
        .map(TrustedProxies)
}

/// The algorithms written, or those the key source can verify; a shared secret verifies
/// HS256 alone and a public key never does, so a token cannot pass a public key off as an
/// HMAC secret.
fn algorithms(
    written: &[String],
    keys: &JwtKeySource,
) -> Result<Vec<jsonwebtoken::Algorithm>, ConfigError> {
    use jsonwebtoken::Algorithm::{ES256, HS256, RS256};
    let shared = matches!(keys, JwtKeySource::Secret(_));
    if written.is_empty() {
        return Ok(if shared {
            vec![HS256]
        } else {
            vec![RS256, ES256]
        });
    }
    written
        .iter()
        .map(|name| {
            let algorithm = match name.as_str() {
                "HS256" => HS256,
                "RS256" => RS256,
                "ES256" => ES256,
                _ => {
                    return Err(ConfigError::key(
                        "auth.jwt_algorithms",
                        format!("`{name}` is not one of HS256, RS256, ES256"),
                    ));
                }
            };
            if (algorithm == HS256) != shared {
                return Err(ConfigError::key(
                    "auth.jwt_algorithms",
                    "HS256 goes with auth.jwt_secret alone; RS256 and ES256 with a public key",
                ));
            }
            Ok(algorithm)
        })
        .collect()
}

impl RawLimits {
    pub(super) fn validate(&self) -> LimitsConfig {
        LimitsConfig {
            connections_per_address: NonZeroU32::new(self.connections_per_address),
            handshakes_per_second_per_address: NonZeroU32::new(
                self.handshakes_per_second_per_address,
            ),
            events_per_second_per_socket: NonZeroU32::new(self.events_per_second_per_socket),
            usernames_per_socket: NonZeroU32::new(self.usernames_per_socket),
        }
    }
}

impl RawAdmin {
    pub(super) fn validate(self) -> Result<AdminConfig, ConfigError> {
        let listen = self.listen.parse().map_err(|_| {
            ConfigError::key(
                "admin.listen",
                format!("`{}` is not an address:port", self.listen),
            )
        })?;
        let token = secret("admin.token", self.token, self.token_file)?;
        Ok(AdminConfig { listen, token })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::{AuthConfig, Config, JwtKeySource, StoreConfig};

    const MINIMAL: &str = "[xmpp]\njid = \"bridge@converja.local\"\npassword = \"pw\"\n";

    fn load(extra: &str) -> Result<Config, String> {
        Config::from_toml(&format!("{MINIMAL}{extra}\n")).map_err(|e| e.to_string())
    }

    #[test]
    fn each_sign_in_mode_needs_what_it_reads() {
        let proxy =
            load("[auth]\nmode = \"proxy\"\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]")
                .unwrap();
        assert!(
            matches!(proxy.auth, Some(AuthConfig::Proxy { ref header }) if header == "x-forwarded-user")
        );
        assert!(proxy.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
        assert!(
            proxy
                .trusted_proxies
                .contains("::ffff:10.1.2.3".parse().unwrap())
        );
        let jwks = load("[auth]\nmode = \"jwt\"\njwks_url = \"https://sso.example/jwks\"").unwrap();
        let Some(AuthConfig::Jwt(jwt)) = jwks.auth else {
            panic!("jwt");
        };
        assert!(matches!(jwt.keys, JwtKeySource::Jwks { .. }));
        assert_eq!(jwt.algorithms.len(), 2, "RS256 and ES256 by default");
        let refused = [
            ("[auth]\nmode = \"proxy\"", "auth.trusted_proxies"),
            (
                "[auth]\nmode = \"proxy\"\ntrusted_proxies = [\"here\"]",
                "auth.trusted_proxies",
            ),
            (
                "[auth]\nmode = \"proxy\"\ntrusted_proxies = [\"::1\"]\nheader = \"a b\"",
                "auth.header",
            ),
            ("[auth]\nmode = \"hmac\"", "auth.hmac_secret"),
            ("[auth]\nheader = \"X-User\"", "auth.mode"),
            ("[auth]\nmode = \"jwt\"", "auth.mode"),
            (
                "[auth]\nmode = \"jwt\"\njwks_url = \"http://sso.example/jwks\"",
                "auth.jwks_url",
            ),
            (
                "[auth]\nmode = \"jwt\"\njwks_url = \"not a url\"",
                "auth.jwks_url",
            ),
            (
                "[auth]\nmode = \"jwt\"\njwt_secret = \"short\"",
                "auth.jwt_secret",
            ),
            (
                "[auth]\nmode = \"jwt\"\njwt_secret = \"long-enough-secret-1\"\njwt_algorithms = [\"RS256\"]",
                "auth.jwt_algorithms",
            ),
            (
                "[auth]\nmode = \"jwt\"\njwks_url = \"https://sso.example/jwks\"\njwt_algorithms = [\"none\"]",
                "auth.jwt_algorithms",
            ),
            ("[admin]\nlisten = \"0.0.0.0:3000\"", "admin.listen"),
        ];
        for (extra, key) in refused {
            let err = load(extra).expect_err(extra);
            assert!(err.contains(key), "{extra:?} gave {err}");
        }
    }

    #[test]
    fn secrets_come_inline_or_from_a_file_never_both() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "postgres://b:pw@db/converja").unwrap();
        let path = file.path().display();
        let c = load(&format!(
            "[store]\nurl_file = \"{path}\"\n[admin]\ntoken_file = \"{path}\""
        ))
        .unwrap();
        assert_eq!(
            c.store,
            StoreConfig::Postgres(super::Secret::new("postgres://b:pw@db/converja"))
        );
        assert!(c.admin.token.is_some());
        let c = load(&format!("[auth]\nhmac_secret_file = \"{path}\"")).unwrap();
        assert!(matches!(c.auth, Some(AuthConfig::Hmac { .. })));
        let both = load(&format!(
            "[auth]\nhmac_secret = \"long-enough-secret-1\"\nhmac_secret_file = \"{path}\""
        ));
        assert!(both.unwrap_err().contains("not both"));
        let missing = load("[admin]\ntoken_file = \"/nonexistent/token\"");
        assert!(missing.unwrap_err().contains("admin.token_file"));
    }
}
