//! Engine.IO long-polling on the wire, for what no client library may hide: the exact
//! headers of a handshake, the address it comes from, the CONNECT reply as sent.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::PATIENCE;

/// Engine.IO's handshake over long-polling, on the socket.io path.
pub(crate) const OPEN: &str = "/callcontrol/?EIO=4&transport=polling";

/// One HTTP/1.0 request to the bridge on `port`, connecting from the loopback address
/// `from`, with `headers` (whole lines): the status and the body.
pub(crate) async fn request_from(
    from: &str,
    port: u16,
    (method, path): (&str, &str),
    headers: &str,
    body: &str,
) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(format!("{from}:0").parse().expect("an address"))
        .expect("a loopback address");
    let mut tcp = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("the bridge listens");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\n{headers}\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.expect("sent");
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.expect("an answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_owned())
}

/// The bridge's answer to a socket.io CONNECT sent over long-polling from the loopback
/// address `from` with `headers`: the packet `40…` (admitted) or `44…` (refused).
pub(crate) async fn connect_answer_from(from: &str, port: u16, headers: &str) -> String {
    let (status, open) = request_from(from, port, ("GET", OPEN), headers, "").await;
    assert_eq!(status, 200, "{open}");
    let handshake: serde_json::Value =
        serde_json::from_str(open.strip_prefix('0').expect("an open packet")).expect("JSON");
    let sid = handshake["sid"].as_str().expect("a sid");
    let path = format!("{OPEN}&sid={sid}");
    let (_, posted) = request_from(from, port, ("POST", &path), headers, "40").await;
    assert_eq!(posted, "ok");
    // Each poll answers with the packets queued, separated by U+001E.
    tokio::time::timeout(PATIENCE, async {
        loop {
            let (_, polled) = request_from(from, port, ("GET", &path), headers, "").await;
            let answer = polled
                .split('\u{1e}')
                .find(|p| p.starts_with("40") || p.starts_with("44"));
            if let Some(answer) = answer {
                return answer.to_owned();
            }
        }
    })
    .await
    .expect("the CONNECT is answered")
}
