//! The floors the agents benchmark sets the bridge against, each a child process of the
//! benchmark binary so that `/proc` shows its cost alone:
//!
//! - a bare socket.io server (socketioxide on axum) that answers `USER_CONNECT` and
//!   `END_CALL` with the bridge's payloads and emits `NEW_CALL` when told on stdin, with no
//!   platform behind it;
//! - a bare tokio-xmpp client that does the bridge's XMPP exchange per call: it joins the
//!   queue room and every agent room, and answers each `CallDidStart` with the
//!   `DELETE /calls/active` request, reading the response.
//!
//! What the bridge spends beyond the sum of the two is its own.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use converja_bridge::config::{Endpoint, Secret, TlsMode};
use converja_bridge::converja::{
    Addresses, AgentId, Destination, Event, Message, QueueId, Request, RoomName,
};
use converja_bridge::xmpp::{ConnectSettings, Stream, connect};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use tokio_util::task::TaskTracker;
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::{Id, Lang, Message as XmppMessage, MessageType};
use tokio_xmpp::parsers::muc::Muc;
use tokio_xmpp::parsers::muc::muc::History;
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::xmlstream::{FallibleStreamElement, XmppStreamElement};

use super::Killed;

const SOCKETIO: &str = "--floor-socketio";
const XMPP: &str = "--floor-xmpp";
/// The floor's nickname in every room.
const NICK: &str = "floor";
/// How long a room join may go unanswered before it is sent again.
const JOIN_RETRY: Duration = Duration::from_secs(20);
/// How long the floor waits for the next answer to its requests before it gives up.
const ANSWER_PATIENCE: Duration = Duration::from_secs(120);
/// How long the floor tries to join every room.
const JOIN_PATIENCE: Duration = Duration::from_secs(180);

/// Runs the floor the command line names, if it names one; whether it did.
pub(crate) fn run_if_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let Some(mode) = args.get(1) else {
        return false;
    };
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    match mode.as_str() {
        SOCKETIO => rt().block_on(socketio()),
        XMPP => rt().block_on(xmpp(&args[2..])),
        _ => return false,
    }
    true
}

/// The bare socket.io server, listening; its port and its stdin, where `call <agent> <id>`
/// lines become `NEW_CALL`s.
pub(crate) fn start_socketio() -> (Killed, u16) {
    let mut child = spawn(&[SOCKETIO.to_owned()]);
    let port = first_line(&mut child)
        .parse()
        .expect("the floor prints its port");
    (child, port)
}

/// The bare XMPP client as `user@domain` on the loopback `c2s_port`, in `conference`'s queue
/// 7 room and the rooms of agents `first..first + count`, once [`join_rooms`] says so.
/// `expect <n>` on its stdin then makes it print `done` once `n` more responses came back.
pub(crate) fn start_xmpp(
    account: (&str, &str, &str),
    c2s_port: u16,
    conference: &str,
    first: u64,
    count: u64,
) -> Killed {
    let (user, domain, password) = account;
    let mut child = spawn(&[
        XMPP.to_owned(),
        format!("{user}@{domain}"),
        password.to_owned(),
        c2s_port.to_string(),
        conference.to_owned(),
        first.to_string(),
        count.to_string(),
    ]);
    assert_eq!(
        first_line(&mut child),
        "connected",
        "the XMPP floor connects"
    );
    child
}

/// Has the XMPP floor join its rooms; returns once it has.
pub(crate) fn join_rooms(floor: &mut Killed) {
    let stdin = floor.0.stdin.as_mut().expect("piped");
    writeln!(stdin, "join").expect("the floor reads its stdin");
    assert_eq!(first_line(floor), "ready", "the XMPP floor joins its rooms");
}

/// Waits for the XMPP floor's `done`.
pub(crate) fn wait_done(lines: &mut impl Iterator<Item = std::io::Result<String>>) {
    loop {
        match lines.next() {
            Some(Ok(line)) if line == "done" => return,
            Some(Ok(_)) => continue,
            _ => panic!("the XMPP floor stopped"),
        }
    }
}

fn spawn(args: &[String]) -> Killed {
    Killed(
        Command::new(std::env::current_exe().expect("the benchmark's own path"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the benchmark runs itself as a floor"),
    )
}

fn first_line(child: &mut Killed) -> String {
    let stdout = child.0.stdout.as_mut().expect("piped");
    let mut line = String::new();
    // One byte at a time, so that nothing after the first line is taken from the pipe.
    let mut byte = [0u8; 1];
    while std::io::Read::read(stdout, &mut byte).expect("read") == 1 && byte[0] != b'\n' {
        line.push(byte[0] as char);
    }
    line
}

/// The NEW_CALL payload the bridge sends, for call `id`.
fn new_call(id: u64) -> Value {
    json!({
        "callId": id.to_string(),
        "media": "voice",
        "startDate": "2026-12-02T10:00:00.000Z",
        "service": "Financeiro",
        "caller": "0800",
    })
}

async fn socketio() {
    let (layer, io) = SocketIo::builder()
        .req_path("/callcontrol")
        .max_buffer_size(128)
        .build_layer();
    let sockets: Arc<Mutex<HashMap<String, SocketRef>>> = Arc::default();
    let known = sockets.clone();
    // A connect middleware runs before the client hears it is connected: its handlers are in
    // place before its first event.
    let register = move |s: SocketRef| {
        let known = known.clone();
        s.on(
            "USER_CONNECT",
            async move |s: SocketRef, Data(login): Data<Value>| {
                let username = login["username"].as_str().unwrap_or_default().to_owned();
                let reply = json!({"username": username, "maxCalls": login["maxCalls"]});
                known.lock().expect("lock").insert(username, s.clone());
                let _ = s.emit("USER_CONNECTED", &reply);
            },
        );
        s.on("END_CALL", async |s: SocketRef, Data(call): Data<Value>| {
            let _ = s.emit("CALL_ENDED", &json!({"callId": call["callId"]}));
        });
        async { Ok::<(), std::convert::Infallible>(()) }
    };
    io.ns("/", (async |_: SocketRef| {}).with(register));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().layer(layer))
            .await
            .expect("serve")
    });
    println!("{port}");
    let mut lines = stdin_lines();
    while let Some(line) = lines.recv().await {
        let mut words = line.split_whitespace();
        let (Some("call"), Some(agent), Some(id)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let socket = sockets.lock().expect("lock").get(agent).cloned();
        if let (Some(socket), Ok(id)) = (socket, id.parse()) {
            let _ = socket.emit("NEW_CALL", &new_call(id));
        }
    }
}

async fn xmpp(args: &[String]) {
    let [jid, password, port, conference, first, count] = args else {
        panic!("usage: --floor-xmpp JID PASSWORD PORT CONFERENCE FIRST COUNT");
    };
    let jid: BareJid = jid.parse().expect("jid");
    let settings = ConnectSettings {
        resource: NICK.into(),
        password: Secret::new(password),
        endpoint: Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: port.parse().expect("port"),
            tls: TlsMode::None,
        },
        ca_file: None,
        connect_timeout: Duration::from_secs(10),
        self_ping_every: Duration::from_secs(3600),
        jid,
    };
    let tracker = TaskTracker::new();
    let (mut stream, _) = connect(&settings, &tracker)
        .await
        .expect("the floor connects");
    let addresses = Addresses::new(conference.parse().expect("conference"));
    let (first, count): (u64, u64) = (first.parse().expect("first"), count.parse().expect("count"));
    let queue = addresses.room(&RoomName::Queue(QueueId(7))).expect("room");
    let mut rooms = vec![queue.clone()];
    rooms.extend((first..first + count).map(|a| {
        addresses
            .room(&RoomName::Agent(AgentId::new(a.to_string())))
            .expect("room")
    }));
    println!("connected");
    let mut lines = stdin_lines();
    while lines.recv().await.as_deref().is_some_and(|l| l != "join") {}
    join_all(&mut stream, &rooms).await;
    println!("ready");
    let server: Jid = settings.jid.domain().to_owned().into();
    answer_calls(&mut stream, &addresses, &server, lines).await;
}

/// Answers every `CallDidStart` in the queue room with `DELETE /calls/active` to the agent's
/// room, counting responses; `expect <n>` lines on stdin ask for a `done` once `n` more came.
async fn answer_calls(
    stream: &mut Stream,
    addresses: &Addresses,
    server: &Jid,
    mut lines: tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let mut answered = 0u64;
    let mut target: Option<u64> = None;
    let mut next_id = 1u64;
    let mut progress = tokio::time::Instant::now();
    // Requests the server refused instead of passing them on, and rooms it dropped us from.
    let (mut refused, mut rejoined) = (0u64, 0u64);
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => {
                    if let Some(n) = line.strip_prefix("expect ").and_then(|n| n.parse::<u64>().ok()) {
                        target = Some(answered + n);
                        progress = tokio::time::Instant::now();
                    }
                }
                None => return,
            },
            () = tokio::time::sleep_until(progress + ANSWER_PATIENCE), if target.is_some() => {
                eprintln!(
                    "XMPP floor: {answered} of {} answers, none for {ANSWER_PATIENCE:?}",
                    target.unwrap_or_default(),
                );
                return;
            }
            item = stream.next() => {
                let m = match read(item, stream, server).await {
                    Read::Message(m) => m,
                    Read::Rejoined => {
                        rejoined += 1;
                        continue;
                    }
                    Read::Nothing => continue,
                    Read::Ended => return,
                };
                if m.type_ == MessageType::Error {
                    // The exchange happened, though the platform never saw the request.
                    refused += 1;
                    answered += 1;
                    progress = tokio::time::Instant::now();
                    continue;
                }
                let Some(body) = m.bodies.values().next() else { continue };
                match Message::parse(body) {
                    Ok(Message::Event(e)) if m.type_ == MessageType::Groupchat => {
                        if let Ok(Event::CallDidStart(start)) = e.event() {
                            end_call(stream, addresses, start.destination, next_id).await;
                            next_id += 1;
                        }
                    }
                    Ok(Message::Response(_)) => {
                        answered += 1;
                        progress = tokio::time::Instant::now();
                    }
                    _ => {}
                }
            }
        }
        if target.is_some_and(|t| answered >= t) {
            target = None;
            if refused + rejoined > 0 {
                eprintln!(
                    "XMPP floor: {refused} requests refused by the server so far, \
                     {rejoined} rooms joined again after it dropped the floor"
                );
            }
            println!("done");
            let _ = std::io::stdout().flush();
        }
    }
}

/// What the floor read from its stream, once it has dealt with anything but a message.
enum Read {
    Message(Box<XmppMessage>),
    /// The server dropped the floor from a room; it has asked to join again.
    Rejoined,
    Nothing,
    /// The stream is gone.
    Ended,
}

/// Deals with `item` unless it is a message: keeps the stream alive, joins again a room the
/// server dropped the floor from, says why the stream ended.
async fn read(
    item: Option<Result<FallibleStreamElement, tokio_xmpp::xmlstream::ReadError>>,
    stream: &mut Stream,
    server: &Jid,
) -> Read {
    match item {
        Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(Stanza::Message(m))))) => {
            Read::Message(Box::new(m))
        }
        None => {
            eprintln!("XMPP floor: the server closed the stream");
            Read::Ended
        }
        Some(Err(tokio_xmpp::xmlstream::ReadError::HardError(e))) => {
            eprintln!("XMPP floor: connection error: {e}");
            Read::Ended
        }
        Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::StreamError(e)))) => {
            eprintln!("XMPP floor: stream error: {e}");
            Read::Ended
        }
        Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(Stanza::Presence(p)))))
            if p.type_ == PresenceType::Unavailable =>
        {
            // Dropped from a room (ejabberd has done so under a burst of joins): in again,
            // as the bridge would be.
            match ours(&p) {
                Some(room) => {
                    send_joins(stream, std::iter::once(&room)).await;
                    Read::Rejoined
                }
                None => Read::Nothing,
            }
        }
        Some(Err(tokio_xmpp::xmlstream::ReadError::SoftTimeout)) => {
            // As the bridge does: a ping, or an idle stream is taken for dead.
            let ping = Iq::from_get("floor-keepalive", Ping).with_to(server.clone());
            stream
                .send(&XmppStreamElement::Stanza(Stanza::Iq(ping)))
                .await
                .expect("write");
            Read::Nothing
        }
        _ => Read::Nothing,
    }
}

/// Asks the platform to end `agent`'s active call, as the bridge does after `END_CALL`.
async fn end_call(stream: &mut Stream, addresses: &Addresses, agent: AgentId, id: u64) {
    let to = addresses
        .destination(&Destination::Agent(agent.clone()))
        .expect("occupant");
    let body = Message::Request(Request::EndActiveCall(agent).to_message(id)).to_json();
    let mut msg = XmppMessage::new_with_type(MessageType::Chat, Some(to.into()))
        .with_body(Lang::default(), body);
    msg.id = Some(Id(id.to_string()));
    stream
        .send(&XmppStreamElement::Stanza(Stanza::Message(msg)))
        .await
        .expect("write");
}

/// Sends every join at once, then waits for each room's self-presence. Joins unanswered
/// after [`JOIN_RETRY`] are sent again, as the bridge does: under a burst of joins ejabberd
/// has been seen to leave a few unanswered. Gives up, saying how many, after
/// [`JOIN_PATIENCE`].
async fn join_all(stream: &mut Stream, rooms: &[BareJid]) {
    let started = std::time::Instant::now();
    let mut waiting: std::collections::BTreeSet<BareJid> = rooms.iter().cloned().collect();
    while !waiting.is_empty() {
        assert!(
            started.elapsed() < JOIN_PATIENCE,
            "the XMPP floor: {} of {} rooms never answered its join",
            waiting.len(),
            rooms.len()
        );
        send_joins(stream, waiting.iter()).await;
        let asked = tokio::time::Instant::now();
        while !waiting.is_empty() && asked.elapsed() < JOIN_RETRY {
            let next = tokio::time::timeout_at(asked + JOIN_RETRY, stream.next()).await;
            match next {
                Err(_) => break,
                Ok(Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(
                    Stanza::Presence(p),
                ))))) => match ours(&p) {
                    Some(room) if p.type_ == PresenceType::None => {
                        waiting.remove(&room);
                    }
                    // Dropped again at once: asked again on the next round.
                    Some(room) => {
                        waiting.insert(room);
                    }
                    _ => {}
                },
                Ok(Some(Ok(_)) | Some(Err(tokio_xmpp::xmlstream::ReadError::SoftTimeout))) => {}
                Ok(other) => panic!("the floor lost its stream while joining: {other:?}"),
            }
        }
    }
}

/// The room a presence of the floor's own occupant is from.
fn ours(presence: &Presence) -> Option<BareJid> {
    let from = presence.from.as_ref()?;
    from.resource()
        .is_some_and(|r| r.as_str() == NICK)
        .then(|| from.to_bare())
}

/// Sends a join to each of `rooms`, flushed once.
async fn send_joins(stream: &mut Stream, rooms: impl Iterator<Item = &BareJid>) {
    for room in rooms {
        let presence = Presence::available()
            .with_to(room.with_resource_str(NICK).expect("nick"))
            .with_payload(Muc::new().with_history(History::new().with_maxstanzas(0)));
        stream
            .feed(&XmppStreamElement::Stanza(Stanza::Presence(presence)))
            .await
            .expect("join");
    }
    <Stream as SinkExt<&XmppStreamElement>>::flush(stream)
        .await
        .expect("flush");
}

/// This process's stdin, line by line, read on a thread of its own.
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Lines of a floor's stdout.
pub(crate) fn lines(child: &mut Killed) -> std::io::Lines<BufReader<std::process::ChildStdout>> {
    BufReader::new(child.0.stdout.take().expect("piped")).lines()
}
