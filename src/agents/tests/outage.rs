//! Reconciliation after an outage: what the UIs missed is emitted, never twice.

use super::*;

#[tokio::test(start_paused = true)]
async fn missed_calls_are_delivered_and_missed_ends_reported_once() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 3).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    // During the outage call 5 ended and call 6 started.
    bench
        .platform
        .set_queues(vec![(QueueId(7), Ok(vec![active("22010", 6)]))]);
    bench.core.resync();
    after(Duration::from_millis(100)).await;
    let got = ui.take();
    assert!(got.contains(&ended(5)), "{got:?}");
    assert_eq!(
        got.iter().filter(|(n, _)| *n == "NEW_CALL").count(),
        1,
        "{got:?}"
    );
    // A second reconciliation with the same state emits nothing.
    bench.core.resync();
    after(Duration::from_millis(100)).await;
    assert!(ui.take().is_empty());
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn each_queue_is_applied_as_it_answers_and_an_unreadable_one_is_retried() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 2).await;
    bench.start_call("22010", 5);
    bench.core.call_started(&started_in("22010", 6, QueueId(8)));
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5", "6"]);
    bench.platform.set_queues(vec![
        (QueueId(7), Ok(vec![])),
        (
            QueueId(8),
            Err(PlatformError::Timeout(Duration::from_secs(10))),
        ),
    ]);
    bench.core.resync();
    after(Duration::from_millis(500)).await;
    assert_eq!(ui.take(), vec![ended(5)], "queue 7 read: its call ended");
    let reads = |p: &FakePlatform| {
        p.asked()
            .iter()
            .filter(|a| **a == Asked::QueueCalls(8))
            .count()
    };
    assert_eq!(reads(&bench.platform), 1);
    bench
        .platform
        .set_queues(vec![(QueueId(7), Ok(vec![])), (QueueId(8), Ok(vec![]))]);
    after(Duration::from_secs(1)).await;
    assert_eq!(reads(&bench.platform), 2, "retried after a second");
    assert_eq!(
        bench
            .platform
            .asked()
            .iter()
            .filter(|a| **a == Asked::QueueCalls(7))
            .count(),
        1,
        "a queue already applied is not read again"
    );
    assert_eq!(ui.take(), vec![ended(6)]);
    bench.stop().await;
}

/// Agent 22010 holding call 5, and a read of queue 7 (listing call 5) held on its way.
async fn reading_queue_7_with_call_5() -> (Bench, Ui, Held) {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 3).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    bench
        .platform
        .set_queues(vec![(QueueId(7), Ok(vec![active("22010", 5)]))]);
    let read = bench.platform.hold("queue_calls");
    bench.core.resync();
    after(Duration::from_millis(10)).await;
    (bench, ui, read)
}

#[tokio::test(start_paused = true)]
async fn a_call_that_started_after_its_queue_was_read_is_not_ended_by_the_read() {
    let (bench, mut ui, read) = reading_queue_7_with_call_5().await;
    // The read is on its way; meanwhile the platform assigns call 6.
    bench.start_call("22010", 6);
    assert_eq!(ui.new_calls(), vec!["6"]);
    read.release(Ok(()));
    after(Duration::from_millis(100)).await;
    assert!(
        ui.take().is_empty(),
        "call 6 is newer than the read: not ended"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_call_that_ended_during_a_read_is_not_brought_back_by_it() {
    let (bench, mut ui, read) = reading_queue_7_with_call_5().await;
    bench.core.call_ended(CallId(5));
    assert_eq!(ui.take(), vec![ended(5)]);
    read.release(Ok(()));
    after(Duration::from_millis(100)).await;
    assert!(
        ui.take().is_empty(),
        "the read is older than the end: no NEW_CALL again"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn queues_answering_in_any_order_with_events_between_leave_the_ui_equal_to_the_platform() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 4).await;
    bench.start_call("22010", 5);
    bench.core.call_started(&started_in("22010", 6, QueueId(8)));
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5", "6"]);
    // The platform during the outage: call 5 ended, call 6 goes on, call 7 started in queue 8.
    bench.platform.set_queues(vec![
        (QueueId(7), Ok(vec![])),
        (QueueId(8), Ok(vec![active("22010", 6), active("22010", 7)])),
    ]);
    let first = bench.platform.hold("queue_calls");
    let second = bench.platform.hold("queue_calls");
    bench.core.resync();
    after(Duration::from_millis(10)).await;
    // Queue 7's read is out. Events keep coming: call 8 starts in queue 7, call 6 ends.
    bench.start_call("22010", 8);
    bench.core.call_ended(CallId(6));
    first.release(Ok(()));
    after(Duration::from_millis(10)).await;
    second.release(Ok(()));
    after(Duration::from_millis(100)).await;
    let got = ui.take();
    let mut shown: Vec<u64> = vec![5, 6];
    for (name, payload) in &got {
        let call: u64 = payload["callId"].as_str().unwrap().parse().unwrap();
        match *name {
            "NEW_CALL" => shown.push(call),
            "CALL_ENDED" => shown.retain(|c| *c != call),
            other => panic!("unexpected {other}"),
        }
    }
    shown.sort();
    assert_eq!(
        shown,
        vec![7, 8],
        "what the UI shows is what the platform has: {got:?}"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_call_the_agent_already_had_is_delivered_after_login() {
    let mut bench = Bench::new();
    // At start (or after an outage) the platform already counts call 5 as the agent's.
    bench
        .platform
        .set_queues(vec![(QueueId(7), Ok(vec![active("22010", 5)]))]);
    bench.core.resync();
    after(Duration::from_millis(100)).await;
    let mut ui = bench.login("22010", 1).await;
    after(Duration::from_millis(400)).await;
    assert!(ui.take().is_empty(), "after first_call_delay");
    after(Duration::from_millis(200)).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_call_that_ended_before_the_login_is_not_delivered() {
    let mut bench = Bench::new();
    bench.start_call("22010", 5);
    bench.start_call("22010", 6);
    bench.core.call_ended(CallId(5));
    let mut ui = bench.login("22010", 2).await;
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["6"]);
    bench.stop().await;
}
