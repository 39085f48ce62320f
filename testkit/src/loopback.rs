//! What the private servers share: free loopback ports, a test certificate, waiting for their
//! word that they are ready, stopping their process, and connection settings for the accounts
//! of the XMPP ones.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use converja_bridge::config::{HttpUrl, Secret, TlsMode};
use converja_bridge::xmpp::{ConnectSettings, Endpoint};

/// A loopback port free right now (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    let [port] = free_ports()?;
    Ok(port)
}

/// `N` distinct loopback ports free right now: all bound at once before any is released, since
/// a port just released may be handed out again by the next bind.
pub fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// Makes a self-signed leaf certificate (`crt`, PEM) and its key (`key`) for `names`, the
/// first one its subject, all of them and 127.0.0.1 its alternative names.
pub fn make_certificate(names: &[&str], key: &Path, crt: &Path) -> anyhow::Result<()> {
    let alt: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!(
            "/CN={}",
            names.first().copied().unwrap_or("localhost")
        ))
        .arg("-addext")
        .arg(format!("subjectAltName={},IP:127.0.0.1", alt.join(",")))
        // A leaf certificate trusted directly: rustls refuses a CA certificate as a leaf.
        .args([
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(crt)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("openssl is needed to make a test certificate")?;
    if !status.success() {
        bail!("openssl could not make a certificate");
    }
    Ok(())
}

/// Starts a server's `command` with nothing on its standard input and output, and its
/// standard error in the file `stderr`, for the failure message.
pub(crate) fn spawn_quiet(command: &mut Command, stderr: &Path) -> std::io::Result<Child> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(stderr)?))
        .spawn()
}

/// Whether this process runs as root, where some servers need telling (or another user).
pub(crate) fn is_root() -> bool {
    // `id -u` avoids unsafe libc calls.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// What a private server's log says once it is ready, for [`wait_for_log`].
pub(crate) struct ReadyLines<'a> {
    /// The log file; a restarted server appends to it.
    pub(crate) log: &'a Path,
    /// Lines that must all appear, each once more than in the starts before.
    pub(crate) lines: &'a [String],
    /// Starts completed before this one.
    pub(crate) starts: usize,
    /// A line that means this start failed, if the server keeps running after one.
    pub(crate) fatal: Option<&'a str>,
}

/// Waits until the server `child` (called `name` in errors) writes `ready`'s lines. Fails,
/// with `diagnostics()`, when a fatal line appears, when the server exits, or after `limit`.
/// Its own word, not a connect probe: a probe could reach another server on a taken port.
pub(crate) fn wait_for_log(
    name: &str,
    child: &mut Child,
    ready: &ReadyLines<'_>,
    limit: Duration,
    diagnostics: impl Fn() -> String,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(ready.log).unwrap_or_default();
        if let Some(fatal) = ready.fatal.filter(|f| log.contains(f)) {
            bail!("{name} could not start ({fatal}):\n{}", diagnostics());
        }
        if ready
            .lines
            .iter()
            .all(|line| log.matches(line.as_str()).count() > ready.starts)
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{name} exited at start ({status}):\n{}", diagnostics());
        }
        if started.elapsed() > limit {
            bail!(
                "{name} did not accept connections within {limit:?}:\n{}",
                diagnostics()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the server abruptly (SIGKILL), as a crash would.
pub(crate) fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Stops the server with SIGTERM, killing it if it has not exited within `grace`.
pub(crate) fn stop(child: &mut Option<Child>, grace: Duration) {
    if let Some(running) = child {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(running.id().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = running.try_wait() {
                *child = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    kill(child);
}

/// Connection settings for `user` of `domain` on a loopback client port, plaintext.
pub(crate) fn account(domain: &str, c2s_port: u16, user: &str, password: &str) -> ConnectSettings {
    ConnectSettings {
        jid: format!("{user}@{domain}")
            .parse()
            .expect("the domain and user names used here are valid JIDs"),
        password: Secret::new(password),
        endpoint: Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: c2s_port,
            tls: TlsMode::None,
        },
        ca_file: None,
        connect_timeout: Duration::from_secs(5),
        resource: format!("{user}-{}", std::process::id()),
        self_ping_every: Duration::from_secs(120),
    }
}

/// `account` over BOSH at `url` instead.
pub(crate) fn over_bosh(account: ConnectSettings, url: &str) -> ConnectSettings {
    let url = HttpUrl::parse(url).expect("the loopback BOSH URL is valid");
    ConnectSettings {
        endpoint: Endpoint::Bosh(url),
        ..account
    }
}

/// The last `n` lines of `text`, for a failure message.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn the_last_lines_keep_their_order() {
        assert_eq!(last_lines("a\nb\nc\nd", 2), "c\nd");
        assert_eq!(last_lines("a\nb", 5), "a\nb");
        assert_eq!(last_lines("", 3), "");
    }
}
