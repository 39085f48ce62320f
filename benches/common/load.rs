//! The Node load generator (`tests/node/load.mjs`): agent UIs logged in to a socket.io server,
//! each ending every call it is given at once and timing END_CALL → CALL_ENDED.

use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{ChildStdin, ChildStdout};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{FIRST_AGENT, Killed, start_node};

/// The load generator's agents, logged in.
pub(crate) struct LoadUis {
    _process: Killed,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// How long logging every agent in took.
    pub(crate) login_time: Duration,
}

impl LoadUis {
    /// `agents` agents from [`FIRST_AGENT`] logged in to the server on `port`, every login
    /// answered without error.
    pub(crate) fn start(port: u16, agents: u64) -> LoadUis {
        let mut process = start_node(
            "load.mjs",
            &[
                format!("http://127.0.0.1:{port}"),
                agents.to_string(),
                FIRST_AGENT.to_string(),
            ],
        );
        let stdin = process.0.stdin.take().expect("piped");
        let lines = BufReader::new(process.0.stdout.take().expect("piped")).lines();
        let mut uis = LoadUis {
            _process: process,
            stdin,
            lines,
            login_time: Duration::ZERO,
        };
        let login = uis.read();
        assert_eq!(login["errors"], 0, "login errors: {login}");
        uis.login_time = Duration::from_secs_f64(login["ms"].as_f64().unwrap_or(f64::NAN) / 1e3);
        uis
    }

    fn read(&mut self) -> Value {
        let line = self.lines.next().expect("a line").expect("readable");
        serde_json::from_str(&line).expect("json")
    }

    /// What the agents saw since the last [`reset`](Self::reset): calls ended, errors,
    /// END_CALL → CALL_ENDED p50/p99 in ms, sockets disconnected.
    pub(crate) fn report(&mut self) -> Value {
        writeln!(self.stdin, "report").expect("the load generator reads its stdin");
        self.read()
    }

    /// Starts counting afresh.
    pub(crate) fn reset(&mut self) {
        writeln!(self.stdin, "reset").expect("the load generator reads its stdin");
    }

    /// Waits until `count` calls have ended since the last reset, for at most `patience`;
    /// the report then.
    pub(crate) async fn ended(&mut self, count: u64, patience: Duration) -> Value {
        self.until("ended", count, patience).await
    }

    /// Waits until the report's `figure` reaches `count`, for at most `patience`; the report
    /// then.
    pub(crate) async fn until(&mut self, figure: &str, count: u64, patience: Duration) -> Value {
        let started = Instant::now();
        loop {
            let report = self.report();
            if report[figure].as_u64() >= Some(count) {
                return report;
            }
            assert!(
                started.elapsed() < patience,
                "{figure} did not reach {count} within {patience:?}: {report}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for LoadUis {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "exit");
    }
}
