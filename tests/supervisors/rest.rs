//! The REST API: every route through the platform, its OpenAPI document, and who may ask.

use std::collections::BTreeSet;

use converja_bridge::config::{AuthConfig, Secret};
use converja_bridge::converja::{Method, PauseReason};
use converja_bridge::gateway::mint_token;
use converja_testkit::http::{http_get, http_request};
use serde_json::{Value, json};

use crate::common::agent_ui::{bridge, bridge_with};
use crate::common::{Calls, Via, agent, poll_for};

/// `method path` as Ana without `[auth]`: (status, JSON body).
async fn as_ana(port: u16, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let path = format!("{path}{sep}supervisor=9001");
    let body = body.map(|b| b.to_string());
    let (status, text) = http_request(port, method, &path, &[], body.as_deref()).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The routes the README's REST table lists, as (method, path).
fn readme_routes() -> BTreeSet<(String, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    readme
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
            (cells.len() > 3 && cells[2].starts_with("/api/v1/"))
                .then(|| (cells[1].to_lowercase(), cells[2].to_owned()))
        })
        .collect()
}

/// The (method, path) pairs of the bridge's OpenAPI document, which must describe its JSON.
async fn documented_routes(port: u16) -> BTreeSet<(String, String)> {
    let (status, doc) = http_get(port, "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert!(
        doc["components"]["schemas"]["SnapshotJson"].is_object(),
        "{}",
        doc["components"]
    );
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn every_route_is_documented_and_answers() {
    let stack = bridge(Via::Tcp).await;
    let documented = documented_routes(stack.port).await;
    assert_eq!(
        documented,
        readme_routes(),
        "the OpenAPI document and the README's table differ"
    );

    let call = stack.sim.call("22010", "01977778888").await;
    // The board knows Maria's call once the platform's event is in.
    poll_for(
        "Maria busy on the board",
        crate::common::PATIENCE,
        || async {
            let (_, board) = as_ana(stack.port, "GET", "/api/v1/queues/7/board", None).await;
            let maria = &board["snapshot"]["agents"][0];
            if maria["state"] == "busy" {
                Ok(())
            } else {
                Err(maria.to_string())
            }
        },
    )
    .await;
    let routes = [
        ("GET", "/api/v1/queues".to_owned(), None),
        ("GET", "/api/v1/queues/7/agents".to_owned(), None),
        ("GET", "/api/v1/queues/7/supervisors".to_owned(), None),
        ("GET", "/api/v1/queues/7/calls".to_owned(), None),
        ("GET", "/api/v1/queues/7/board".to_owned(), None),
        ("GET", "/api/v1/agents/22010/status".to_owned(), None),
        ("GET", "/api/v1/agents/22010/terminal-time".to_owned(), None),
        (
            "PUT",
            format!("/api/v1/agents/22010/calls/{}/transfer", call.0),
            Some(json!({"destination": "11001"})),
        ),
        (
            "PUT",
            "/api/v1/agents/22010/pause".to_owned(),
            Some(json!({"reason": 4})),
        ),
        ("DELETE", "/api/v1/agents/22010/pause".to_owned(), None),
        ("DELETE", "/api/v1/agents/22010/session".to_owned(), None),
    ];
    assert_eq!(
        routes.len(),
        documented.len(),
        "each documented route is tried"
    );
    for (method, path, body) in routes {
        let (status, answer) = as_ana(stack.port, method, &path, body).await;
        assert_eq!(status, 200, "{method} {path}: {answer}");
    }
    let requests = stack.sim.requests().await;
    let did = |method: Method, resource: &str| {
        requests
            .iter()
            .any(|r| r.message.method == method && r.message.resource == resource)
    };
    assert!(
        did(Method::Put, "/calls/active/local")
            && did(Method::Put, "/session/paused")
            && did(Method::Delete, "/session")
    );
    let world = stack.sim.world().await;
    assert!(!world.agents[&agent("22010")].logged_in);
    assert_ne!(world.agents[&agent("22010")].paused, Some(PauseReason(4)));
}

#[tokio::test]
async fn the_api_wants_a_supervisor_and_says_why_not() {
    let secret = Secret::new("a-secret-of-enough-length");
    let stack = bridge_with(Via::Tcp, |c| {
        c.auth = Some(AuthConfig::Hmac {
            secret: secret.clone(),
        });
        c.supervisors.ids = vec!["9001".into()];
    })
    .await;
    let port = stack.port;
    let (status, body) =
        http_request(port, "GET", "/api/v1/queues?supervisor=9001", &[], None).await;
    assert_eq!(
        status, 401,
        "naming oneself is no proof with [auth]: {body}"
    );
    let maria = format!("Bearer {}", mint_token(&secret, "22010"));
    let (status, body) = http_request(
        port,
        "GET",
        "/api/v1/queues",
        &[("Authorization", &maria)],
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("22010 is not a supervisor"), "{body}");
    let ana = format!("Bearer {}", mint_token(&secret, "9001"));
    let (status, body) = http_request(
        port,
        "GET",
        "/api/v1/queues",
        &[("Authorization", &ana)],
        None,
    )
    .await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (200, json!({"queues": [{"id": 7, "name": "Financeiro"}]}))
    );
    let (status, body) = http_request(
        port,
        "GET",
        "/api/v1/queues/8/calls",
        &[("Authorization", &ana)],
        None,
    )
    .await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, body["code"].as_str(), body["event"].as_str()),
        (404, Some("not_your_queue"), Some("QUEUE_CALLS_ERROR"))
    );
    let (status, body) = http_request(
        port,
        "PUT",
        "/api/v1/agents/22010/pause",
        &[("Authorization", &ana)],
        Some(r#"{"reason": "soon"}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = http_request(
        port,
        "PUT",
        "/api/v1/agents/22010/pause",
        &[("Authorization", &ana)],
        Some("{not json"),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = http_request(
        port,
        "PUT",
        "/api/v1/agents/22010/calls/12345/transfer",
        &[("Authorization", &ana)],
        Some(r#"{"destination": "11001"}"#),
    )
    .await;
    assert_eq!(status, 409, "{body}");
}
