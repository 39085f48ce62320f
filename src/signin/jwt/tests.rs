use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::LazyLock;

use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};

use super::*;

mod jwks;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// A key pair made by the `openssl` CLI, as an operator would make one.
struct KeyPair {
    alg: Algorithm,
    private_pem: String,
    public_pem: String,
}

/// Key pairs shared by the tests: RSA key generation takes a while.
struct Pairs {
    rsa: KeyPair,
    rsa2: KeyPair,
    ec: KeyPair,
}

static PAIRS: LazyLock<Pairs> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    Pairs {
        rsa: key_pair(dir.path(), "rsa", Algorithm::RS256),
        rsa2: key_pair(dir.path(), "rsa2", Algorithm::RS256),
        ec: key_pair(dir.path(), "ec", Algorithm::ES256),
    }
});

fn openssl(args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?} failed");
}

fn key_pair(dir: &Path, name: &str, alg: Algorithm) -> KeyPair {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let (private_s, public_s) = (private.to_str().unwrap(), public.to_str().unwrap());
    match alg {
        Algorithm::RS256 => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            private_s,
        ]),
        _ => openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            private_s,
        ]),
    }
    openssl(&["pkey", "-in", private_s, "-pubout", "-out", public_s]);
    KeyPair {
        alg,
        private_pem: std::fs::read_to_string(private).unwrap(),
        public_pem: std::fs::read_to_string(public).unwrap(),
    }
}

impl KeyPair {
    fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let key = match self.alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(self.private_pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(self.private_pem.as_bytes()),
        }
        .unwrap();
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, &key).unwrap()
    }

    /// The public key as a key set publishes it.
    fn jwk(&self, kid: &str) -> Value {
        let key = match self.alg {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(self.public_pem.as_bytes()),
            _ => DecodingKey::from_ec_pem(self.public_pem.as_bytes()),
        }
        .unwrap();
        let mut jwk = jsonwebtoken::jwk::Jwk::from_decoding_key(&key, Some(self.alg)).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        serde_json::to_value(jwk).unwrap()
    }
}

fn settings(keys: JwtKeys, algorithms: &[Algorithm]) -> JwtSettings {
    JwtSettings {
        keys,
        algorithms: algorithms.to_vec(),
        issuer: None,
        audience: None,
        username_claim: "sub".into(),
        leeway: Duration::from_secs(60),
    }
}

fn hs256_verifier(change: impl FnOnce(&mut JwtSettings)) -> JwtVerifier {
    let mut s = settings(JwtKeys::Secret(Secret::new(SECRET)), &[Algorithm::HS256]);
    change(&mut s);
    JwtVerifier::new(s).unwrap()
}

fn hs256(secret: &str, claims: &Value) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes()).unwrap();
    encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
}

/// Claims of a token valid for five minutes, with `extra` added.
fn claims(extra: Value) -> Value {
    let mut claims = json!({ "sub": "maria.souza", "exp": get_current_timestamp() + 300 });
    if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        claims.extend(extra);
    }
    claims
}

#[tokio::test]
async fn an_hs256_token_proves_its_subject_and_only_with_its_secret() {
    let verifier = hs256_verifier(|_| {});
    // An `aud` the bridge was not told about is no reason to refuse.
    let token = hs256(SECRET, &claims(json!({ "aud": "another-service" })));
    assert_eq!(verifier.verify(&token).await.unwrap(), "maria.souza");

    let other = hs256("another-secret-entirely-0123456789", &claims(json!({})));
    let err = verifier.verify(&other).await.unwrap_err();
    assert!(matches!(err, JwtError::BadSignature), "{err:?}");
    assert_eq!(err.to_string(), "the token's signature does not verify");

    // The payload of another user's token under this token's signature.
    let joao = hs256(SECRET, &claims(json!({ "sub": "joao" })));
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = joao.split('.').nth(1).unwrap();
    let forged = parts.join(".");
    let err = verifier.verify(&forged).await.unwrap_err();
    assert!(matches!(err, JwtError::BadSignature), "{err:?}");

    for garbage in ["", "maria", "a.b.c", "a.b"] {
        let err = verifier.verify(garbage).await.unwrap_err();
        assert!(matches!(err, JwtError::Malformed), "{garbage}: {err:?}");
        assert_eq!(err.to_string(), "the token is malformed");
    }
}

#[tokio::test]
async fn expiry_and_not_before_are_checked_with_the_leeway() {
    let verifier = hs256_verifier(|_| {});
    let now = get_current_timestamp();
    let within = hs256(SECRET, &claims(json!({ "exp": now - 30 })));
    assert_eq!(verifier.verify(&within).await.unwrap(), "maria.souza");
    let beyond = hs256(SECRET, &claims(json!({ "exp": now - 120 })));
    let err = verifier.verify(&beyond).await.unwrap_err();
    assert!(matches!(err, JwtError::Expired), "{err:?}");
    assert_eq!(err.to_string(), "the token has expired");

    let mut no_exp = claims(json!({}));
    no_exp.as_object_mut().unwrap().remove("exp");
    let err = verifier.verify(&hs256(SECRET, &no_exp)).await.unwrap_err();
    assert_eq!(err.to_string(), "the token has no `exp` claim");

    let soon = hs256(SECRET, &claims(json!({ "nbf": now + 30 })));
    assert_eq!(verifier.verify(&soon).await.unwrap(), "maria.souza");
    let later = hs256(SECRET, &claims(json!({ "nbf": now + 300 })));
    let err = verifier.verify(&later).await.unwrap_err();
    assert!(matches!(err, JwtError::NotYetValid), "{err:?}");
    assert_eq!(err.to_string(), "the token is not valid yet");

    let text = hs256(SECRET, &claims(json!({ "nbf": "yesterday" })));
    let err = verifier.verify(&text).await.unwrap_err();
    assert_eq!(err.to_string(), "the token's `nbf` claim is malformed");
}

#[tokio::test]
async fn issuer_and_audience_are_required_when_configured() {
    let verifier = hs256_verifier(|s| {
        s.issuer = Some("https://idp.example".into());
        s.audience = Some("converja".into());
    });
    let good = json!({ "iss": "https://idp.example", "aud": "converja" });
    let token = hs256(SECRET, &claims(good));
    assert_eq!(verifier.verify(&token).await.unwrap(), "maria.souza");
    let several = json!({ "iss": "https://idp.example", "aud": ["crm", "converja"] });
    let token = hs256(SECRET, &claims(several));
    assert_eq!(verifier.verify(&token).await.unwrap(), "maria.souza");

    let cases = [
        (
            json!({ "iss": "https://idp.example", "aud": "crm" }),
            "the token is not for this audience",
        ),
        (
            json!({ "iss": "https://idp.example" }),
            "the token has no `aud` claim",
        ),
        (
            json!({ "iss": "https://evil.example", "aud": "converja" }),
            "the token's issuer is not trusted",
        ),
        (json!({ "aud": "converja" }), "the token has no `iss` claim"),
    ];
    for (extra, expected) in cases {
        let token = hs256(SECRET, &claims(extra.clone()));
        let err = verifier.verify(&token).await.unwrap_err();
        assert_eq!(err.to_string(), expected, "{extra}");
    }
}

#[tokio::test]
async fn the_username_is_the_configured_claim_and_must_be_a_valid_username() {
    let verifier = hs256_verifier(|s| s.username_claim = "preferred_username".into());
    let token = hs256(SECRET, &claims(json!({ "preferred_username": "ana-lima" })));
    assert_eq!(verifier.verify(&token).await.unwrap(), "ana-lima");

    let err = verifier
        .verify(&hs256(SECRET, &claims(json!({}))))
        .await
        .unwrap_err();
    assert!(matches!(err, JwtError::MissingClaim(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the token has no `preferred_username` claim"
    );
    for bad in [json!("ana lima"), json!(""), json!(42), json!(["ana"])] {
        let token = hs256(SECRET, &claims(json!({ "preferred_username": bad })));
        let err = verifier.verify(&token).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the token's `preferred_username` is not a valid username",
            "{bad}"
        );
    }
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_with_pem_public_keys() {
    for pair in [&PAIRS.rsa, &PAIRS.ec] {
        let keys = JwtKeys::PublicKeyPem(pair.public_pem.clone());
        let verifier = JwtVerifier::new(settings(keys, &[pair.alg])).unwrap();
        let token = pair.sign(None, &claims(json!({})));
        assert_eq!(verifier.verify(&token).await.unwrap(), "maria.souza");
        // The key is fixed: a `kid` changes nothing.
        let token = pair.sign(Some("whatever"), &claims(json!({})));
        assert_eq!(verifier.verify(&token).await.unwrap(), "maria.souza");
    }
    let rsa = JwtKeys::PublicKeyPem(PAIRS.rsa.public_pem.clone());
    let verifier = JwtVerifier::new(settings(rsa, &[Algorithm::RS256])).unwrap();
    let err = verifier
        .verify(&PAIRS.rsa2.sign(None, &claims(json!({}))))
        .await
        .unwrap_err();
    assert!(matches!(err, JwtError::BadSignature), "{err:?}");
}

#[tokio::test]
async fn only_the_configured_algorithms_are_accepted() {
    let rsa = JwtKeys::PublicKeyPem(PAIRS.rsa.public_pem.clone());
    let verifier = JwtVerifier::new(settings(rsa, &[Algorithm::RS256])).unwrap();
    // An HS256 token "signed" with the public key, the classic confusion attack.
    let confused = hs256(&PAIRS.rsa.public_pem, &claims(json!({})));
    let err = verifier.verify(&confused).await.unwrap_err();
    assert!(matches!(err, JwtError::AlgorithmRefused(Algorithm::HS256)));
    assert_eq!(
        err.to_string(),
        "the token's algorithm HS256 is not accepted"
    );
    let es = PAIRS.ec.sign(None, &claims(json!({})));
    let err = verifier.verify(&es).await.unwrap_err();
    assert!(matches!(err, JwtError::AlgorithmRefused(Algorithm::ES256)));

    // Both public algorithms accepted, but the key is RSA: an ES256 token cannot use it.
    let rsa = JwtKeys::PublicKeyPem(PAIRS.rsa.public_pem.clone());
    let both = JwtVerifier::new(settings(rsa, &[Algorithm::RS256, Algorithm::ES256])).unwrap();
    let err = both.verify(&es).await.unwrap_err();
    assert!(matches!(err, JwtError::AlgorithmRefused(Algorithm::ES256)));

    // `alg: none`, unsigned: the header is `{"alg":"none","typ":"JWT"}`.
    let payload = es.split('.').nth(1).unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let err = hs256_verifier(|_| {}).verify(&none).await.unwrap_err();
    assert!(matches!(err, JwtError::Malformed), "{err:?}");
}

#[test]
fn configurations_that_cannot_verify_are_refused() {
    let refused =
        |keys, algorithms: &[Algorithm]| match JwtVerifier::new(settings(keys, algorithms)) {
            Err(JwtError::Config(reason)) => reason,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        };
    let plain = JwtKeys::Jwks {
        url: "http://idp.example/jwks.json".into(),
        ca_file: None,
    };
    let reason = refused(plain, &[Algorithm::RS256]);
    assert!(reason.contains("must use https://"), "{reason}");
    let secret = || JwtKeys::Secret(Secret::new(SECRET));
    refused(secret(), &[Algorithm::RS256]);
    refused(secret(), &[]);
    refused(JwtKeys::Secret(Secret::new("")), &[Algorithm::HS256]);
    let ec_pem = JwtKeys::PublicKeyPem(PAIRS.ec.public_pem.clone());
    refused(ec_pem, &[Algorithm::RS256]);
    refused(
        JwtKeys::PublicKeyPem("not a key".into()),
        &[Algorithm::ES256],
    );
}
