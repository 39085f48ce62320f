//! A private Prosody XMPP server on loopback, for tests, benchmarks and the demo: generated
//! config in a temporary directory, free ports, a MUC component, accounts written up front.
//! Stopped (and its files removed) when dropped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::loopback::{self, free_port, make_certificate};

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

/// What Prosody logs when one of its ports is taken; it keeps running without that service.
const PORT_TAKEN: &str = "Failed to open server port";
/// Starts on fresh ports before giving up on taken ones.
const PORT_ATTEMPTS: u32 = 3;

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
        for (user, password) in accounts {
            server.add_account(user, password)?;
        }
        // A port chosen free can be taken by another process before Prosody binds it (tests
        // start servers in parallel): start again on other ports.
        for attempt in 1.. {
            server.write_config(tls)?;
            match server.spawn() {
                Ok(()) => break,
                Err(e) if attempt < PORT_ATTEMPTS && e.to_string().contains(PORT_TAKEN) => {
                    server.kill();
                    std::fs::remove_file(server.log_path()).ok();
                    server.c2s_port = free_port()?;
                    server.http_port = free_port()?;
                    server.https_port = free_port()?;
                }
                Err(e) => return Err(e),
            }
        }
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
        make_certificate(&[&self.domain, &self.conference], &key, &self.certificate())
    }

    fn write_config(&self, tls: bool) -> anyhow::Result<()> {
        let dir = self.dir.path();
        let mut cfg = String::new();
        let root = if std::env::var("USER").as_deref() == Ok("root") || loopback::is_root() {
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
-- admin_shell: tests remove an occupant from a room without telling it.
modules_enabled = {{ "saslauth", "disco", "ping", "bosh", "posix", "admin_shell"{tls_module} }}
admin_socket = {admin}
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
            admin = lua_string(&dir.join("admin.sock").to_string_lossy()),
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
        let mut child = Command::new("prosody")
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
        // Prosody keeps running when a port is taken: wait for its word that both services
        // listen on our ports.
        let mut services = vec![
            format!("Activated service 'c2s' on [127.0.0.1]:{}", self.c2s_port),
            format!("Activated service 'http' on [127.0.0.1]:{}", self.http_port),
        ];
        if self.certificate().exists() {
            services.push(format!(
                "Activated service 'https' on [127.0.0.1]:{}",
                self.https_port
            ));
        }
        let ready = loopback::ReadyLines {
            log: &self.log_path(),
            lines: &services,
            starts: self.starts,
            fatal: Some(PORT_TAKEN),
        };
        let waited = loopback::wait_for_log("prosody", &mut child, &ready, START_TIMEOUT, || {
            self.diagnostics()
        });
        self.child = Some(child);
        waited?;
        self.starts += 1;
        Ok(())
    }

    fn diagnostics(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let text = format!(
            "{}{}",
            read(&self.dir.path().join("stderr.log")),
            read(&self.log_path())
        );
        loopback::last_lines(&text, 20)
    }

    /// Removes the occupant `nick` from `room` (a local part of the MUC component) without a
    /// word to anyone, as a server that lost its MUC state under a live stream does: the
    /// occupant finds out only by asking (XEP-0410 self-ping).
    pub fn remove_silently(&self, room: &str, nick: &str) -> anyhow::Result<()> {
        let room = format!("{room}@{}", self.conference);
        let lua = format!(
            ">local r = prosody.hosts[{conf}].modules.muc.get_room_from_jid({room}); \
             if not r then return nil, 'no such room' end; \
             local o = r:get_occupant_by_nick({occupant}); \
             if not o then return nil, 'no such occupant' end; \
             o.role = nil; r:save_occupant(o); return true, 'removed'",
            conf = lua_string(&self.conference),
            room = lua_string(&room),
            occupant = lua_string(&format!("{room}/{nick}")),
        );
        let out = Command::new("prosodyctl")
            .arg("--config")
            .arg(self.config_path())
            .arg("shell")
            .arg(lua)
            .output()
            .context(INSTALL_HINT)?;
        if !out.status.success() {
            bail!(
                "prosodyctl shell failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The server's process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        loopback::kill(&mut self.child);
    }

    /// Stops the server gracefully (SIGTERM), waiting up to 5 s before killing it.
    pub fn stop(&mut self) {
        loopback::stop(&mut self.child, Duration::from_secs(5));
    }

    /// Starts the server again on the same ports and data after [`kill`](Self::kill) or
    /// [`stop`](Self::stop).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    /// Connection settings for `user` on this server: loopback, plaintext.
    pub fn account(&self, user: &str, password: &str) -> converja_bridge::xmpp::ConnectSettings {
        loopback::account(&self.domain, self.c2s_port, user, password)
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
    pub fn bosh_account(
        &self,
        user: &str,
        password: &str,
    ) -> converja_bridge::xmpp::ConnectSettings {
        loopback::over_bosh(self.account(user, password), &self.bosh_url())
    }
}

impl Drop for LocalProsody {
    fn drop(&mut self) {
        self.kill();
    }
}
