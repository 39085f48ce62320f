//! Key sets served over real HTTPS on loopback, by a server whose answer the tests change
//! and which counts the requests it gets.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::*;
use converja_testkit::loopback::make_certificate;

/// An identity provider's key set endpoint.
struct Idp {
    url: String,
    certificate: PathBuf,
    answer: Arc<Mutex<(u16, String)>>,
    requests: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl Idp {
    async fn start(keys: &[Value]) -> Idp {
        let dir = tempfile::tempdir().unwrap();
        let (key, certificate) = (dir.path().join("idp.key"), dir.path().join("idp.crt"));
        make_certificate(&["localhost"], &key, &certificate).unwrap();
        let certs = CertificateDer::pem_file_iter(&certificate)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        // The provider the bridge's clients use (src/tls.rs says why ring).
        #[allow(deprecated)]
        let provider = Arc::new(ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, PrivateKeyDer::from_pem_file(&key).unwrap())
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let idp = Idp {
            url: format!("https://127.0.0.1:{port}/realms/converja/certs"),
            certificate,
            answer: Arc::default(),
            requests: Arc::default(),
            _dir: dir,
        };
        idp.publish(keys);
        let (answer, requests) = (idp.answer.clone(), idp.requests.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (answer, requests) = (answer.clone(), requests.clone());
                tokio::spawn(serve(acceptor.clone(), tcp, answer, requests));
            }
        });
        idp
    }

    fn publish(&self, keys: &[Value]) {
        self.answer_with(200, json!({ "keys": keys }).to_string());
    }

    fn answer_with(&self, status: u16, body: String) {
        *self.answer.lock().unwrap() = (status, body);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn settings(&self) -> JwtSettings {
        let keys = JwtKeys::Jwks {
            url: self.url.clone(),
            ca_file: Some(self.certificate.clone()),
        };
        settings(keys, &[Algorithm::RS256, Algorithm::ES256])
    }
}

/// Answers one request on `tcp`, then closes.
async fn serve(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    answer: Arc<Mutex<(u16, String)>>,
    requests: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut tls = acceptor.accept(tcp).await?;
    let mut request = Vec::new();
    let mut buf = [0; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let (status, body) = answer.lock().unwrap().clone();
    let head = format!(
        "HTTP/1.1 {status} Answer\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(body.as_bytes()).await?;
    tls.shutdown().await
}

fn token(pair: &KeyPair, kid: Option<&str>) -> String {
    pair.sign(kid, &claims(json!({})))
}

#[tokio::test]
async fn a_key_rotated_in_at_the_provider_is_fetched_when_a_token_names_it() {
    let idp = Idp::start(&[PAIRS.rsa.jwk("k1")]).await;
    let verifier = JwtVerifier::with_refetch_interval(idp.settings(), Duration::ZERO).unwrap();
    assert_eq!(
        idp.requests(),
        0,
        "the key set is fetched when first needed"
    );
    let k1 = token(&PAIRS.rsa, Some("k1"));
    assert_eq!(verifier.verify(&k1).await.unwrap(), "maria.souza");
    assert_eq!(verifier.verify(&k1).await.unwrap(), "maria.souza");
    assert_eq!(idp.requests(), 1, "known keys are not fetched again");

    idp.publish(&[PAIRS.ec.jwk("k2")]);
    let k2 = token(&PAIRS.ec, Some("k2"));
    assert_eq!(verifier.clone().verify(&k2).await.unwrap(), "maria.souza");
    assert_eq!(idp.requests(), 2);
    let err = verifier.verify(&k1).await.unwrap_err();
    assert!(
        matches!(&err, JwtError::UnknownKid(kid) if kid == "k1"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "no key with kid `k1`");
    assert_eq!(idp.requests(), 3);
    // A lone key serves tokens that name none.
    let anonymous = token(&PAIRS.ec, None);
    assert_eq!(verifier.verify(&anonymous).await.unwrap(), "maria.souza");

    let mut encryption = PAIRS.rsa2.jwk("e1");
    encryption["use"] = json!("enc");
    idp.publish(&[PAIRS.ec.jwk("k2"), PAIRS.rsa.jwk("k1"), encryption]);
    assert_eq!(verifier.verify(&k1).await.unwrap(), "maria.souza");
    let err = verifier.verify(&anonymous).await.unwrap_err();
    assert!(matches!(err, JwtError::NoKid), "{err:?}");
    let err = verifier.verify(&token(&PAIRS.rsa2, Some("e1"))).await;
    assert!(matches!(err, Err(JwtError::UnknownKid(_))), "{err:?}");
    // A key whose declared algorithm does not fit it is no key.
    let mut rs_only = PAIRS.ec.jwk("k4");
    rs_only["alg"] = json!("RS256");
    idp.publish(&[rs_only]);
    let err = verifier.verify(&token(&PAIRS.ec, Some("k4"))).await;
    assert!(matches!(err, Err(JwtError::UnknownKid(_))), "{err:?}");
}

#[tokio::test]
async fn unknown_kids_fetch_the_key_set_at_most_once_per_interval() {
    let idp = Idp::start(&[PAIRS.rsa.jwk("k1")]).await;
    let verifier = JwtVerifier::new(idp.settings()).unwrap();
    let strangers: Vec<String> = (0..20)
        .map(|i| token(&PAIRS.rsa2, Some(&format!("k3-{i}"))))
        .collect();
    let outcomes = futures::future::join_all(strangers.iter().map(|t| verifier.verify(t))).await;
    for outcome in outcomes {
        assert!(
            matches!(outcome, Err(JwtError::UnknownKid(_))),
            "{outcome:?}"
        );
    }
    assert_eq!(
        idp.requests(),
        1,
        "tokens arriving together share one fetch"
    );

    idp.publish(&[PAIRS.rsa.jwk("k1"), PAIRS.rsa2.jwk("k3")]);
    let k3 = token(&PAIRS.rsa2, Some("k3"));
    for _ in 0..5 {
        let err = verifier.verify(&k3).await.unwrap_err();
        assert_eq!(err.to_string(), "no key with kid `k3`");
    }
    let k1 = token(&PAIRS.rsa, Some("k1"));
    assert_eq!(verifier.verify(&k1).await.unwrap(), "maria.souza");
    assert_eq!(idp.requests(), 1, "no second fetch within the interval");
}

#[tokio::test]
async fn a_failed_fetch_keeps_the_keys_held_and_refuses_tokens_needing_others() {
    let idp = Idp::start(&[PAIRS.rsa.jwk("k1")]).await;
    let verifier = JwtVerifier::with_refetch_interval(idp.settings(), Duration::ZERO).unwrap();
    let k1 = token(&PAIRS.rsa, Some("k1"));
    let k2 = token(&PAIRS.ec, Some("k2"));
    assert_eq!(verifier.verify(&k1).await.unwrap(), "maria.souza");

    let huge = json!({ "keys": [], "padding": "x".repeat(1024 * 1024) }).to_string();
    let failures = [
        ((503, "down for maintenance".to_owned()), "HTTP 503"),
        (
            (200, "<html>welcome</html>".to_owned()),
            "it is not a JWK set",
        ),
        ((200, huge), "reading the answer failed"),
    ];
    for ((status, body), reason) in failures {
        idp.answer_with(status, body);
        let err = verifier.verify(&k2).await.unwrap_err();
        let expected = format!("the key set at {} cannot be fetched: {reason}", idp.url);
        assert!(err.to_string().starts_with(&expected), "{err}");
        assert_eq!(verifier.verify(&k1).await.unwrap(), "maria.souza");
    }
    assert_eq!(idp.requests(), 4);

    idp.publish(&[PAIRS.rsa.jwk("k1"), PAIRS.ec.jwk("k2")]);
    assert_eq!(verifier.verify(&k2).await.unwrap(), "maria.souza");
}

#[tokio::test]
async fn the_key_set_is_fetched_only_from_a_trusted_server() {
    let idp = Idp::start(&[PAIRS.rsa.jwk("k1")]).await;
    let mut settings = idp.settings();
    settings.keys = JwtKeys::Jwks {
        url: idp.url.clone(),
        ca_file: None,
    };
    let verifier = JwtVerifier::new(settings).unwrap();
    let err = verifier
        .verify(&token(&PAIRS.rsa, Some("k1")))
        .await
        .unwrap_err();
    assert!(matches!(err, JwtError::Fetch { .. }), "{err:?}");
    assert!(err.to_string().contains("TLS handshake failed"), "{err}");
    assert_eq!(idp.requests(), 0);
}
