//! A TCP proxy on loopback, playing the network between parts for the demo and the tests: in
//! front of a pair of bridges it is the load balancer that sends each new connection to the
//! bridge whose `/readyz` says 200 (as a Kubernetes Service selects ready pods); in front of
//! PostgreSQL it can cut one bridge from its database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Whether the bridge whose admin listener is on `port` answers `/readyz` with 200.
pub async fn is_ready(port: u16) -> bool {
    let probe = async {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        tcp.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).await.ok()?;
        Some(head.ends_with(b" 200"))
    };
    tokio::time::timeout(std::time::Duration::from_secs(1), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Where a proxy sends a new connection.
#[derive(Clone, Debug)]
pub enum Route {
    /// Always this port.
    To(u16),
    /// The first of these bridges that is ready, each as (its port, its admin port where
    /// `/readyz` answers); none ready, the connection is closed.
    Ready(Vec<(u16, u16)>),
}

impl Route {
    async fn pick(&self) -> Option<u16> {
        match self {
            Route::To(port) => Some(*port),
            Route::Ready(bridges) => {
                for &(port, admin) in bridges {
                    if is_ready(admin).await {
                        return Some(port);
                    }
                }
                None
            }
        }
    }
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    cut: Arc<AtomicBool>,
    /// Cancelled to drop every open connection.
    severed: Arc<std::sync::Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on `port` (0: any free one) and forwards each connection along `route`.
    pub async fn start(port: u16, route: Route) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let port = listener.local_addr()?.port();
        let cut = Arc::new(AtomicBool::new(false));
        let severed = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (c, s, st) = (cut.clone(), severed.clone(), stop.clone());
        tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    _ = st.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                if c.load(Ordering::SeqCst) {
                    continue;
                }
                let sever = s.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let route = route.clone();
                connections.spawn(async move {
                    let Some(port) = route.pick().await else {
                        return;
                    };
                    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = sever.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                    }
                });
                while connections.try_join_next().is_some() {}
            }
            connections.abort_all();
        });
        Ok(Proxy {
            port,
            cut,
            severed,
            stop,
        })
    }

    /// Drops every open connection and refuses new ones, as a network partition would.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let mut severed = self.severed.lock().unwrap_or_else(|e| e.into_inner());
        severed.cancel();
        *severed = CancellationToken::new();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.severed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cancel();
    }
}
