//! Sessions: logging out, lost sockets, acknowledgements, ordering and the daemon's endpoints.

use super::*;

pub(crate) async fn disconnect_logs_out_with_or_without_a_payload(via: Via) {
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
    stack.sim.call("22011", "1").await;
    ui.expect_none("a", "NEW_CALL").await;
}

pub(crate) async fn a_disconnect_sent_with_the_close_is_still_handled(via: Via) {
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

pub(crate) async fn a_lost_socket_keeps_its_session_for_the_grace_period_then_logs_out(via: Via) {
    let stack = bridge_with(via, |c| c.agents.reconnect_grace.0 = Duration::from_secs(2)).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    let call = stack.sim.call("22010", "1").await;
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

pub(crate) async fn acknowledgements_receive_the_reply_payload(via: Via) {
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

pub(crate) async fn events_of_one_socket_are_served_in_the_order_sent(via: Via) {
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

pub(crate) async fn health_readiness_metrics_and_graceful_shutdown(via: Via) {
    let mut stack = bridge(via).await;
    assert_eq!(admin_get(stack.port, "/healthz").await.0, 200);
    let (status, body) = admin_get(stack.port, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin_get(stack.port, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("converja_xmpp_link_up"), "{body}");
    stack.xmpp.kill();
    tokio::time::timeout(common::PATIENCE, async {
        while admin_get(stack.port, "/readyz").await.0 != 503 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("not ready without XMPP");
    assert_eq!(
        admin_get(stack.port, "/healthz").await.0,
        200,
        "alive all the same"
    );
    stack.shutdown().await.expect("a clean shutdown");
}

pub(crate) async fn shutdown_answers_the_requests_in_flight_before_closing(via: Via) {
    let mut stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    let call = stack.sim.call("22010", "1").await;
    ui.expect("a", "NEW_CALL").await;
    stack
        .sim
        .set_faults(vec![FaultRule::new(
            "/calls/active",
            Fault {
                delay: Some(Duration::from_secs(1)),
                ..Fault::default()
            },
        )])
        .await;
    let id = call.to_string();
    ui.send(
        json!({"op": "emit", "id": "a", "event": "END_CALL", "data": {"callId": id}, "ack": true}),
    )
    .await;
    tokio::time::timeout(common::PATIENCE, async {
        while requests_to(&stack, Method::Delete, "/calls/active").await == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the hangup reaches the platform");
    let asked = std::time::Instant::now();
    stack.ask_shutdown();
    // While it drains, a balancer is told to send new agents elsewhere.
    eventually(
        "/readyz says draining from the moment shutdown is asked",
        || async {
            let (status, body) = admin_get(stack.port, "/readyz").await;
            status == 503 && body.contains(r#""draining":true"#)
        },
    )
    .await;
    stack.shutdown().await.expect("a clean shutdown");
    assert!(
        asked.elapsed() < 2 * converja_bridge::app::DRAIN_DEADLINE,
        "stopped within its deadlines"
    );
    assert_eq!(ui.expect("a", "ack:END_CALL").await, json!({"callId": id}));
    ui.expect("a", "disconnect").await;
    let seen = ui.events("a");
    let position = |what: &str| seen.iter().position(|e| e.starts_with(what));
    assert!(
        position("\"ack:END_CALL\"") < position("\"disconnect\""),
        "the answer came before the socket closed: {seen:?}"
    );
    assert!(
        stack.sim.world().await.agents[&agent("22010")]
            .calls
            .is_empty()
    );
}
