//! The agent console in headless Chromium, driven line by line
//! (`tests/node/console_reconnect.mjs`): what the browser tests of the bridge binary share.

use std::process::Stdio;

use converja_bridge::converja::CallId;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{PATIENCE, chromium};

/// A console page, logged in as 22010.
pub(crate) struct ConsolePage {
    child: Child,
    commands: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ConsolePage {
    /// Opens the console at `url` (the browser signed in to the site with basic-auth
    /// `credentials`, when given) and logs in as 22010.
    pub(crate) async fn logged_in(url: &str, credentials: Option<(&str, &str)>) -> ConsolePage {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/node/console_reconnect.mjs");
        let mut command = Command::new("node");
        command.arg(script).arg(url);
        if let Some((user, password)) = credentials {
            command.arg(format!("{user}:{password}"));
        }
        let mut child = command
            .env("CHROMIUM", chromium())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let commands = child.stdin.take().expect("piped");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut page = ConsolePage {
            child,
            commands,
            lines,
        };
        assert_eq!(page.said().await, "LOGGED_IN");
        page
    }

    async fn said(&mut self) -> String {
        tokio::time::timeout(PATIENCE * 2, self.lines.next_line())
            .await
            .expect("the browser script moves on")
            .expect("its output is readable")
            .expect("a line")
    }

    async fn tell(&mut self, line: &str) {
        self.commands
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("the browser script reads");
    }

    /// Waits until the page shows exactly `calls`, with the agent logged in.
    pub(crate) async fn shows(&mut self, calls: &[CallId], when: &str) {
        let mut ids: Vec<String> = calls.iter().map(ToString::to_string).collect();
        ids.sort();
        let ids = ids.join(",");
        self.tell(&format!("screen {ids}")).await;
        assert_eq!(self.said().await, format!("SCREEN {ids}"), "{when}");
    }

    /// Ends the run; the page must have logged no unexpected error.
    pub(crate) async fn close(mut self) {
        self.tell("done").await;
        assert_eq!(self.said().await, "DONE");
        assert!(self.child.wait().await.expect("waitable").success());
    }
}
