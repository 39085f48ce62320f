//! The two binaries as a user runs them: config checking, the daemon under SIGTERM, and the
//! simulator's help. (The demo's are in converja-testkit, whose binary it is.)

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};

use common::agent_ui::{admin_get, note_admin_port, wait_ready};
use converja_testkit::loopback::{free_port, free_ports};
use converja_testkit::process::{KillOnDrop, signal};
use converja_testkit::prosody::LocalProsody;

const BRIDGE: &str = env!("CARGO_BIN_EXE_converja-bridge");
const SIM: &str = env!("CARGO_BIN_EXE_converja-sim");

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
    let [port, admin] = free_ports().unwrap();
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
    let (status, metrics) = admin_get(port, "/metrics").await;
    assert_eq!(status, 200);
    let build = format!(
        "converja_build_info{{version=\"{}\",revision=\"",
        env!("CARGO_PKG_VERSION")
    );
    for expected in [
        build.as_str(),
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "\nconverja_ready 1\n",
        "\nconverja_pending_requests_max ",
    ] {
        assert!(metrics.contains(expected), "no `{expected}` in /metrics");
    }
    assert_eq!(probe(&["--ready", "--config"], Some(&file)), Some(0));
    assert_eq!(
        probe(&["--address", &format!("127.0.0.1:{admin}")], None),
        Some(0)
    );
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

/// The exit code of `converja-bridge probe ARGS [FILE]`.
fn probe(args: &[&str], file: Option<&std::path::Path>) -> Option<i32> {
    let mut command = Command::new(BRIDGE);
    command.arg("probe").args(args);
    if let Some(file) = file {
        command.arg(file);
    }
    command.output().unwrap().status.code()
}

#[test]
fn probe_fails_with_1_when_nothing_answers_or_the_config_is_unreadable() {
    assert_eq!(
        probe(
            &["--address", &format!("127.0.0.1:{}", free_port().unwrap())],
            None
        ),
        Some(1)
    );
    assert_eq!(
        probe(&["--ready", "--config", "/nonexistent/bridge.toml"], None),
        Some(1),
        "1, not 2: container engines reserve 2"
    );
}

/// Logs written to a pipe (or a file, or journald) carry no terminal colour codes.
#[test]
fn logs_to_a_pipe_are_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bridge.toml");
    let [xmpp, public, admin] = free_ports().unwrap();
    // No XMPP server listens there: the bridge starts and says so in its log.
    std::fs::write(
        &file,
        format!(
            "[xmpp]\njid = \"bridge@converja.test\"\npassword = \"x\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n[converja]\nconference = \"conference.converja.test\"\n[socketio]\nlisten = \"127.0.0.1:{}\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n[store]\nbackend = \"none\"\n[log]\nlevel = \"info\"\nformat = \"human\"\n",
            xmpp,
            public,
            admin
        ),
    )
    .unwrap();
    let mut child = KillOnDrop(
        Command::new(BRIDGE)
            .args(["run", "--config"])
            .arg(&file)
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(common::PATIENCE)
        .expect("the bridge logs its start");
    assert!(line.contains("INFO") || line.contains("WARN"), "{line}");
    assert!(!line.contains('\u{1b}'), "a colour code in {line:?}");
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
