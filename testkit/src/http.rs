//! Plain HTTP/1.0 requests on loopback, for probing what a bridge serves.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on 127.0.0.1:`port`: (status, body); status 0 when nothing answers: nothing
/// listens, or the connection was reset (a server that stops serving, such as a standby
/// taking over, closes connections it accepted but had not read yet).
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    http_request(port, "GET", path, &[], None).await
}

/// `method path` on 127.0.0.1:`port` with `headers` and a JSON `body`: (status, body), as
/// [`http_get`].
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, String::new());
    };
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    let mut text = String::new();
    if tcp.write_all(request.as_bytes()).await.is_err()
        || tcp.read_to_string(&mut text).await.is_err()
    {
        return (0, String::new());
    }
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
