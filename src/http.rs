//! HTTP on the socket.io listener: liveness, readiness, metrics, and the agent console.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::platform::Platform;
use crate::telemetry;

/// `/healthz`, `/readyz`, `/metrics`, and the console at `/` when `console` is on.
pub(crate) fn routes(platform: Platform, console: bool) -> Router {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(platform);
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
}

/// What a standby bridge serves: alive, not ready, its metrics, and a refusal for everything
/// else (socket.io included) that a client retries, by which time a load balancer sends it to
/// the active bridge.
pub(crate) fn standby_routes() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({ "ready": false, "role": "standby" })),
                )
            }),
        )
        .route("/metrics", get(metrics))
        .fallback(|| async {
            metrics::counter!(telemetry::SOCKETS_REFUSED, "reason" => "standby").increment(1);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "this converja-bridge is the standby: another one is active; connect through the load balancer\n",
            )
        })
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

async fn readyz(State(platform): State<Platform>) -> impl IntoResponse {
    let readiness = platform.readiness();
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "ready": readiness.is_ready(), "xmpp_online": readiness.online, "rooms_missing": readiness.missing });
    (status, axum::Json(body))
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::prometheus().render(),
    )
}
