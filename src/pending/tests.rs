//! Unit tests of the pending module.

use super::*;

fn occupant(s: &str) -> FullJid {
    s.parse().expect("valid full jid")
}

fn response(to: u64) -> ResponseMessage {
    ResponseMessage {
        id: 1,
        to,
        failure: false,
        status: 200,
        params: serde_json::json!({}),
    }
}

const FILIS: &str = "filis@conf.test/filis";

#[tokio::test]
async fn answers_reach_their_own_request_in_any_order() {
    let table = PendingTable::new(10, 0);
    let mut a = table.register(occupant(FILIS)).unwrap();
    let mut b = table.register(occupant(FILIS)).unwrap();
    let from: Jid = occupant(FILIS).into();
    assert_eq!(
        table.resolve(&from, response(b.id()), Instant::now()),
        Disposition::Accepted
    );
    assert_eq!(
        table.resolve(&from, response(a.id()), Instant::now()),
        Disposition::Accepted
    );
    assert_eq!(a.wait().await.unwrap().to, a.id());
    assert_eq!(b.wait().await.unwrap().to, b.id());
    assert!(table.is_empty());
}

#[tokio::test]
async fn spoofed_answers_are_refused_and_the_real_one_still_lands() {
    let table = PendingTable::new(10, 0);
    let mut t = table.register(occupant("agent.1@conf.test/1")).unwrap();
    let other: Jid = occupant("agent.2@conf.test/2").into();
    let bare: Jid = "agent.1@conf.test".parse().unwrap();
    assert!(matches!(
        table.resolve(&other, response(t.id()), Instant::now()),
        Disposition::Spoofed { .. }
    ));
    assert!(matches!(
        table.resolve(&bare, response(t.id()), Instant::now()),
        Disposition::Spoofed { .. }
    ));
    let real: Jid = occupant("agent.1@conf.test/1").into();
    assert_eq!(
        table.resolve(&real, response(t.id()), Instant::now()),
        Disposition::Accepted
    );
    assert!(t.wait().await.is_ok());
}

#[tokio::test]
async fn duplicates_late_and_unknown_answers_are_told_apart() {
    let table = PendingTable::new(10, 0);
    let from: Jid = occupant(FILIS).into();
    let t = table.register(occupant(FILIS)).unwrap();
    let id = t.id();
    assert_eq!(
        table.resolve(&from, response(id), Instant::now()),
        Disposition::Accepted
    );
    assert_eq!(
        table.resolve(&from, response(id), Instant::now()),
        Disposition::Duplicate
    );
    let gave_up = table.register(occupant(FILIS)).unwrap();
    let late_id = gave_up.id();
    drop(gave_up);
    assert_eq!(
        table.resolve(&from, response(late_id), Instant::now()),
        Disposition::Late
    );
    assert_eq!(
        table.resolve(&from, response(12345), Instant::now()),
        Disposition::Unknown
    );
    drop(t);
}

#[tokio::test]
async fn bounces_fail_the_request_at_once() {
    let table = PendingTable::new(10, 0);
    let mut t = table.register(occupant("agent.9@conf.test/9")).unwrap();
    let stranger: Jid = occupant("agent.8@conf.test/8").into();
    assert!(matches!(
        table.bounce(t.id(), &stranger, "x".into()),
        Disposition::Spoofed { .. }
    ));
    let from: Jid = occupant("agent.9@conf.test/9").into();
    assert_eq!(
        table.bounce(t.id(), &from, "item-not-found".into()),
        Disposition::Accepted
    );
    assert_eq!(
        t.wait().await,
        Err(Failure::Bounced("item-not-found".into()))
    );
}

#[tokio::test]
async fn link_loss_fails_everything_pending() {
    let table = PendingTable::new(10, 0);
    let mut tickets: Vec<_> = (0..5)
        .map(|_| table.register(occupant(FILIS)).unwrap())
        .collect();
    assert_eq!(table.fail_all("connection reset"), 5);
    for t in &mut tickets {
        assert_eq!(
            t.wait().await,
            Err(Failure::LinkDown("connection reset".into()))
        );
    }
    assert!(table.is_empty());
    // An answer that crossed the outage is late, not unknown.
    let from: Jid = occupant(FILIS).into();
    assert_eq!(
        table.resolve(&from, response(tickets[0].id()), Instant::now()),
        Disposition::Late
    );
    assert_eq!(table.fail_all("again"), 0);
}

#[tokio::test]
async fn waiting_for_an_empty_table_ends_with_the_last_request() {
    let table = PendingTable::new(10, 0);
    let from: Jid = occupant(FILIS).into();
    let first = table.register(occupant(FILIS)).unwrap();
    let second = table.register(occupant(FILIS)).unwrap();
    let waiter = tokio::spawn({
        let table = table.clone();
        async move { table.wait_empty().await }
    });
    table.resolve(&from, response(first.id()), Instant::now());
    drop(first);
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "one request is still in flight");
    drop(second);
    tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("woken by the last ticket")
        .unwrap();
}

#[test]
fn a_dropped_ticket_leaves_the_table() {
    let table = PendingTable::new(10, 0);
    let from: Jid = occupant(FILIS).into();
    let kept = table.register(occupant(FILIS)).unwrap();
    let dropped = table.register(occupant(FILIS)).unwrap();
    let id = dropped.id();
    assert_eq!(table.len(), 2);
    drop(dropped);
    assert_eq!(table.len(), 1);
    assert_eq!(
        table.resolve(&from, response(id), Instant::now()),
        Disposition::Late
    );
    // Dropping a ticket whose answer arrived changes nothing: a repeat is a duplicate.
    let kept_id = kept.id();
    assert_eq!(
        table.resolve(&from, response(kept_id), Instant::now()),
        Disposition::Accepted
    );
    drop(kept);
    assert!(table.is_empty());
    assert_eq!(
        table.resolve(&from, response(kept_id), Instant::now()),
        Disposition::Duplicate
    );
}

#[test]
fn the_table_is_bounded_and_frees_slots_on_drop() {
    let table = PendingTable::new(2, 0);
    let a = table.register(occupant(FILIS)).unwrap();
    let _b = table.register(occupant(FILIS)).unwrap();
    assert_eq!(table.register(occupant(FILIS)).unwrap_err(), Overloaded);
    drop(a);
    assert!(table.register(occupant(FILIS)).is_ok());
}
