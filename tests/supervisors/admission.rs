//! Who is admitted to `/supervisor`: with `[auth]`, only a supervisor identity.

use converja_bridge::config::{AuthConfig, Secret};
use converja_bridge::gateway::mint_token;
use serde_json::json;

use crate::common::Via;
use crate::common::agent_ui::{Puppet, bridge, bridge_with};

/// Connects `id` to `/supervisor` with `auth`; the connect_error's text when refused.
async fn connect(ui: &mut Puppet, id: &str, auth: serde_json::Value) -> Option<String> {
    ui.send(json!({"op": "connect", "id": id, "url": format!("{}/supervisor", ui_url(ui)), "path": "/callcontrol", "transports": ["websocket"], "auth": auth}))
        .await;
    let (what, data) = ui.expect_any(id, &["connect", "connect_error"]).await;
    (what == "connect_error").then(|| data.as_str().unwrap_or_default().to_owned())
}

fn ui_url(ui: &Puppet) -> String {
    ui.url().to_owned()
}

#[tokio::test]
async fn without_auth_a_supervisor_says_who_they_are() {
    let stack = bridge(Via::Tcp).await;
    let mut ui = Puppet::start(&stack.url).await;
    let refused = connect(&mut ui, "nobody", json!({})).await;
    assert_eq!(
        refused.as_deref(),
        Some("say which supervisor you are in auth.supervisor")
    );
    assert_eq!(
        connect(&mut ui, "ana", json!({"supervisor": "9001"})).await,
        None
    );
}

#[tokio::test]
async fn with_tokens_only_listed_supervisors_are_admitted() {
    let secret = Secret::new("a-secret-of-enough-length");
    let stack = bridge_with(Via::Tcp, |c| {
        c.auth = Some(AuthConfig::Hmac {
            secret: secret.clone(),
        });
        c.supervisors.ids = vec!["9001".into()];
    })
    .await;
    let mut ui = Puppet::start(&stack.url).await;
    let maria = mint_token(&secret, "22010");
    let refused = connect(&mut ui, "maria", json!({"token": maria})).await;
    assert_eq!(refused.as_deref(), Some("22010 is not a supervisor"));
    // Naming oneself is not proof when tokens are required.
    let refused = connect(&mut ui, "liar", json!({"supervisor": "9001"})).await;
    assert_eq!(refused.as_deref(), Some("a valid auth.token is required"));
    let ana = mint_token(&secret, "9001");
    assert_eq!(connect(&mut ui, "ana", json!({"token": ana})).await, None);
    let queues = ui.ask("ana", "QUEUES", json!({})).await;
    assert_eq!(queues["queues"], json!([{"id": 7, "name": "Financeiro"}]));
}

#[tokio::test]
async fn a_jwt_role_claim_makes_a_supervisor() {
    let key = "a-jwt-secret-of-enough-length";
    let stack = bridge_with(Via::Tcp, |c| {
        let text = format!("[xmpp]\njid = \"x@y\"\npassword = \"p\"\n[auth]\nmode = \"jwt\"\njwt_secret = \"{key}\"\n");
        c.auth = converja_bridge::config::Config::from_toml(&text).unwrap().auth;
    })
    .await;
    let mut ui = Puppet::start(&stack.url).await;
    let token = |sub: &str, roles: serde_json::Value| {
        let claims = json!({"sub": sub, "roles": roles, "exp": 4_102_444_800u64});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let refused = connect(
        &mut ui,
        "maria",
        json!({"token": token("22010", json!(["agent"]))}),
    )
    .await;
    assert_eq!(refused.as_deref(), Some("22010 is not a supervisor"));
    let ana = token("9001", json!(["agent", "supervisor"]));
    assert_eq!(connect(&mut ui, "ana", json!({"token": ana})).await, None);
    assert_eq!(
        ui.ask("ana", "QUEUES", json!({})).await["queues"][0]["id"],
        7
    );
}

#[tokio::test]
async fn behind_a_signing_proxy_a_group_makes_a_supervisor() {
    let stack = bridge_with(Via::Tcp, |c| {
        let text = "[xmpp]\njid = \"x@y\"\npassword = \"p\"\n[auth]\nmode = \"proxy\"\n\
                    header = \"X-Forwarded-User\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
                    [supervisors]\ngroups_header = \"X-Forwarded-Groups\"\n";
        let proxied = converja_bridge::config::Config::from_toml(text).unwrap();
        c.auth = proxied.auth;
        c.trusted_proxies = proxied.trusted_proxies;
        c.supervisors = proxied.supervisors;
    })
    .await;
    let mut ui = Puppet::start(&stack.url).await;
    // The tests connect from 127.0.0.1, the trusted proxy's address: their headers are its.
    let as_user =
        |user: &str, groups: &str| json!({"X-Forwarded-User": user, "X-Forwarded-Groups": groups});
    let mut connect_as = async |id: &str, headers: serde_json::Value| {
        ui.send(json!({"op": "connect", "id": id, "url": format!("{}/supervisor", stack.url), "path": "/callcontrol", "transports": ["websocket"], "headers": headers}))
            .await;
        let (what, data) = ui.expect_any(id, &["connect", "connect_error"]).await;
        (what == "connect_error").then(|| data.as_str().unwrap_or_default().to_owned())
    };
    let refused = connect_as("maria", as_user("22010", "agents, staff")).await;
    assert_eq!(refused.as_deref(), Some("22010 is not a supervisor"));
    assert_eq!(
        connect_as("ana", as_user("9001", "staff, supervisor")).await,
        None
    );
    assert_eq!(
        ui.ask("ana", "QUEUES", json!({})).await["queues"][0]["id"],
        7
    );
}
