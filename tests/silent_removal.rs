//! A room removal nobody announces (the server dropped the bridge's occupant under a live
//! stream): the XEP-0410 self-ping notices it, the bridge rejoins and re-reads, and the call
//! published while it was out reaches the agent. Against Prosody, whose admin shell can do
//! such a removal.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::agent_ui::{Puppet, bridge_with};
use common::{Calls, Via};
use converja_bridge::config::HumanDuration;
use converja_bridge::telemetry;

async fn a_silent_removal_is_noticed_and_the_missed_call_delivered(via: Via) {
    let stack = bridge_with(via, |c| {
        c.xmpp.self_ping_interval = HumanDuration(Duration::from_secs(1));
    })
    .await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 4).await;
    let removals = common::counter(telemetry::ROOM_REMOVALS, "");
    stack
        .xmpp
        .remove_silently("queue.7", "converja-bridge")
        .expect("the server drops the bridge from the queue room");
    let removed = Instant::now();
    // Published in the room the bridge is no longer in: only a re-read can find it.
    let call = stack.sim.call("22010", "1").await;
    assert_eq!(ui.expect("a", "NEW_CALL").await["callId"], call.to_string());
    println!(
        "removal → call delivered: {} ms",
        removed.elapsed().as_millis()
    );
    assert!(common::counter(telemetry::ROOM_REMOVALS, "") > removals);
    ui.expect_none("a", "CALL_ENDED").await;
}

over_tcp_and_bosh!(a_silent_removal_is_noticed_and_the_missed_call_delivered);
