//! NEW_CALL delivery, END_CALL, NEW_CALL_ANSWERED and NEW_CALL_ERROR.

use serde_json::json;

use super::*;

#[tokio::test(start_paused = true)]
async fn a_call_waits_for_the_first_call_delay_then_arrives_with_its_fields() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    bench.start_call("22010", 5);
    after(Duration::from_millis(300)).await;
    assert!(ui.take().is_empty(), "not before first_call_delay");
    after(Duration::from_millis(300)).await;
    assert_eq!(
        ui.take(),
        vec![(
            "NEW_CALL",
            json!({"callId": "5", "media": "CHAT", "startDate": "2016-07-13T13:58:51.721Z",
                   "service": "Financeiro", "caller": "01921210005"})
        )]
    );
    // Once the delay is over, calls go out as they arrive.
    bench.start_call("22010", 6);
    assert!(ui.take().is_empty(), "capacity 1: the second call waits");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn calls_beyond_capacity_wait_in_arrival_order_and_nothing_is_dropped() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 2).await;
    for call in 1..=4 {
        bench.start_call("22010", call);
    }
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["1", "2"]);
    bench.core.call_ended(CallId(1));
    let got = ui.take();
    assert_eq!(got[0], ended(1));
    assert_eq!(
        got[1].1["callId"], "3",
        "the oldest waiting call takes the slot at once"
    );
    bench.core.call_ended(CallId(2));
    bench.core.call_ended(CallId(3));
    assert_eq!(ui.new_calls(), vec!["4"]);
    after(Duration::from_secs(1)).await;
    assert!(ui.take().is_empty(), "each call once");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn ending_a_call_asks_the_platform_and_tells_every_socket_once() {
    let mut bench = Bench::new();
    let mut tab1 = bench.login("22010", 1).await;
    let mut tab2 = bench.login("22010", 1).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    tab1.new_calls();
    tab2.new_calls();
    let reply = tab1.send(ClientEvent::EndCall(CallId(5))).await;
    assert_eq!(reply, json!({"callId": "5"}));
    assert_eq!(tab1.take(), vec![ended(5)]);
    assert_eq!(tab2.take(), vec![ended(5)]);
    assert!(
        bench
            .platform
            .asked()
            .contains(&Asked::EndCall("22010".into()))
    );
    // The platform's own event follows: nobody hears of the call again.
    bench.core.call_ended(CallId(5));
    assert!(tab1.take().is_empty() && tab2.take().is_empty());
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_platform_s_event_during_an_end_call_in_flight_ends_the_call_once() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    ui.new_calls();
    let held = bench.platform.hold("end");
    let answer = ui.send_later(ClientEvent::EndCall(CallId(5))).await;
    after(Duration::from_millis(10)).await;
    bench.core.call_ended(CallId(5));
    assert_eq!(ui.take(), vec![ended(5)]);
    held.release(Ok(()));
    assert_eq!(answer.await.unwrap(), json!({"callId": "5"}));
    assert!(ui.take().is_empty(), "CALL_ENDED once");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_end_call_keeps_the_call_and_says_why() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    ui.new_calls();
    bench
        .platform
        .fail("end", PlatformError::LinkDown("XMPP link lost".into()));
    let reply = ui.send(ClientEvent::EndCall(CallId(5))).await;
    assert_eq!(
        reply,
        json!({"callId": "5",
               "error": "the platform is unreachable right now (XMPP link lost)"})
    );
    assert_eq!(ui.take(), vec![("END_CALL_ERROR", reply)]);
    let again = ui.send(ClientEvent::EndCall(CallId(5))).await;
    assert_eq!(again, json!({"callId": "5"}), "still the agent's call");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn nobody_ends_a_call_that_is_not_theirs() {
    let mut bench = Bench::new();
    let maria = bench.login("22010", 1).await;
    let mut joao = bench.login("22011", 1).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    let reply = joao.send(ClientEvent::EndCall(CallId(5))).await;
    assert_eq!(
        reply,
        json!({"callId": "5", "error": "call 5 is not one of your calls"})
    );
    assert_eq!(joao.take()[0].0, "END_CALL_ERROR");
    let stranger = bench.open(None);
    let reply = stranger.send(ClientEvent::EndCall(CallId(5))).await;
    assert_eq!(reply["error"], "not connected: send USER_CONNECT first");
    assert!(
        !bench
            .platform
            .asked()
            .iter()
            .any(|a| matches!(a, Asked::EndCall(_))),
        "never reaches the platform"
    );
    drop(maria);
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn answering_a_call_is_checked_against_the_socket_s_calls() {
    let mut bench = Bench::with(Settings {
        rules: Rules {
            redeliver_unanswered: true,
            ..settings().rules
        },
        ..settings()
    });
    let mut ui = bench.login("22010", 2).await;
    bench.start_call("22010", 5);
    bench.start_call("22010", 6);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5", "6"]);
    assert_eq!(
        ui.send(ClientEvent::NewCallAnswered(CallId(5))).await,
        json!({"callId": "5"})
    );
    assert_eq!(
        ui.send(ClientEvent::NewCallAnswered(CallId(77))).await,
        json!({"error": "call 77 is not one of this connection's calls"})
    );
    after(Duration::from_secs(15)).await;
    assert_eq!(
        ui.new_calls(),
        vec!["6"],
        "only the unanswered call is emitted again after ack_timeout"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_call_is_not_emitted_again_by_default() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    after(Duration::from_secs(40)).await;
    assert!(ui.take().is_empty());
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejected_call_frees_its_slot_and_is_never_offered_again() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    bench.start_call("22010", 5);
    bench.start_call("22010", 6);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    let reply = ui
        .send(ClientEvent::NewCallError {
            call: CallId(5),
            reason: "busy".into(),
        })
        .await;
    assert_eq!(reply, json!({"callId": "5"}));
    assert_eq!(ui.new_calls(), vec!["6"], "the slot is freed at once");
    bench.start_call("22010", 5);
    let mut tab2 = bench.login("22010", 1).await;
    after(SETTLE).await;
    assert_eq!(
        tab2.new_calls(),
        vec!["6"],
        "never offered again, even on a new socket"
    );
    assert!(
        bench
            .platform
            .asked()
            .iter()
            .all(|a| !matches!(a, Asked::EndCall(_))),
        "on_call_error = none asks nothing"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejected_call_is_hung_up_or_transferred_as_configured() {
    for (policy, expected) in [
        (OnCallError::Hangup, Asked::EndCall("22010".into())),
        (
            OnCallError::Transfer("4000".into()),
            Asked::Transfer("22010".into(), "4000".into()),
        ),
    ] {
        let mut bench = Bench::with(Settings {
            on_call_error: policy,
            ..settings()
        });
        let ui = bench.login("22010", 1).await;
        bench.start_call("22010", 5);
        after(SETTLE).await;
        ui.send(ClientEvent::NewCallError {
            call: CallId(5),
            reason: "busy".into(),
        })
        .await;
        after(Duration::from_millis(10)).await;
        assert_eq!(bench.platform.asked().last(), Some(&expected));
        bench.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_socket_buffer_delays_a_new_call_instead_of_losing_it() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    ui.set_full(true);
    bench.start_call("22010", 5);
    after(Duration::from_secs(2)).await;
    assert!(ui.take().is_empty());
    ui.set_full(false);
    after(Duration::from_millis(100)).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn events_for_a_socket_that_is_behind_are_held_in_order_not_lost() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    ui.set_full(true);
    bench.core.call_ended(CallId(5));
    bench.start_call("22010", 6);
    after(Duration::from_secs(1)).await;
    assert!(ui.take().is_empty());
    ui.set_full(false);
    after(Duration::from_millis(100)).await;
    let got: Vec<_> = ui
        .take()
        .into_iter()
        .map(|(n, p)| (n, p["callId"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![("CALL_ENDED", json!("5")), ("NEW_CALL", json!("6"))]
    );
    assert!(!ui.dropped());
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_socket_that_stopped_reading_is_dropped_and_its_calls_wait_for_the_next_one() {
    let mut bench = Bench::with(Settings {
        rules: Rules {
            redeliver_unanswered: true,
            ack_timeout: Duration::from_millis(100),
            ..settings().rules
        },
        ..settings()
    });
    let mut ui = bench.login("22010", 1).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    ui.set_full(true);
    // Redelivery keeps producing events the socket never takes.
    after(Duration::from_secs(20)).await;
    assert!(ui.dropped(), "dropped once its backlog is full");
    let mut again = bench.login("22010", 1).await;
    after(SETTLE).await;
    assert_eq!(
        again.new_calls(),
        vec!["5"],
        "the call is safe for the next socket"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_does_not_fit_waits_for_room_instead_of_being_lost() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 1).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5"]);
    ui.set_full(true);
    let mut answer = ui.send_later(ClientEvent::NewCallAnswered(CallId(5))).await;
    after(Duration::from_millis(500)).await;
    assert!(answer.try_recv().is_err(), "no room yet");
    assert!(!ui.dropped());
    ui.set_full(false);
    after(Duration::from_millis(200)).await;
    assert_eq!(answer.try_recv().expect("answered")["callId"], "5");
    assert!(!ui.dropped());
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_socket_never_hears_of_the_end_of_a_call_it_was_not_shown() {
    let mut bench = Bench::new();
    let mut tab1 = bench.login("22010", 1).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    assert_eq!(tab1.new_calls(), vec!["5"]);
    // A second tab logs in; the call ends during its first-call delay.
    let mut tab2 = bench.login("22010", 1).await;
    bench.core.call_ended(CallId(5));
    after(SETTLE).await;
    assert_eq!(tab1.take(), vec![ended(5)]);
    assert!(tab2.take().is_empty(), "neither NEW_CALL nor CALL_ENDED");
    bench.stop().await;
}
