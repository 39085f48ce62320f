//! One plain HTTP/1.0 GET on loopback, for probing what a bridge serves.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on 127.0.0.1:`port`: (status, body); status 0 when nothing answers: nothing
/// listens, or the connection was reset (a server that stops serving, such as a standby
/// taking over, closes connections it accepted but had not read yet).
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, String::new());
    };
    let mut text = String::new();
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
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
