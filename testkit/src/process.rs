//! Driving a binary under test as a user would: signals, waiting for its exit, and never
//! leaving it behind when a test fails.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Sends signal `sig` (`TERM`, `INT`, ...) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
    assert!(sent.is_ok(), "kill -{sig} {pid}: {sent:?}");
}

/// Waits for `child` to exit; panics after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the child if the test fails before it exits by itself.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
