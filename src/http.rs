//! Operational HTTP endpoints on the socket.io listener: liveness, readiness, metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::platform::Platform;
use crate::telemetry;

/// `/healthz`, `/readyz` and `/metrics`.
pub fn routes(platform: Platform) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(platform)
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
