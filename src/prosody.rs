//! A private Prosody XMPP server on loopback, for tests, benchmarks and the demo: generated
//! config in a temporary directory, free ports, a MUC component, accounts written up front.
//! Stopped (and its files removed) when dropped.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long Prosody may take to accept connections after start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The one line shown when Prosody is missing.
pub const INSTALL_HINT: &str =
    "prosody is not installed: run `sudo apt-get install -y prosody` (Debian/Ubuntu)";

/// A running Prosody.
#[derive(Debug)]
pub struct LocalProsody {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Completed starts, to find this start's lines in the shared log.
    starts: usize,
    /// The client-to-server port.
    pub c2s_port: u16,
    /// The HTTP port (BOSH at `/http-bind`).
    pub http_port: u16,
    /// The HTTPS port, serving BOSH with the certificate of a server started with TLS.
    pub https_port: u16,
    /// The XMPP domain of the accounts.
    pub domain: String,
    /// The MUC service domain.
    pub conference: String,
}

/// Whether the `prosody` binary is on the PATH. (Not by running it: `prosody --version`
/// starts a server with the system config.)
pub fn installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("prosody").is_file()))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Prosody's file-name escaping for hosts and users in its data directory.
fn encode(part: &str) -> String {
    part.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

fn lua_string(s: &str) -> String {
    format!("{s:?}")
}

impl LocalProsody {
    /// Starts a Prosody for `domain` with the given `(user, password)` accounts, plaintext only.
    pub fn start(domain: &str, accounts: &[(&str, &str)]) -> anyhow::Result<LocalProsody> {
        Self::start_with(domain, accounts, false)
    }

    /// Like [`start`](Self::start); with `tls`, a self-signed certificate (see
    /// [`certificate`](Self::certificate)) is generated with `openssl` and STARTTLS offered.
    pub fn start_with(
        domain: &str,
        accounts: &[(&str, &str)],
        tls: bool,
    ) -> anyhow::Result<LocalProsody> {
        if !installed() {
            bail!(INSTALL_HINT);
        }
        let dir = tempfile::Builder::new()
            .prefix("converja-prosody-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let mut server = LocalProsody {
            child: None,
            starts: 0,
            c2s_port: free_port()?,
            http_port: free_port()?,
            https_port: free_port()?,
            domain: domain.to_owned(),
            conference: format!("conference.{domain}"),
            dir,
        };
        if tls {
            server.make_certificate()?;
        }
        server.write_config(tls)?;
        for (user, password) in accounts {
            server.add_account(user, password)?;
        }
        server.spawn()?;
        Ok(server)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("prosody.cfg.lua")
    }

    /// Prosody's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("prosody.log")
    }

    /// The self-signed certificate (PEM) of a server started with TLS.
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join(format!("{}.crt", self.domain))
    }

    fn make_certificate(&self) -> anyhow::Result<()> {
        let key = self.dir.path().join(format!("{}.key", self.domain));
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            ])
            .arg(format!("/CN={}", self.domain))
            .arg("-addext")
            .arg(format!(
                "subjectAltName=DNS:{},DNS:{},IP:127.0.0.1",
                self.domain, self.conference
            ))
            // A leaf certificate trusted directly: rustls refuses a CA certificate as a leaf.
            .args([
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "extendedKeyUsage=serverAuth",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(self.certificate())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("openssl is needed to make a test certificate")?;
        if !status.success() {
            bail!("openssl could not make a certificate");
        }
        Ok(())
    }

    fn write_config(&self, tls: bool) -> anyhow::Result<()> {
        let dir = self.dir.path();
        let mut cfg = String::new();
        let root = if std::env::var("USER").as_deref() == Ok("root") || is_root() {
            "true"
        } else {
            "false"
        };
        writeln!(
            cfg,
            r#"-- Generated by converja-bridge for a private loopback server.
pidfile = {pid}
data_path = {data}
run_as_root = {root}
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = {log} }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_interfaces = {{ "127.0.0.1" }}
http_ports = {{ {http} }}
http_interfaces = {{ "127.0.0.1" }}
{https}
s2s_ports = {{ }}
component_ports = {{ }}
-- Requests and responses are small; Nagle would add ~40 ms per hop.
network_settings = {{ nagle = false }}
-- No mod_limits: its default throttles a client to a few kB/s.
modules_enabled = {{ "saslauth", "disco", "ping", "bosh", "posix"{tls_module} }}
modules_disabled = {{ "s2s", "offline" }}
authentication = "internal_plain"
-- Accounts come from files written up front; everything else (MUC rooms above all) stays
-- in memory, as disk writes per room join would make Prosody the bottleneck of every test.
default_storage = "memory"
storage = {{ accounts = "internal" }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
consider_bosh_secure = true
cross_domain_bosh = true
bosh_max_inactivity = 30
certificates = {certs}

VirtualHost {domain}

Component {conference} "muc"
    -- Otherwise a new room stays locked until configured (up to 300 s).
    muc_room_locking = false
    restrict_room_creation = false
    muc_tombstones = false
    -- One room per connected agent: the default cache of 100 rooms would evict and reload
    -- rooms on every stanza once more than 100 agents are connected.
    muc_room_cache_size = 1000000
"#,
            pid = lua_string(&dir.join("prosody.pid").to_string_lossy()),
            data = lua_string(&dir.join("data").to_string_lossy()),
            log = lua_string(&self.log_path().to_string_lossy()),
            c2s = self.c2s_port,
            http = self.http_port,
            certs = lua_string(&dir.to_string_lossy()),
            domain = lua_string(&self.domain),
            conference = lua_string(&self.conference),
            https = if tls {
                format!(
                    "https_ports = {{ {} }}\nhttps_interfaces = {{ \"127.0.0.1\" }}\n\
                     https_ssl = {{ certificate = {}, key = {} }}",
                    self.https_port,
                    lua_string(&self.certificate().to_string_lossy()),
                    lua_string(&dir.join(format!("{}.key", self.domain)).to_string_lossy()),
                )
            } else {
                "https_ports = { }".to_owned()
            },
            // Only with a certificate: Prosody offers STARTTLS whenever mod_tls is loaded.
            tls_module = if tls { ", \"tls\"" } else { "" },
        )?;
        std::fs::create_dir_all(dir.join("data"))?;
        std::fs::write(self.config_path(), cfg)?;
        Ok(())
    }

    /// Adds (or replaces) an account; takes effect at once, even while running.
    pub fn add_account(&self, user: &str, password: &str) -> anyhow::Result<()> {
        let accounts = self
            .dir
            .path()
            .join("data")
            .join(encode(&self.domain))
            .join("accounts");
        std::fs::create_dir_all(&accounts)?;
        let body = format!(
            "return {{\n\t[\"password\"] = {};\n}};\n",
            lua_string(password)
        );
        std::fs::write(accounts.join(format!("{}.dat", encode(user))), body)?;
        Ok(())
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new("prosody")
            .arg("--config")
            .arg(self.config_path())
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(
                self.dir.path().join("stderr.log"),
            )?))
            .spawn()
            .context(INSTALL_HINT)?;
        self.child = Some(child);
        let started = Instant::now();
        // Prosody keeps running when a port is taken, so a connect probe could reach another
        // server: wait for its own word that both services listen on our ports.
        let c2s = format!("Activated service 'c2s' on [127.0.0.1]:{}", self.c2s_port);
        let http = format!("Activated service 'http' on [127.0.0.1]:{}", self.http_port);
        let mut services = vec![c2s, http];
        if self.certificate().exists() {
            services.push(format!(
                "Activated service 'https' on [127.0.0.1]:{}",
                self.https_port
            ));
        }
        loop {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if log.contains("Failed to open server port") {
                bail!("prosody could not open its ports:\n{}", self.diagnostics());
            }
            if services
                .iter()
                .all(|service| log.matches(service.as_str()).count() > self.starts)
            {
                self.starts += 1;
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "prosody exited at start ({status}):\n{}",
                    self.diagnostics()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "prosody did not accept connections within {START_TIMEOUT:?}:\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn diagnostics(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let text = format!(
            "{}{}",
            read(&self.dir.path().join("stderr.log")),
            read(&self.log_path())
        );
        text.lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Kills the server abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server gracefully (SIGTERM), waiting up to 5 s before killing it.
    pub fn stop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }

    /// Starts the server again on the same ports and data after [`kill`](Self::kill) or
    /// [`stop`](Self::stop).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    /// Connection settings for `user` on this server: loopback, plaintext.
    pub fn account(&self, user: &str, password: &str) -> crate::xmpp::ConnectSettings {
        crate::xmpp::ConnectSettings {
            jid: format!("{user}@{}", self.domain)
                .parse()
                .expect("the domain and user names used here are valid JIDs"),
            password: crate::config::Secret::new(password),
            endpoint: crate::xmpp::Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: self.c2s_port,
                tls: crate::config::TlsMode::None,
            },
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            resource: format!("{user}-{}", std::process::id()),
        }
    }

    /// The BOSH endpoint.
    pub fn bosh_url(&self) -> String {
        format!("http://127.0.0.1:{}/http-bind", self.http_port)
    }

    /// The BOSH endpoint over HTTPS, for a server started with TLS.
    pub fn bosh_https_url(&self) -> String {
        format!("https://127.0.0.1:{}/http-bind", self.https_port)
    }

    /// Like [`account`](Self::account), over BOSH at [`bosh_url`](Self::bosh_url).
    pub fn bosh_account(&self, user: &str, password: &str) -> crate::xmpp::ConnectSettings {
        let url = crate::config::BoshUrl::parse(&self.bosh_url())
            .expect("the loopback BOSH URL is valid");
        crate::xmpp::ConnectSettings {
            endpoint: crate::xmpp::Endpoint::Bosh(url),
            ..self.account(user, password)
        }
    }
}

fn is_root() -> bool {
    // `id -u` avoids unsafe libc calls; the result only picks a config flag.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Drop for LocalProsody {
    fn drop(&mut self) {
        self.kill();
    }
}
