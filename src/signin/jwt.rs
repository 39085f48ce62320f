//! Signed tokens (JWT) from an identity provider: which user a token proves, checked against
//! a shared secret, a public key, or the key set the provider publishes (JWKS).

mod jwks;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Header, Validation};
use serde_json::{Map, Value};

use crate::config::{Secret, valid_nickname};
use jwks::Jwks;

/// Least time between two fetches of the key set that a token's unknown `kid` causes, so
/// that tokens naming random keys cannot make the bridge hammer the identity provider.
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Where the verification keys come from.
pub(crate) enum JwtKeys {
    /// An HS256 shared secret.
    Secret(Secret),
    /// A PEM public key (RSA or EC), already read from its file.
    PublicKeyPem(String),
    /// A JWKS document fetched over HTTPS; `ca_file` adds a trusted root (PEM) for private PKIs.
    Jwks {
        /// The `https://` URL of the document.
        url: String,
        /// A root certificate (PEM) trusted besides the system's.
        ca_file: Option<std::path::PathBuf>,
    },
}

/// What a token must satisfy.
pub(crate) struct JwtSettings {
    /// The keys that sign genuine tokens.
    pub keys: JwtKeys,
    /// The algorithms accepted (from HS256, RS256, ES256); a token signed otherwise is refused.
    pub algorithms: Vec<Algorithm>,
    /// The `iss` a token must carry, when set.
    pub issuer: Option<String>,
    /// The `aud` a token must carry, when set.
    pub audience: Option<String>,
    /// The claim holding the username, e.g. `sub`.
    pub username_claim: String,
    /// Clock skew tolerated on `exp` and `nbf` (whole seconds).
    pub leeway: Duration,
}

/// Checks tokens; cheap to clone, clones share the key set.
#[derive(Clone)]
pub(crate) struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Keys,
    /// One validation per accepted algorithm: jsonwebtoken wants the key's family to match
    /// every algorithm it is given.
    validations: Vec<(Algorithm, Validation)>,
    username_claim: String,
}

enum Keys {
    Static(DecodingKey),
    Jwks(Box<Jwks>),
}

/// Why a token is refused, or a configuration unusable. The texts name what is wrong and
/// reveal no key material, so they may be sent to the client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwtError {
    /// The configuration cannot verify tokens.
    #[error("{0}")]
    Config(String),
    /// Not a JWT at all.
    #[error("the token is malformed")]
    Malformed,
    /// `exp` is past, leeway included.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is ahead, leeway included.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Signed by another key, or altered since.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `aud` is not the configured audience.
    #[error("the token is not for this audience")]
    WrongAudience,
    /// `iss` is not the configured issuer.
    #[error("the token's issuer is not trusted")]
    UntrustedIssuer,
    /// A required claim is absent.
    #[error("the token has no `{0}` claim")]
    MissingClaim(String),
    /// A standard claim has the wrong type.
    #[error("the token's `{0}` claim is malformed")]
    BadClaim(String),
    /// The username claim is not a string that makes a username.
    #[error("the token's `{0}` is not a valid username")]
    InvalidUsername(String),
    /// The header's `alg` is not accepted, or not the one its key is for.
    #[error("the token's algorithm {0:?} is not accepted")]
    AlgorithmRefused(Algorithm),
    /// The key set has no key with the token's `kid`, even fetched again.
    #[error("no key with kid `{0}`")]
    UnknownKid(String),
    /// The token names no key and the key set does not hold exactly one.
    #[error("the token has no `kid` and the key set does not hold exactly one key")]
    NoKid,
    /// The key set could not be fetched when the token needed a key not yet held.
    #[error("the key set at {url} cannot be fetched: {reason}")]
    Fetch {
        /// Where the key set lives.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The key found cannot check this token (e.g. an RSA key published with broken values).
    #[error("the token cannot be checked with the key it names")]
    UnusableKey,
}

impl JwtVerifier {
    /// A verifier for `settings`; reads PEM keys now, fetches a key set only when first needed.
    pub(crate) fn new(settings: JwtSettings) -> Result<Self, JwtError> {
        Self::with_refetch_interval(settings, REFETCH_INTERVAL)
    }

    fn with_refetch_interval(settings: JwtSettings, interval: Duration) -> Result<Self, JwtError> {
        if settings.algorithms.is_empty() {
            return Err(JwtError::Config("no JWT algorithm is accepted".into()));
        }
        let validations = settings
            .algorithms
            .iter()
            .map(|&alg| (alg, validation(&settings, alg)))
            .collect();
        let keys = match settings.keys {
            JwtKeys::Secret(secret) => Keys::Static(secret_key(&secret, &settings.algorithms)?),
            JwtKeys::PublicKeyPem(pem) => Keys::Static(pem_key(&pem, &settings.algorithms)?),
            JwtKeys::Jwks { url, ca_file } => Keys::Jwks(Box::new(Jwks::new(
                url,
                ca_file.as_deref(),
                settings.algorithms.clone(),
                interval,
            )?)),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                validations,
                username_claim: settings.username_claim,
            }),
        })
    }

    /// The username the token proves.
    pub(crate) async fn verify(&self, token: &str) -> Result<String, JwtError> {
        self.verify_claims(token)
            .await
            .map(|(username, _)| username)
    }

    /// Checks `token` as [`verify`](Self::verify) does; also returns its claims.
    pub(crate) async fn verify_claims(
        &self,
        token: &str,
    ) -> Result<(String, Map<String, Value>), JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        // Refused before any key is looked up: a token in another algorithm must not make
        // the bridge fetch the key set.
        let Some((_, validation)) = self
            .inner
            .validations
            .iter()
            .find(|(a, _)| *a == header.alg)
        else {
            return Err(JwtError::AlgorithmRefused(header.alg));
        };
        let key = match &self.inner.keys {
            Keys::Static(key) => Cow::Borrowed(key),
            Keys::Jwks(jwks) => Cow::Owned(jwks.key_for(&header).await?),
        };
        // An ES256 token against an RSA key, say: the token's algorithm, not the key, is wrong.
        if key.family() != header.alg.family() {
            return Err(JwtError::AlgorithmRefused(header.alg));
        }
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, validation)
            .map_err(|e| decode_error(e.into_kind(), &header))?
            .claims;
        let claim = &self.inner.username_claim;
        match claims.get(claim) {
            None => Err(JwtError::MissingClaim(claim.clone())),
            Some(Value::String(name)) if valid_nickname(name) => Ok((name.clone(), claims.clone())),
            Some(_) => Err(JwtError::InvalidUsername(claim.clone())),
        }
    }
}

fn validation(settings: &JwtSettings, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = settings.leeway.as_secs();
    validation.validate_nbf = true;
    // jsonwebtoken checks `iss` and `aud` only when the token carries them: a configured one
    // must also be required, or a token without it would pass.
    let mut required = vec!["exp"];
    if let Some(issuer) = &settings.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    match &settings.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        // Tokens issued for several services carry an `aud` the bridge has no opinion about.
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

fn secret_key(secret: &Secret, algorithms: &[Algorithm]) -> Result<DecodingKey, JwtError> {
    if !algorithms
        .iter()
        .any(|a| a.family() == AlgorithmFamily::Hmac)
    {
        return Err(JwtError::Config(
            "a JWT secret verifies HS256 tokens, and HS256 is not among the accepted algorithms"
                .into(),
        ));
    }
    DecodingKey::from_secret(secret.expose().as_bytes())
        .map_err(|_| JwtError::Config("the JWT secret is empty".into()))
}

fn pem_key(pem: &str, algorithms: &[Algorithm]) -> Result<DecodingKey, JwtError> {
    let accepts = |family| algorithms.iter().any(|a| a.family() == family);
    if !accepts(AlgorithmFamily::Rsa) && !accepts(AlgorithmFamily::Ec) {
        return Err(JwtError::Config(
            "a JWT public key verifies RS256 or ES256 tokens, and neither is among the accepted \
             algorithms"
                .into(),
        ));
    }
    let rsa = accepts(AlgorithmFamily::Rsa)
        .then(|| DecodingKey::from_rsa_pem(pem.as_bytes()).ok())
        .flatten();
    let ec = || {
        accepts(AlgorithmFamily::Ec)
            .then(|| DecodingKey::from_ec_pem(pem.as_bytes()).ok())
            .flatten()
    };
    rsa.or_else(ec).ok_or_else(|| {
        JwtError::Config(
            "the JWT public key is not a PEM public key of an accepted algorithm's kind (RSA for \
             RS256, EC for ES256)"
                .into(),
        )
    })
}

fn decode_error(kind: ErrorKind, header: &Header) -> JwtError {
    match kind {
        ErrorKind::InvalidSignature => JwtError::BadSignature,
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::InvalidAudience => JwtError::WrongAudience,
        ErrorKind::InvalidIssuer => JwtError::UntrustedIssuer,
        ErrorKind::MissingRequiredClaim(claim) => JwtError::MissingClaim(claim),
        ErrorKind::InvalidClaimFormat(claim) => JwtError::BadClaim(claim),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            JwtError::AlgorithmRefused(header.alg)
        }
        ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::UnsupportedAlgorithm => JwtError::UnusableKey,
        _ => JwtError::Malformed,
    }
}
