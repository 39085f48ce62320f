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
async fn an_unreadable_queue_is_retried_and_ends_nothing_meanwhile() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 2).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    ui.new_calls();
    bench.platform.set_queues(vec![
        (QueueId(7), Ok(vec![])),
        (
            QueueId(8),
            Err(PlatformError::Timeout(Duration::from_secs(10))),
        ),
    ]);
    bench.core.resync();
    after(Duration::from_millis(500)).await;
    assert!(ui.take().is_empty(), "an incomplete picture ends no call");
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
    assert_eq!(ui.take(), vec![ended(5)]);
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn nothing_is_read_when_nobody_is_connected() {
    let bench = Bench::new();
    bench.core.resync();
    after(Duration::from_secs(1)).await;
    assert!(bench.platform.asked().is_empty());
    bench.stop().await;
}
