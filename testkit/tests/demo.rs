//! The demo as a user runs it: it serves the console and stops on Ctrl-C, over the client
//! port, over BOSH, and as a pair of bridges that fails over when asked.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use converja_testkit::http::http_get;
use converja_testkit::loopback::free_port;
use converja_testkit::process::{KillOnDrop, signal, wait_exit};

const DEMO: &str = env!("CARGO_BIN_EXE_converja-demo");

/// A wait in a test that should never come close to this.
const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until the demo on `port` is ready: the demo serves `/readyz` on its public port
/// too, as a load balancer that cannot reach a second port would use it.
async fn demo_ready(port: u16) {
    tokio::time::timeout(PATIENCE, async {
        while http_get(port, "/readyz").await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("the demo becomes ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_the_console_and_stops_on_ctrl_c() {
    demo_serves_and_stops(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_over_bosh_serves_the_console_and_stops_on_ctrl_c() {
    demo_serves_and_stops(&["--bosh"]).await;
}

/// Waits until the demo's traffic shows on Ana's board: calls offered in the last hour.
async fn wallboard_moves(port: u16) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        let (_, body) = http_get(port, "/api/v1/queues/7/board?supervisor=9001").await;
        let board: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let offered: u64 = board["snapshot"]["stats"]["history"]
            .as_array()
            .map_or(0, |h| h.iter().filter_map(|m| m["offered"].as_u64()).sum());
        if offered > 0 {
            return;
        }
        last = body;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("no call reached the demo's board within {PATIENCE:?}: {last}");
}

async fn demo_serves_and_stops(extra: &[&str]) {
    let port = free_port().unwrap();
    let mut child = KillOnDrop(
        Command::new(DEMO)
            .args(["--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    demo_ready(port).await;
    let prosody = Command::new("pgrep")
        .args(["-P", &child.0.id().to_string(), "lua"])
        .output()
        .unwrap();
    let prosody = String::from_utf8(prosody.stdout).unwrap().trim().to_owned();
    assert!(!prosody.is_empty(), "the demo runs its own Prosody");
    let (status, body) = http_get(port, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("Converja"), "{body}");
    let (status, body) = http_get(port, "/app.js").await;
    assert_eq!(status, 200);
    assert!(body.contains("USER_CONNECT"));
    let (status, body) = http_get(port, "/wallboard").await;
    assert_eq!(status, 200);
    assert!(body.contains("wallboard"), "{body}");
    wallboard_moves(port).await;
    signal(child.0.id(), "INT");
    assert!(wait_exit(&mut child.0, PATIENCE).success());
    let mut printed = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut printed).unwrap();
    assert!(
        printed.contains(&format!("http://127.0.0.1:{port}/")),
        "{printed}"
    );
    assert!(printed.contains("22010"), "{printed}");
    // Its Prosody went with it.
    for pid in prosody.lines() {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "Prosody {pid} was left running"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pair_demo_fails_over_when_asked_and_stops_on_ctrl_c() {
    use std::io::{BufRead, Write};

    let port = free_port().unwrap();
    let mut child = KillOnDrop(
        Command::new(DEMO)
            .args(["--pair", "--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut read_until = |wanted: &str| -> String {
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.contains(wanted) {
                return line;
            }
        }
        panic!("the demo never printed `{wanted}`");
    };
    read_until("Press Enter");
    // Through the load balancer, the active bridge serves the console.
    demo_ready(port).await;
    assert_eq!(http_get(port, "/").await.0, 200);
    let bridges = Command::new("pgrep")
        .args(["-P", &child.0.id().to_string(), "converja-demo"])
        .output()
        .unwrap();
    let bridges: Vec<String> = String::from_utf8(bridges.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(bridges.len(), 2, "two bridge processes: {bridges:?}");

    writeln!(child.0.stdin.as_mut().unwrap()).unwrap();
    let took = read_until("is active: ready");
    assert!(took.contains(" ms after the crash"), "{took}");
    read_until("started again: the standby");
    demo_ready(port).await;
    signal(child.0.id(), "INT");
    assert!(wait_exit(&mut child.0, PATIENCE).success());
    for pid in bridges {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "bridge {pid} was left running"
        );
    }
}
