//! Sign-in through a trusted reverse proxy: a real nginx signs agents in with HTTP basic auth
//! and tells the bridge who they are in a header; the bridge believes that header only from
//! the proxy's address. Real Prosody, the platform simulator, the bridge binary, and agent
//! UIs played by socket.io-client and by the console in headless Chromium.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::agent_ui::Puppet;
use common::call_of;
use common::console::ConsolePage;
use common::daemon::{DaemonStack, logged_in_after_the_grace, scraped, write_proxy_config};
use common::engineio::{OPEN, connect_answer_from, request_from};
use converja_testkit::nginx::{LocalNginx, PROXY_ADDRESS, USER_HEADER, basic_auth};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::task::TaskTracker;

/// The people the proxy lets in: (username, password).
const MARIA: (&str, &str) = ("22010", "maria-pw");
const JOAO: (&str, &str) = ("22011", "joao-pw");

/// Prosody, the simulator, the bridge binary trusting only the proxy, and nginx before it.
struct Stack {
    /// Its socket.io port is reachable around the proxy too.
    daemon: DaemonStack,
    proxy: LocalNginx,
}

async fn stack(tracker: &TaskTracker) -> Stack {
    let daemon = DaemonStack::start(tracker, write_proxy_config).await;
    let proxy = LocalNginx::start(daemon.port, &[MARIA, JOAO]).unwrap_or_else(|e| panic!("{e}"));
    Stack { daemon, proxy }
}

impl Stack {
    /// A UI process whose sockets go through the proxy.
    async fn ui(&self) -> Puppet {
        Puppet::start(&self.proxy.url()).await
    }

    /// Whether the bridge asked the platform about `id`, as it does for every session it
    /// starts.
    async fn acted_for(&self, id: &str) -> bool {
        let status = format!("/agents/{id}/status");
        let requests = self.daemon.sim.requests().await;
        requests.iter().any(|r| r.message.resource == status)
    }
}

/// The headers of a browser signed in to the proxy as `who`.
fn signed_in_as((user, password): (&str, &str)) -> Value {
    json!({"authorization": basic_auth(user, password)})
}

/// One request as the upstream saw it: the proxy's address and the request's head.
struct Seen {
    peer: std::net::IpAddr,
    head: String,
}

impl Seen {
    /// The value of header `name`, if the request had it.
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// An upstream that answers every request with 200 and hands over what it saw.
async fn recording_upstream() -> (u16, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, peer)) = listener.accept().await {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && tcp.read(&mut byte).await.unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let _ = tx.send(Seen {
                peer: peer.ip(),
                head,
            });
            let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            let _ = tcp.write_all(answer.as_bytes()).await;
        }
    });
    (port, rx)
}

/// A GET through the proxy on `port` with `headers`: the status.
async fn status_of_get(port: u16, headers: &[(&str, &str)]) -> u16 {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut request =
        "GET /callcontrol/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_owned();
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The proxy itself, before any bridge: no credentials, no way in; with them, the request
/// reaches the upstream from the proxy's address with the signed-in username, whatever
/// username the client claimed, and without the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_signs_users_in_and_names_them_to_the_upstream() {
    let (upstream, mut seen) = recording_upstream().await;
    let proxy =
        LocalNginx::start(upstream, &[("22010", "maria-pw")]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status_of_get(proxy.port, &[]).await, 401);
    let wrong = basic_auth("22010", "not-the-password");
    assert_eq!(
        status_of_get(proxy.port, &[("Authorization", &wrong)]).await,
        401
    );
    assert!(
        seen.try_recv().is_err(),
        "nothing unauthenticated gets through"
    );

    let right = basic_auth("22010", "maria-pw");
    let forged = (USER_HEADER, "22011");
    assert_eq!(
        status_of_get(proxy.port, &[("Authorization", &right), forged]).await,
        200
    );
    let request = seen.recv().await.expect("the request reached the upstream");
    assert_eq!(request.peer.to_string(), PROXY_ADDRESS);
    assert_eq!(
        request.header(USER_HEADER),
        Some("22010"),
        "{}",
        request.head
    );
    assert_eq!(request.header("X-Forwarded-For"), Some("127.0.0.1"));
    assert_eq!(request.header("Authorization"), None, "{}", request.head);
}

#[test]
fn basic_auth_is_what_browsers_send() {
    // RFC 7617's example.
    assert_eq!(
        basic_auth("Aladdin", "open sesame"),
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
    assert_eq!(basic_auth("a", "b"), "Basic YTpi");
    assert_eq!(basic_auth("ab", ""), "Basic YWI6");
}

/// A public UI, unmodified (socket.io-client's defaults: polling, then WebSocket), on a site
/// behind the proxy: it logs in as the person who signed in and takes calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmodified_ui_signed_in_by_the_proxy_takes_calls() {
    let tracker = TaskTracker::new();
    let stack = stack(&tracker).await;
    let mut ui = stack.ui().await;
    ui.connect_as_shipped_with("22010", "4.8", signed_in_as(MARIA))
        .await;
    ui.login("22010", "22010", 3).await;
    let call = stack.daemon.new_call("0800").await;
    assert_eq!(call_of(&ui.expect("22010", "NEW_CALL").await), call);
    assert!(stack.acted_for("22010").await);
    tracker.close();
}

/// Signed in as 22010, a socket cannot log in as 22011; it can still log in as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ui_cannot_log_in_as_someone_the_proxy_did_not_sign_in() {
    let tracker = TaskTracker::new();
    let stack = stack(&tracker).await;
    let mut ui = stack.ui().await;
    // WebSocket from the start: the upgrade goes through the proxy too.
    let headers = json!({"headers": signed_in_as(MARIA)});
    ui.connect_with("maria", "/callcontrol", "", &["websocket"], headers)
        .await;
    ui.emit(
        "maria",
        "USER_CONNECT",
        json!({"username": "22011", "maxCalls": 3}),
    )
    .await;
    let refused = ui.expect("maria", "USER_CONNECTION_ERROR").await;
    assert_eq!(refused["username"], "22011", "{refused}");
    assert!(
        !stack.acted_for("22011").await,
        "the platform never hears of a session of 22011"
    );
    ui.login("maria", "22010", 3).await;
    assert!(stack.acted_for("22010").await);
    assert!(!stack.acted_for("22011").await);
    tracker.close();
}

/// A client that goes around the proxy, straight to the bridge, is refused whatever it says
/// about itself, and told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_around_the_proxy_is_refused_even_naming_a_user() {
    let tracker = TaskTracker::new();
    let stack = stack(&tracker).await;
    let mut ui = Puppet::start(&format!("http://127.0.0.1:{}", stack.daemon.port)).await;
    ui.send(json!({
        "op": "connect",
        "id": "forger",
        "url": format!("http://127.0.0.1:{}", stack.daemon.port),
        "path": "/callcontrol",
        "headers": {USER_HEADER: "22010"},
    }))
    .await;
    let (event, message) = ui.expect_any("forger", &["connect", "connect_error"]).await;
    assert_eq!(event, "connect_error", "{message}");
    let message = message.as_str().unwrap_or_default();
    assert!(
        message.contains("proxy"),
        "the refusal says why: {message:?}"
    );
    assert!(!stack.acted_for("22010").await);
    tracker.close();
}

/// The proxy's own address is believed only with the header that names the user: a request
/// from it without one is refused, saying so; with one, the socket is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_from_the_proxy_without_a_username_is_refused() {
    let tracker = TaskTracker::new();
    let stack = stack(&tracker).await;
    let (status, refusal) =
        request_from(PROXY_ADDRESS, stack.daemon.port, ("GET", OPEN), "", "").await;
    assert_eq!(status, 401, "{refusal}");
    assert!(
        refusal.to_lowercase().contains(&USER_HEADER.to_lowercase()),
        "the refusal says why: {refusal:?}"
    );
    let named = format!("{USER_HEADER}: 22010\r\n");
    let admitted = connect_answer_from(PROXY_ADDRESS, stack.daemon.port, &named).await;
    assert!(admitted.starts_with("40"), "admitted: {admitted}");
    tracker.close();
}

/// socket.io-client before 4.6 hands nothing back when it reconnects, but behind the proxy
/// it needs not: the reconnected socket is proven to be 22010 again, and takes 22010's
/// session back without logging in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_older_than_4_6_keeps_its_session_across_a_blip_behind_the_proxy() {
    let tracker = TaskTracker::new();
    let stack = stack(&tracker).await;
    let mut ui = stack.ui().await;
    ui.connect_as_shipped_with("22010", "4.5", signed_in_as(MARIA))
        .await;
    ui.login("22010", "22010", 3).await;
    ui.blip("22010").await;
    ui.expect("22010", "disconnect").await;
    // Assigned while the UI is away.
    let call = stack.daemon.new_call("0800").await;
    ui.expect("22010", "connect").await;
    assert_eq!(ui.expect("22010", "recovered").await, false);
    assert_eq!(call_of(&ui.expect("22010", "NEW_CALL").await), call);

    // The reconnected socket acts for the session without a USER_CONNECT.
    ui.emit("22010", "END_CALL", json!({"callId": call.to_string()}))
        .await;
    let reply = ui
        .expect_any("22010", &["CALL_ENDED", "END_CALL_ERROR"])
        .await;
    assert_eq!(
        reply,
        ("CALL_ENDED".to_owned(), json!({"callId": call.to_string()}))
    );
    let logins = "converja_socket_events_total{event=\"USER_CONNECT\",outcome=\"received\"}";
    assert_eq!(
        scraped(stack.daemon.port, logins).await,
        1.0,
        "one login, at the start"
    );
    assert!(
        logged_in_after_the_grace(&stack.daemon.sim, "22010").await,
        "the agent is never logged out on the platform"
    );
    tracker.close();
}

/// The built-in console, in a real browser that signed in to the proxy as 22010: it logs in
/// and shows the call the platform gives 22010.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_works_through_the_proxy() {
    let tracker = TaskTracker::new();
    let stack = stack(&tracker).await;
    let url = format!("{}/", stack.proxy.url());
    let mut page = ConsolePage::logged_in(&url, Some(MARIA)).await;
    assert!(stack.acted_for("22010").await);
    let call = stack.daemon.new_call("0800").await;
    page.shows(&[call], "the call the platform gave").await;
    page.close().await;
    tracker.close();
}
