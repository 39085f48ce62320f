//! The socket.io contract end to end: the reference socket.io client against the real bridge,
//! a real Prosody and the simulator. Each test asserts what the UI saw and, where it matters,
//! what the platform saw.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::agent_ui::{Puppet, bridge, bridge_with, http_get};
use common::{Via, agent, counter};
use converja_bridge::config::{AuthConfig, OnCallError, OnDisconnect, Secret};
use converja_bridge::converja::{Method, PauseReason, QueueId};
use converja_bridge::gateway::mint_token;
use converja_bridge::sim::{Fault, FaultRule};
use converja_bridge::telemetry;
use serde_json::json;

fn is_iso_millis(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
}

async fn requests_to(
    stack: &common::agent_ui::BridgeStack,
    method: Method,
    resource: &str,
) -> usize {
    stack
        .sim
        .requests()
        .await
        .iter()
        .filter(|r| r.message.method == method && r.message.resource == resource)
        .count()
}

async fn an_agent_logs_in_takes_a_call_and_ends_it(via: Via) {
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

    let call = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "01921215544")
        .await
        .unwrap();
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

async fn both_paths_both_namespaces_and_both_transports_work(via: Via) {
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
    let call = stack
        .sim
        .start_call(QueueId(8), &agent("22011"), "0800")
        .await
        .unwrap();
    assert_eq!(
        ui.expect("poll", "NEW_CALL").await["callId"],
        call.to_string()
    );
    ui.expect_none("ws", "NEW_CALL").await;
    ui.expect_none("mixed", "NEW_CALL").await;
    ui.expect_none("poll", "NEW_CALL").await;
}

async fn logins_are_validated_liberally_but_strictly(via: Via) {
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

async fn events_before_login_and_unknown_events_get_errors_not_crashes(via: Via) {
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

async fn one_agent_cannot_end_another_agents_call(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("maria").await;
    ui.connect("joao").await;
    ui.login("maria", "22010", 2).await;
    ui.login("joao", "22011", 2).await;
    let call = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "0800")
        .await
        .unwrap();
    ui.expect("maria", "NEW_CALL").await;
    ui.emit("joao", "END_CALL", json!({"callId": call.to_string()}))
        .await;
    let err = ui.expect("joao", "END_CALL_ERROR").await;
    assert_eq!(
        err["error"],
        format!("call {call} is not one of your calls")
    );
    assert_eq!(
        requests_to(&stack, Method::Delete, "/calls/active").await,
        0,
        "no request reached the platform"
    );
    // And a socket cannot log in as a second user without logging out.
    ui.emit(
        "joao",
        "USER_CONNECT",
        json!({"username": "22012", "maxCalls": 1}),
    )
    .await;
    assert!(
        ui.expect("joao", "USER_CONNECTION_ERROR").await["error"]
            .as_str()
            .unwrap()
            .contains("already logged in as 22011")
    );
}

async fn capacity_holds_calls_back_in_arrival_order(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    let first = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "1")
        .await
        .unwrap();
    let second = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "2")
        .await
        .unwrap();
    let third = stack
        .sim
        .start_call(QueueId(8), &agent("22010"), "3")
        .await
        .unwrap();
    assert_eq!(
        ui.expect("a", "NEW_CALL").await["callId"],
        first.to_string()
    );
    ui.expect_none("a", "NEW_CALL").await;
    stack.sim.finish_call(first).await.unwrap();
    assert_eq!(
        ui.expect("a", "CALL_ENDED").await["callId"],
        first.to_string()
    );
    assert_eq!(
        ui.expect("a", "NEW_CALL").await["callId"],
        second.to_string()
    );
    stack.sim.finish_call(second).await.unwrap();
    assert_eq!(
        ui.expect("a", "NEW_CALL").await["callId"],
        third.to_string()
    );
}

async fn calls_reach_each_socket_once_and_a_new_socket_gets_them_all(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("tab1").await;
    ui.login("tab1", "22010", 4).await;
    let a = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "1")
        .await
        .unwrap();
    let b = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "2")
        .await
        .unwrap();
    ui.expect("tab1", "NEW_CALL").await;
    ui.expect("tab1", "NEW_CALL").await;
    // A repeated USER_CONNECT on the same socket re-delivers nothing.
    ui.login("tab1", "22010", 4).await;
    ui.expect_none("tab1", "NEW_CALL").await;
    // A second tab of the same agent gets every unfinished call.
    ui.connect("tab2").await;
    ui.login("tab2", "22010", 4).await;
    let mut got = vec![
        ui.expect("tab2", "NEW_CALL").await["callId"].clone(),
        ui.expect("tab2", "NEW_CALL").await["callId"].clone(),
    ];
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, vec![json!(a.to_string()), json!(b.to_string())]);
    // The platform ends one: both tabs hear it, once.
    stack.sim.finish_call(a).await.unwrap();
    ui.expect("tab1", "CALL_ENDED").await;
    ui.expect("tab2", "CALL_ENDED").await;
    ui.expect_none("tab1", "CALL_ENDED").await;
    assert_eq!(ui.count("tab1", "NEW_CALL"), 2);
}

async fn disconnect_logs_out_with_or_without_a_payload(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    ui.emit_bare("a", "USER_DISCONNECT").await;
    assert_eq!(
        ui.expect("a", "USER_DISCONNECTED").await,
        json!({"username": "22010"})
    );
    assert_eq!(requests_to(&stack, Method::Delete, "/session").await, 1);
    assert!(!stack.sim.world().await.agents[&agent("22010")].logged_in);
    // The socket stays open and may log in again, here with the other spelling on the way out.
    stack.sim.login(&agent("22011")).await.unwrap();
    ui.login("a", "22011", 1).await;
    ui.emit("a", "USER_DISCONNECT", json!({"userName": "22011"}))
        .await;
    assert_eq!(
        ui.expect("a", "USER_DISCONNECTED").await,
        json!({"username": "22011"})
    );
    // Calls for a disconnected agent no longer reach the socket.
    stack.sim.login(&agent("22011")).await.unwrap();
    stack
        .sim
        .start_call(QueueId(7), &agent("22011"), "1")
        .await
        .unwrap();
    ui.expect_none("a", "NEW_CALL").await;
}

async fn a_disconnect_sent_with_the_close_is_still_handled(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    ui.send(json!({"op": "emit", "id": "a", "event": "USER_DISCONNECT", "data": {"username": "22010"}, "close": true})).await;
    common::eventually("logged out at once, not after the grace period", || async {
        requests_to(&stack, Method::Delete, "/session").await > 0
    })
    .await;
}

async fn a_lost_socket_keeps_its_session_for_the_grace_period_then_logs_out(via: Via) {
    let stack = bridge_with(via, |c| c.agents.reconnect_grace.0 = Duration::from_secs(2)).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    let call = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "1")
        .await
        .unwrap();
    ui.expect("a", "NEW_CALL").await;
    ui.send(json!({"op": "close", "id": "a"})).await;
    // Back within the grace period: same session, its call delivered again on the new socket.
    ui.connect("b").await;
    ui.login("b", "22010", 1).await;
    assert_eq!(ui.expect("b", "NEW_CALL").await["callId"], call.to_string());
    assert_eq!(requests_to(&stack, Method::Delete, "/session").await, 0);
    ui.send(json!({"op": "close", "id": "b"})).await;
    common::eventually("on_disconnect applied after the grace period", || async {
        requests_to(&stack, Method::Delete, "/session").await > 0
    })
    .await;
}

async fn a_rejected_call_frees_its_slot_and_applies_on_call_error(via: Via) {
    let stack = bridge_with(via, |c| {
        c.agents.on_call_error = OnCallError::Hangup;
        c.agents.on_disconnect = OnDisconnect::Pause(PauseReason(1));
    })
    .await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    let first = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "1")
        .await
        .unwrap();
    let second = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "2")
        .await
        .unwrap();
    assert_eq!(
        ui.expect("a", "NEW_CALL").await["callId"],
        first.to_string()
    );
    ui.emit(
        "a",
        "NEW_CALL_ERROR",
        json!({"callId": first.to_string(), "error": "no free chat window"}),
    )
    .await;
    assert_eq!(
        ui.expect("a", "NEW_CALL").await["callId"],
        second.to_string()
    );
    ui.expect_none("a", "NEW_CALL").await;
    // The platform's current call is the newest, not the rejected one: hanging up would end
    // the call the agent just received, so the bridge leaves both alone.
    common::eventually(
        "the bridge asked the platform which call is current",
        || async { requests_to(&stack, Method::Get, "/agents/22010/status").await >= 2 },
    )
    .await;
    assert_eq!(
        requests_to(&stack, Method::Delete, "/calls/active").await,
        0
    );
    assert_eq!(
        stack.sim.world().await.agents[&agent("22010")].calls,
        vec![first, second]
    );
    // on_disconnect = pause.
    ui.emit_bare("a", "USER_DISCONNECT").await;
    ui.expect("a", "USER_DISCONNECTED").await;
    let world = stack.sim.world().await;
    assert!(world.agents[&agent("22010")].paused.is_some());
}

async fn platform_failures_reach_the_ui_as_sentences(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    let call = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "1")
        .await
        .unwrap();
    ui.expect("a", "NEW_CALL").await;
    stack
        .sim
        .set_faults(vec![FaultRule::new(
            "/calls/active",
            Fault {
                delay: Some(Duration::from_secs(5)),
                ..Fault::default()
            },
        )])
        .await;
    ui.emit("a", "END_CALL", json!({"callId": call.to_string()}))
        .await;
    let err = ui.expect("a", "END_CALL_ERROR").await;
    assert_eq!(
        err,
        json!({"callId": call.to_string(), "error": "the platform did not answer within 3s"})
    );
    // The platform did hang up; its CallDidFinish still ends the call in the UI, once.
    assert_eq!(
        ui.expect("a", "CALL_ENDED").await["callId"],
        call.to_string()
    );
    stack
        .sim
        .set_faults(vec![FaultRule::new(
            "/session",
            Fault {
                status: Some(500),
                ..Fault::default()
            },
        )])
        .await;
    ui.emit_bare("a", "USER_DISCONNECT").await;
    let err = ui.expect("a", "USER_DISCONNECTION_ERROR").await;
    assert!(err["error"].as_str().unwrap().contains("(500)"), "{err}");
    // The session is unchanged: it still receives calls.
    stack.sim.set_faults(vec![]).await;
    let next = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "2")
        .await
        .unwrap();
    assert_eq!(ui.expect("a", "NEW_CALL").await["callId"], next.to_string());
}

async fn acknowledgements_receive_the_reply_payload(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.send(json!({"op": "emit", "id": "a", "event": "USER_CONNECT", "data": {"username": "22010", "maxCalls": 2}, "ack": true})).await;
    assert_eq!(
        ui.expect("a", "ack:USER_CONNECT").await,
        json!({"username": "22010", "maxCalls": 2})
    );
    assert_eq!(
        ui.expect("a", "USER_CONNECTED").await,
        json!({"username": "22010", "maxCalls": 2})
    );
}

async fn events_of_one_socket_are_served_in_the_order_sent(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    let ids = ["22010", "22011", "22012"];
    for (n, id) in ids.iter().enumerate() {
        let s = format!("s{n}");
        ui.connect(&s).await;
        ui.emit(&s, "USER_CONNECT", json!({"username": id, "maxCalls": 1}))
            .await;
        ui.emit(&s, "USER_DISCONNECT", json!({"username": id}))
            .await;
    }
    for n in 0..ids.len() {
        let s = format!("s{n}");
        let (first, _) = ui
            .expect_any(
                &s,
                &[
                    "USER_CONNECTED",
                    "USER_DISCONNECTED",
                    "USER_CONNECTION_ERROR",
                    "USER_DISCONNECTION_ERROR",
                ],
            )
            .await;
        let (second, _) = ui
            .expect_any(
                &s,
                &[
                    "USER_CONNECTED",
                    "USER_DISCONNECTED",
                    "USER_CONNECTION_ERROR",
                    "USER_DISCONNECTION_ERROR",
                ],
            )
            .await;
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("USER_CONNECTED", "USER_DISCONNECTED"),
            "socket {s}"
        );
    }
}

async fn with_auth_the_token_decides_the_username(via: Via) {
    let secret = Secret::new("a-test-secret-of-some-length");
    let s2 = secret.clone();
    let stack = bridge_with(via, move |c| c.auth = Some(AuthConfig { hmac_secret: s2 })).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.send(json!({"op": "connect", "id": "anon", "url": stack.url, "path": "/callcontrol", "transports": ["websocket"]})).await;
    assert_eq!(
        ui.expect("anon", "connect_error").await,
        "a valid auth.token is required"
    );
    let token = mint_token(&secret, "22010");
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
    ui.login("maria", "22010", 1).await;
}

async fn origins_outside_the_list_are_refused_even_over_websocket(via: Via) {
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

async fn calls_missed_during_an_outage_are_delivered_after_it(via: Via) {
    let mut stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 4).await;
    let ended = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "1")
        .await
        .unwrap();
    ui.expect("a", "NEW_CALL").await;
    stack.prosody.kill();
    // While the XMPP server is down, one call ends and another starts on the platform.
    stack.sim.finish_call(ended).await.unwrap();
    let started = stack
        .sim
        .start_call(QueueId(8), &agent("22010"), "2")
        .await
        .unwrap();
    stack.prosody.restart().expect("prosody restarts");
    assert_eq!(
        ui.expect("a", "CALL_ENDED").await["callId"],
        ended.to_string()
    );
    assert_eq!(
        ui.expect("a", "NEW_CALL").await["callId"],
        started.to_string()
    );
    ui.expect_none("a", "NEW_CALL").await;
    assert_eq!(ui.count("a", "CALL_ENDED"), 1);
}

async fn health_readiness_metrics_and_graceful_shutdown(via: Via) {
    let mut stack = bridge(via).await;
    assert_eq!(http_get(stack.port, "/healthz").await.0, 200);
    let (status, body) = http_get(stack.port, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(stack.port, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("converja_xmpp_link_up"), "{body}");
    stack.prosody.kill();
    tokio::time::timeout(common::PATIENCE, async {
        while http_get(stack.port, "/readyz").await.0 != 503 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("not ready without XMPP");
    assert_eq!(
        http_get(stack.port, "/healthz").await.0,
        200,
        "alive all the same"
    );
    stack.shutdown().await.expect("a clean shutdown");
}

async fn on_call_error_transfer_and_on_disconnect_none(via: Via) {
    let stack = bridge_with(via, |c| {
        c.agents.on_call_error = OnCallError::Transfer("11001".into());
        c.agents.on_disconnect = OnDisconnect::None;
    })
    .await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    let call = stack
        .sim
        .start_call(QueueId(7), &agent("22010"), "1")
        .await
        .unwrap();
    ui.expect("a", "NEW_CALL").await;
    ui.emit(
        "a",
        "NEW_CALL_ERROR",
        json!({"callId": call.0, "error": "busy"}),
    )
    .await;
    tokio::time::timeout(common::PATIENCE, async {
        loop {
            let seen = stack.sim.requests().await;
            if let Some(r) = seen
                .iter()
                .find(|r| r.message.resource == "/calls/active/local")
            {
                assert_eq!(r.message.params["value"], "11001");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the call was transferred");
    // A rejected call gets no CALL_ENDED: the UI already dropped it.
    ui.expect_none("a", "CALL_ENDED").await;
    ui.emit_bare("a", "USER_DISCONNECT").await;
    ui.expect("a", "USER_DISCONNECTED").await;
    assert_eq!(
        requests_to(&stack, Method::Delete, "/session").await,
        0,
        "on_disconnect = none leaves the agent alone"
    );
    assert!(stack.sim.world().await.agents[&agent("22010")].logged_in);
}

over_tcp_and_bosh!(
    an_agent_logs_in_takes_a_call_and_ends_it,
    both_paths_both_namespaces_and_both_transports_work,
    logins_are_validated_liberally_but_strictly,
    events_before_login_and_unknown_events_get_errors_not_crashes,
    one_agent_cannot_end_another_agents_call,
    capacity_holds_calls_back_in_arrival_order,
    calls_reach_each_socket_once_and_a_new_socket_gets_them_all,
    disconnect_logs_out_with_or_without_a_payload,
    a_disconnect_sent_with_the_close_is_still_handled,
    a_lost_socket_keeps_its_session_for_the_grace_period_then_logs_out,
    a_rejected_call_frees_its_slot_and_applies_on_call_error,
    platform_failures_reach_the_ui_as_sentences,
    acknowledgements_receive_the_reply_payload,
    events_of_one_socket_are_served_in_the_order_sent,
    with_auth_the_token_decides_the_username,
    origins_outside_the_list_are_refused_even_over_websocket,
    calls_missed_during_an_outage_are_delivered_after_it,
    health_readiness_metrics_and_graceful_shutdown,
    on_call_error_transfer_and_on_disconnect_none,
);
