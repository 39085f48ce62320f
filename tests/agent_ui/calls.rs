//! Calls: delivery, capacity, ownership, rejection, platform failures and outages.

use super::*;

pub(crate) async fn one_agent_cannot_end_another_agents_call(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("maria").await;
    ui.connect("joao").await;
    ui.login("maria", "22010", 2).await;
    ui.login("joao", "22011", 2).await;
    let call = stack.sim.call("22010", "0800").await;
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

pub(crate) async fn capacity_holds_calls_back_in_arrival_order(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    let first = stack.sim.call("22010", "1").await;
    let second = stack.sim.call("22010", "2").await;
    let third = stack.sim.call("22010", "3").await;
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

pub(crate) async fn calls_reach_each_socket_once_and_a_new_socket_gets_them_all(via: Via) {
    let stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("tab1").await;
    ui.login("tab1", "22010", 4).await;
    let a = stack.sim.call("22010", "1").await;
    let b = stack.sim.call("22010", "2").await;
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

pub(crate) async fn a_rejected_call_frees_its_slot_and_applies_on_call_error(via: Via) {
    let stack = bridge_with(via, |c| {
        c.agents.on_call_error = OnCallError::Hangup;
        c.agents.on_disconnect = OnDisconnect::Pause(PauseReason(1));
    })
    .await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    let first = stack.sim.call("22010", "1").await;
    let second = stack.sim.call("22010", "2").await;
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

pub(crate) async fn platform_failures_reach_the_ui_as_sentences(via: Via) {
    let stack = bridge(via).await;
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
    let next = stack.sim.call("22010", "2").await;
    assert_eq!(ui.expect("a", "NEW_CALL").await["callId"], next.to_string());
}

pub(crate) async fn calls_missed_during_an_outage_are_delivered_after_it(via: Via) {
    let mut stack = bridge(via).await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 4).await;
    let ended = stack.sim.call("22010", "1").await;
    ui.expect("a", "NEW_CALL").await;
    stack.xmpp.kill();
    // While the XMPP server is down, one call ends and another starts on the platform.
    stack.sim.finish_call(ended).await.unwrap();
    let started = stack.sim.call_in(8, "22010", "2").await;
    stack.xmpp.restart().expect("prosody restarts");
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

pub(crate) async fn on_call_error_transfer_and_on_disconnect_none(via: Via) {
    let stack = bridge_with(via, |c| {
        c.agents.on_call_error = OnCallError::Transfer("11001".into());
        c.agents.on_disconnect = OnDisconnect::None;
    })
    .await;
    let mut ui = Puppet::start(&stack.url).await;
    ui.connect("a").await;
    ui.login("a", "22010", 1).await;
    let call = stack.sim.call("22010", "1").await;
    ui.expect("a", "NEW_CALL").await;
    ui.emit(
        "a",
        "NEW_CALL_ERROR",
        json!({"callId": call.0, "error": "busy"}),
    )
    .await;
    let transfer = poll_for("the call was transferred", common::PATIENCE, || async {
        let seen = stack.sim.requests().await;
        seen.into_iter()
            .find(|r| r.message.resource == "/calls/active/local")
            .ok_or_else(String::new)
    })
    .await;
    assert_eq!(transfer.message.params["value"], "11001");
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
