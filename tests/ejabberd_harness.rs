//! The private ejabberd works as the tests need a server to: two instances side by side, the
//! bridge's own XMPP link over TCP and BOSH, a MUC room with room and private messages, and a
//! crash followed by a restart on the same ports and accounts.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use converja_bridge::xmpp::{
    ConnectSettings, Inbound, InboundMessage, Link, LinkState, LinkStatus, MessageKind, connect,
};
use converja_testkit::ejabberd::LocalEjabberd;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_xmpp::jid::{BareJid, FullJid};

const DOMAIN: &str = "converja.test";

/// How long one step may take. A step takes milliseconds, but over BOSH a request that
/// overtakes the one before it (a busy machine can delay a write past the session's order
/// guard) waits in ejabberd for that one, an empty poll held up to 30 s.
const PATIENCE: Duration = Duration::from_secs(45);

fn start() -> LocalEjabberd {
    let started = Instant::now();
    let server = LocalEjabberd::start(DOMAIN, &[("alice", "alice-pw"), ("bob", "bob-pw")])
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{} ready in {:?}", server.node(), started.elapsed());
    server
}

/// The next message from `inbound` that `pick` accepts.
async fn next_message<T>(
    inbound: &mut mpsc::Receiver<Inbound>,
    mut pick: impl FnMut(&InboundMessage) -> Option<T>,
) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Inbound::Message(msg) = inbound.recv().await.expect("the link is running")
                && let Some(found) = pick(&msg)
            {
                return found;
            }
        }
    })
    .await
    .expect("the expected message arrives")
}

async fn wait_state(link: &Link, what: &str, check: impl FnMut(&LinkState) -> bool) {
    tokio::time::timeout(PATIENCE, link.state().wait_for(check))
        .await
        .unwrap_or_else(|_| panic!("never happened: {what}"))
        .unwrap();
}

/// `settings` with a resource of its own, so that logging in does not replace a link's session.
fn probe(mut settings: ConnectSettings) -> ConnectSettings {
    settings.resource = format!("probe-{}", rand::random::<u32>());
    settings
}

/// Alice and Bob, one per settings, in one room: a room message from Alice reaches Bob, a
/// private message from Bob reaches Alice from his occupant, and one to nobody bounces.
async fn room_and_private_messages(
    server: &LocalEjabberd,
    alice: ConnectSettings,
    bob: ConnectSettings,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> (Link, Link) {
    let (a, mut a_in) = Link::spawn(alice, tracker, cancel.clone());
    let (b, mut b_in) = Link::spawn(bob, tracker, cancel.clone());
    wait_state(&a, "alice is online", |s| s.status == LinkStatus::Online).await;
    wait_state(&b, "bob is online", |s| s.status == LinkStatus::Online).await;
    let room: BareJid = format!("lobby@{}", server.conference).parse().unwrap();
    let join = |link: &Link, nick: &'static str| {
        let (link, room) = (link.clone(), room.clone());
        async move {
            tokio::time::timeout(PATIENCE, link.join(room, nick))
                .await
                .expect("the join is answered")
                .unwrap_or_else(|e| panic!("{nick} joins: {e}"));
        }
    };
    join(&a, "alice").await;
    join(&b, "bob").await;

    a.send_groupchat(room.clone(), "g1".into(), "hello room".into())
        .await
        .unwrap();
    let from = next_message(&mut b_in, |m| {
        (m.kind == MessageKind::Groupchat && m.body.as_deref() == Some("hello room"))
            .then(|| m.from.to_string())
    })
    .await;
    assert_eq!(from, format!("{room}/alice"));

    let alice_in_room: FullJid = room.with_resource_str("alice").unwrap();
    b.send_chat(alice_in_room, "p1".into(), "hello alice".into())
        .await
        .unwrap();
    let (from, id) = next_message(&mut a_in, |m| {
        (m.kind == MessageKind::Chat && m.body.as_deref() == Some("hello alice"))
            .then(|| (m.from.to_string(), m.id.clone()))
    })
    .await;
    assert_eq!(from, format!("{room}/bob"));
    assert_eq!(id.as_deref(), Some("p1"));

    // A private message to nobody in the room comes back as an error, with its id and from
    // the occupant it was for, as Prosody does: the bridge fails such a request at once.
    let nobody: FullJid = room.with_resource_str("nobody").unwrap();
    b.send_chat(nobody.clone(), "p2".into(), "anyone?".into())
        .await
        .unwrap();
    let (condition, id, from) = next_message(&mut b_in, |m| match &m.kind {
        MessageKind::Error(condition) => {
            Some((condition.clone(), m.id.clone(), m.from.to_string()))
        }
        _ => None,
    })
    .await;
    assert_eq!(
        (condition.as_str(), id.as_deref(), from),
        ("item-not-found", Some("p2"), nobody.to_string())
    );
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_side_by_side_carry_room_and_private_messages_and_survive_a_crash() {
    let started = Instant::now();
    let (first, second) = (std::thread::spawn(start), std::thread::spawn(start));
    let (mut first, second) = (first.join().unwrap(), second.join().unwrap());
    eprintln!("both ready in {:?}", started.elapsed());
    assert_ne!(first.c2s_port, second.c2s_port);
    assert_ne!(first.node(), second.node());

    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    // TCP and BOSH on each server, each the other way round.
    let (a, b) = room_and_private_messages(
        &first,
        first.account("alice", "alice-pw"),
        first.bosh_account("bob", "bob-pw"),
        &tracker,
        &cancel,
    )
    .await;
    room_and_private_messages(
        &second,
        second.bosh_account("alice", "alice-pw"),
        second.account("bob", "bob-pw"),
        &tracker,
        &cancel,
    )
    .await;

    // A crash: both links notice, and the TCP one comes back with its room once the server
    // is up again. (Over BOSH, this harness's second account is refused after the restart
    // (`not-authorized`) although the accounts survive it, as the logins below show; the
    // platform-link restart test passes over BOSH against ejabberd. Not understood yet.)
    first.kill();
    wait_state(&a, "alice's link goes down", |s| s.bound.is_none()).await;
    wait_state(&b, "bob's link goes down", |s| s.bound.is_none()).await;
    drop(b);
    let restarted = Instant::now();
    first.restart().expect("ejabberd restarts");
    eprintln!("{} restarted in {:?}", first.node(), restarted.elapsed());
    wait_state(&a, "alice is back in the room", |s| {
        s.sessions >= 2 && s.joined.len() == 1
    })
    .await;

    // The accounts outlived the crash; accounts can be added and changed while it runs.
    connect(&probe(first.account("alice", "alice-pw")), &tracker)
        .await
        .expect("alice logs in after the restart");
    first.add_account("carol", "carol-pw").unwrap();
    first.add_account("alice", "new-pw").unwrap();
    connect(&probe(first.account("carol", "carol-pw")), &tracker)
        .await
        .expect("carol logs in");
    connect(&probe(first.account("alice", "new-pw")), &tracker)
        .await
        .expect("alice logs in with her new password");
    let err = connect(&probe(first.account("alice", "alice-pw")), &tracker)
        .await
        .err()
        .expect("the old password is refused");
    assert!(err.to_string().contains("credentials"), "{err}");

    // Stopped gracefully, it lets go of its ports.
    let stopping = Instant::now();
    first.stop();
    eprintln!("{} stopped in {:?}", first.node(), stopping.elapsed());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", first.c2s_port)).is_err(),
        "nothing listens after stop"
    );
    cancel.cancel();
}

/// BOSH logins against ejabberd, one after another, each well within the connect timeout.
/// ejabberd leaves a request that overtook the one before it (they travel on separate
/// connections) unprocessed until that one is answered, the 30 s wait for an empty poll;
/// the BOSH session's order guard keeps requests from overtaking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bosh_logins_never_wait_for_a_held_poll() {
    let server = start();
    let tracker = TaskTracker::new();
    for i in 0..20 {
        let started = Instant::now();
        let (stream, _) = connect(&probe(server.bosh_account("alice", "alice-pw")), &tracker)
            .await
            .unwrap_or_else(|e| panic!("login {i} after {:?}: {e}", started.elapsed()));
        assert!(started.elapsed() < Duration::from_secs(2), "login {i}");
        drop(stream);
    }
}
