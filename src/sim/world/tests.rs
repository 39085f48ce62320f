//! The world's behaviour through its public operations and requests.

use super::*;
use crate::converja::{QueueCalls, Request};

fn world() -> World {
    let mut w = World::new(100);
    let maria = AgentId::new("22010");
    w.agents.insert(
        maria.clone(),
        AgentModel {
            name: "Maria".into(),
            logged_in: true,
            paused: None,
            calls: vec![],
            since: Timestamp(0.0),
        },
    );
    w.queues.insert(
        QueueId(7),
        QueueModel {
            name: "Financeiro".into(),
            agents: vec![maria],
            supervisors: vec![(AgentId::new("9001"), "Ana".into())],
        },
    );
    w
}

#[test]
fn a_call_rings_starts_and_finishes_with_events_in_the_queue_room() {
    let mut w = world();
    let maria = AgentId::new("22010");
    let (call, events) = w.ring(QueueId(7), "0800".into(), Timestamp(1.0)).unwrap();
    assert!(matches!(
        events[0],
        (RoomName::Queue(QueueId(7)), Event::CallRinging(_))
    ));
    let events = w.answer(call, &maria, Timestamp(2.0)).unwrap();
    assert!(matches!(&events[0].1, Event::CallDidStart(s) if s.destination == maria));
    assert_eq!(w.status(&maria).unwrap().name, AgentState::Busy);
    assert_eq!(w.status(&maria).unwrap().show.as_deref(), Some("0800"));
    let out = w.handle(&Request::EndActiveCall(maria.clone()), Timestamp(5.0));
    assert_eq!(out.status, 200);
    assert!(
        matches!(&out.events[0].1, Event::CallDidFinish(f) if f.callid == call && f.duration == 3.0)
    );
    assert_eq!(w.status(&maria).unwrap().name, AgentState::Idle);
    assert_eq!(
        w.handle(&Request::EndActiveCall(maria), Timestamp(6.0))
            .status,
        404
    );
}

#[test]
fn unknown_agents_and_queues_are_404() {
    let mut w = world();
    let ghost = AgentId::new("404");
    for req in [
        Request::AgentStatus(ghost.clone()),
        Request::Logout(ghost.clone()),
        Request::Timestamp(ghost.clone()),
        Request::QueueAgents(QueueId(99)),
        Request::QueueCalls(QueueId(99)),
        Request::QueueSupervisors(QueueId(99)),
    ] {
        assert_eq!(w.handle(&req, Timestamp(1.0)).status, 404, "{req:?}");
    }
}

#[test]
fn pause_resume_and_logout_publish_session_events() {
    let mut w = world();
    let maria = AgentId::new("22010");
    let out = w.handle(
        &Request::SetPaused(maria.clone(), Some(PauseReason(11))),
        Timestamp(1.0),
    );
    assert!(
        matches!(&out.events[0], (RoomName::Catraquis, Event::UserSessionDidPause(p)) if p.reason == PauseReason(11) && p.queues == vec![QueueId(7)])
    );
    assert_eq!(
        w.status(&maria).unwrap().pause_reason(),
        Some(PauseReason(11))
    );
    let out = w.handle(&Request::SetPaused(maria.clone(), None), Timestamp(2.0));
    assert!(matches!(&out.events[0].1, Event::UserSessionDidResume(_)));
    let (call, _) = w.ring(QueueId(7), "1".into(), Timestamp(3.0)).unwrap();
    w.answer(call, &maria, Timestamp(3.0)).unwrap();
    let out = w.handle(&Request::Logout(maria.clone()), Timestamp(4.0));
    assert!(matches!(&out.events[0].1, Event::CallDidFinish(_)));
    assert!(matches!(&out.events[1].1, Event::UserSessionDidFinish(_)));
    assert_eq!(
        w.handle(
            &Request::SetPaused(maria, Some(PauseReason(1))),
            Timestamp(5.0)
        )
        .status,
        400
    );
}

#[test]
fn queue_calls_lists_unfinished_calls() {
    let mut w = world();
    let maria = AgentId::new("22010");
    let (a, _) = w.ring(QueueId(7), "1".into(), Timestamp(1.0)).unwrap();
    let (b, _) = w.ring(QueueId(7), "2".into(), Timestamp(1.0)).unwrap();
    let (c, _) = w.ring(QueueId(7), "3".into(), Timestamp(1.0)).unwrap();
    w.answer(a, &maria, Timestamp(2.0)).unwrap();
    w.miss(b, Timestamp(2.0)).unwrap();
    let out = w.handle(&Request::QueueCalls(QueueId(7)), Timestamp(3.0));
    let calls = crate::converja::ResponseParams::decode("queue_calls", out.params)
        .map(|c: QueueCalls| c.calls)
        .unwrap();
    let ids: Vec<CallId> = calls.iter().map(|c| c.call).collect();
    assert_eq!(ids, vec![a, c]);
    assert!(calls[0].is_active());
}
