//! The platform side against a real Prosody and the simulator: every request, every fault the
//! table must survive, link loss and recovery, and events.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use converja_bridge::config::{BoshUrl, TlsMode};
use converja_bridge::converja::{
    AgentState, CallId, Event, EventMessage, Message, PauseReason, QueueId, RoomName,
};
use converja_bridge::platform::{PlatformError, Update};
use converja_bridge::sim::{Fault, FaultRule};
use converja_bridge::telemetry::DROPPED;
use converja_bridge::xmpp::{Endpoint, connect};

/// `GET /queues`, `/queues/7/agents` and `/queues/7/supervisors` list the scenario's people.
async fn directory_matches_the_scenario(p: &converja_bridge::platform::Platform) {
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

async fn every_request_round_trips_to_the_simulator(via: Via) {
    let s = stack(via).await;
    let p = &s.platform;
    let maria = agent("22010");

    directory_matches_the_scenario(p).await;
    assert_eq!(
        p.agent_status(&maria).await.expect("status").name,
        AgentState::Idle
    );

    let call = s
        .sim
        .start_call(QueueId(7), &maria, "01921215544")
        .await
        .expect("call starts");
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

    s.sim.start_call(QueueId(7), &maria, "0800").await.unwrap();
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

async fn platform_errors_carry_their_status(via: Via) {
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

async fn reordered_responses_reach_the_right_caller(via: Via) {
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
    // The first answer is held back until the second one has been sent.
    tokio::time::sleep(Duration::from_millis(100)).await;
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

async fn spoofed_duplicate_and_malformed_answers_are_dropped_and_counted(via: Via) {
    let s = stack(via).await;
    let spoofed = counter(DROPPED, "reason=\"spoofed\"");
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
    assert!(counter(DROPPED, "reason=\"spoofed\"") > spoofed);

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

async fn a_slow_answer_times_out_with_a_clear_error(via: Via) {
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

async fn a_request_to_an_absent_occupant_fails_fast_from_the_bounce(via: Via) {
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

async fn a_full_table_refuses_at_once(via: Via) {
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

async fn link_loss_fails_pending_requests_and_the_link_recovers(via: Via) {
    let mut s = stack_with(via, scenario(), Duration::from_secs(30), 1000).await;
    s.platform
        .agent_status(&agent("22010"))
        .await
        .expect("works before");
    s.sim
        .set_faults(vec![FaultRule::new(
            "/agents",
            Fault {
                drop: true,
                ..Fault::default()
            },
        )])
        .await;
    let p = s.platform.clone();
    let pending = tokio::spawn(async move { p.agent_status(&agent("22010")).await });
    eventually("requests are pending", || async {
        s.platform.pending() >= 1
    })
    .await;
    let mut updates = s.platform.subscribe();
    let started = Instant::now();
    s.prosody.kill();
    let err = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("fails at once")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, PlatformError::LinkDown(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    next_update(&mut updates, |u| (*u == Update::LinkDown).then_some(())).await;
    // While down, requests fail at once instead of waiting for the timeout.
    let err = s.platform.queues().await.unwrap_err();
    assert!(matches!(err, PlatformError::LinkDown(_)), "{err}");

    s.prosody.restart().expect("prosody restarts");
    next_update(&mut updates, |u| (*u == Update::LinkUp).then_some(())).await;
    tokio::time::timeout(PATIENCE, s.sim.ready())
        .await
        .expect("the simulator rejoins");
    wait_ready(&s.platform).await;
    s.sim.set_faults(vec![]).await;
    let status = s
        .platform
        .agent_status(&agent("22010"))
        .await
        .expect("works again");
    assert_eq!(status.agent.as_str(), "22010");

    let ids: Vec<u64> = s
        .sim
        .requests()
        .await
        .iter()
        .map(|r| r.message.id)
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "request ids never reused: {ids:?}"
    );
}

async fn events_arrive_typed_once_and_replays_are_dropped(via: Via) {
    let s = stack(via).await;
    let mut updates = s.platform.subscribe();
    let maria = agent("22010");
    let call = s
        .sim
        .start_call(QueueId(7), &maria, "01921215544")
        .await
        .unwrap();
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

async fn events_published_before_the_bridge_joined_are_not_replayed(via: Via) {
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (prosody, sim) = start_sim(scenario(), &tracker, &cancel).await;
    // History the room would replay to a joiner that asked for it.
    let early = sim
        .start_call(QueueId(7), &agent("22010"), "111")
        .await
        .unwrap();
    let cfg = converja(&prosody, Duration::from_secs(5));
    let platform = converja_bridge::platform::Platform::start(
        via.account(&prosody, "bridge", "bridge-pw"),
        BRIDGE_NICK.into(),
        &cfg,
        &tracker,
        cancel.clone(),
    );
    let mut updates = platform.subscribe();
    wait_ready(&platform).await;
    let late = sim
        .start_call(QueueId(7), &agent("22011"), "222")
        .await
        .unwrap();
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

async fn many_requests_in_flight_never_stall(via: Via) {
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

async fn bad_credentials_are_reported_not_retried_silently(via: Via) {
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (prosody, _sim) = start_sim(scenario(), &tracker, &cancel).await;
    let cfg = converja(&prosody, Duration::from_secs(5));
    let wrong = converja_bridge::platform::Platform::start(
        via.account(&prosody, "bridge", "wrong"),
        BRIDGE_NICK.into(),
        &cfg,
        &tracker,
        cancel.clone(),
    );
    let mut state = wrong.link_state();
    let s = tokio::time::timeout(PATIENCE, state.wait_for(|s| s.last_error.is_some()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(
        s.last_error.as_deref().unwrap().contains("credentials"),
        "{s:?}"
    );
    assert!(!wrong.readiness().is_ready());
    cancel.cancel();
}

/// TCP only: BOSH has no STARTTLS, and plain-HTTP URLs are refused by the configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_starttls_is_refused() {
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (prosody, _sim) = start_sim(scenario(), &tracker, &cancel).await;
    let cfg = converja(&prosody, Duration::from_secs(5));
    let mut tls = settings(&prosody, "bridge", "bridge-pw");
    tls.endpoint = Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port: prosody.c2s_port,
        tls: TlsMode::Required,
    };
    let no_tls = converja_bridge::platform::Platform::start(
        tls,
        BRIDGE_NICK.into(),
        &cfg,
        &tracker,
        cancel.clone(),
    );
    let mut state = no_tls.link_state();
    let s = tokio::time::timeout(PATIENCE, state.wait_for(|s| s.last_error.is_some()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(
        s.last_error.as_deref().unwrap().contains("STARTTLS"),
        "{s:?}"
    );
    cancel.cancel();
}

async fn a_taken_nickname_is_retried_with_a_suffix(via: Via) {
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (prosody, _sim) = start_sim(scenario(), &tracker, &cancel).await;
    // Someone else already sits in filis under the bridge's nickname.
    let (squatter, _inbound) = converja_bridge::xmpp::Link::spawn(
        settings(&prosody, "other", "other-pw"),
        &tracker,
        cancel.clone(),
    );
    let filis: tokio_xmpp::jid::BareJid = format!("filis@{}", prosody.conference).parse().unwrap();
    tokio::time::timeout(PATIENCE, async {
        while squatter.join(filis.clone(), BRIDGE_NICK).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the squatter joins");
    let cfg = converja(&prosody, Duration::from_secs(5));
    let platform = converja_bridge::platform::Platform::start(
        via.account(&prosody, "bridge", "bridge-pw"),
        BRIDGE_NICK.into(),
        &cfg,
        &tracker,
        cancel.clone(),
    );
    wait_ready(&platform).await;
    // Requests work from the suffixed nickname: answers go back to whoever asked.
    assert_eq!(platform.queues().await.expect("answered").len(), 2);
    cancel.cancel();
}

/// STARTTLS on the client port, HTTPS for BOSH.
async fn tls_with_a_trusted_certificate_connects_and_an_untrusted_one_does_not(via: Via) {
    let prosody = converja_bridge::prosody::LocalProsody::start_with(
        DOMAIN,
        &[("bridge", "bridge-pw")],
        true,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tracker = tokio_util::task::TaskTracker::new();
    let mut trusted = settings(&prosody, "bridge", "bridge-pw");
    trusted.endpoint = match via {
        Via::Tcp => Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: prosody.c2s_port,
            tls: TlsMode::Required,
        },
        Via::Bosh => Endpoint::Bosh(BoshUrl::parse(&prosody.bosh_https_url()).unwrap()),
    };
    trusted.ca_file = Some(prosody.certificate());
    let (stream, bound) = connect(&trusted, &tracker)
        .await
        .expect("TLS with the test CA");
    assert_eq!(bound.to_bare().to_string(), format!("bridge@{DOMAIN}"));
    drop(stream);

    let mut untrusted = trusted.clone();
    untrusted.ca_file = None;
    let err = connect(&untrusted, &tracker)
        .await
        .err()
        .expect("a self-signed certificate is refused");
    assert!(err.to_string().contains("TLS"), "{err}");
    tracker.close();
    tokio::time::timeout(PATIENCE, tracker.wait())
        .await
        .expect("the transport's tasks end with their stream");
}

/// Prosody killed and started again at once while requests stream through: every request
/// ends (answered, or failed as link-down or bounced; none hangs until its timeout), the link
/// comes back by itself, and ids are never reused.
async fn a_server_restarted_under_load_recovers(via: Via) {
    let mut s = stack_with(via, scenario(), Duration::from_secs(30), 1000).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..32 {
        let p = s.platform.clone();
        let stop = stop.clone();
        workers.spawn(async move {
            let (mut ok, mut down) = (0u32, 0u32);
            while !stop.is_cancelled() {
                let id = ["22010", "22011", "22012"][i % 3];
                match p.agent_status(&agent(id)).await {
                    Ok(st) => {
                        assert_eq!(st.agent.as_str(), id, "answer for the right agent");
                        ok += 1;
                    }
                    // While the platform's own occupant is away, requests bounce.
                    Err(PlatformError::LinkDown(_) | PlatformError::Bounced { .. }) => {
                        down += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("unexpected failure under restart: {e}"),
                }
            }
            (ok, down)
        });
    }
    let mut updates = s.platform.subscribe();
    eventually("requests flow", || async {
        s.sim.requests().await.len() > 200
    })
    .await;
    s.prosody.restart().expect("prosody restarts");
    next_update(&mut updates, |u| (*u == Update::LinkDown).then_some(())).await;
    next_update(&mut updates, |u| (*u == Update::LinkUp).then_some(())).await;
    tokio::time::timeout(PATIENCE, s.sim.ready())
        .await
        .expect("the simulator rejoins");
    wait_ready(&s.platform).await;
    let before = s.sim.requests().await.len();
    eventually("requests flow again", || async {
        s.sim.requests().await.len() > before + 200
    })
    .await;
    stop.cancel();
    let (mut ok, mut down) = (0, 0);
    let all = tokio::time::timeout(PATIENCE, async {
        while let Some(r) = workers.join_next().await {
            let (o, d) = r.unwrap();
            ok += o;
            down += d;
        }
    });
    all.await.expect("no request hangs");
    assert!(ok >= 300, "answered: {ok}");
    assert!(down > 0, "the restart was noticed");
    assert_eq!(s.platform.pending(), 0);
    let ids: Vec<u64> = s
        .sim
        .requests()
        .await
        .iter()
        .map(|r| r.message.id)
        .collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "request ids never reused");
}

/// BOSH only: on shutdown the session is terminated at once, not left to time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bosh_session_is_terminated_on_shutdown() {
    let s = stack(Via::Bosh).await;
    let log = s.prosody.log_path();
    let closed = |text: &str| text.matches("BOSH client disconnected").count();
    let before = closed(&std::fs::read_to_string(&log).unwrap());
    s.cancel.cancel();
    s.tracker.close();
    tokio::time::timeout(PATIENCE, s.tracker.wait())
        .await
        .expect("the link and its BOSH session stop");
    eventually("Prosody saw the session end", || async {
        closed(&std::fs::read_to_string(&log).unwrap()) > before
    })
    .await;
}

/// Ready means every followed room is joined, and which queues to follow is known: with the
/// queue list slow to come, filis and catraquis alone do not make the bridge ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_the_queue_list() {
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
    let platform = converja_bridge::platform::Platform::start(
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

/// BOSH only: an endpoint that is not a BOSH service is reported with its HTTP status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_bosh_url_is_reported_with_its_status() {
    let tracker = tokio_util::task::TaskTracker::new();
    let prosody = converja_bridge::prosody::LocalProsody::start(DOMAIN, &[("bridge", "b")])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut wrong = prosody.bosh_account("bridge", "b");
    let url = format!("http://127.0.0.1:{}/not-bosh", prosody.http_port);
    wrong.endpoint = Endpoint::Bosh(BoshUrl::parse(&url).unwrap());
    let err = connect(&wrong, &tracker).await.err().expect("refused");
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    let closed = format!("http://127.0.0.1:{}/http-bind", common::unused_port());
    wrong.endpoint = Endpoint::Bosh(BoshUrl::parse(&closed).unwrap());
    let err = connect(&wrong, &tracker).await.err().expect("refused");
    assert!(err.to_string().contains("cannot reach"), "{err}");
}

/// BOSH only: answers lost on the way back are fetched again by retransmitting the same
/// `rid`; Prosody replays them, and the session survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_bosh_answers_are_recovered_by_retransmission() {
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (prosody, _sim) = start_sim(scenario(), &tracker, &cancel).await;
    let proxy = AnswerDroppingProxy::start(prosody.http_port, 9).await;
    let mut settings = prosody.bosh_account("bridge", "bridge-pw");
    let url = format!("http://127.0.0.1:{}/http-bind", proxy.port);
    settings.endpoint = Endpoint::Bosh(BoshUrl::parse(&url).unwrap());
    let platform = converja_bridge::platform::Platform::start(
        settings,
        BRIDGE_NICK.into(),
        &converja(&prosody, Duration::from_secs(10)),
        &tracker,
        cancel.clone(),
    );
    wait_ready(&platform).await;
    let sessions = platform.link_state().borrow().sessions;
    for i in 0..150 {
        let id = ["22010", "22011", "22012"][i % 3];
        let status = platform.agent_status(&agent(id)).await.expect("answered");
        assert_eq!(status.agent.as_str(), id);
    }
    let dropped = proxy.dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped >= 10, "answers dropped: {dropped}");
    assert_eq!(
        platform.link_state().borrow().sessions,
        sessions,
        "no reconnection was needed"
    );
    cancel.cancel();
}

over_tcp_and_bosh!(
    every_request_round_trips_to_the_simulator,
    platform_errors_carry_their_status,
    reordered_responses_reach_the_right_caller,
    spoofed_duplicate_and_malformed_answers_are_dropped_and_counted,
    a_slow_answer_times_out_with_a_clear_error,
    a_request_to_an_absent_occupant_fails_fast_from_the_bounce,
    a_full_table_refuses_at_once,
    link_loss_fails_pending_requests_and_the_link_recovers,
    events_arrive_typed_once_and_replays_are_dropped,
    events_published_before_the_bridge_joined_are_not_replayed,
    many_requests_in_flight_never_stall,
    bad_credentials_are_reported_not_retried_silently,
    a_taken_nickname_is_retried_with_a_suffix,
    tls_with_a_trusted_certificate_connects_and_an_untrusted_one_does_not,
    a_server_restarted_under_load_recovers,
);
