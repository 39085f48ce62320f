//! Events: typed, once, never replayed; readiness.

use super::*;

pub(crate) async fn events_arrive_typed_once_and_replays_are_dropped(via: Via) {
    let s = stack(via).await;
    let mut updates = s.platform.subscribe();
    let maria = agent("22010");
    let call = s.sim.call("22010", "01921215544").await;
    let start = next_update(&mut updates, |u| match u {
        Update::Event(e) => match &e.event {
            Event::CallDidStart(start) => Some((e.room.clone(), e.id, start.clone())),
            _ => None,
        },
        _ => None,
    })
    .await;
    assert_eq!(start.0, RoomName::Queue(QueueId(7)));
    assert_eq!(start.2.callid, call);
    assert_eq!(start.2.destination, maria);
    assert_eq!(start.2.origin, "01921215544");

    // The platform publishes the same event again (a replay): dropped and counted.
    let dupes = counter(DROPPED, "reason=\"duplicate_event\"");
    let replay = Message::Event(EventMessage::new(
        start.1,
        &Event::CallDidStart(start.2.clone()),
    ))
    .to_json();
    s.sim.publish_raw(RoomName::Queue(QueueId(7)), replay).await;
    // An unknown and a malformed event, then a real one: only the real one comes through.
    s.sim
        .publish_raw(
            RoomName::Queue(QueueId(7)),
            r#"{"id": 1, "type": "event", "name": "CallExploded", "params": {}}"#.into(),
        )
        .await;
    s.sim
        .publish_raw(RoomName::Queue(QueueId(7)), "not json".into())
        .await;
    s.sim.finish_call(call).await.unwrap();
    let next = next_update(&mut updates, |u| match u {
        Update::Event(e) => Some(e.event.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(next, Event::CallDidFinish(ref f) if f.callid == call),
        "{next:?}"
    );
    assert!(counter(DROPPED, "reason=\"duplicate_event\"") > dupes);
    assert!(counter(DROPPED, "reason=\"unknown_event\"") >= 1.0);
}

pub(crate) async fn events_published_before_the_bridge_joined_are_not_replayed(via: Via) {
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (prosody, sim) = start_sim(scenario(), &tracker, &cancel).await;
    // History the room would replay to a joiner that asked for it.
    let early = sim.call("22010", "111").await;
    let cfg = converja(&prosody, Duration::from_secs(5));
    let platform = converja_bridge::platform::Client::start(
        via.account(&prosody, "bridge", "bridge-pw"),
        BRIDGE_NICK.into(),
        &cfg,
        &tracker,
        cancel.clone(),
    );
    let mut updates = platform.subscribe();
    wait_ready(&platform).await;
    let late = sim.call("22011", "222").await;
    let first: CallId = next_update(&mut updates, |u| match u {
        Update::Event(e) => match &e.event {
            Event::CallDidStart(s) => Some(s.callid),
            _ => None,
        },
        _ => None,
    })
    .await;
    assert_eq!(
        first, late,
        "call {early} was published before the join and must not come back"
    );
    cancel.cancel();
}

/// Ready means every followed room is joined, and which queues to follow is known: with the
/// queue list slow to come, filis and catraquis alone do not make the bridge ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn readiness_waits_for_the_queue_list() {
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (prosody, sim) = start_sim(scenario(), &tracker, &cancel).await;
    sim.set_faults(vec![FaultRule::new(
        "/queues",
        Fault {
            delay: Some(Duration::from_secs(2)),
            ..Fault::default()
        },
    )])
    .await;
    let platform = converja_bridge::platform::Client::start(
        settings(&prosody, "bridge", "bridge-pw"),
        BRIDGE_NICK.into(),
        &converja(&prosody, Duration::from_secs(5)),
        &tracker,
        cancel.clone(),
    );
    let mut state = platform.link_state();
    tokio::time::timeout(PATIENCE, state.wait_for(|s| s.joined.len() >= 2))
        .await
        .unwrap()
        .unwrap();
    let early = platform.readiness();
    assert!(!early.is_ready(), "{early:?}");
    assert!(
        early.missing.iter().any(|m| m.contains("queue list")),
        "{early:?}"
    );
    wait_ready(&platform).await;
    cancel.cancel();
}
