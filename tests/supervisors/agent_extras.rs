//! The agent side's opt-in extras (`agents.extensions`): PAUSE, RESUME, TRANSFER_CALL, and
//! USER_PAUSED / USER_RESUMED when the platform says so.

use converja_bridge::converja::{Method, PauseReason};
use serde_json::json;

use crate::common::agent_ui::{Puppet, bridge, bridge_with};
use crate::common::{Calls, Via, agent};

/// How many `method resource` requests the platform received.
async fn asked(
    stack: &crate::common::agent_ui::BridgeStack,
    method: Method,
    resource: &str,
) -> usize {
    let requests = stack.sim.requests().await;
    requests
        .iter()
        .filter(|r| r.message.method == method && r.message.resource == resource)
        .count()
}

#[tokio::test]
async fn without_extensions_the_contract_is_the_published_one() {
    let stack = bridge(Via::Tcp).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("maria").await;
    ui.login("maria", "22010", 1).await;
    for (event, data) in [
        ("PAUSE", json!({"reason": 3})),
        ("RESUME", json!({})),
        (
            "TRANSFER_CALL",
            json!({"callId": "1", "destination": "11001"}),
        ),
    ] {
        let answer = ui.ask("maria", event, data).await;
        assert_eq!(answer, json!({"error": format!("unknown event {event}")}));
    }
    stack
        .sim
        .pause(&agent("22010"), PauseReason(11))
        .await
        .unwrap();
    ui.expect_none("maria", "USER_PAUSED").await;
    assert_eq!(asked(&stack, Method::Put, "/session/paused").await, 0);
}

#[tokio::test]
async fn an_agent_pauses_and_resumes_and_hears_of_pauses_made_elsewhere() {
    let stack = bridge_with(Via::Tcp, |c| c.agents.extensions = true).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("desk").await;
    ui.connect("phone").await;
    ui.login("desk", "22010", 1).await;
    ui.login("phone", "22010", 1).await;
    let paused = ui.ask("desk", "PAUSE", json!({"reason": 3})).await;
    assert_eq!(paused, json!({"username": "22010", "reason": "3"}));
    assert_eq!(
        stack.sim.world().await.agents[&agent("22010")].paused,
        Some(PauseReason(3))
    );
    // Every screen of the session hears of it once, though the platform announces it too
    // (as END_CALL's CALL_ENDED, the asker gets the event and its acknowledgement).
    for screen in ["desk", "phone"] {
        assert_eq!(ui.expect(screen, "USER_PAUSED").await, paused);
    }
    let resumed = ui.ask("desk", "RESUME", json!({})).await;
    assert_eq!(resumed, json!({"username": "22010"}));
    for screen in ["desk", "phone"] {
        assert_eq!(ui.expect(screen, "USER_RESUMED").await, resumed);
    }
    // A supervisor pauses Maria: both screens are told by the platform's event.
    stack
        .sim
        .pause(&agent("22010"), PauseReason(11))
        .await
        .unwrap();
    for screen in ["desk", "phone"] {
        assert_eq!(
            ui.expect(screen, "USER_PAUSED").await,
            json!({"username": "22010", "reason": "11"})
        );
    }
    ui.expect_none("phone", "USER_PAUSED").await;
    ui.expect_none("desk", "USER_PAUSED").await;
    assert_eq!(
        ui.count("desk", "USER_PAUSED") + ui.count("phone", "USER_PAUSED"),
        4
    );
    let refused = ui.ask("desk", "PAUSE", json!({"reason": "lunch"})).await;
    assert_eq!(
        refused["error"],
        "PAUSE needs {reason}, a pause reason id above 0"
    );
}

#[tokio::test]
async fn a_transfer_acts_only_on_the_call_named() {
    let stack = bridge_with(Via::Tcp, |c| c.agents.extensions = true).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("maria").await;
    ui.login("maria", "22010", 2).await;
    let older = stack.sim.call("22010", "01911111111").await;
    let newer = stack.sim.call("22010", "01922222222").await;
    ui.expect("maria", "NEW_CALL").await;
    ui.expect("maria", "NEW_CALL").await;
    // The platform's current call is the newer one: the older is not transferred.
    let refused = ui
        .ask(
            "maria",
            "TRANSFER_CALL",
            json!({"callId": older.to_string(), "destination": "11001"}),
        )
        .await;
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("not your current call"),
        "{refused}"
    );
    assert_eq!(asked(&stack, Method::Put, "/calls/active/local").await, 0);
    let refused = ui
        .ask(
            "maria",
            "TRANSFER_CALL",
            json!({"callId": newer.to_string(), "destination": "11001; rm"}),
        )
        .await;
    assert_eq!(
        refused["error"],
        "destination must be a number to transfer to (digits, + * #)"
    );
    let done = ui
        .ask(
            "maria",
            "TRANSFER_CALL",
            json!({"callId": newer.to_string(), "destination": "11001"}),
        )
        .await;
    assert_eq!(done, json!({"callId": newer.to_string()}));
    assert_eq!(
        ui.expect("maria", "CALL_ENDED").await["callId"],
        newer.to_string()
    );
    assert_eq!(asked(&stack, Method::Put, "/calls/active/local").await, 1);
    // Now the older call is the only one, hence the current one.
    let done = ui
        .ask(
            "maria",
            "TRANSFER_CALL",
            json!({"callId": older.0, "destination": "+5511"}),
        )
        .await;
    assert_eq!(done, json!({"callId": older.to_string()}));
    assert_eq!(
        ui.expect("maria", "CALL_ENDED").await["callId"],
        older.to_string()
    );
}
