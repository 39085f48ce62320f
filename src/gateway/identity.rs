//! Who a socket is, as the configured sign-in proves it: an HMAC token, a header from a
//! trusted reverse proxy, or a JSON Web Token. Without `[auth]` a socket proves nothing and
//! may act as any username.

use http::request::Parts;
use serde_json::Value;

use super::address;
use super::auth::verify_token;
use crate::config::{
    AuthConfig, Config, JwtKeySource, Secret, SupervisorsConfig, TrustedProxies, valid_nickname,
};
use crate::signin::jwt::{JwtError, JwtKeys, JwtSettings, JwtVerifier};

/// The sign-in the bridge checks at every handshake.
pub(super) enum Identity {
    /// Nothing is checked.
    Open,
    /// `<username>.<HMAC>` in `auth.token`.
    Hmac(Secret),
    /// A header that trusted proxies set.
    Proxy {
        header: http::HeaderName,
        trusted: TrustedProxies,
    },
    /// A JWT in `auth.token` or `Authorization: Bearer`.
    Jwt(JwtVerifier),
}

/// Why a handshake proves no one; the client receives the text in `connect_error`.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unproven {
    #[error("a valid auth.token is required")]
    Token,
    #[error("connections are accepted only through the sign-in proxy")]
    NotThroughProxy,
    #[error("the sign-in proxy did not name the user (no valid {0} header)")]
    NoUser(http::HeaderName),
    #[error("a token is required in auth.token or an Authorization: Bearer header")]
    NoJwt,
    #[error("{0}")]
    Jwt(#[from] JwtError),
    #[error("say which supervisor you are in auth.supervisor")]
    NoSupervisor,
    #[error("{0} is not a supervisor")]
    NotSupervisor(String),
}

impl Unproven {
    /// The metric label of the refusal.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Unproven::Token | Unproven::NoJwt | Unproven::Jwt(_) => "token",
            Unproven::NotThroughProxy => "untrusted_address",
            Unproven::NoUser(_) => "proxy_header",
            Unproven::NoSupervisor | Unproven::NotSupervisor(_) => "not_supervisor",
        }
    }
}

impl Identity {
    /// The sign-in `config` asks for.
    pub(super) fn from_config(config: &Config) -> Result<Self, JwtError> {
        Ok(match &config.auth {
            None => Identity::Open,
            Some(AuthConfig::Hmac { secret }) => Identity::Hmac(secret.clone()),
            Some(AuthConfig::Proxy { header }) => Identity::Proxy {
                header: header.clone(),
                trusted: config.trusted_proxies.clone(),
            },
            Some(AuthConfig::Jwt(jwt)) => Identity::Jwt(JwtVerifier::new(JwtSettings {
                keys: match &jwt.keys {
                    JwtKeySource::Secret(secret) => JwtKeys::Secret(secret.clone()),
                    JwtKeySource::PublicKey { pem, .. } => JwtKeys::PublicKeyPem(pem.clone()),
                    JwtKeySource::Jwks { url, ca_file } => JwtKeys::Jwks {
                        url: url.clone(),
                        ca_file: ca_file.clone(),
                    },
                },
                algorithms: jwt.algorithms.clone(),
                issuer: jwt.issuer.clone(),
                audience: jwt.audience.clone(),
                username_claim: jwt.username_claim.clone(),
                leeway: jwt.leeway.0,
            })?),
        })
    }

    /// The username the handshake proves; `None` when nothing is checked.
    pub(super) async fn prove(
        &self,
        parts: &Parts,
        auth: Option<&Value>,
    ) -> Result<Option<String>, Unproven> {
        let token = auth.and_then(|a| a.get("token")).and_then(Value::as_str);
        match self {
            Identity::Open => Ok(None),
            Identity::Hmac(secret) => token
                .and_then(|t| verify_token(secret, t))
                .map(Some)
                .ok_or(Unproven::Token),
            Identity::Proxy { header, trusted } => {
                proxied_user(&parts.extensions, &parts.headers, header, trusted).map(Some)
            }
            Identity::Jwt(verifier) => {
                let token = token.or_else(|| bearer(parts)).ok_or(Unproven::NoJwt)?;
                Ok(Some(verifier.verify(token).await?))
            }
        }
    }
}

impl Identity {
    /// The supervisor the handshake proves: without `[auth]`, whoever `auth.supervisor`
    /// names; with it, a signed-in user listed in `supervisors.ids`, or holding
    /// `supervisors.role` in the JWT's `role_claim` or the proxy's `groups_header`.
    pub(super) async fn prove_supervisor(
        &self,
        parts: &Parts,
        auth: Option<&Value>,
        rules: &SupervisorsConfig,
    ) -> Result<String, Unproven> {
        let (user, roles) = match self {
            Identity::Open => {
                return auth
                    .and_then(|a| a.get("supervisor"))
                    .and_then(Value::as_str)
                    .filter(|s| valid_nickname(s))
                    .map(str::to_owned)
                    .ok_or(Unproven::NoSupervisor);
            }
            Identity::Jwt(verifier) => {
                let token = auth
                    .and_then(|a| a.get("token"))
                    .and_then(Value::as_str)
                    .or_else(|| bearer(parts))
                    .ok_or(Unproven::NoJwt)?;
                let (user, claims) = verifier.verify_claims(token).await?;
                let roles = match claims.get(&rules.role_claim) {
                    Some(Value::String(role)) => vec![role.clone()],
                    Some(Value::Array(roles)) => roles
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                    _ => vec![],
                };
                (user, roles)
            }
            Identity::Proxy { header, trusted } => {
                let user = proxied_user(&parts.extensions, &parts.headers, header, trusted)?;
                let groups = rules
                    .groups_header
                    .as_deref()
                    .and_then(|h| parts.headers.get(h))
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.split(',').map(|g| g.trim().to_owned()).collect())
                    .unwrap_or_default();
                (user, groups)
            }
            Identity::Hmac(_) => (self.prove(parts, auth).await?.unwrap_or_default(), vec![]),
        };
        if rules.ids.contains(&user) || roles.contains(&rules.role) {
            Ok(user)
        } else {
            Err(Unproven::NotSupervisor(user))
        }
    }
}

/// The username a trusted proxy put in `header` of a request (its extensions and headers).
pub(super) fn proxied_user(
    extensions: &http::Extensions,
    headers: &http::HeaderMap,
    header: &http::HeaderName,
    trusted: &TrustedProxies,
) -> Result<String, Unproven> {
    if !address::peer(extensions).is_some_and(|peer| trusted.contains(peer)) {
        return Err(Unproven::NotThroughProxy);
    }
    headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|user| valid_nickname(user))
        .map(str::to_owned)
        .ok_or_else(|| Unproven::NoUser(header.clone()))
}

pub(super) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::bearer;

    fn parts(authorization: &str) -> http::request::Parts {
        let request = http::Request::builder()
            .header(http::header::AUTHORIZATION, authorization)
            .body(())
            .unwrap();
        request.into_parts().0
    }

    #[test]
    fn a_bearer_token_is_read_whatever_the_scheme_case() {
        assert_eq!(bearer(&parts("Bearer abc.def.ghi")), Some("abc.def.ghi"));
        assert_eq!(bearer(&parts("bearer  abc")), Some("abc"));
        assert_eq!(bearer(&parts("Basic YTpi")), None);
        assert_eq!(bearer(&parts("Bearer")), None);
    }
}
