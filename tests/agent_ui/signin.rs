//! Who a socket is with JSON Web Tokens, and what one client may cost: each limit refused
//! with its reason while a well-behaved agent on the same bridge keeps working.

use std::num::NonZeroU32;

use super::*;
use common::jwt::{AUDIENCE, SECRET as JWT_SECRET, token as jwt};

async fn refused_with(ui: &mut Puppet, url: &str, id: &str, token: &str) -> String {
    ui.send(json!({"op": "connect", "id": id, "url": url, "path": "/callcontrol", "transports": ["websocket"], "auth": {"token": token}})).await;
    ui.expect(id, "connect_error")
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) async fn with_jwt_the_token_decides_the_username(via: Via) {
    let stack = bridge_with(via, |c| c.auth = Some(common::jwt::auth())).await;
    let mut ui = Puppet::start(&stack.url).await;
    let expired = jwt("22010", -60, AUDIENCE, JWT_SECRET);
    assert!(
        refused_with(&mut ui, &stack.url, "old", &expired)
            .await
            .contains("expired")
    );
    let elsewhere = jwt("22010", 600, "another-app", JWT_SECRET);
    assert!(
        refused_with(&mut ui, &stack.url, "aud", &elsewhere)
            .await
            .contains("audience")
    );
    let forged = jwt("22010", 600, AUDIENCE, "not-the-secret-at-all");
    assert!(
        refused_with(&mut ui, &stack.url, "forged", &forged)
            .await
            .contains("signature")
    );
    let token = jwt("22010", 600, AUDIENCE, JWT_SECRET);
    a_token_for_22010_acts_for_22010_alone(&stack, &mut ui, &token).await;
}

/// Limits small enough to reach in a test.
fn tight(c: &mut converja_bridge::config::Config) {
    c.limits.connections_per_address = NonZeroU32::new(3);
    c.limits.events_per_second_per_socket = NonZeroU32::new(10);
    c.limits.usernames_per_socket = NonZeroU32::new(2);
}

pub(crate) async fn each_limit_refuses_with_its_reason_while_a_good_agent_keeps_working(via: Via) {
    let stack = bridge_with(via, tight).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("maria").await;
    ui.login("maria", "22010", 2).await;
    ui.connect("flood").await;
    // Usernames: two tried (unknown to the platform), the third refused before any request.
    for name in ["30001", "30002"] {
        ui.emit(
            "flood",
            "USER_CONNECT",
            json!({"username": name, "maxCalls": 1}),
        )
        .await;
        ui.expect("flood", "USER_CONNECTION_ERROR").await;
    }
    ui.emit(
        "flood",
        "USER_CONNECT",
        json!({"username": "30003", "maxCalls": 1}),
    )
    .await;
    let refused = ui.expect("flood", "USER_CONNECTION_ERROR").await;
    assert!(
        refused["error"].as_str().unwrap().contains("usernames"),
        "{refused}"
    );
    // Events: a burst past the rate; every one is answered, the excess as too many.
    const BURST: usize = 60;
    for _ in 0..BURST {
        ui.emit("flood", "END_CALL", json!({"callId": "999"})).await;
    }
    let mut limited = 0;
    for _ in 0..BURST {
        let error = ui.expect("flood", "END_CALL_ERROR").await;
        limited += usize::from(error["error"].as_str().unwrap().contains("too many events"));
    }
    // The logins spent the budget first (a USER_CONNECT counts five events).
    assert!(limited > 0, "{limited} of {BURST} limited");
    // Connections: maria and flood hold two of three; the fourth is refused, counted.
    let before = counter(telemetry::SOCKETS_REFUSED, "reason=\"connections\"");
    ui.connect("third").await;
    ui.send(json!({"op": "connect", "id": "fourth", "url": stack.url, "path": "/callcontrol", "transports": ["websocket"]})).await;
    ui.expect("fourth", "connect_error").await;
    assert!(counter(telemetry::SOCKETS_REFUSED, "reason=\"connections\"") > before);
    // The well-behaved agent's round trips are answered as before.
    let call = stack.sim.call("22010", "0800").await;
    ui.expect("maria", "NEW_CALL").await;
    ui.emit("maria", "END_CALL", json!({"callId": call.to_string()}))
        .await;
    assert_eq!(
        ui.expect("maria", "CALL_ENDED").await["callId"],
        call.to_string()
    );
}
