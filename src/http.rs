//! HTTP besides socket.io: the agent console on the public listener, and liveness,
//! readiness and metrics on the admin listener, away from the agents.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::platform::Client;
use crate::telemetry;

/// Where the bridge stands, as `/readyz` reports it.
#[derive(Clone, Default)]
pub(crate) struct Readiness(Arc<Mutex<Phase>>);

#[derive(Clone, Default)]
enum Phase {
    /// Reading the store, or waiting for the lease for the first time.
    #[default]
    Starting,
    /// Another bridge holds the lease.
    Standby,
    /// Serving agents through this platform link.
    Active(Client),
    /// Shutting down: new agents must go elsewhere.
    Draining,
}

impl Readiness {
    fn set(&self, phase: Phase) {
        let mut current = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Once draining, always draining: a phase change on the way out must not undo it.
        if !matches!(*current, Phase::Draining) {
            *current = phase;
        }
    }

    /// This bridge stands by for another.
    pub(crate) fn standby(&self) {
        self.set(Phase::Standby);
    }

    /// This bridge serves agents through `platform`.
    pub(crate) fn active(&self, platform: Client) {
        self.set(Phase::Active(platform));
    }

    /// This bridge is shutting down.
    pub(crate) fn draining(&self) {
        self.set(Phase::Draining);
    }

    fn report(&self) -> (StatusCode, serde_json::Value) {
        let phase = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match phase {
            Phase::Starting => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "ready": false, "starting": true }),
            ),
            Phase::Standby => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "ready": false, "role": "standby" }),
            ),
            Phase::Draining => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "ready": false, "draining": true }),
            ),
            Phase::Active(platform) => {
                let readiness = platform.readiness();
                let status = if readiness.is_ready() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                let body = json!({ "ready": readiness.is_ready(), "role": "active", "xmpp_online": readiness.online, "rooms_missing": readiness.missing });
                (status, body)
            }
        }
    }
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    let (status, body) = readiness.report();
    (status, axum::Json(body))
}

/// The admin listener: `/healthz`, `/readyz`, and `/metrics` (behind `token` when set; the
/// probes stay open, since they tell nothing but up or down and probes rarely send headers).
pub(crate) fn admin_routes(readiness: Readiness, token: Option<Secret>) -> Router {
    let metrics = Router::new()
        .route("/metrics", get(metrics))
        .with_state(readiness.clone());
    let metrics = match token {
        Some(token) => {
            let expected = Arc::new(digest(token.expose()));
            metrics.layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let expected = expected.clone();
                    async move { bearer_only(&expected, req, next).await }
                },
            ))
        }
        None => metrics,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(readiness)
        .merge(metrics)
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

// Compared as digests, so that the time taken says nothing about the token.
async fn bearer_only(expected: &[u8; 32], req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(digest);
    let matches = given.is_some_and(|given| {
        given
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    });
    if matches {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid admin token is required\n",
        )
            .into_response()
    }
}

/// The public listener's own routes: the agent console at `/` and the wallboard at
/// `/wallboard` when `console` is on, and
/// `/readyz` when the configuration asks for it there.
pub(crate) fn public_routes(console: bool, readyz_too: Option<Readiness>) -> Router {
    let router = with_readyz(Router::new(), readyz_too);
    if !console {
        return router;
    }
    // The console is built by `npm run build --prefix console` and compiled into the binary,
    // so a deployment is one file.
    router
        .route(
            "/",
            get(|| async {
                asset(
                    "text/html; charset=utf-8",
                    include_str!("../console/dist/index.html"),
                )
            }),
        )
        .route(
            "/app.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../console/dist/app.js"),
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async {
                asset(
                    "text/css; charset=utf-8",
                    include_str!("../console/dist/style.css"),
                )
            }),
        )
        .route(
            "/wallboard",
            get(|| async {
                asset(
                    "text/html; charset=utf-8",
                    include_str!("../console/dist/wallboard.html"),
                )
            }),
        )
        .route(
            "/wallboard.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../console/dist/wallboard.js"),
                )
            }),
        )
        .route(
            "/wallboard.css",
            get(|| async {
                asset(
                    "text/css; charset=utf-8",
                    include_str!("../console/dist/wallboard.css"),
                )
            }),
        )
}

/// What a standby bridge serves on the public listener: a refusal for everything (socket.io
/// included) that a client retries, by which time a load balancer sends it to the active
/// bridge.
pub(crate) fn standby_routes(readyz_too: Option<Readiness>) -> Router {
    with_readyz(Router::new(), readyz_too).fallback(|| async {
        metrics::counter!(telemetry::SOCKETS_REFUSED, "reason" => "standby").increment(1);
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "this converja-bridge is the standby: another one is active; connect through the load balancer\n",
        )
    })
}

/// `router` with `/readyz` too, when the public listener is to answer it.
fn with_readyz(router: Router, readyz_too: Option<Readiness>) -> Router {
    match readyz_too {
        Some(readiness) => router.route("/readyz", get(readyz).with_state(readiness)),
        None => router,
    }
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

async fn metrics(State(readiness): State<Readiness>) -> impl IntoResponse {
    let ready = readiness.report().0 == StatusCode::OK;
    metrics::gauge!(telemetry::READY).set(f64::from(u8::from(ready)));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::render(),
    )
}

#[cfg(test)]
mod tests {
    use std::future::IntoFuture;

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The status of `GET path` with `headers` (whole lines) on the server at `port`.
    async fn status(port: u16, path: &str, headers: &str) -> String {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{headers}\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        answer.split_whitespace().nth(1).unwrap().to_owned()
    }

    #[tokio::test]
    async fn with_a_token_metrics_need_it_and_the_probes_do_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let readiness = Readiness::default();
        readiness.draining();
        let routes = admin_routes(readiness, Some(Secret::new("the-admin-token")));
        let server = tokio::spawn(axum::serve(listener, routes).into_future());
        assert_eq!(status(port, "/metrics", "").await, "401");
        let wrong = "Authorization: Bearer not-the-token\r\n";
        assert_eq!(status(port, "/metrics", wrong).await, "401");
        let right = "Authorization: Bearer the-admin-token\r\n";
        assert_eq!(status(port, "/metrics", right).await, "200");
        assert_eq!(status(port, "/healthz", "").await, "200");
        assert_eq!(status(port, "/readyz", "").await, "503");
        server.abort();
    }
}
