//! A TCP proxy on loopback, for the network between parts: in front of PostgreSQL to cut one
//! bridge from its database, and in front of a pair of bridges as the load balancer that
//! sends each new connection to the bridge whose `/readyz` says 200.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::agent_ui::http_get;

/// Where a proxy sends a new connection.
#[derive(Clone)]
pub(crate) enum Route {
    /// Always this port.
    To(u16),
    /// The first of these bridges that is ready; none ready, the connection is closed.
    Ready(Vec<u16>),
}

impl Route {
    async fn pick(&self) -> Option<u16> {
        match self {
            Route::To(port) => Some(*port),
            Route::Ready(ports) => {
                for port in ports {
                    if http_get(*port, "/readyz").await.0 == 200 {
                        return Some(*port);
                    }
                }
                None
            }
        }
    }
}

/// A running proxy; stops when dropped.
pub(crate) struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    /// Cancelled to drop every open connection.
    severed: Arc<std::sync::Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Proxy {
    pub(crate) async fn start(route: Route) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("bound").port();
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
                let sever = s.lock().expect("lock").clone();
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
        Proxy {
            port,
            cut,
            severed,
            stop,
        }
    }

    /// Drops every open connection and refuses new ones, as a network partition would.
    pub(crate) fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let mut severed = self.severed.lock().expect("lock");
        severed.cancel();
        *severed = CancellationToken::new();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.severed.lock().expect("lock").cancel();
    }
}
