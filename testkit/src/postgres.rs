//! A private PostgreSQL server on loopback, for tests, benchmarks and the demo's pair of
//! bridges: `initdb` in a temporary directory, a free port, trust authentication for
//! loopback only. Stopped (and its files removed) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::loopback::{self, free_port};

/// How long PostgreSQL may take to accept connections after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The one line shown when PostgreSQL is missing.
pub const INSTALL_HINT: &str =
    "PostgreSQL is not installed: run `sudo apt-get install -y postgresql` (Debian/Ubuntu)";

/// The account the server runs as when this process is root: PostgreSQL refuses root, and
/// Debian's package creates this one.
const SERVICE_ACCOUNT: &str = "postgres";

/// A running PostgreSQL.
#[derive(Debug)]
pub struct LocalPostgres {
    child: Option<Child>,
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// Completed starts, to find this start's lines in the log.
    starts: usize,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
}

/// The directory holding `initdb` and `postgres`: Debian keeps them out of the PATH, under
/// `/usr/lib/postgresql/<version>/bin`; the newest version wins.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).find(|dir| dir.join("initdb").is_file()))
}

impl LocalPostgres {
    /// Creates a database cluster in a temporary directory and starts it.
    pub fn start() -> anyhow::Result<LocalPostgres> {
        let bin = bin_dir().context(INSTALL_HINT)?;
        let dir = tempfile::Builder::new()
            .prefix("converja-postgres-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let mut server = LocalPostgres {
            child: None,
            bin,
            starts: 0,
            port: free_port()?,
            dir,
        };
        if loopback::is_root() {
            let status = Command::new("chown")
                .args(["-R", &format!("{SERVICE_ACCOUNT}:")])
                .arg(server.dir.path())
                .status()
                .context("chown")?;
            if !status.success() {
                bail!(
                    "cannot hand {} to the `{SERVICE_ACCOUNT}` account PostgreSQL runs as (is the postgresql package installed?)",
                    server.dir.path().display()
                );
            }
        }
        let output = server
            .command("initdb")
            .arg("--pgdata")
            .arg(server.data())
            .args([
                "--username",
                "converja",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
            ])
            .arg("--no-sync")
            .output()
            .context(INSTALL_HINT)?;
        if !output.status.success() {
            bail!(
                "initdb failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        server.spawn()?;
        Ok(server)
    }

    /// A command of the server's installation, run as the account it runs as. `setpriv`
    /// executes the program in its place, so the child is the server itself and signals
    /// reach it.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if loopback::is_root() {
            let mut command = Command::new("setpriv");
            command
                .args(["--reuid", SERVICE_ACCOUNT, "--regid", SERVICE_ACCOUNT])
                .args(["--init-groups", "--"])
                .arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The URL of its database, for `store.url`.
    pub fn url(&self) -> String {
        format!("postgres://converja@127.0.0.1:{}/postgres", self.port)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let socket_dir: &Path = self.dir.path();
        let mut child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", socket_dir.display()))
            // A throwaway server: durability is the bridge's business, not this one's.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.log_path())?,
            ))
            .spawn()
            .context(INSTALL_HINT)?;
        let ready = loopback::ReadyLines {
            log: &self.log_path(),
            lines: &["database system is ready to accept connections".to_owned()],
            starts: self.starts,
            fatal: None,
        };
        let waited = loopback::wait_for_log("postgres", &mut child, &ready, START_TIMEOUT, || {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            loopback::last_lines(&log, 20)
        });
        self.child = Some(child);
        waited?;
        self.starts += 1;
        Ok(())
    }

    /// Kills the server abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        loopback::kill(&mut self.child);
    }

    /// Starts the server again on the same port and data after [`kill`](Self::kill).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        // SIGKILL leaves the postmaster's children behind; SIGTERM takes them along.
        loopback::stop(&mut self.child, Duration::from_secs(5));
    }
}
