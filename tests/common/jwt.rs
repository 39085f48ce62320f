//! JSON Web Tokens as an identity provider would issue them, and the bridge configured to
//! believe them.

use std::time::Duration;

use converja_bridge::config::{AuthConfig, HumanDuration, JwtConfig, JwtKeySource, Secret};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

/// The HS256 secret the provider and the bridge share.
pub(crate) const SECRET: &str = "a-jwt-secret-of-some-length";
/// The audience the bridge expects.
pub(crate) const AUDIENCE: &str = "converja-bridge";

/// A token for `username` expiring `expires_in` seconds from now (negative: expired), for
/// `audience`, signed with `secret`.
pub(crate) fn token(username: &str, expires_in: i64, audience: &str, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let claims = json!({"sub": username, "exp": now + expires_in, "aud": audience});
    let key = EncodingKey::from_secret(secret.as_bytes()).expect("an HMAC key");
    encode(&Header::default(), &claims, &key).expect("a token")
}

/// `[auth] mode = "jwt"` with [`SECRET`], HS256 and [`AUDIENCE`].
pub(crate) fn auth() -> AuthConfig {
    AuthConfig::Jwt(JwtConfig {
        keys: JwtKeySource::Secret(Secret::new(SECRET)),
        algorithms: vec![jsonwebtoken::Algorithm::HS256],
        issuer: None,
        audience: Some(AUDIENCE.into()),
        username_claim: "sub".into(),
        leeway: HumanDuration(Duration::from_secs(5)),
    })
}
