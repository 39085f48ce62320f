//! The agent console in headless Chromium against the bridge, Prosody and the simulator: log
//! in, see calls arrive, end one, reject one, log out; any browser console error fails.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;

use common::Calls;
use common::agent_ui::{bridge, bridge_with};
use common::console::ConsolePage;
use common::jwt;
use converja_bridge::converja::Method;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Where a page's screenshot goes: `docs/<name>.png`, which the README shows, with
/// CONVERJA_UPDATE_SCREENSHOT=1; a temporary file otherwise.
fn screenshot_path(name: &str) -> std::path::PathBuf {
    if std::env::var_os("CONVERJA_UPDATE_SCREENSHOT").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/{name}.png"))
    } else {
        std::env::temp_dir().join(format!("converja-{name}-{}.png", std::process::id()))
    }
}

/// Runs the browser script `tests/node/<script>` on `url`, saving its screenshot to
/// `screenshot`, driven through its stdin and stdout.
fn browse(script: &str, url: &str, screenshot: &Path) -> tokio::process::Child {
    tokio::process::Command::new("node")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/node")
                .join(script),
        )
        .arg(url)
        .arg(screenshot)
        .env("CHROMIUM", common::chromium())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_takes_ends_and_rejects_calls_in_a_real_browser() {
    let screenshot = screenshot_path("console");
    let stack = bridge(common::Via::Tcp).await;
    let mut child = browse("console.mjs", &format!("{}/", stack.url), &screenshot);
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(common::PATIENCE * 2, lines.next_line())
            .await
            .expect("the browser script moves on")
            .unwrap()
            .expect("a line")
    };
    assert_eq!(next().await, "LOGGED_IN");
    assert_eq!(next().await, "WANT_CALL 2");
    let first = stack.sim.call("22010", "01921215544").await;
    let second = stack.sim.call_in(8, "22010", "01130304040").await;
    stdin.write_all(b"go\n").await.unwrap();
    assert_eq!(next().await, format!("ENDED {second}"));
    assert!(
        stack
            .sim
            .requests()
            .await
            .iter()
            .any(|r| r.message.method == Method::Delete && r.message.resource == "/calls/active")
    );
    assert_eq!(next().await, format!("REJECTED {first}"));
    assert_eq!(next().await, "LOGGED_OUT");
    assert_eq!(next().await, "DONE");
    drop(stdin);
    assert!(child.wait().await.unwrap().success());
    assert!(
        std::fs::metadata(&screenshot).unwrap().len() > 10_000,
        "a screenshot with calls in it"
    );
    assert!(
        stack
            .sim
            .requests()
            .await
            .iter()
            .any(|r| r.message.method == Method::Delete && r.message.resource == "/session")
    );
}

/// With JWT sign-in, the console opened as `/#token=...` (as a portal links to it) sends the
/// token in its handshake: it logs in as the token's agent and shows its calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_with_a_token_from_its_address() {
    let stack = bridge_with(common::Via::Tcp, |c| c.auth = Some(jwt::auth())).await;
    let token = jwt::token("22010", 600, jwt::AUDIENCE, jwt::SECRET);
    let mut page = ConsolePage::logged_in(&format!("{}/#token={token}", stack.url), None).await;
    let call = stack.sim.call("22010", "0800").await;
    page.shows(&[call], "the call the platform gave").await;
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallboard_follows_queues_and_agents_in_a_real_browser() {
    let screenshot = screenshot_path("wallboard");
    let stack = bridge_with(common::Via::Tcp, |c| {
        // Every caller who hangs up counts as abandoned, however soon.
        c.supervisors.short_abandon = converja_bridge::config::HumanDuration(Default::default());
    })
    .await;
    let queue = converja_bridge::converja::QueueId(7);
    let first = stack.sim.ring(queue, "01911110000").await.unwrap();
    stack.sim.ring(queue, "01922220000").await.unwrap();
    let url = format!("{}/wallboard?supervisor=9001", stack.url);
    let mut child = browse("wallboard.mjs", &url, &screenshot);
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(common::PATIENCE * 2, lines.next_line()).await;
    assert_eq!(ready.unwrap().unwrap().as_deref(), Some("READY"));
    let mut ask = async |line: &str| {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        tokio::time::timeout(common::PATIENCE * 2, lines.next_line())
            .await
            .expect("the browser script moves on")
            .unwrap()
            .expect("a line")
    };
    assert_eq!(
        ask("tile 7 2").await,
        "TILE 7 2 level=— answered=0 abandoned=0"
    );
    assert!(
        ask("agent 22010 idle")
            .await
            .starts_with("AGENT 22010 idle Maria Souza")
    );
    // Maria answers a new caller; the first caller gives up.
    stack.sim.call("22010", "01933330000").await;
    let busy = ask("agent 22010 busy").await;
    assert!(busy.contains("01933330000"), "{busy}");
    stack.sim.miss_call(first).await.unwrap();
    // One answered within the threshold, one abandoned: 50 %.
    assert_eq!(
        ask("tile 7 1").await,
        "TILE 7 1 level=50% answered=1 abandoned=1"
    );
    stack
        .sim
        .pause(
            &common::agent("22011"),
            converja_bridge::converja::PauseReason(11),
        )
        .await
        .unwrap();
    let paused = ask("agent 22011 paused").await;
    assert!(paused.contains("11"), "{paused}");
    assert_eq!(ask("shot").await, "SHOT");
    assert_eq!(ask("done").await, "DONE");
    drop(stdin);
    assert!(child.wait().await.unwrap().success());
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);
}
