//! Every JSON example of the platform's API documentation, parsed into its typed form.

use serde_json::json;

use super::*;

#[test]
fn request_example_from_the_api() {
    let text =
        r#"{"id": 1, "type": "request", "method": "GET", "resource": "/queues", "params": {}}"#;
    let Message::Request(msg) = Message::parse(text).expect("parses") else {
        panic!("not a request")
    };
    assert_eq!(
        Request::route(&Destination::Filis, &msg),
        Ok(Request::Queues)
    );
    // What the bridge writes for the same request is the same JSON.
    let ours: serde_json::Value =
        serde_json::from_str(&Message::Request(Request::Queues.to_message(1)).to_json()).unwrap();
    assert_eq!(
        ours,
        serde_json::from_str::<serde_json::Value>(text).unwrap()
    );
}

#[test]
fn response_example_from_the_api() {
    let text = r#"{"id": 2, "type": "response", "to": 1, "failure": false, "status": 200,
 "params": {"data": [{"id": 7, "name": "Financeiro"}, {"id": 8, "name": "Suporte Técnico"}]}}"#;
    let Message::Response(resp) = Message::parse(text).expect("parses") else {
        panic!("not a response")
    };
    assert_eq!((resp.id, resp.to, resp.status), (2, 1, 200));
    assert!(resp.is_success());
    let queues = Data::<QueueInfo>::decode("queues", resp.params).expect("typed");
    assert_eq!(
        queues.data[1],
        QueueInfo {
            id: QueueId(8),
            name: "Suporte Técnico".into()
        }
    );
}

#[test]
fn response_example_from_the_responses_chapter() {
    // Seed 004, with its non-breaking spaces and three queues.
    let text = "{  \n \"id\": 2,\n \"type\": \"response\",\n \"to\": 1,\n \"failure\": false,\n \"status\": 200,\n \
                \"params\": {  \n \"data\": [ {\"id\": 7, \"name\": \"Financeiro\"}, {\"id\": 8, \"name\": \"Suporte Técnico\"}, \
                {\"id\": 9, \"name\": \"Vendas\"} ] } }";
    let Message::Response(resp) = Message::parse(text).expect("parses") else {
        panic!("not a response")
    };
    let queues = Data::<QueueInfo>::decode("queues", resp.params).expect("typed");
    assert_eq!(queues.data.len(), 3);
    assert_eq!(queues.data[2].name, "Vendas");
}

#[test]
fn event_example_from_the_api() {
    let text = r#"{"id": 1, "type": "event", "name": "CallDidStart",
 "params": {"callid": 123, "destination": "22010", "origin": "01921215544", "queue": 7, "timestamp": 1468418331.7214}}"#;
    let Message::Event(msg) = Message::parse(text).expect("parses") else {
        panic!("not an event")
    };
    let Event::CallDidStart(start) = msg.event().expect("typed") else {
        panic!("wrong event")
    };
    assert_eq!(start.callid, CallId(123));
    assert_eq!(start.destination, AgentId::new("22010"));
    assert_eq!(start.origin, "01921215544");
    assert_eq!(start.queue, QueueId(7));
    assert_eq!(start.timestamp.to_iso8601(), "2016-07-13T13:58:51.721Z");
    // And back: the simulator writes the same event.
    assert_eq!(EventMessage::new(1, &Event::CallDidStart(start)), msg);
}

#[test]
fn failure_response_keeps_status_and_params() {
    let text = r#"{"id": 5, "type": "response", "to": 4, "failure": true, "status": 404, "params": {"error": "no such agent"}}"#;
    let Message::Response(resp) = Message::parse(text).expect("parses") else {
        panic!("not a response")
    };
    assert!(!resp.is_success());
    assert_eq!(resp.status, 404);
    assert_eq!(resp.params["error"], "no such agent");
}

#[test]
fn queue_calls_with_the_published_quirks() {
    // callee as a number, float and null timestamps.
    let params = json!({
        "calls": [
            {"call": 123, "callee": 22010, "caller": "01921215544", "queue": 7,
             "timestamps": {"answer": 1468418331.7214, "hangup": null, "join": 1468418320.1, "miss": null}},
            {"call": 124, "callee": null, "caller": "0800", "queue": 7,
             "timestamps": {"answer": null, "hangup": null, "join": 1468418325.0, "miss": null}}
        ],
        "queue": 7,
        "timestamp": 1468418340.5
    });
    let calls = QueueCalls::decode("queue_calls", params).expect("typed");
    assert_eq!(calls.calls[0].callee, Some(AgentId::new("22010")));
    assert!(calls.calls[0].is_active());
    assert_eq!(calls.calls[1].callee, None);
    assert!(!calls.calls[1].is_active());
}

#[test]
fn agent_status_shows_caller_or_pause_reason() {
    let busy = AgentStatus::decode(
        "agent_status",
        json!({"agent": "22010", "name": "busy", "show": "01921215544", "timestamp": 1468418331.7}),
    )
    .expect("typed");
    assert_eq!(busy.name, AgentState::Busy);
    assert_eq!(busy.show.as_deref(), Some("01921215544"));
    let paused = AgentStatus::decode(
        "agent_status",
        json!({"agent": 22010, "name": "paused", "show": 11, "timestamp": 1.0}),
    )
    .expect("typed");
    assert_eq!(paused.pause_reason(), Some(PauseReason(11)));
    let paused = AgentStatus::decode(
        "agent_status",
        json!({"agent": "22010", "name": "paused", "show": "11", "timestamp": 1.0}),
    )
    .expect("typed");
    assert_eq!(paused.pause_reason(), Some(PauseReason(11)));
    let idle = AgentStatus::decode(
        "agent_status",
        json!({"agent": "22010", "name": "idle", "show": null, "timestamp": 1.0}),
    )
    .expect("typed");
    assert_eq!(idle.show, None);
    assert!(
        AgentStatus::decode(
            "agent_status",
            json!({"agent": "22010", "name": "asleep", "timestamp": 1.0})
        )
        .is_err()
    );
}

#[test]
fn other_response_shapes_from_the_request_table() {
    let agents = Data::<QueueAgent>::decode(
        "queue_agents",
        json!({"data": [{"agent": "22010", "name": "Maria"}]}),
    )
    .unwrap();
    assert_eq!(agents.data[0].agent, AgentId::new("22010"));
    let sups = Data::<QueueSupervisor>::decode(
        "queue_supervisors",
        json!({"data": [{"supervisor": "9001", "name": "Ana"}]}),
    )
    .unwrap();
    assert_eq!(sups.data[0].supervisor, AgentId::new("9001"));
    assert_eq!(
        TerminalTime::decode("timestamp", json!({"timestamp": 1468418331721u64}))
            .unwrap()
            .timestamp,
        1468418331721.0
    );
    assert_eq!(Empty::decode("logout", json!({})).unwrap(), Empty {});
    assert_eq!(
        Empty::decode("logout", serde_json::Value::Null).unwrap(),
        Empty {}
    );
}

#[test]
fn every_event_of_the_table_parses_in_both_id_forms() {
    let cases = [
        json!({"name": "CallRinging", "params": {"callid": 1, "origin": "0800", "queue": 7, "timestamp": 1.5}}),
        json!({"name": "CallDidFinish", "params": {"callid": 1, "destination": 22010, "duration": 30.2, "origin": "0800", "queue": "7", "timestamp": 1.5}}),
        json!({"name": "CallMissed", "params": {"callid": "1", "duration": 12, "origin": "0800", "queue": 7, "timestamp": 1.5}}),
        json!({"name": "UserSessionDidStart", "params": {"agent": "22010", "queues": [7, 8], "timestamp": 1.5}}),
        json!({"name": "UserSessionDidPause", "params": {"agent": "22010", "queues": [7], "reason": "11", "timestamp": 1.5}}),
        json!({"name": "UserSessionDidResume", "params": {"agent": 22010, "queues": [7], "timestamp": 1.5}}),
        json!({"name": "UserSessionDidFinish", "params": {"agent": "22010", "queues": [], "timestamp": 1.5}}),
    ];
    for case in cases {
        let msg = EventMessage {
            id: 9,
            name: case["name"].as_str().unwrap().into(),
            params: case["params"].clone(),
        };
        let event = msg.event().unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(event.name(), msg.name);
    }
}

#[test]
fn bad_bodies_are_errors_not_panics() {
    for body in [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"type": "response"}"#,
        r#"{"type": "shout", "id": 1}"#,
        r#"{"id": -1, "type": "response", "to": 1, "status": 200}"#,
    ] {
        assert!(Message::parse(body).is_err(), "{body}");
    }
    let unknown = EventMessage {
        id: 1,
        name: "CallExploded".into(),
        params: json!({}),
    };
    assert_eq!(
        unknown.event(),
        Err(ProtocolError::UnknownEvent("CallExploded".into()))
    );
    let bad = EventMessage {
        id: 1,
        name: "CallDidStart".into(),
        params: json!({"callid": "x"}),
    };
    assert!(matches!(bad.event(), Err(ProtocolError::BadParams { .. })));
}
