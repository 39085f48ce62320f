//! Several calls at once. The platform's call requests name no call: they act on the agent's
//! current one. The bridge never ends, hangs up or transfers a call the agent did not name,
//! and the UI ends up showing exactly the calls the platform has.

use serde_json::json;

use super::*;

/// A session holding calls 5 and 6, both delivered.
async fn two_calls(bench: &mut Bench) -> Ui {
    let mut ui = bench.login("22010", 2).await;
    bench.start_call("22010", 5);
    bench.start_call("22010", 6);
    after(SETTLE).await;
    assert_eq!(ui.new_calls(), vec!["5", "6"]);
    ui
}

fn hangups(bench: &Bench) -> usize {
    bench
        .platform
        .asked()
        .iter()
        .filter(|a| matches!(a, Asked::EndCall(_) | Asked::Transfer(..)))
        .count()
}

#[tokio::test(start_paused = true)]
async fn the_current_call_is_ended_and_reported_when_the_platform_says_it_ended() {
    let mut bench = Bench::new();
    let mut ui = two_calls(&mut bench).await;
    bench.platform.set_current("22010", Some(6));
    let held = bench.platform.hold("end");
    let answer = ui.send_later(ClientEvent::EndCall(CallId(6))).await;
    after(Duration::from_millis(10)).await;
    held.release(Ok(()));
    after(Duration::from_millis(10)).await;
    assert!(
        ui.take().is_empty(),
        "nothing until the platform says which call ended"
    );
    bench.core.call_ended(CallId(6));
    assert_eq!(answer.await.unwrap(), json!({"callId": "6"}));
    assert_eq!(ui.take(), vec![ended(6)]);
    assert_eq!(
        bench.platform.asked()[1..],
        [
            Asked::CurrentCaller("22010".into()),
            Asked::EndCall("22010".into())
        ]
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_call_that_is_not_the_current_one_is_not_ended_and_the_ui_is_told_why() {
    let mut bench = Bench::new();
    let mut ui = two_calls(&mut bench).await;
    bench.platform.set_current("22010", Some(6));
    let reply = ui.send(ClientEvent::EndCall(CallId(5))).await;
    assert_eq!(
        reply,
        json!({"callId": "5", "error": format!(
            "call 5 is not your current call on the platform, which ends only the current one (from {}): end that call first",
            caller(6)
        )})
    );
    assert_eq!(ui.take()[0].0, "END_CALL_ERROR");
    assert_eq!(hangups(&bench), 0, "nothing sent to the platform");
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn when_the_platform_cannot_tell_nothing_is_ended() {
    let mut bench = Bench::new();
    let ui = two_calls(&mut bench).await;
    // Not busy, as far as the status says.
    bench.platform.set_current("22010", None);
    let reply = ui.send(ClientEvent::EndCall(CallId(5))).await;
    assert_eq!(
        reply["error"],
        "the platform does not tell whether call 5 is your current call; nothing was ended"
    );
    // The same caller on two calls: the status cannot tell them apart.
    let start = CallDidStart {
        origin: caller(5),
        ..started("22010", 7)
    };
    let mut bench2 = Bench::new();
    let mut ui2 = bench2.login("22010", 2).await;
    bench2.start_call("22010", 5);
    bench2.core.call_started(&start);
    after(SETTLE).await;
    ui2.new_calls();
    bench2.platform.set_current("22010", Some(5));
    let reply = ui2.send(ClientEvent::EndCall(CallId(5))).await;
    assert!(
        reply["error"].as_str().unwrap().contains("does not tell"),
        "{reply}"
    );
    assert_eq!(hangups(&bench) + hangups(&bench2), 0);
    bench.stop().await;
    bench2.stop().await;
}

#[tokio::test(start_paused = true)]
async fn if_the_platform_ends_another_call_the_ui_shows_what_it_really_did() {
    let mut bench = Bench::new();
    let mut ui = two_calls(&mut bench).await;
    bench.platform.set_current("22010", Some(6));
    let answer = ui.send_later(ClientEvent::EndCall(CallId(6))).await;
    after(Duration::from_millis(10)).await;
    // Between the status and the hangup the platform's current call changed: it ended 5.
    bench.core.call_ended(CallId(5));
    let reply = answer.await.unwrap();
    assert_eq!(
        reply["error"],
        "the platform accepted the hangup but has not said which call ended; your calls are being re-read"
    );
    let got = ui.take();
    assert_eq!(got[0], ended(5), "the call that really ended");
    assert!(
        !got.contains(&ended(6)),
        "call 6 is still live on the platform: {got:?}"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn with_one_call_nothing_changes() {
    let mut bench = Bench::new();
    let mut ui = bench.login("22010", 2).await;
    bench.start_call("22010", 5);
    after(SETTLE).await;
    ui.new_calls();
    let reply = ui.send(ClientEvent::EndCall(CallId(5))).await;
    assert_eq!(reply, json!({"callId": "5"}));
    assert_eq!(ui.take(), vec![ended(5)]);
    assert_eq!(
        bench.platform.asked()[1..],
        [Asked::EndCall("22010".into())],
        "no status asked"
    );
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejected_call_is_hung_up_only_if_it_is_the_platform_s_current_one() {
    for (current, hung_up) in [(6, false), (5, true)] {
        let mut bench = Bench::with(Settings {
            on_call_error: OnCallError::Hangup,
            ..settings()
        });
        let ui = two_calls(&mut bench).await;
        bench.platform.set_current("22010", Some(current));
        ui.send(ClientEvent::NewCallError {
            call: CallId(5),
            reason: "busy".into(),
        })
        .await;
        after(Duration::from_millis(10)).await;
        assert_eq!(hangups(&bench) == 1, hung_up, "current call {current}");
        bench.stop().await;
    }
}
