use super::*;
use crate::converja::{
    CallDidFinish, CallDidStart, CallMissed, CallRinging, CallTimestamps, QueueCall, UserSession,
    UserSessionDidPause,
};

const Q: QueueId = QueueId(7);

fn board() -> Board {
    Board::new(Judging {
        threshold: Duration::from_secs(20),
        short_abandon: Duration::from_secs(5),
        windows: vec![Duration::from_secs(15 * 60), Duration::from_secs(60 * 60)],
    })
}

fn maria() -> AgentId {
    AgentId::new("22010")
}

fn ring(call: u64, at: f64) -> Event {
    Event::CallRinging(CallRinging {
        callid: CallId(call),
        origin: format!("0{call}"),
        queue: Q,
        timestamp: Timestamp(at),
    })
}

fn start(call: u64, agent: &AgentId, at: f64) -> Event {
    Event::CallDidStart(CallDidStart {
        callid: CallId(call),
        destination: agent.clone(),
        origin: format!("0{call}"),
        queue: Q,
        timestamp: Timestamp(at),
    })
}

fn finish(call: u64, agent: &AgentId, talk: f64, at: f64) -> Event {
    Event::CallDidFinish(CallDidFinish {
        callid: CallId(call),
        destination: agent.clone(),
        duration: talk,
        origin: format!("0{call}"),
        queue: Q,
        timestamp: Timestamp(at),
    })
}

fn miss(call: u64, waited: f64, at: f64) -> Event {
    Event::CallMissed(CallMissed {
        callid: CallId(call),
        duration: waited,
        origin: format!("0{call}"),
        queue: Q,
        timestamp: Timestamp(at),
    })
}

fn session(agent: &AgentId, at: f64) -> UserSession {
    UserSession {
        agent: agent.clone(),
        queues: vec![Q],
        timestamp: Timestamp(at),
    }
}

fn pause(agent: &AgentId, reason: u32, at: f64) -> Event {
    Event::UserSessionDidPause(UserSessionDidPause {
        agent: agent.clone(),
        queues: vec![Q],
        reason: PauseReason(reason),
        timestamp: Timestamp(at),
    })
}

fn status(agent: &AgentId, name: AgentState, show: Option<&str>, at: f64) -> AgentStatus {
    AgentStatus {
        agent: agent.clone(),
        name,
        show: show.map(str::to_owned),
        timestamp: Timestamp(at),
    }
}

fn first_window(b: &Board, now: f64) -> WindowStats {
    b.stats(Q, Timestamp(now)).windows[0].clone()
}

#[test]
fn a_call_waits_is_answered_and_ends() {
    let mut b = board();
    let m = maria();
    b.apply(&Event::UserSessionDidStart(session(&m, 0.0)));
    let changes = b.apply(&ring(1, 100.0));
    assert!(changes.contains(&Change::Stats(Q)));
    let s = b.stats(Q, Timestamp(110.0));
    assert_eq!(
        (s.waiting, s.longest_wait_since),
        (1, Some(Timestamp(100.0)))
    );

    let changes = b.apply(&start(1, &m, 112.0));
    assert!(changes.contains(&Change::Agent(m.clone())));
    assert!(changes.iter().any(|c| matches!(c, Change::Call(CallChange {
        fate: CallFate::Answered { agent: Some(a) }, .. }) if *a == m)));
    let card = b.agent(&m).unwrap();
    assert_eq!(
        card.presence,
        Presence::Busy {
            caller: Some("01".into())
        }
    );
    assert_eq!(card.since, Some(Timestamp(112.0)));

    b.apply(&finish(1, &m, 60.0, 172.0));
    let card = b.agent(&m).unwrap();
    assert_eq!(
        (card.presence.clone(), card.since),
        (Presence::Idle, Some(Timestamp(172.0)))
    );
    let w = first_window(&b, 200.0);
    assert_eq!((w.answered, w.answered_in_threshold, w.missed), (1, 1, 0));
    assert_eq!(
        (w.avg_wait, w.avg_handle, w.service_level),
        (Some(12.0), Some(60.0), Some(1.0))
    );
    assert_eq!(b.stats(Q, Timestamp(200.0)).waiting, 0);
}

#[test]
fn service_level_counts_late_answers_and_abandons_but_not_short_abandons() {
    let mut b = board();
    let m = maria();
    for (call, wait) in [(1, 10.0), (2, 30.0)] {
        b.apply(&ring(call, 0.0));
        b.apply(&start(call, &m, wait));
    }
    b.apply(&ring(3, 0.0));
    b.apply(&miss(3, 3.0, 3.0)); // hung up before the short-abandon time
    b.apply(&ring(4, 0.0));
    b.apply(&miss(4, 40.0, 40.0));
    let w = first_window(&b, 100.0);
    assert_eq!((w.answered, w.answered_in_threshold), (2, 1));
    assert_eq!((w.missed, w.abandoned), (2, 1));
    assert_eq!(w.service_level, Some(1.0 / 3.0));
    assert_eq!(w.avg_wait, Some(20.0));
}

#[test]
fn windows_slide() {
    let mut b = board();
    let m = maria();
    b.apply(&ring(1, 0.0));
    b.apply(&start(1, &m, 5.0));
    b.apply(&ring(2, 1000.0));
    b.apply(&start(2, &m, 1005.0));
    // Over 15 minutes after the first answer only the second is in the short window; both
    // are in the hour, until an hour has passed since the first.
    let s = b.stats(Q, Timestamp(1010.0));
    assert_eq!((s.windows[0].answered, s.windows[1].answered), (1, 2));
    let s = b.stats(Q, Timestamp(3606.0));
    assert_eq!((s.windows[0].answered, s.windows[1].answered), (0, 1));
    assert_eq!(s.windows[0].service_level, None);
}

#[test]
fn replayed_events_count_once() {
    let mut b = board();
    let m = maria();
    let events = [
        ring(1, 0.0),
        start(1, &m, 2.0),
        finish(1, &m, 10.0, 12.0),
        ring(2, 3.0),
        miss(2, 9.0, 12.0),
    ];
    for e in &events {
        b.apply(e);
    }
    for e in &events {
        assert_eq!(b.apply(e), vec![], "{e:?} applied twice changed the board");
    }
    let w = first_window(&b, 20.0);
    assert_eq!((w.answered, w.missed, w.abandoned), (1, 1, 1));
    assert_eq!(b.stats(Q, Timestamp(20.0)).waiting, 0);
    assert_eq!(
        b.stats(Q, Timestamp(20.0))
            .history
            .iter()
            .map(|m| m.offered)
            .sum::<u64>(),
        2
    );
}

fn listed(calls: Vec<QueueCall>, at: f64) -> QueueCalls {
    QueueCalls {
        calls,
        queue: Q,
        timestamp: Timestamp(at),
    }
}

fn queued(call: u64, join: f64, answer: Option<(f64, &AgentId)>) -> QueueCall {
    QueueCall {
        call: CallId(call),
        callee: answer.map(|(_, a)| a.clone()),
        caller: format!("0{call}"),
        queue: Q,
        timestamps: CallTimestamps {
            answer: answer.map(|(t, _)| Timestamp(t)),
            hangup: None,
            join: Timestamp(join),
            miss: None,
        },
    }
}

#[test]
fn a_listing_after_an_outage_fills_what_the_events_missed() {
    let mut b = board();
    let m = maria();
    b.apply(&ring(1, 0.0));
    b.apply(&ring(2, 1.0));
    // During the outage: 1 was answered by Maria, 2 vanished, 3 joined.
    let changes = b.reconcile_calls(&listed(
        vec![queued(1, 0.0, Some((30.0, &m))), queued(3, 40.0, None)],
        50.0,
    ));
    assert!(changes.contains(&Change::Agent(m.clone())));
    assert!(changes.iter().any(|c| matches!(
        c,
        Change::Call(CallChange {
            call: CallId(2),
            fate: CallFate::Gone,
            ..
        })
    )));
    let s = b.stats(Q, Timestamp(60.0));
    assert_eq!(
        (s.waiting, s.longest_wait_since),
        (1, Some(Timestamp(40.0)))
    );
    let w = &s.windows[0];
    assert_eq!((w.answered, w.answered_in_threshold, w.missed), (1, 0, 0));
    assert_eq!(
        b.agent(&m).unwrap().presence,
        Presence::Busy {
            caller: Some("01".into())
        }
    );
    // The events arriving late (or replayed) change nothing more.
    assert_eq!(b.apply(&start(1, &m, 30.0)), vec![]);
    assert_eq!(
        b.reconcile_calls(&listed(
            vec![queued(1, 0.0, Some((30.0, &m))), queued(3, 40.0, None)],
            51.0
        )),
        vec![]
    );
    assert_eq!(first_window(&b, 60.0).answered, 1);
}

#[test]
fn logged_out_stays_logged_out_until_a_later_fact() {
    let mut b = board();
    let m = maria();
    b.apply(&Event::UserSessionDidFinish(session(&m, 50.0)));
    // The platform's status reads "idle" for a logged-out agent, dated at the logout.
    assert_eq!(
        b.reconcile_status(&status(&m, AgentState::Idle, None, 50.0)),
        vec![]
    );
    assert_eq!(b.agent(&m).unwrap().presence, Presence::LoggedOut);
    // An older status is stale.
    assert_eq!(
        b.reconcile_status(&status(&m, AgentState::Paused, Some("11"), 40.0)),
        vec![]
    );
    // A later one is news.
    assert_eq!(
        b.reconcile_status(&status(&m, AgentState::Paused, Some("11"), 60.0)),
        vec![Change::Agent(m.clone())]
    );
    let card = b.agent(&m).unwrap();
    assert_eq!(
        (card.presence.clone(), card.since),
        (
            Presence::Paused {
                reason: PauseReason(11)
            },
            Some(Timestamp(60.0))
        )
    );
}

#[test]
fn a_pause_during_a_call_shows_once_the_call_ends() {
    let mut b = board();
    let m = maria();
    b.apply(&Event::UserSessionDidStart(session(&m, 0.0)));
    b.apply(&ring(1, 1.0));
    b.apply(&start(1, &m, 2.0));
    b.apply(&pause(&m, 3, 5.0));
    assert!(matches!(
        b.agent(&m).unwrap().presence,
        Presence::Busy { .. }
    ));
    b.apply(&finish(1, &m, 8.0, 10.0));
    let card = b.agent(&m).unwrap();
    assert_eq!(
        (card.presence.clone(), card.since),
        (
            Presence::Paused {
                reason: PauseReason(3)
            },
            Some(Timestamp(10.0))
        )
    );
    b.apply(&Event::UserSessionDidResume(session(&m, 20.0)));
    assert_eq!(b.agent(&m).unwrap().presence, Presence::Idle);
    // A late event from before the resume changes nothing.
    assert_eq!(b.apply(&pause(&m, 4, 15.0)), vec![]);
    assert_eq!(b.agent(&m).unwrap().presence, Presence::Idle);
}

#[test]
fn members_and_names_come_from_the_listing() {
    let mut b = board();
    let m = maria();
    let joao = AgentId::new("22011");
    let members = [
        QueueAgent {
            agent: m.clone(),
            name: "Maria".into(),
        },
        QueueAgent {
            agent: joao.clone(),
            name: "João".into(),
        },
    ];
    let changes = b.reconcile_members(Q, Some("Financeiro"), &members);
    assert_eq!(changes.len(), 2);
    assert_eq!(b.queue_name(Q), Some("Financeiro"));
    assert_eq!(b.reconcile_members(Q, Some("Financeiro"), &members), vec![]);
    let changes = b.reconcile_members(Q, None, &members[..1]);
    assert_eq!(changes, vec![Change::Agent(joao.clone())]);
    let snap = b.snapshot(Q, Timestamp(0.0));
    assert_eq!(
        snap.agents
            .iter()
            .map(|a| a.agent.clone())
            .collect::<Vec<_>>(),
        vec![m]
    );
}

#[test]
fn history_buckets_the_last_hour_by_minute() {
    let mut b = board();
    let m = maria();
    b.apply(&ring(1, 600.0));
    b.apply(&start(1, &m, 610.0));
    b.apply(&ring(2, 3590.0));
    b.apply(&miss(2, 20.0, 3610.0));
    let h = b.stats(Q, Timestamp(3630.0)).history;
    assert_eq!(h.len(), HISTORY_MINUTES);
    assert_eq!(h.last().unwrap().at, Timestamp(3600.0));
    assert_eq!(h[0].at, Timestamp(60.0));
    let at = |t: f64| h.iter().find(|m| m.at == Timestamp(t)).unwrap();
    assert_eq!((at(600.0).offered, at(600.0).answered), (1, 1));
    assert_eq!((at(3540.0).offered, at(3600.0).missed), (1, 1));
}
