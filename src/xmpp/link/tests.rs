//! The link task on an in-memory stream, against a server played by the test.

use std::borrow::Cow;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufStream, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::stream_features::StreamFeatures;
use tokio_xmpp::xmlstream::{StreamHeader, initiate_stream};

use super::{Consumer, Link, LinkError, LinkTask};
use crate::config::{Endpoint, Secret, TlsMode};
use crate::xmpp::{ConnectSettings, Io, Stream, TIMEOUTS};

/// Settings of a link that never dials out (its tests hand it a stream): bound to
/// `resource`, checking each room every `self_ping_every`.
pub(super) fn settings(resource: &str, self_ping_every: Duration) -> ConnectSettings {
    ConnectSettings {
        jid: "bridge@converja.test".parse().expect("valid"),
        password: Secret::new("x"),
        endpoint: Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: 1,
            tls: TlsMode::None,
        },
        ca_file: None,
        connect_timeout: Duration::from_secs(1),
        resource: resource.into(),
        self_ping_every,
    }
}

const ROOM: &str = "agent.22010@conference.converja.test";
const NICK: &str = "converja-bridge";

/// The server's end of the stream.
struct Server {
    io: DuplexStream,
    /// Read from the link and not yet looked at.
    unread: String,
}

impl Server {
    async fn send(&mut self, xml: &str) {
        self.io
            .write_all(xml.as_bytes())
            .await
            .expect("the link reads");
    }

    /// Reads until the link has written `what`; returns everything up to it.
    async fn until(&mut self, what: &str) -> String {
        loop {
            if let Some(at) = self.unread.find(what) {
                return self.unread.drain(..at + what.len()).collect();
            }
            let mut buf = [0; 4096];
            let n = self.io.read(&mut buf).await.expect("readable");
            assert!(n > 0, "the link closed the stream");
            self.unread
                .push_str(std::str::from_utf8(&buf[..n]).expect("utf-8"));
        }
    }

    /// The next presence the link writes, whole.
    async fn next_presence(&mut self) -> String {
        self.until("<presence").await;
        let start = self.until(">").await;
        if start.ends_with("/>") {
            return start;
        }
        start + &self.until("</presence>").await
    }

    /// Whether the link writes `what` within `limit`.
    async fn writes_within(&mut self, what: &str, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.until(what)).await.is_ok()
    }

    /// The room's presence for our occupant: `type` empty for available.
    async fn self_presence(&mut self, type_: &str) {
        let role = if type_.is_empty() {
            "participant"
        } else {
            "none"
        };
        self.send(&format!(
            "<presence from='{ROOM}/{NICK}' to='bridge@converja.test/r' {type_}>\
             <x xmlns='http://jabber.org/protocol/muc#user'>\
             <item affiliation='none' role='{role}'/><status code='110'/></x></presence>"
        ))
        .await;
    }
}

/// A link task serving an in-memory stream, its handle, and the server's end.
async fn online() -> (Link, Server, JoinHandle<String>) {
    let (client, server) = tokio::io::duplex(1 << 16);
    let mut server = Server {
        io: server,
        unread: String::new(),
    };
    server
        .send(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' from='converja.test' id='s1' \
             version='1.0'><stream:features/>",
        )
        .await;
    let io: Io = Box::new(BufStream::new(client));
    let header = StreamHeader {
        to: Some(Cow::Borrowed("converja.test")),
        from: None,
        id: None,
    };
    let pending = initiate_stream(io, ns::JABBER_CLIENT, header, TIMEOUTS)
        .await
        .expect("stream opened");
    let (_, stream): (StreamFeatures, Stream) = pending.recv_features().await.expect("features");
    let settings = settings("r", Duration::from_secs(120));
    let (queue, mut inbound) = mpsc::channel(64);
    tokio::spawn(async move { while inbound.recv().await.is_some() {} });
    let (mut task, link) = LinkTask::new(
        settings,
        Consumer::Queue(queue),
        &TaskTracker::new(),
        CancellationToken::new(),
    );
    let bound = "bridge@converja.test/r".parse().expect("valid");
    let serving = tokio::spawn(async move { task.online(stream, bound).await });
    server.until("<stream:stream").await;
    (link, server, serving)
}

fn room() -> BareJid {
    ROOM.parse().expect("valid")
}

fn join(link: &Link) -> JoinHandle<Result<(), LinkError>> {
    let link = link.clone();
    tokio::spawn(async move { link.join(room(), NICK).await })
}

fn joined(link: &Link) -> bool {
    link.state().borrow().joined.contains(&room())
}

#[tokio::test(start_paused = true)]
async fn a_join_after_a_leave_waits_for_the_leave_to_be_answered() {
    let (link, mut server, _serving) = online().await;
    // Joined, then left and joined again before the server has answered either.
    let first = join(&link);
    server.next_presence().await;
    link.leave(room()).await;
    assert!(first.await.expect("ended").is_err(), "the leave ends it");
    let left = server.next_presence().await;
    assert!(left.contains("unavailable"), "{left}");
    let again = join(&link);
    assert!(
        !server
            .writes_within("<presence", Duration::from_secs(2))
            .await,
        "no join goes out while the leave is unanswered"
    );
    // The server answers in order: the first join, then the leave.
    server.self_presence("").await;
    assert!(
        !server
            .writes_within("<presence", Duration::from_secs(2))
            .await
    );
    assert!(
        !joined(&link) && !again.is_finished(),
        "the self-presence of the occupancy being left is no join"
    );
    server.self_presence("type='unavailable'").await;
    let rejoin = server.next_presence().await;
    assert!(rejoin.contains(ns::MUC), "a fresh join: {rejoin}");
    assert!(!joined(&link));
    server.self_presence("").await;
    again.await.expect("ended").expect("joined again");
    assert!(joined(&link));
}

#[tokio::test(start_paused = true)]
async fn a_leave_never_answered_holds_a_join_back_only_for_a_while() {
    let (link, mut server, _serving) = online().await;
    let first = join(&link);
    server.next_presence().await;
    server.self_presence("").await;
    first.await.expect("ended").expect("joined");
    link.leave(room()).await;
    assert!(!joined(&link), "no longer listed once the leave is taken");
    server.next_presence().await;
    let again = join(&link);
    let rejoin = tokio::time::timeout(Duration::from_secs(10), server.next_presence())
        .await
        .expect("the join goes out in the end");
    assert!(rejoin.contains(ns::MUC), "{rejoin}");
    server.self_presence("").await;
    again.await.expect("ended").expect("joined again");
}
