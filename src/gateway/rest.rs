//! The supervisors' REST API under `/api/v1`: the same requests as `/supervisor`, one route
//! each, answered with the same JSON, and its OpenAPI document at `/api/v1/openapi.json`,
//! generated from the handlers below (the router and the document are built together, so a
//! route cannot be missing from it).
//!
//! Who asks: with `[auth]`, a bearer token (a JWT, or an HMAC token with
//! `auth.mode = "hmac"`) or the signing proxy's headers, proving a supervisor as on
//! `/supervisor`; without it, `?supervisor=<id>`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::contract::supervisor::{
    self as wire, BoardJson, CallsJson, DoneJson, ErrorJson, MembersJson, QueuesJson, Request,
    StatusJson, SupervisorsJson, TerminalTimeJson,
};
use super::identity::{self, Unproven};
use super::supervisor::Desk;
use crate::agents::supervision::{Answer, Ask, Denied, Supervisor};
use crate::agents::{self, Directory};
use crate::converja::AgentId;
use crate::telemetry;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the handlers need, as one object: utoipa's handler macros take no type parameters,
/// so the generic desk is reached through this trait.
pub(super) trait Api: Send + Sync + 'static {
    /// The supervisor a request proves.
    fn prove<'a>(&'a self, parts: &'a Parts) -> Boxed<'a, Result<Supervisor, Unproven>>;
    /// Carries out `ask` for `who`.
    fn ask<'a>(&'a self, who: &'a Supervisor, ask: Ask) -> Boxed<'a, Result<Answer, Denied>>;
}

impl<P: agents::Platform, D: Directory> Api for Desk<P, D> {
    fn prove<'a>(&'a self, parts: &'a Parts) -> Boxed<'a, Result<Supervisor, Unproven>> {
        Box::pin(async move {
            let bearer = identity::bearer(parts);
            let named = parts
                .uri
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("supervisor=")));
            let auth = json!({ "token": bearer, "supervisor": named });
            let who = self
                .admission
                .identity
                .prove_supervisor(parts, Some(&auth), &self.rules)
                .await?;
            Ok(Supervisor(AgentId::new(who)))
        })
    }

    fn ask<'a>(&'a self, who: &'a Supervisor, ask: Ask) -> Boxed<'a, Result<Answer, Denied>> {
        Box::pin(self.supervision.ask(who, ask))
    }
}

type Shared = Arc<dyn Api>;

/// The supervisor a request proves.
struct Who(Supervisor);

impl FromRequestParts<Shared> for Who {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, api: &Shared) -> Result<Self, Response> {
        match api.prove(parts).await {
            Ok(who) => Ok(Who(who)),
            Err(unproven) => {
                let status = match unproven {
                    Unproven::NotSupervisor(_) => StatusCode::FORBIDDEN,
                    _ => StatusCode::UNAUTHORIZED,
                };
                metrics::counter!(telemetry::SOCKETS_REFUSED, "reason" => unproven.reason())
                    .increment(1);
                warn!(path = %parts.uri.path(), "REST request refused: {unproven}");
                let body = wire::refusal("REQUEST", unproven.reason(), unproven.to_string());
                Err((status, [(header::WWW_AUTHENTICATE, "Bearer")], Json(body)).into_response())
            }
        }
    }
}

/// Reads request `name` from `fields` as `/supervisor` would, carries it out and answers.
async fn carry_out(api: &Shared, who: &Supervisor, name: &str, fields: Value) -> Response {
    let ask = match wire::read(name, Some(&fields)) {
        Ok(Request::Ask(ask)) => ask,
        Ok(Request::Subscribe(q)) => Ask::Board(q),
        Ok(Request::Unsubscribe(_)) => unreachable!("no route unsubscribes"),
        Err(unreadable) => {
            count(name, unreadable.code());
            let body = wire::refusal(name, unreadable.code(), unreadable.to_string());
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    match api.ask(who, ask).await {
        Ok(answer) => {
            count(name, "ok");
            Json(wire::answer_fields(&answer)).into_response()
        }
        Err(denied) => {
            count(name, denied.code());
            info!(supervisor = %who.0, request = name, code = denied.code(), "REST request refused: {denied}");
            (status_of(&denied), Json(wire::denied(name, &denied))).into_response()
        }
    }
}

/// The HTTP status of a refusal. Queues and agents that are not the supervisor's are "not
/// found": the answer does not say whether they exist.
fn status_of(denied: &Denied) -> StatusCode {
    match denied.code() {
        "not_your_queue" | "not_your_agent" | "not_found" => StatusCode::NOT_FOUND,
        "call_not_held" | "not_the_current_call" => StatusCode::CONFLICT,
        "timeout" => StatusCode::GATEWAY_TIMEOUT,
        "refused" => StatusCode::BAD_GATEWAY,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn count(name: &str, outcome: &'static str) {
    let request = wire::name::REQUESTS
        .iter()
        .find(|n| **n == name)
        .copied()
        .unwrap_or("unknown");
    metrics::counter!(telemetry::SUPERVISOR_REQUESTS, "request" => request, "outcome" => outcome)
        .increment(1);
}

/// `PUT .../pause`.
#[derive(Debug, Deserialize, ToSchema)]
struct PauseBody {
    /// The pause reason id.
    reason: Value,
}

/// `PUT .../transfer`.
#[derive(Debug, Deserialize, ToSchema)]
struct TransferBody {
    /// The number to transfer to.
    destination: Value,
}

/// The queues this supervisor may see.
#[utoipa::path(get, path = "/api/v1/queues", tag = "queues",
    responses((status = 200, body = QueuesJson), (status = 401, body = ErrorJson), (status = 403, body = ErrorJson)))]
async fn queues(State(api): State<Shared>, Who(who): Who) -> Response {
    carry_out(&api, &who, wire::name::QUEUES, json!({})).await
}

/// A queue's agents (`GET /queues/:id/agents`).
#[utoipa::path(get, path = "/api/v1/queues/{queue}/agents", tag = "queues",
    params(("queue" = u64, Path, description = "Queue id")),
    responses((status = 200, body = MembersJson), (status = 404, body = ErrorJson)))]
async fn queue_agents(
    State(api): State<Shared>,
    Who(who): Who,
    Path(queue): Path<String>,
) -> Response {
    carry_out(
        &api,
        &who,
        wire::name::QUEUE_AGENTS,
        json!({ "queue": queue }),
    )
    .await
}

/// A queue's supervisors (`GET /queues/:id/supervisors`).
#[utoipa::path(get, path = "/api/v1/queues/{queue}/supervisors", tag = "queues",
    params(("queue" = u64, Path, description = "Queue id")),
    responses((status = 200, body = SupervisorsJson), (status = 404, body = ErrorJson)))]
async fn queue_supervisors(
    State(api): State<Shared>,
    Who(who): Who,
    Path(queue): Path<String>,
) -> Response {
    carry_out(
        &api,
        &who,
        wire::name::QUEUE_SUPERVISORS,
        json!({ "queue": queue }),
    )
    .await
}

/// A queue's calls not over yet (`GET /queues/:id/calls`).
#[utoipa::path(get, path = "/api/v1/queues/{queue}/calls", tag = "queues",
    params(("queue" = u64, Path, description = "Queue id")),
    responses((status = 200, body = CallsJson), (status = 404, body = ErrorJson)))]
async fn queue_calls(
    State(api): State<Shared>,
    Who(who): Who,
    Path(queue): Path<String>,
) -> Response {
    carry_out(
        &api,
        &who,
        wire::name::QUEUE_CALLS,
        json!({ "queue": queue }),
    )
    .await
}

/// A queue's live board: figures, waiting calls, agents.
#[utoipa::path(get, path = "/api/v1/queues/{queue}/board", tag = "queues",
    params(("queue" = u64, Path, description = "Queue id")),
    responses((status = 200, body = BoardJson), (status = 404, body = ErrorJson)))]
async fn queue_board(
    State(api): State<Shared>,
    Who(who): Who,
    Path(queue): Path<String>,
) -> Response {
    carry_out(&api, &who, wire::name::SUBSCRIBE, json!({ "queue": queue })).await
}

/// An agent's status, as the platform reports it (`GET /agents/:id/status`).
#[utoipa::path(get, path = "/api/v1/agents/{agent}/status", tag = "agents",
    params(("agent" = String, Path, description = "Agent id")),
    responses((status = 200, body = StatusJson), (status = 404, body = ErrorJson)))]
async fn agent_status(
    State(api): State<Shared>,
    Who(who): Who,
    Path(agent): Path<String>,
) -> Response {
    carry_out(
        &api,
        &who,
        wire::name::AGENT_STATUS,
        json!({ "agent": agent }),
    )
    .await
}

/// The agent terminal's clock (`GET /timestamp`).
#[utoipa::path(get, path = "/api/v1/agents/{agent}/terminal-time", tag = "agents",
    params(("agent" = String, Path, description = "Agent id")),
    responses((status = 200, body = TerminalTimeJson), (status = 404, body = ErrorJson)))]
async fn terminal_time(
    State(api): State<Shared>,
    Who(who): Who,
    Path(agent): Path<String>,
) -> Response {
    carry_out(
        &api,
        &who,
        wire::name::TERMINAL_TIME,
        json!({ "agent": agent }),
    )
    .await
}

/// Pauses an agent (`PUT /session/paused` with the reason).
#[utoipa::path(put, path = "/api/v1/agents/{agent}/pause", tag = "agents",
    params(("agent" = String, Path, description = "Agent id")), request_body = PauseBody,
    responses((status = 200, body = DoneJson), (status = 400, body = ErrorJson), (status = 404, body = ErrorJson)))]
async fn pause(
    State(api): State<Shared>,
    Who(who): Who,
    Path(agent): Path<String>,
    Json(body): Json<PauseBody>,
) -> Response {
    carry_out(
        &api,
        &who,
        wire::name::PAUSE_AGENT,
        json!({ "agent": agent, "reason": body.reason }),
    )
    .await
}

/// Resumes a paused agent (`PUT /session/paused` with 0).
#[utoipa::path(delete, path = "/api/v1/agents/{agent}/pause", tag = "agents",
    params(("agent" = String, Path, description = "Agent id")),
    responses((status = 200, body = DoneJson), (status = 404, body = ErrorJson)))]
async fn resume(State(api): State<Shared>, Who(who): Who, Path(agent): Path<String>) -> Response {
    carry_out(
        &api,
        &who,
        wire::name::RESUME_AGENT,
        json!({ "agent": agent }),
    )
    .await
}

/// Transfers the named call of an agent (`PUT /calls/active/local`), only when the
/// platform's "current call" of the agent is, beyond doubt, that call.
#[utoipa::path(put, path = "/api/v1/agents/{agent}/calls/{call}/transfer", tag = "agents",
    params(("agent" = String, Path, description = "Agent id"), ("call" = u64, Path, description = "Call id")),
    request_body = TransferBody,
    responses((status = 200, body = DoneJson), (status = 400, body = ErrorJson), (status = 404, body = ErrorJson), (status = 409, body = ErrorJson)))]
async fn transfer(
    State(api): State<Shared>,
    Who(who): Who,
    Path((agent, call)): Path<(String, String)>,
    Json(body): Json<TransferBody>,
) -> Response {
    let fields = json!({ "agent": agent, "callId": call, "destination": body.destination });
    carry_out(&api, &who, wire::name::TRANSFER_CALL, fields).await
}

/// Logs an agent out (`DELETE /session`).
#[utoipa::path(delete, path = "/api/v1/agents/{agent}/session", tag = "agents",
    params(("agent" = String, Path, description = "Agent id")),
    responses((status = 200, body = DoneJson), (status = 404, body = ErrorJson)))]
async fn logout(State(api): State<Shared>, Who(who): Who, Path(agent): Path<String>) -> Response {
    carry_out(
        &api,
        &who,
        wire::name::LOGOUT_AGENT,
        json!({ "agent": agent }),
    )
    .await
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "converja-bridge supervisors API",
        description = "Queues, agents and calls of the Converja platform, for supervisors. Answers carry the same JSON as the /supervisor socket.io namespace; times are the platform's epoch seconds."
    ),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct Document;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes with its OpenAPI document at `/api/v1/openapi.json`.
pub(super) fn routes(api: Shared) -> axum::Router {
    let (router, doc) = OpenApiRouter::with_openapi(Document::openapi())
        .routes(routes!(queues))
        .routes(routes!(queue_agents))
        .routes(routes!(queue_supervisors))
        .routes(routes!(queue_calls))
        .routes(routes!(queue_board))
        .routes(routes!(agent_status))
        .routes(routes!(terminal_time))
        .routes(routes!(pause, resume))
        .routes(routes!(transfer))
        .routes(routes!(logout))
        .with_state(api)
        .split_for_parts();
    let doc = Arc::new(doc);
    router.route(
        "/api/v1/openapi.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { Json(doc.as_ref().clone()) }
        }),
    )
}
