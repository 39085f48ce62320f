//! The two binaries as a user runs them: config checking, the daemon under SIGTERM, the demo
//! under Ctrl-C, and the simulator's help.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};

use common::agent_ui::{admin_get, http_get, note_admin_port, wait_ready};
use converja_bridge::prosody::LocalProsody;

const BRIDGE: &str = env!("CARGO_BIN_EXE_converja-bridge");
const SIM: &str = env!("CARGO_BIN_EXE_converja-sim");

fn signal(pid: u32, sig: &str) {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
}

/// Kills the child if the test fails before it exits by itself.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the demo on `port` is ready: the demo serves `/readyz` on its public port
/// too, as a load balancer that cannot reach a second port would use it.
async fn demo_ready(port: u16) {
    tokio::time::timeout(common::PATIENCE, async {
        while http_get(port, "/readyz").await.0 != 200 {
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("the demo becomes ready");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bridge.toml");
    std::fs::write(
        &file,
        "[xmpp]\njid = \"bridge@converja.local\"\npassword = \"hunter2\"\n",
    )
    .unwrap();
    let out = Command::new(BRIDGE)
        .args(["check-config", "--config"])
        .arg(&file)
        .env("CONVERJA_BRIDGE__AGENTS__MEDIA", "VOICE")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("password = \"********\""), "{text}");
    assert!(text.contains("media = \"VOICE\""), "{text}");

    std::fs::write(&file, "[xmpp]\njid = \"bridge@converja.local\"\npassword = \"x\"\n[agents]\nmax_calls_limit = -1\n").unwrap();
    let out = Command::new(BRIDGE)
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_calls_limit"));
}

/// Also: with `log.format = "json"`, every line on stdout is one JSON object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_and_exits_cleanly_on_sigterm() {
    let prosody = LocalProsody::start(common::DOMAIN, &[("bridge", "bridge-pw")])
        .unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let admin = free_port();
    note_admin_port(port, admin);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bridge.toml");
    std::fs::write(
        &file,
        format!(
            "[xmpp]\njid = \"bridge@{}\"\npassword = \"bridge-pw\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n[converja]\nconference = \"{}\"\nqueues = [7]\n[socketio]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[store]\npath = \"{}\"\n",
            prosody.domain,
            prosody.c2s_port,
            prosody.conference,
            dir.path().join("sessions.db").display()
        ),
    )
    .unwrap();
    let mut child = KillOnDrop(
        Command::new(BRIDGE)
            .args(["run", "--config"])
            .arg(&file)
            .env("CONVERJA_BRIDGE__LOG__FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(port).await;
    assert_eq!(admin_get(port, "/healthz").await.0, 200);
    signal(child.0.id(), "TERM");
    assert!(common::wait_exit(&mut child.0).success());
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.0.stdout.take().unwrap(), &mut logs).unwrap();
    let messages: Vec<String> = logs
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            assert!(entry["level"].is_string(), "{line}");
            entry["message"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    for expected in ["XMPP link online", "stopped"] {
        assert!(
            messages.iter().any(|m| m == expected),
            "no `{expected}` in {messages:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_the_console_and_stops_on_ctrl_c() {
    demo_serves_and_stops(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_over_bosh_serves_the_console_and_stops_on_ctrl_c() {
    demo_serves_and_stops(&["--bosh"]).await;
}

async fn demo_serves_and_stops(extra: &[&str]) {
    let port = free_port();
    let mut child = KillOnDrop(
        Command::new(BRIDGE)
            .args(["demo", "--port", &port.to_string()])
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
    signal(child.0.id(), "INT");
    assert!(common::wait_exit(&mut child.0).success());
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

    let port = free_port();
    let mut child = KillOnDrop(
        Command::new(BRIDGE)
            .args(["demo", "--pair", "--port", &port.to_string()])
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
        .args(["-P", &child.0.id().to_string(), "converja-bridge"])
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
    assert!(common::wait_exit(&mut child.0).success());
    for pid in bridges {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "bridge {pid} was left running"
        );
    }
}

#[test]
fn the_simulator_explains_itself() {
    let out = Command::new(SIM).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("--scenario") && text.contains("--conference"),
        "{text}"
    );
}
