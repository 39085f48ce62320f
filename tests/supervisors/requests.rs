//! Every supervisor request, through the platform and back.

use converja_bridge::converja::{Destination, Method, PauseReason};
use serde_json::json;

use crate::common::agent_ui::{Puppet, bridge};
use crate::common::{Calls, Via, agent};

/// Ana on `/supervisor`, without `[auth]`: she says who she is.
pub(crate) async fn ana(url: &str) -> Puppet {
    let mut ui = Puppet::start(url).await;
    let auth = json!({"auth": {"supervisor": "9001"}});
    ui.connect_with("ana", "/callcontrol", "/supervisor", &["websocket"], auth)
        .await;
    ui
}

#[tokio::test]
async fn a_supervisor_reads_their_queues_and_nothing_else() {
    let stack = bridge(Via::Tcp).await;
    let mut ui = ana(&stack.url).await;
    let queues = ui.ask("ana", "QUEUES", json!({})).await;
    assert_eq!(
        queues,
        json!({"event": "QUEUES", "queues": [{"id": 7, "name": "Financeiro"}]})
    );
    let agents = ui.ask("ana", "QUEUE_AGENTS", json!({"queue": 7})).await;
    assert_eq!(
        agents["agents"],
        json!([{"id": "22010", "name": "Maria Souza"}, {"id": "22011", "name": "João Pereira"}])
    );
    let supervisors = ui
        .ask("ana", "QUEUE_SUPERVISORS", json!({"queue": "7"}))
        .await;
    assert_eq!(
        supervisors["supervisors"],
        json!([{"id": "9001", "name": "Ana Lima"}])
    );
    let call = stack
        .sim
        .ring(converja_bridge::converja::QueueId(7), "01933334444")
        .await
        .unwrap();
    let calls = ui.ask("ana", "QUEUE_CALLS", json!({"queue": 7})).await;
    assert_eq!(calls["calls"][0]["call"], call.0);
    assert_eq!(calls["calls"][0]["caller"], "01933334444");
    assert_eq!(calls["calls"][0]["answer"], json!(null));
    let status = ui
        .ask("ana", "AGENT_STATUS", json!({"agent": "22010"}))
        .await;
    assert_eq!(
        (status["event"].as_str(), status["state"].as_str()),
        (Some("AGENT_STATUS"), Some("idle"))
    );
    let time = ui
        .ask("ana", "TERMINAL_TIME", json!({"agent": 22010}))
        .await;
    assert!(time["timestamp"].as_f64().unwrap() > 1.7e12, "{time}");
    // Queue 8 and its agents are not Ana's; the answer does not say whether they exist.
    for (event, data) in [
        ("QUEUE_AGENTS", json!({"queue": 8})),
        ("QUEUE_CALLS", json!({"queue": 99})),
        ("AGENT_STATUS", json!({"agent": "22012"})),
        ("LOGOUT_AGENT", json!({"agent": "22012"})),
    ] {
        let refused = ui.ask("ana", event, data).await;
        assert_eq!(refused["event"], format!("{event}_ERROR"), "{refused}");
        let code = refused["code"].as_str().unwrap();
        assert!(
            code == "not_your_queue" || code == "not_your_agent",
            "{refused}"
        );
    }
    let carla = Destination::Agent(agent("22012"));
    let acted: Vec<_> = stack
        .sim
        .requests()
        .await
        .into_iter()
        .filter(|r| r.at == carla)
        .collect();
    assert!(acted.is_empty(), "nothing was done to Carla: {acted:?}");
}

#[tokio::test]
async fn a_supervisor_pauses_resumes_transfers_and_logs_out_an_agent() {
    let stack = bridge(Via::Tcp).await;
    let mut ui = ana(&stack.url).await;
    let maria = agent("22010");
    let paused = ui
        .ask("ana", "PAUSE_AGENT", json!({"agent": "22010", "reason": 3}))
        .await;
    assert_eq!(
        paused,
        json!({"event": "PAUSE_AGENT", "agent": "22010", "reason": "3"})
    );
    assert_eq!(
        stack.sim.world().await.agents[&maria].paused,
        Some(PauseReason(3))
    );
    ui.ask("ana", "RESUME_AGENT", json!({"agent": "22010"}))
        .await;
    assert_eq!(stack.sim.world().await.agents[&maria].paused, None);
    // Following queue 7, Ana's screen shows the call once the platform says it started.
    ui.ask("ana", "SUBSCRIBE", json!({"queue": 7})).await;
    let call = stack.sim.call("22010", "01955556666").await;
    answered(&mut ui, call.0).await;
    let done = ui
        .ask(
            "ana",
            "TRANSFER_CALL",
            json!({"agent": "22010", "callId": call.0, "destination": "11001"}),
        )
        .await;
    assert_eq!(
        done,
        json!({"event": "TRANSFER_CALL", "agent": "22010", "callId": call.0, "destination": "11001"})
    );
    let sim = stack.sim.clone();
    let transfers: Vec<_> = sim
        .requests()
        .await
        .into_iter()
        .filter(|r| r.message.method == Method::Put && r.message.resource == "/calls/active/local")
        .collect();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].message.params["value"], "11001");
    // A call Maria does not hold is never acted on.
    let refused = ui
        .ask(
            "ana",
            "TRANSFER_CALL",
            json!({"agent": "22010", "callId": call.0 + 1000, "destination": "11001"}),
        )
        .await;
    assert_eq!(refused["code"], "call_not_held");
    let out = ui
        .ask("ana", "LOGOUT_AGENT", json!({"agent": "22010"}))
        .await;
    assert_eq!(out["event"], "LOGOUT_AGENT");
    assert!(!stack.sim.world().await.agents[&maria].logged_in);
}

#[tokio::test]
async fn bad_requests_get_a_typed_refusal_and_the_socket_goes_on() {
    let stack = bridge(Via::Tcp).await;
    let mut ui = ana(&stack.url).await;
    let refused = ui.ask("ana", "QUEUE_CALLS", json!({})).await;
    assert_eq!(
        (refused["event"].as_str(), refused["code"].as_str()),
        (Some("QUEUE_CALLS_ERROR"), Some("bad_request"))
    );
    assert!(
        refused["message"].as_str().unwrap().contains("queue"),
        "{refused}"
    );
    let refused = ui
        .ask(
            "ana",
            "PAUSE_AGENT",
            json!({"agent": "22010", "reason": "a while"}),
        )
        .await;
    assert_eq!(refused["code"], "bad_request");
    let refused = ui
        .ask(
            "ana",
            "TRANSFER_CALL",
            json!({"agent": "22010", "callId": 1, "destination": "<script>"}),
        )
        .await;
    assert_eq!(refused["code"], "bad_request");
    let refused = ui.ask("ana", "DROP_TABLES", json!({"queue": 7})).await;
    assert_eq!(
        (refused["event"].as_str(), refused["code"].as_str()),
        (Some("DROP_TABLES_ERROR"), Some("unknown_request"))
    );
    // Without an acknowledgement, the answer comes as an event.
    ui.emit("ana", "QUEUES", json!({})).await;
    assert_eq!(ui.expect("ana", "QUEUES").await["queues"][0]["id"], 7);
    ui.emit("ana", "QUEUE_AGENTS", json!({"queue": 8})).await;
    assert_eq!(
        ui.expect("ana", "QUEUE_AGENTS_ERROR").await["code"],
        "not_your_queue"
    );
}

/// Waits until Ana's screen shows `call` answered.
pub(crate) async fn answered(ui: &mut Puppet, call: u64) {
    loop {
        let change = ui.expect("ana", "QUEUE_CALL").await;
        if change["call"] == call && change["state"] == "answered" {
            return;
        }
    }
}
