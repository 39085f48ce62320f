//! The installed Debian package as an operator runs it: the packaged binary, started as the
//! package's system user with a copy of the packaged configuration pointed at a private
//! Prosody and the platform simulator, becomes ready, keeps its sessions in the package's
//! state directory and stops cleanly on SIGTERM.
//!
//! Not part of `cargo test` (`test = false` in Cargo.toml): it needs the package installed
//! and root, which `check_debian_package` in scripts/lib.sh provides before running it with
//! `cargo test --test debian_package`. Elsewhere it fails, saying so. systemd is not what
//! starts the binary here: where this runs (a container, CI) systemd is not PID 1, so the
//! unit is checked with `systemd-analyze verify` instead and its command line run by hand.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use converja_testkit::http::http_get;
use converja_testkit::loopback::free_ports;
use converja_testkit::process::{KillOnDrop, signal, wait_exit};

use common::server::Server;
use common::{poll_for, scenario, start_sim};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const USER: &str = "converja-bridge";
const BINARY: &str = "/usr/bin/converja-bridge";
const CONFIG: &str = "/etc/converja-bridge/bridge.toml";
const STATE: &str = "/var/lib/converja-bridge";
/// Far above what any step here takes on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);
const HOW_TO_RUN: &str = "run it through the package check, which builds and installs the \
     package first: bash -c 'source scripts/lib.sh && check_debian_package'";

/// Fails with one line unless the package is installed and this runs as root.
fn require_the_installed_package() {
    let installed = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", "converja-bridge"])
        .output()
        .is_ok_and(|out| out.stdout == b"install ok installed");
    assert!(
        installed,
        "the converja-bridge package is not installed: {HOW_TO_RUN}"
    );
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(
        uid, 0,
        "this test runs the package's binary as its user, as root: {HOW_TO_RUN}"
    );
}

/// The numeric id (`-u` or `-g`) of the package's user.
fn id_of(flag: &str) -> u32 {
    let out = Command::new("id").args([flag, USER]).output().unwrap();
    assert!(out.status.success(), "no user {USER}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The packaged configuration as an operator would edit it: the platform's server and MUC
/// service, the listeners; everything else (the store in the state directory) as shipped.
fn edited_config(prosody: &Server, public: u16, admin: u16) -> String {
    let shipped = std::fs::read_to_string(CONFIG).unwrap();
    let mut config: toml::Table = toml::from_str(&shipped).unwrap();
    let mut set = |section: &str, key: &str, value: toml::Value| {
        config
            .get_mut(section)
            .and_then(toml::Value::as_table_mut)
            .unwrap_or_else(|| panic!("the packaged config has no [{section}]"))
            .insert(key.into(), value);
    };
    set("xmpp", "jid", format!("bridge@{}", prosody.domain).into());
    set("xmpp", "password", "bridge-pw".into());
    set("xmpp", "host", "127.0.0.1".into());
    set("xmpp", "port", i64::from(prosody.c2s_port).into());
    set("xmpp", "tls", "none".into());
    set("converja", "conference", prosody.conference.clone().into());
    set("socketio", "listen", format!("127.0.0.1:{public}").into());
    set("admin", "listen", format!("127.0.0.1:{admin}").into());
    let store = config["store"]["path"].as_str().unwrap();
    assert_eq!(
        Path::new(store).parent(),
        Some(Path::new(STATE)),
        "the packaged config keeps its sessions in the state directory"
    );
    toml::to_string(&config).unwrap()
}

/// Writes `text` to a file only the package's user (and root) can read, in a directory it
/// can reach; the directory goes with the returned guard.
fn write_for_the_user(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let file = dir.path().join("bridge.toml");
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&file, Some(id_of("-u")), Some(id_of("-g"))).unwrap();
    (dir, file)
}

/// The bridge runuser started for it (runuser stays, as the parent): its child once that
/// child has become the packaged binary, not while it is still runuser's fork.
async fn bridge_under(runuser: u32) -> u32 {
    poll_for("runuser starts the packaged binary;", PATIENCE, || async {
        let children = std::fs::read_to_string(format!("/proc/{runuser}/task/{runuser}/children"))
            .unwrap_or_default();
        let child: u32 = children
            .split_whitespace()
            .next()
            .ok_or("no child yet")?
            .parse()
            .unwrap();
        let exe = std::fs::read_link(format!("/proc/{child}/exe")).unwrap_or_default();
        if exe == Path::new(BINARY) {
            Ok(child)
        } else {
            Err(format!("its child {child} runs {}", exe.display()))
        }
    })
    .await
}

/// Kills a process the test did not spawn itself (the bridge under runuser) if the test ends
/// first: left running as the package's user, it would keep the purge from deleting the user.
struct KillPid(u32);

impl Drop for KillPid {
    fn drop(&mut self) {
        if Path::new(&format!("/proc/{}", self.0)).exists() {
            signal(self.0, "KILL");
        }
    }
}

/// The first value of the `Uid:` line of /proc/`pid`/status: the real user id.
fn real_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_daemon_runs_as_its_user_and_stops_cleanly_on_sigterm() {
    require_the_installed_package();
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let _stop_sim = cancel.clone().drop_guard();
    let (prosody, _simulator) = start_sim(scenario(), &tracker, &cancel).await;

    let [public, admin] = free_ports().unwrap();
    let (_dir, config) = write_for_the_user(&edited_config(&prosody, public, admin));
    let mut runuser = KillOnDrop(
        Command::new("runuser")
            .args(["-u", USER, "--", BINARY, "run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let bridge = bridge_under(runuser.0.id()).await;
    let _kill_bridge = KillPid(bridge);
    assert_eq!(
        std::fs::read_link(format!("/proc/{bridge}/exe")).unwrap(),
        Path::new(BINARY)
    );
    assert_eq!(real_uid(bridge), id_of("-u"), "the bridge runs as {USER}");

    {
        let runuser = std::cell::RefCell::new(&mut runuser);
        poll_for("/readyz answers 200;", PATIENCE, || async {
            if let Some(status) = runuser.borrow_mut().0.try_wait().unwrap() {
                panic!("the bridge exited before it was ready: {status}");
            }
            match http_get(admin, "/readyz").await {
                (200, _) => Ok(()),
                last => Err(format!("last: {last:?}")),
            }
        })
        .await;
    }

    // The health check an operator's monitoring would run, as the service's user.
    let probe = Command::new("runuser")
        .args(["-u", USER, "--", BINARY, "probe", "--ready", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "`converja-bridge probe --ready` says the ready bridge is not: {probe:?}"
    );

    let store = Path::new(STATE).join("sessions.db");
    let meta = std::fs::metadata(&store)
        .unwrap_or_else(|e| panic!("no session store at {}: {e}", store.display()));
    assert_eq!(
        meta.uid(),
        id_of("-u"),
        "{} belongs to {USER}",
        store.display()
    );

    // To the bridge itself: runuser would answer a SIGTERM of its own by killing its child
    // after two seconds, shorter than the bridge's drain may take.
    signal(bridge, "TERM");
    let status = wait_exit(&mut runuser.0, PATIENCE);
    assert!(
        status.success(),
        "the bridge exits 0 on SIGTERM; runuser reports {status}"
    );
}
