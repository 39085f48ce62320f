//! Sign-in through a trusted reverse proxy: a real nginx signs agents in with HTTP basic auth
//! and tells the bridge who they are in a header; the bridge believes that header only from
//! the proxy's address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::nginx::{LocalNginx, PROXY_ADDRESS, USER_HEADER, basic_auth};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
