//! Following a queue: a snapshot, then each change, for the queues a supervisor may see.

use converja_bridge::converja::{PauseReason, QueueId};
use serde_json::json;

use crate::common::agent_ui::bridge;
use crate::common::{Calls, Via, agent};
use crate::requests::{ana, answered};

#[tokio::test]
async fn a_subscription_sends_the_board_then_every_change() {
    let stack = bridge(Via::Tcp).await;
    let waiting = stack.sim.ring(QueueId(7), "01911112222").await.unwrap();
    let mut ui = ana(&stack.url).await;
    let board = ui.ask("ana", "SUBSCRIBE", json!({"queue": 7})).await;
    let snapshot = &board["snapshot"];
    assert_eq!(
        (snapshot["queue"].as_u64(), snapshot["name"].as_str()),
        (Some(7), Some("Financeiro"))
    );
    assert_eq!(
        snapshot["calls"],
        json!([{"call": waiting.0, "caller": "01911112222", "since": snapshot["calls"][0]["since"]}])
    );
    assert_eq!(snapshot["stats"]["waiting"], 1);
    assert_eq!(snapshot["stats"]["history"].as_array().unwrap().len(), 60);
    let agents: Vec<_> = snapshot["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["agent"].as_str().unwrap().to_owned(),
                a["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        agents,
        [
            ("22010".to_owned(), "idle".to_owned()),
            ("22011".to_owned(), "idle".to_owned())
        ]
    );

    // The waiting caller hangs up: the call leaves, the figures count it.
    stack.sim.miss_call(waiting).await.unwrap();
    let gone = ui.expect("ana", "QUEUE_CALL").await;
    assert_eq!(
        (gone["call"].as_u64(), gone["state"].as_str()),
        (Some(waiting.0), Some("missed"))
    );
    let stats = loop {
        let stats = ui.expect("ana", "QUEUE_STATS").await;
        if stats["windows"][0]["missed"] == 1 {
            break stats;
        }
    };
    assert_eq!(stats["waiting"], 0);

    // Maria takes a call: the call and Maria change.
    let call = stack.sim.call("22010", "01922223333").await;
    answered(&mut ui, call.0).await;
    let maria = loop {
        let state = ui.expect("ana", "AGENT_STATE").await;
        if state["agent"] == "22010" && state["state"] == "busy" {
            break state;
        }
    };
    assert_eq!(
        (maria["caller"].as_str(), maria["queue"].as_u64()),
        (Some("01922223333"), Some(7))
    );

    // A supervisor pauses João from elsewhere: the platform says so in catraquis.
    stack
        .sim
        .pause(&agent("22011"), PauseReason(11))
        .await
        .unwrap();
    let joao = loop {
        let state = ui.expect("ana", "AGENT_STATE").await;
        if state["agent"] == "22011" && state["state"] == "paused" {
            break state;
        }
    };
    assert_eq!(joao["reason"], "11");
}

#[tokio::test]
async fn a_queue_not_followed_or_not_visible_sends_nothing() {
    let stack = bridge(Via::Tcp).await;
    let mut ui = ana(&stack.url).await;
    let auth = json!({"auth": {"supervisor": "9001"}});
    // A second screen of Ana's keeps following queue 7: it shows when a change went out.
    ui.connect_with("wall", "/callcontrol", "/supervisor", &["polling"], auth)
        .await;
    ui.ask("wall", "SUBSCRIBE", json!({"queue": 7})).await;
    let refused = ui.ask("ana", "SUBSCRIBE", json!({"queue": 8})).await;
    assert_eq!(
        (refused["event"].as_str(), refused["code"].as_str()),
        (Some("SUBSCRIBE_ERROR"), Some("not_your_queue"))
    );
    ui.ask("ana", "SUBSCRIBE", json!({"queue": 7})).await;
    let ok = ui.ask("ana", "UNSUBSCRIBE", json!({"queue": 7})).await;
    assert_eq!(ok, json!({"event": "UNSUBSCRIBE", "queue": 7}));
    // Carla serves queue 8 only; Maria's call is in queue 7, which Ana's first screen left.
    stack.sim.call_in(8, "22012", "01933334444").await;
    let unseen = stack.sim.call("22010", "01944445555").await;
    wait_for_call(&mut ui, "wall", unseen.0, "answered").await;
    ui.ask("ana", "SUBSCRIBE", json!({"queue": 7})).await;
    let marker = stack.sim.ring(QueueId(7), "01955556666").await.unwrap();
    wait_for_call(&mut ui, "ana", marker.0, "waiting").await;
    let leaked: Vec<_> = ui
        .events("ana")
        .into_iter()
        .filter(|e| e.starts_with("\"QUEUE_CALL\"") || e.starts_with("\"AGENT_STATE\""))
        .filter(|e| e.contains("01933334444") || e.contains("01944445555") || e.contains("22012"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
}

/// Waits until screen `id` shows `call` in `state`.
async fn wait_for_call(ui: &mut crate::common::agent_ui::Puppet, id: &str, call: u64, state: &str) {
    loop {
        let change = ui.expect(id, "QUEUE_CALL").await;
        if change["call"] == call && change["state"] == state {
            return;
        }
    }
}
