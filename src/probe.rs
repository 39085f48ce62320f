//! `converja-bridge probe`: asks a running bridge's admin listener whether it is alive or
//! ready, so that container health checks need no HTTP client in the image.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a probe waits for the whole answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of an answer a probe reads: a status line and a short JSON body.
const ANSWER_LIMIT: u64 = 16 * 1024;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Nothing answered at the address, or the connection broke.
    #[error("no answer from {0}: {1}")]
    Unreachable(SocketAddr, std::io::Error),
    /// The answer did not come in time.
    #[error("no answer from {0} within {1:?}")]
    TimedOut(SocketAddr, Duration),
    /// The bridge answered, but not 200.
    #[error("{path} answered {status}: {body}")]
    Refused {
        /// The endpoint asked.
        path: &'static str,
        /// The HTTP status line.
        status: String,
        /// What the bridge said, trimmed.
        body: String,
    },
}

/// The address to reach a listener bound to `listen` from the same host: a wildcard bind
/// (`0.0.0.0`, `::`) is reached on loopback.
pub fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET /readyz` (when `ready`) or `/healthz` on the admin listener at `addr`: `Ok` with the
/// body on 200, the reason otherwise.
pub async fn probe(addr: SocketAddr, ready: bool) -> Result<String, ProbeError> {
    let path = if ready { "/readyz" } else { "/healthz" };
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        tcp.take(ANSWER_LIMIT).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .map_err(|_| ProbeError::TimedOut(addr, PROBE_TIMEOUT))?
        .map_err(|e| ProbeError::Unreachable(addr, e))?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default().trim().to_owned();
    let body = body.trim().to_owned();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(body)
    } else {
        Err(ProbeError::Refused { path, status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::net::TcpListener;

    /// A listener that answers one connection with `answer`.
    async fn answering(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut request = [0; 1024];
            let n = tcp.read(&mut request).await.unwrap();
            assert!(String::from_utf8_lossy(&request[..n]).starts_with("GET /readyz "));
            tcp.write_all(answer.as_bytes()).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn a_200_is_ready_and_anything_else_says_why_not() {
        let addr = answering("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").await;
        assert_eq!(probe(addr, true).await.unwrap(), "{}");
        let addr = answering("HTTP/1.1 503 Service Unavailable\r\n\r\n{\"draining\":true}\n").await;
        let refused = probe(addr, true).await.unwrap_err().to_string();
        assert_eq!(
            refused,
            "/readyz answered HTTP/1.1 503 Service Unavailable: {\"draining\":true}"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable() {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        assert!(matches!(
            probe(addr, false).await,
            Err(ProbeError::Unreachable(..))
        ));
    }

    #[test]
    fn a_wildcard_bind_is_probed_on_loopback() {
        let any: SocketAddr = "0.0.0.0:9600".parse().unwrap();
        assert_eq!(local_address(any), "127.0.0.1:9600".parse().unwrap());
        let any6: SocketAddr = "[::]:9600".parse().unwrap();
        assert_eq!(local_address(any6), "[::1]:9600".parse().unwrap());
        let one: SocketAddr = "10.0.0.5:9600".parse().unwrap();
        assert_eq!(local_address(one), one);
    }
}
