//! Logging in: paths, namespaces, transports, validation, tokens and origins.

use super::*;

pub(crate) async fn an_agent_logs_in_takes_a_call_and_ends_it(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.emit(
        "a",
        "USER_CONNECT",
        json!({"username": "22010", "maxCalls": 8}),
    )
    .await;
    assert_eq!(
        ui.expect("a", "USER_CONNECTED").await,
        json!({"username": "22010", "maxCalls": 8})
    );

    let call = stack.sim.call("22010", "01921215544").await;
    let new_call = ui.expect("a", "NEW_CALL").await;
    assert_eq!(new_call["callId"], call.to_string());
    assert_eq!(new_call["media"], "CHAT");
    assert_eq!(new_call["service"], "Financeiro");
    assert_eq!(new_call["caller"], "01921215544");
    assert!(
        is_iso_millis(new_call["startDate"].as_str().unwrap()),
        "{new_call}"
    );

    ui.emit(
        "a",
        "NEW_CALL_ANSWERED",
        json!({"callId": call.to_string()}),
    )
    .await;
    ui.emit("a", "END_CALL", json!({"callId": call.0})).await;
    assert_eq!(
        ui.expect("a", "CALL_ENDED").await,
        json!({"callId": call.to_string()})
    );
    // The platform hung the call up, and the CallDidFinish that followed is not a second CALL_ENDED.
    assert_eq!(
        requests_to(&stack, Method::Delete, "/calls/active").await,
        1
    );
    assert_eq!(
        stack.sim.world().await.agents[&agent("22010")].calls,
        vec![]
    );
    ui.expect_none("a", "CALL_ENDED").await;
}

pub(crate) async fn both_paths_both_namespaces_and_both_transports_work(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect_with("ws", "/callcontrol", "", &["websocket"], json!({}))
        .await;
    ui.connect_with(
        "poll",
        "/socket.io",
        "/callcontrol",
        &["polling"],
        json!({}),
    )
    .await;
    ui.connect_with(
        "mixed",
        "/callcontrol",
        "/callcontrol",
        &["polling", "websocket"],
        json!({}),
    )
    .await;
    ui.login("ws", "22010", 1).await;
    ui.login("poll", "22011", 1).await;
    ui.login("mixed", "22012", 1).await;
    let call = stack.sim.call_in(8, "22011", "0800").await;
    assert_eq!(
        ui.expect("poll", "NEW_CALL").await["callId"],
        call.to_string()
    );
    ui.expect_none("ws", "NEW_CALL").await;
    ui.expect_none("mixed", "NEW_CALL").await;
    ui.expect_none("poll", "NEW_CALL").await;
}

pub(crate) async fn logins_are_validated_liberally_but_strictly(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    for (payload, fragment) in [
        (json!({"username": "bad name", "maxCalls": 1}), "username"),
        (json!({"username": "a@b/c", "maxCalls": 1}), "username"),
        (json!({"username": "22010", "maxCalls": 0}), "maxCalls"),
        (json!({"username": "22010", "maxCalls": null}), "maxCalls"),
        (json!({"username": "22010"}), "maxCalls"),
        (json!("22010"), "object"),
        // Several times the WebSocket read buffer (512 bytes): read whole all the same.
        (
            json!({"username": format!("bad name{}", "x".repeat(3000)), "maxCalls": 1}),
            "username",
        ),
    ] {
        ui.emit("a", "USER_CONNECT", payload.clone()).await;
        let err = ui.expect("a", "USER_CONNECTION_ERROR").await;
        assert!(
            err["error"].as_str().unwrap().contains(fragment),
            "{payload} -> {err}"
        );
    }
    ui.emit(
        "a",
        "USER_CONNECT",
        json!({"username": "404", "maxCalls": 1}),
    )
    .await;
    let err = ui.expect("a", "USER_CONNECTION_ERROR").await;
    assert_eq!(
        err,
        json!({"username": "404", "maxCalls": 1, "error": "agent 404 is not known to the platform (404)"})
    );
    ui.emit(
        "a",
        "USER_CONNECT",
        json!({"username": "22010", "maxCalls": "3"}),
    )
    .await;
    assert_eq!(
        ui.expect("a", "USER_CONNECTED").await,
        json!({"username": "22010", "maxCalls": 3})
    );
}

pub(crate) async fn events_before_login_and_unknown_events_get_errors_not_crashes(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.emit("a", "END_CALL", json!({"callId": "1"})).await;
    assert_eq!(
        ui.expect("a", "END_CALL_ERROR").await["error"],
        "not connected: send USER_CONNECT first"
    );
    ui.emit("a", "USER_DISCONNECT", json!({"username": "22010"}))
        .await;
    assert_eq!(
        ui.expect("a", "USER_DISCONNECTION_ERROR").await["error"],
        "not connected: send USER_CONNECT first"
    );
    ui.emit("a", "END_CALL", json!({"callId": "not-a-number"}))
        .await;
    assert!(
        ui.expect("a", "END_CALL_ERROR").await["error"]
            .as_str()
            .unwrap()
            .contains("callId")
    );
    let unknown = counter(telemetry::UNKNOWN_EVENTS, "");
    ui.emit("a", "MAKE_COFFEE", json!({"sugar": 2})).await;
    ui.send(json!({"op": "emit", "id": "a", "event": "MAKE_TEA", "data": {}, "ack": true}))
        .await;
    assert!(
        ui.expect("a", "ack:MAKE_TEA").await["error"]
            .as_str()
            .unwrap()
            .contains("unknown event")
    );
    assert!(counter(telemetry::UNKNOWN_EVENTS, "") >= unknown + 2.0);
    // Still serving the socket.
    ui.login("a", "22010", 1).await;
}

pub(crate) async fn with_auth_the_token_decides_the_username(via: Via) {
    let secret = Secret::new("a-test-secret-of-some-length");
    let s2 = secret.clone();
    let stack = bridge_with(via, move |c| c.auth = Some(AuthConfig::Hmac { secret: s2 })).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.send(json!({"op": "connect", "id": "anon", "url": stack.url, "path": "/callcontrol", "transports": ["websocket"]})).await;
    assert_eq!(
        ui.expect("anon", "connect_error").await,
        "a valid auth.token is required"
    );
    let token = mint_token(&secret, "22010");
    a_token_for_22010_acts_for_22010_alone(&stack, &mut ui, &token).await;
}

/// A socket whose handshake carries `token`, proving 22010, cannot log in as 22011 (the
/// platform never hears of it) and can log in as 22010.
pub(crate) async fn a_token_for_22010_acts_for_22010_alone(
    stack: &common::agent_ui::BridgeStack,
    ui: &mut Puppet,
    token: &str,
) {
    ui.connect_with(
        "maria",
        "/callcontrol",
        "",
        &["websocket"],
        json!({"auth": {"token": token}}),
    )
    .await;
    ui.emit(
        "maria",
        "USER_CONNECT",
        json!({"username": "22011", "maxCalls": 1}),
    )
    .await;
    assert!(
        ui.expect("maria", "USER_CONNECTION_ERROR").await["error"]
            .as_str()
            .unwrap()
            .contains("not for 22011")
    );
    // The bridge starts every session with a status request; none went out for 22011.
    assert_eq!(
        requests_to(stack, Method::Get, "/agents/22011/status").await,
        0
    );
    ui.login("maria", "22010", 1).await;
}

pub(crate) async fn origins_outside_the_list_are_refused_even_over_websocket(via: Via) {
    let stack = bridge_with(via, |c| {
        c.socketio.cors_origins = vec!["https://agents.example".into()]
    })
    .await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.send(json!({"op": "connect", "id": "evil", "url": stack.url, "path": "/callcontrol", "transports": ["websocket"], "headers": {"Origin": "https://evil.example"}})).await;
    assert!(
        ui.expect("evil", "connect_error")
            .await
            .as_str()
            .unwrap()
            .contains("not allowed")
    );
    ui.connect_with(
        "good",
        "/callcontrol",
        "",
        &["websocket"],
        json!({"headers": {"Origin": "https://agents.example"}}),
    )
    .await;
}
