//! The bridge in-process on a free port, and agent UIs played by the reference socket.io
//! client (socket.io-client 4.x under Node).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use converja_bridge::config::{Config, StoreConfig};

use super::server::Server;
use converja_bridge::sim::SimHandle;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{DOMAIN, PATIENCE, Via, scenario, start_sim};

/// Prosody, the simulator and the whole bridge daemon.
pub(crate) struct BridgeStack {
    pub xmpp: Server,
    pub sim: SimHandle,
    pub url: String,
    pub port: u16,
    shutdown: CancellationToken,
    cancel: CancellationToken,
    pub tracker: TaskTracker,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The bridge's configuration, for starting it again.
    pub config: Config,
    /// Holds the session store's file.
    _store: tempfile::TempDir,
}

impl Drop for BridgeStack {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.cancel.cancel();
    }
}

impl BridgeStack {
    /// Stops the bridge as SIGTERM would and returns what `serve` returned.
    /// Asks the bridge to stop, as SIGTERM does, without waiting.
    pub(crate) fn ask_shutdown(&self) {
        self.shutdown.cancel();
    }

    pub(crate) async fn shutdown(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let server = self.server.take().expect("running");
        tokio::time::timeout(PATIENCE, server)
            .await
            .expect("the bridge stops in time")
            .expect("no panic")
    }
}

/// The bridge's config for this stack, test-friendly timings, its session store in `store`,
/// adjusted by `tune`.
pub(crate) fn bridge_config(
    via: Via,
    xmpp: &Server,
    store: &Path,
    tune: impl FnOnce(&mut Config),
) -> Config {
    let transport = match via {
        Via::Tcp => "tcp",
        Via::Bosh => "bosh",
    };
    let text = format!(
        r#"
        [xmpp]
        jid = "bridge@{DOMAIN}"
        password = "bridge-pw"
        transport = "{transport}"
        host = "127.0.0.1"
        port = {port}
        bosh_url = "{bosh_url}"
        tls = "none"
        [converja]
        conference = "{conference}"
        request_timeout = "3s"
        [socketio]
        listen = "127.0.0.1:0"
        [agents]
        first_call_delay = "100ms"
        reconnect_grace = "2s"
        ack_timeout = "1s"
        "#,
        port = xmpp.c2s_port,
        bosh_url = xmpp.bosh_url(),
        conference = xmpp.conference,
    );
    let mut config = Config::from_toml(&text).expect("the test config is valid");
    config.store = StoreConfig::Sqlite(store.join("sessions.db"));
    tune(&mut config);
    config
}

pub(crate) async fn bridge_with(via: Via, tune: impl FnOnce(&mut Config)) -> BridgeStack {
    bridge_on(via, scenario(), tune).await
}

/// The bridge in front of a simulator playing `scenario`.
pub(crate) async fn bridge_on(
    via: Via,
    scenario: converja_bridge::sim::Scenario,
    tune: impl FnOnce(&mut Config),
) -> BridgeStack {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (xmpp, sim) = start_sim(scenario, &tracker, &cancel).await;
    let store = tempfile::tempdir().expect("a temporary directory");
    let config = bridge_config(via, &xmpp, store.path(), tune);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let port = listener.local_addr().expect("bound").port();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    note_admin_port(port, admin.local_addr().expect("bound").port());
    let shutdown = CancellationToken::new();
    let listeners = converja_bridge::app::Listeners {
        public: listener,
        admin,
    };
    let server = tokio::spawn(converja_bridge::app::serve(
        config.clone(),
        listeners,
        shutdown.clone(),
    ));
    let stack = BridgeStack {
        xmpp,
        sim,
        url: format!("http://127.0.0.1:{port}"),
        port,
        shutdown,
        cancel,
        tracker,
        server: Some(server),
        config,
        _store: store,
    };
    wait_ready(port).await;
    stack
}

pub(crate) async fn bridge(via: Via) -> BridgeStack {
    bridge_with(via, |_| {}).await
}

pub(crate) use converja_testkit::http::http_get;

/// The admin port of each bridge a test started, by its public port: tests name a bridge by
/// the port its agents use.
static ADMIN_PORTS: std::sync::Mutex<std::collections::BTreeMap<u16, u16>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Records that the bridge on `port` serves probes and metrics on `admin`.
pub(crate) fn note_admin_port(port: u16, admin: u16) {
    ADMIN_PORTS.lock().unwrap().insert(port, admin);
}

/// The admin port of the bridge on `port`.
pub(crate) fn admin_port(port: u16) -> u16 {
    *ADMIN_PORTS
        .lock()
        .unwrap()
        .get(&port)
        .expect("a bridge started by this test")
}

/// [`http_get`] on the admin listener of the bridge on `port`.
pub(crate) async fn admin_get(port: u16, path: &str) -> (u16, String) {
    http_get(admin_port(port), path).await
}

pub(crate) async fn wait_ready(port: u16) {
    tokio::time::timeout(PATIENCE, async {
        while admin_get(port, "/readyz").await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("the bridge becomes ready");
}

/// Agent UIs: sockets of the reference socket.io client, addressed by a test-chosen id.
pub(crate) struct Puppet {
    _child: Child,
    stdin: ChildStdin,
    rx: mpsc::UnboundedReceiver<Value>,
    log: Vec<(Value, bool)>,
    url: String,
}

impl Puppet {
    pub(crate) async fn start(url: &str) -> Puppet {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
        assert!(
            dir.join("node_modules/socket.io-client").exists(),
            "socket.io-client is not installed: run `npm ci --prefix tests/node` (needs Node.js and npm)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("puppet.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect(
                "node runs: install Node.js (https://nodejs.org or `apt-get install nodejs npm`)",
            );
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Puppet {
            _child: child,
            stdin,
            rx,
            log: Vec::new(),
            url: url.to_owned(),
        }
    }

    /// The bridge's address.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) async fn send(&mut self, cmd: Value) {
        let line = format!("{cmd}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("the puppet reads commands");
    }

    /// Opens a socket and waits until it is connected.
    pub(crate) async fn connect_with(
        &mut self,
        id: &str,
        path: &str,
        namespace: &str,
        transports: &[&str],
        extra: Value,
    ) {
        let mut cmd = json!({"op": "connect", "id": id, "url": format!("{}{namespace}", self.url), "path": path, "transports": transports});
        if let (Some(cmd), Some(extra)) = (cmd.as_object_mut(), extra.as_object()) {
            cmd.extend(extra.clone());
        }
        self.send(cmd).await;
        let what = self.expect_any(id, &["connect", "connect_error"]).await;
        assert_eq!(what.0, "connect", "socket {id} did not connect: {}", what.1);
    }

    /// A UI socket as the public agent UIs open it: socket.io-client `client` ("4.8" or
    /// "4.5") with its defaults (polling, then WebSocket; reconnection on, 1 s to 5 s
    /// apart), path /callcontrol, no auth.
    pub(crate) async fn connect_as_shipped(&mut self, id: &str, client: &str) {
        self.connect_as_shipped_with(id, client, json!({})).await;
    }

    /// Like [`connect_as_shipped`](Self::connect_as_shipped), sending `headers` with every
    /// request, as a browser sends the credentials of a site behind basic auth.
    pub(crate) async fn connect_as_shipped_with(&mut self, id: &str, client: &str, headers: Value) {
        let url = self.url.clone();
        self.send(json!({"op": "connect", "asShipped": true, "client": client, "id": id, "url": url, "path": "/callcontrol", "headers": headers}))
            .await;
        let what = self.expect_any(id, &["connect", "connect_error"]).await;
        assert_eq!(what.0, "connect", "socket {id} did not connect: {}", what.1);
        assert_eq!(self.expect(id, "recovered").await, false);
    }

    /// Drops socket `id`'s connection under it, as a network blip does; the client
    /// reconnects by itself.
    pub(crate) async fn blip(&mut self, id: &str) {
        self.send(json!({"op": "blip", "id": id})).await;
    }

    /// The default: path /callcontrol, namespace /, WebSocket.
    pub(crate) async fn connect(&mut self, id: &str) {
        self.connect_with(id, "/callcontrol", "", &["websocket"], json!({}))
            .await;
    }

    pub(crate) async fn emit(&mut self, id: &str, event: &str, data: Value) {
        self.send(json!({"op": "emit", "id": id, "event": event, "data": data}))
            .await;
    }

    pub(crate) async fn emit_bare(&mut self, id: &str, event: &str) {
        self.send(json!({"op": "emit", "id": id, "event": event}))
            .await;
    }

    /// Emits `event` with an acknowledgement callback and returns what the bridge answered.
    pub(crate) async fn ask(&mut self, id: &str, event: &str, data: Value) -> Value {
        self.send(json!({"op": "emit", "id": id, "event": event, "data": data, "ack": true}))
            .await;
        self.expect(id, &format!("ack:{event}")).await
    }

    pub(crate) async fn login(&mut self, id: &str, username: &str, max_calls: u32) {
        self.emit(
            id,
            "USER_CONNECT",
            json!({"username": username, "maxCalls": max_calls}),
        )
        .await;
        let reply = self.expect(id, "USER_CONNECTED").await;
        assert_eq!(reply["username"], username);
    }

    fn pull(&mut self) {
        while let Ok(v) = self.rx.try_recv() {
            self.log.push((v, false));
        }
    }

    fn take(&mut self, id: &str, events: &[&str]) -> Option<(String, Value)> {
        self.pull();
        let entry = self
            .log
            .iter_mut()
            .find(|(v, used)| !*used && v["id"] == id && events.iter().any(|e| v["event"] == *e))?;
        entry.1 = true;
        Some((
            entry.0["event"].as_str().unwrap_or_default().to_owned(),
            entry.0["data"].clone(),
        ))
    }

    pub(crate) async fn expect_any(&mut self, id: &str, events: &[&str]) -> (String, Value) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(found) = self.take(id, events) {
                return found;
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(v)) => self.log.push((v, false)),
                Ok(None) => panic!("the puppet exited"),
                Err(_) => panic!(
                    "socket {id} never received {events:?}; it got {:?}",
                    self.events(id)
                ),
            }
        }
    }

    /// The next `event` on socket `id` not yet taken by an earlier expect.
    pub(crate) async fn expect(&mut self, id: &str, event: &str) -> Value {
        self.expect_any(id, &[event]).await.1
    }

    /// Asserts that `event` does not arrive on `id` within `wait`.
    /// Asserts that `id` has not received `event`, after a round trip on the same socket: the
    /// bridge answers a socket's events in order, so everything it emitted to that socket
    /// before the answer has arrived by then.
    pub(crate) async fn expect_none(&mut self, id: &str, event: &str) {
        self.send(json!({"op": "emit", "id": id, "event": "BARRIER", "data": {}, "ack": true}))
            .await;
        self.expect(id, "ack:BARRIER").await;
        if let Some((_, data)) = self.take(id, &[event]) {
            panic!("socket {id} unexpectedly received {event}: {data}");
        }
    }

    /// Every event received on `id` so far.
    pub(crate) fn events(&mut self, id: &str) -> Vec<String> {
        self.pull();
        self.log
            .iter()
            .filter(|(v, _)| v["id"] == id)
            .map(|(v, _)| format!("{} {}", v["event"], v["data"]))
            .collect()
    }

    /// How many `event`s `id` has received so far, taken or not.
    pub(crate) fn count(&mut self, id: &str, event: &str) -> usize {
        self.pull();
        self.log
            .iter()
            .filter(|(v, _)| v["id"] == id && v["event"] == event)
            .count()
    }
}
