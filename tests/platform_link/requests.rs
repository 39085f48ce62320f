//! Requests: every request round trips, and answers reach the right caller or are dropped.

use super::*;

/// `GET /queues`, `/queues/7/agents` and `/queues/7/supervisors` list the scenario's people.
pub(crate) async fn directory_matches_the_scenario(p: &converja_bridge::platform::Client) {
    let queues = p.queues().await.expect("GET /queues");
    assert_eq!(
        queues
            .iter()
            .map(|q| (q.id.0, q.name.as_str()))
            .collect::<Vec<_>>(),
        vec![(7, "Financeiro"), (8, "Suporte Técnico")]
    );
    let agents = p
        .queue_agents(QueueId(7))
        .await
        .expect("GET /queues/7/agents");
    assert_eq!(
        agents.iter().map(|a| a.agent.as_str()).collect::<Vec<_>>(),
        vec!["22010", "22011"]
    );
    assert_eq!(agents[0].name, "Maria Souza");
    let sups = p
        .queue_supervisors(QueueId(7))
        .await
        .expect("GET /queues/7/supervisors");
    assert_eq!(sups[0].supervisor.as_str(), "9001");
}

pub(crate) async fn every_request_round_trips_to_the_simulator(via: Via) {
    let s = stack(via).await;
    let p = &s.platform;
    let maria = agent("22010");

    directory_matches_the_scenario(p).await;
    assert_eq!(
        p.agent_status(&maria).await.expect("status").name,
        AgentState::Idle
    );

    let call = s.sim.call("22010", "01921215544").await;
    let calls = p
        .queue_calls(QueueId(7))
        .await
        .expect("GET /queues/7/calls");
    assert_eq!(calls.calls.len(), 1);
    assert_eq!(calls.calls[0].call, call);
    assert_eq!(calls.calls[0].callee.as_ref(), Some(&maria));
    let status = p.agent_status(&maria).await.expect("status");
    assert_eq!(
        (status.name, status.show.as_deref()),
        (AgentState::Busy, Some("01921215544"))
    );

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    let terminal = p.terminal_time(&maria).await.expect("GET /timestamp");
    assert!(
        (terminal - before).abs() < 60_000.0,
        "terminal clock {terminal} vs {before}"
    );

    p.end_active_call(&maria)
        .await
        .expect("DELETE /calls/active");
    assert_eq!(p.agent_status(&maria).await.unwrap().name, AgentState::Idle);

    s.sim.call("22010", "0800").await;
    p.transfer(&maria, "11001")
        .await
        .expect("PUT /calls/active/local");
    assert_eq!(p.agent_status(&maria).await.unwrap().name, AgentState::Idle);

    p.set_paused(&maria, Some(PauseReason(11)))
        .await
        .expect("PUT /session/paused");
    assert_eq!(
        p.agent_status(&maria).await.unwrap().pause_reason(),
        Some(PauseReason(11))
    );
    p.set_paused(&maria, None).await.expect("resume");
    assert_eq!(p.agent_status(&maria).await.unwrap().name, AgentState::Idle);

    p.logout(&maria).await.expect("DELETE /session");
    assert!(!s.sim.world().await.agents[&maria].logged_in);

    // What the platform saw: one request per call above, each id unique.
    let seen = s.sim.requests().await;
    let mut ids: Vec<u64> = seen.iter().map(|r| r.message.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), seen.len());
}

pub(crate) async fn platform_errors_carry_their_status(via: Via) {
    let s = stack(via).await;
    let err = s.platform.agent_status(&agent("404")).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    assert!(err.to_string().contains("404"), "{err}");
    let err = s
        .platform
        .end_active_call(&agent("22010"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "no active call: {err}");
    s.sim
        .set_faults(vec![FaultRule::new(
            "/queues",
            Fault {
                status: Some(500),
                ..Fault::default()
            },
        )])
        .await;
    let err = s.platform.queues().await.unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
}

pub(crate) async fn reordered_responses_reach_the_right_caller(via: Via) {
    let s = stack(via).await;
    s.sim
        .set_faults(vec![FaultRule::new(
            "/agents/22010",
            Fault {
                reorder: true,
                ..Fault::default()
            },
        )])
        .await;
    s.sim.pause(&agent("22011"), PauseReason(3)).await.unwrap();
    let p = s.platform.clone();
    let first = tokio::spawn(async move { p.agent_status(&agent("22010")).await });
    // The first answer is held back until the second one has been sent: the second is asked
    // once the platform has the first.
    eventually("the platform has the first request", || async {
        s.sim
            .requests()
            .await
            .iter()
            .any(|r| r.message.resource == "/agents/22010/status")
    })
    .await;
    let second = s
        .platform
        .agent_status(&agent("22011"))
        .await
        .expect("second answer");
    let first = first.await.unwrap().expect("first answer");
    assert_eq!(first.agent.as_str(), "22010");
    assert_eq!(first.name, AgentState::Idle);
    assert_eq!(second.agent.as_str(), "22011");
    assert_eq!(second.pause_reason(), Some(PauseReason(3)));
}

pub(crate) async fn spoofed_duplicate_and_malformed_answers_are_dropped_and_counted(via: Via) {
    let s = stack(via).await;
    // A forged answer that arrives before the real one is spoofed; one that arrives after it
    // (ejabberd orders messages per room, and the forger writes from another room) is a
    // duplicate by then. Either way it is dropped, and the caller gets the real answer.
    let forged =
        || counter(DROPPED, "reason=\"spoofed\"") + counter(DROPPED, "reason=\"duplicate\"");
    let before = forged();
    s.sim
        .set_faults(vec![FaultRule::new(
            "/queues",
            Fault {
                spoof_first: true,
                ..Fault::default()
            },
        )])
        .await;
    let queues = s
        .platform
        .queues()
        .await
        .expect("the real answer still lands");
    assert_eq!(queues.len(), 2);
    eventually("the forged answer is dropped", || async {
        forged() > before
    })
    .await;

    let duplicates = counter(DROPPED, "reason=\"duplicate\"");
    s.sim
        .set_faults(vec![FaultRule::new(
            "/agents",
            Fault {
                duplicate: true,
                ..Fault::default()
            },
        )])
        .await;
    s.platform
        .agent_status(&agent("22010"))
        .await
        .expect("answered once");
    eventually("the duplicate is counted", || async {
        counter(DROPPED, "reason=\"duplicate\"") > duplicates
    })
    .await;

    let malformed = counter(DROPPED, "reason=\"malformed\"");
    s.sim
        .set_faults(vec![FaultRule::new(
            "/agents",
            Fault {
                malformed: true,
                ..Fault::default()
            },
        )])
        .await;
    s.platform
        .agent_status(&agent("22010"))
        .await
        .expect("the link survives a malformed body");
    assert!(counter(DROPPED, "reason=\"malformed\"") > malformed);
}

pub(crate) async fn a_slow_answer_times_out_with_a_clear_error(via: Via) {
    let s = stack_with(via, scenario(), Duration::from_millis(400), 1000).await;
    s.sim
        .set_faults(vec![FaultRule::new(
            "/agents",
            Fault {
                delay: Some(Duration::from_secs(2)),
                ..Fault::default()
            },
        )])
        .await;
    let started = Instant::now();
    let err = s.platform.agent_status(&agent("22010")).await.unwrap_err();
    assert_eq!(err, PlatformError::Timeout(Duration::from_millis(400)));
    assert_eq!(err.to_string(), "the platform did not answer within 400ms");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The late answer is dropped as such, and the table is clean.
    let late = counter(DROPPED, "reason=\"late\"");
    eventually("the late answer is counted", || async {
        counter(DROPPED, "reason=\"late\"") > late
    })
    .await;
    assert_eq!(s.platform.pending(), 0);
}

pub(crate) async fn a_request_to_an_absent_occupant_fails_fast_from_the_bounce(via: Via) {
    let s = stack_with(via, scenario(), Duration::from_secs(10), 1000).await;
    let started = Instant::now();
    // Agent 777 is unknown to the simulator, so nobody sits as 777 in agent.777.
    let err = s.platform.end_active_call(&agent("777")).await.unwrap_err();
    assert!(matches!(err, PlatformError::Bounced { .. }), "{err}");
    assert!(err.to_string().contains("agent.777@"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

pub(crate) async fn a_full_table_refuses_at_once(via: Via) {
    let s = stack_with(via, scenario(), Duration::from_secs(10), 2).await;
    s.sim
        .set_faults(vec![FaultRule::new(
            "/agents",
            Fault {
                drop: true,
                ..Fault::default()
            },
        )])
        .await;
    let p1 = s.platform.clone();
    let p2 = s.platform.clone();
    let a = tokio::spawn(async move { p1.agent_status(&agent("22010")).await });
    let b = tokio::spawn(async move { p2.agent_status(&agent("22011")).await });
    eventually("requests are pending", || async {
        s.platform.pending() >= 2
    })
    .await;
    let started = Instant::now();
    let err = s.platform.queues().await.unwrap_err();
    assert_eq!(err, PlatformError::Overloaded);
    assert_eq!(err.to_string(), "the bridge is overloaded");
    assert!(started.elapsed() < Duration::from_millis(500));
    a.abort();
    b.abort();
}

pub(crate) async fn many_requests_in_flight_never_stall(via: Via) {
    let s = stack(via).await;
    let total = 3000;
    let in_flight = 64;
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        let p = s.platform.clone();
        tasks.spawn(async move {
            let id = ["22010", "22011", "22012"][i % 3];
            let r = p
                .agent_status(&agent(id))
                .await
                .map(|st| st.agent.as_str() == id);
            drop(permit);
            r
        });
    }
    let all = tokio::time::timeout(Duration::from_secs(120), async {
        let mut ok = 0;
        while let Some(r) = tasks.join_next().await {
            assert!(
                r.unwrap().expect("request succeeds"),
                "answer for the right agent"
            );
            ok += 1;
        }
        ok
    })
    .await
    .expect("no stall: every request completes");
    assert_eq!(all, total);
    assert_eq!(s.platform.pending(), 0);
}

pub(crate) async fn an_agent_room_left_under_requests_loses_no_answer(via: Via) {
    let s = stack_with(via, scenario(), Duration::from_secs(3), 1000).await;
    let a = agent("22010");
    // GET /timestamp goes to the agent's occupant in agent.22010.
    s.platform.terminal_time(&a).await.expect("answered");
    // An answer still awaited when the room is left comes to the bridge all the same.
    s.sim
        .set_faults(vec![FaultRule::new(
            "/timestamp",
            Fault {
                delay: Some(Duration::from_millis(500)),
                ..Fault::default()
            },
        )])
        .await;
    let awaited = tokio::spawn({
        let (platform, a) = (s.platform.clone(), a.clone());
        async move { platform.terminal_time(&a).await }
    });
    eventually("the request is out", || async { s.platform.pending() == 1 }).await;
    s.platform.leave_agent_room(&a).await;
    awaited
        .await
        .expect("ended")
        .expect("answered although the room was left meanwhile");
    s.sim.set_faults(Vec::new()).await;
    // A request made as the room is being left goes out once the bridge is in it again.
    for _ in 0..20 {
        let (_, time) = tokio::join!(
            s.platform.leave_agent_room(&a),
            s.platform.terminal_time(&a)
        );
        time.expect("answered in the room joined again");
    }
}
