//! Several calls at once, end to end, under both "current call" choices the platform may
//! make: the reference socket.io client, the real bridge, a real Prosody and the simulator.
//! What the UI shows must equal what the platform has, and no call is ended that nobody named.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::agent_ui::{Puppet, bridge_on};
use common::{Calls, Via, agent, scenario};
use converja_bridge::converja::CallId;
use converja_bridge::sim::CurrentCall;
use serde_json::json;

/// An agent UI logged in with `maxCalls` 2 and holding two calls, oldest first.
async fn two_calls(
    via: Via,
    current: CurrentCall,
) -> (common::agent_ui::BridgeStack, Puppet, [CallId; 2]) {
    let mut scenario = scenario();
    scenario.current_call = current;
    let stack = bridge_on(via, scenario, |_| {}).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 2).await;
    let mut calls = [CallId(0); 2];
    for (i, caller) in ["0800111", "0800222"].iter().enumerate() {
        calls[i] = stack.sim.call("22010", caller).await;
        assert_eq!(
            ui.expect("a", "NEW_CALL").await["callId"],
            calls[i].to_string()
        );
    }
    (stack, ui, calls)
}

async fn platform_calls(stack: &common::agent_ui::BridgeStack) -> Vec<CallId> {
    stack.sim.world().await.agents[&agent("22010")]
        .calls
        .clone()
}

async fn ending_the_older_of_two_calls_ends_that_call_or_nothing(via: Via) {
    for current in [CurrentCall::Newest, CurrentCall::Oldest] {
        let (stack, mut ui, [older, newer]) = two_calls(via, current).await;
        ui.emit("a", "END_CALL", json!({"callId": older.to_string()}))
            .await;
        let (event, payload) = ui.expect_any("a", &["CALL_ENDED", "END_CALL_ERROR"]).await;
        match current {
            CurrentCall::Oldest => {
                assert_eq!(
                    (event.as_str(), &payload),
                    ("CALL_ENDED", &json!({"callId": older.to_string()}))
                );
                assert_eq!(platform_calls(&stack).await, vec![newer]);
            }
            CurrentCall::Newest => {
                assert_eq!(event, "END_CALL_ERROR", "{payload}");
                assert!(
                    payload["error"].as_str().unwrap().contains("0800222"),
                    "names the current call's caller: {payload}"
                );
                assert_eq!(
                    platform_calls(&stack).await,
                    vec![older, newer],
                    "nothing ended"
                );
                // The agent ends the current one, as told: that works.
                ui.emit("a", "END_CALL", json!({"callId": newer.to_string()}))
                    .await;
                assert_eq!(
                    ui.expect("a", "CALL_ENDED").await,
                    json!({"callId": newer.to_string()})
                );
                assert_eq!(platform_calls(&stack).await, vec![older]);
            }
        }
        // Settled, the UI holds exactly what the platform has.
        ui.expect_none("a", "CALL_ENDED").await;
        let remaining = platform_calls(&stack).await;
        assert_eq!(remaining.len(), 1);
        ui.emit("a", "END_CALL", json!({"callId": remaining[0].to_string()}))
            .await;
        assert_eq!(
            ui.expect("a", "CALL_ENDED").await,
            json!({"callId": remaining[0].to_string()}),
            "{current:?}"
        );
        assert!(platform_calls(&stack).await.is_empty());
    }
}

async fn a_call_the_agent_already_had_reaches_the_ui_on_login(via: Via) {
    let stack = bridge_on(via, scenario(), |_| {}).await;
    // The platform assigns a call before any UI of the agent connects.
    let call = stack.sim.call("22010", "0800333").await;
    // Barrier: a later event in the same room reaches another agent's UI, so the bridge has
    // handled the first one before 22010 logs in.
    let mut witness = Puppet::start(&stack.url).await;
    witness.connect("w").await;
    witness.login("w", "22011", 1).await;
    let later = stack.sim.call("22011", "0800444").await;
    assert_eq!(
        witness.expect("w", "NEW_CALL").await["callId"],
        later.to_string()
    );
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    assert_eq!(ui.expect("a", "NEW_CALL").await["callId"], call.to_string());
}

over_tcp_and_bosh!(
    ending_the_older_of_two_calls_ends_that_call_or_nothing,
    a_call_the_agent_already_had_reaches_the_ui_on_login,
);
