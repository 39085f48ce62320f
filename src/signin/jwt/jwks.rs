//! The identity provider's key set: fetched over HTTPS when a token first needs it, kept,
//! and fetched again when a token names a key it lacks (a rotation at the provider), at most
//! once per interval. A failed fetch keeps the keys held before.

use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Header};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tracing::{debug, warn};

use super::JwtError;
use crate::config::HttpUrl;

/// Bound on one whole fetch: connecting, TLS, request and answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set accepted; real ones are a few KiB.
const MAX_SIZE: usize = 1024 * 1024;
/// Counter of fetches, by outcome (`ok`, `failed`).
const FETCHES: &str = "converja_jwks_fetches_total";
/// Longest `kid` echoed back in an error: the token chose it.
const MAX_KID_SHOWN: usize = 64;

/// A key set and how to fetch it again.
pub(super) struct Jwks {
    url: String,
    endpoint: Endpoint,
    algorithms: Vec<Algorithm>,
    refetch_interval: Duration,
    cache: Mutex<Cache>,
    /// Held for the whole of a fetch, so that tokens arriving meanwhile wait for its outcome
    /// instead of fetching too; holds when the last fetch started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Cache {
    /// `None` until a fetch succeeds.
    keys: Option<Arc<KeySet>>,
    /// Fetches completed, successful or not: tells a waiting token whether one happened.
    attempts: u64,
    /// Why the last fetch failed, if it did.
    failure: Option<String>,
}

/// The usable keys of a fetched set.
struct KeySet {
    keys: Vec<Key>,
}

struct Key {
    kid: Option<String>,
    /// The only algorithm the set allows the key for, when it says.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// Where the key set is served.
struct Endpoint {
    url: HttpUrl,
    tls: TlsConnector,
    server_name: ServerName<'static>,
}

impl Jwks {
    pub(super) fn new(
        url: String,
        ca_file: Option<&std::path::Path>,
        algorithms: Vec<Algorithm>,
        refetch_interval: Duration,
    ) -> Result<Self, JwtError> {
        if !algorithms
            .iter()
            .any(|a| matches!(a.family(), AlgorithmFamily::Rsa | AlgorithmFamily::Ec))
        {
            return Err(JwtError::Config(
                "a JWKS holds RS256 or ES256 keys, and neither is among the accepted algorithms"
                    .into(),
            ));
        }
        let endpoint = Endpoint::new(&url, ca_file).map_err(JwtError::Config)?;
        Ok(Self {
            url,
            endpoint,
            algorithms,
            refetch_interval,
            cache: Mutex::default(),
            fetching: tokio::sync::Mutex::new(None),
        })
    }

    /// The key that checks a token with `header`, fetching the set when it lacks that key.
    pub(super) async fn key_for(&self, header: &Header) -> Result<DecodingKey, JwtError> {
        let (keys, seen) = {
            let cache = self.cache();
            (cache.keys.clone(), cache.attempts)
        };
        if let Some(keys) = keys {
            match keys.find(header) {
                // Perhaps a key the provider rotated in since the last fetch.
                Err(JwtError::UnknownKid(_)) => {}
                found => return found,
            }
        }
        self.refresh(seen).await?.find(header)
    }

    /// The key set after fetching it, unless another token fetched it since `seen` attempts
    /// or the last fetch is too recent: then the outcome of that one.
    async fn refresh(&self, seen: u64) -> Result<Arc<KeySet>, JwtError> {
        let mut last = self.fetching.lock().await;
        let (keys, attempts, failure) = {
            let cache = self.cache();
            (cache.keys.clone(), cache.attempts, cache.failure.clone())
        };
        // A fetch that ended while this token waited answers for it too; and fetches are
        // spaced, also after a failure, so that neither a flood of unknown `kid`s nor tokens
        // arriving while the provider is down make the bridge hammer it.
        let recent = last.is_some_and(|t| t.elapsed() < self.refetch_interval);
        if attempts != seen || recent {
            match (failure, keys) {
                (Some(reason), _) => return Err(self.failed(reason)),
                (None, Some(keys)) => return Ok(keys),
                (None, None) => {}
            }
        }
        *last = Some(Instant::now());
        let outcome = self.fetch().await;
        let mut cache = self.cache();
        cache.attempts += 1;
        match outcome {
            Ok(set) => {
                metrics::counter!(FETCHES, "outcome" => "ok").increment(1);
                debug!(url = %self.url, keys = set.keys.len(), "fetched the JWT key set");
                if set.keys.is_empty() {
                    warn!(url = %self.url, "the JWT key set holds no usable key");
                }
                let set = Arc::new(set);
                cache.keys = Some(set.clone());
                cache.failure = None;
                Ok(set)
            }
            Err(reason) => {
                metrics::counter!(FETCHES, "outcome" => "failed").increment(1);
                warn!(url = %self.url, %reason, "cannot fetch the JWT key set; keeping the keys held");
                cache.failure = Some(reason.clone());
                Err(self.failed(reason))
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let body = tokio::time::timeout(FETCH_TIMEOUT, self.endpoint.get())
            .await
            .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))??;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("it is not a JWK set: {e}"))?;
        Ok(KeySet {
            keys: set
                .keys
                .iter()
                .filter_map(|jwk| Key::usable(jwk, &self.algorithms))
                .collect(),
        })
    }

    fn failed(&self, reason: String) -> JwtError {
        JwtError::Fetch {
            url: self.url.clone(),
            reason,
        }
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl KeySet {
    fn find(&self, header: &Header) -> Result<DecodingKey, JwtError> {
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_ref() == Some(kid))
                .ok_or_else(|| JwtError::UnknownKid(kid.chars().take(MAX_KID_SHOWN).collect()))?,
            // Without a `kid` only a lone key is unambiguous.
            None => match self.keys.as_slice() {
                [only] => only,
                _ => return Err(JwtError::NoKid),
            },
        };
        if key.alg.is_some_and(|alg| alg != header.alg) {
            return Err(JwtError::AlgorithmRefused(header.alg));
        }
        Ok(key.key.clone())
    }
}

impl Key {
    /// The key, if it signs tokens in an accepted algorithm; sets often also hold encryption
    /// keys and keys of other algorithms.
    fn usable(jwk: &Jwk, algorithms: &[Algorithm]) -> Option<Key> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return None;
        }
        let alg = match jwk.common.key_algorithm {
            Some(alg) => Some(
                Algorithm::try_from(alg)
                    .ok()
                    .filter(|a| algorithms.contains(a))?,
            ),
            None => None,
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        // Only public keys: a shared secret published in a key set would be no secret.
        let family = key.family();
        let accepted = matches!(family, AlgorithmFamily::Rsa | AlgorithmFamily::Ec)
            && algorithms.iter().any(|a| a.family() == family)
            && alg.is_none_or(|a| a.family() == family);
        accepted.then(|| Key {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        })
    }
}

impl Endpoint {
    fn new(url: &str, ca_file: Option<&std::path::Path>) -> Result<Self, String> {
        let url = HttpUrl::parse(url).map_err(|e| format!("the JWKS URL {e}"))?;
        if !url.is_tls() {
            // Keys fetched in the clear could be swapped on the way for an attacker's.
            return Err(format!(
                "the JWKS URL `{url}` must use https://, not http://: keys fetched in the \
                 clear could be replaced on the way"
            ));
        }
        let server_name = ServerName::try_from(url.host().to_owned())
            .map_err(|e| format!("`{}` is not a TLS server name: {e}", url.host()))?;
        let tls = crate::tls::client_config(ca_file)?;
        Ok(Self {
            url,
            tls: TlsConnector::from(Arc::new(tls)),
            server_name,
        })
    }

    /// The document, over a connection of its own.
    async fn get(&self) -> Result<Bytes, String> {
        let tcp = TcpStream::connect((self.url.host(), self.url.port()))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("the TLS handshake failed: {e}"))?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("the HTTP handshake failed: {e}"))?;
        let request = Request::get(self.url.path_and_query())
            .header(header::HOST, self.url.authority())
            .header(header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("cannot make the request: {e}"))?;
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("the request failed: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            Limited::new(response.into_body(), MAX_SIZE)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .map_err(|e| format!("reading the answer failed: {e}"))
        };
        // The connection is driven here rather than in a task of its own, so that nothing
        // outlives the fetch's timeout.
        let mut exchange = pin!(exchange);
        let mut conn = pin!(conn);
        tokio::select! {
            biased;
            body = &mut exchange => body,
            ended = &mut conn => {
                ended.map_err(|e| format!("the connection failed: {e}"))?;
                exchange.await
            }
        }
    }
}
