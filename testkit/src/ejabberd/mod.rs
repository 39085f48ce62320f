//! A private ejabberd on loopback, the counterpart of [`crate::prosody`], so the bridge can be tried
//! against a second XMPP server: generated config, Mnesia spool and logs in a temporary
//! directory, free ports, its own Erlang node, accounts registered before [`LocalEjabberd::start`]
//! returns. Runs `erl` directly as the current user (not `ejabberdctl`, which switches to the
//! `ejabberd` user when run as root), as a child process that can be killed and started again.
//! Stopped (and its files removed) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::loopback::{self, free_port};
use crate::xmpp_server::{XmppServer, wraps_server};

/// How long ejabberd may take to listen on its ports after start; it takes 1 to 3 s alone.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long registering accounts over the Erlang distribution may take.
const CTL_TIMEOUT: Duration = Duration::from_secs(30);

mod config;
mod install;

pub use install::{INSTALL_HINT, installed};

use config::{CONFIG, REGISTER, yaml_string};
use install::install;

/// A running ejabberd; its ports, domains and process are those of its [`XmppServer`].
#[derive(Debug)]
pub struct LocalEjabberd {
    server: XmppServer,
    /// The Erlang node, `converja-<c2s port>@localhost`: the Mnesia spool belongs to it.
    node: String,
    /// The node's Erlang cookie, random: the only key to the node.
    cookie: String,
    /// The node's distribution port, fixed so that no `epmd` is needed (or left running).
    dist_port: u16,
}

wraps_server!(LocalEjabberd);

impl LocalEjabberd {
    /// Starts an ejabberd for `domain` with the given `(user, password)` accounts, plaintext
    /// only.
    pub fn start(domain: &str, accounts: &[(&str, &str)]) -> anyhow::Result<LocalEjabberd> {
        Self::start_with(domain, accounts, false)
    }

    /// Like [`start`](Self::start); with `tls`, a self-signed certificate (see
    /// [`certificate`](Self::certificate)) is generated with `openssl`, STARTTLS offered
    /// (not required) and BOSH served over HTTPS too.
    pub fn start_with(
        domain: &str,
        accounts: &[(&str, &str)],
        tls: bool,
    ) -> anyhow::Result<LocalEjabberd> {
        if !installed() {
            bail!(INSTALL_HINT);
        }
        let server = XmppServer::new("converja-ejabberd-", domain)?;
        let mut server = LocalEjabberd {
            node: format!("converja-{}@localhost", server.c2s_port),
            cookie: format!("{:032x}", rand::random::<u128>()),
            dist_port: free_port()?,
            server,
        };
        if tls {
            server.make_certificate()?;
        }
        server.write_config(tls)?;
        server.spawn()?;
        server.register(accounts)?;
        Ok(server)
    }

    /// The Erlang node name, for `ejabberdctl --node` (with the cookie in
    /// [`cookie`](Self::cookie)).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The node's Erlang cookie.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("ejabberd.yml")
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// ejabberd's log file (`error.log` beside it has the errors alone).
    pub fn log_path(&self) -> PathBuf {
        self.logs().join("ejabberd.log")
    }

    fn write_config(&self, tls: bool) -> anyhow::Result<()> {
        let path = |p: PathBuf| yaml_string(&p.to_string_lossy());
        let (certfiles, https) = if tls {
            (
                format!(
                    "certfiles:\n  - {}\n  - {}",
                    path(self.certificate()),
                    path(self.key())
                ),
                format!(
                    "  -\n    port: {}\n    ip: \"127.0.0.1\"\n    module: ejabberd_http\n    \
                     tls: true\n    request_handlers:\n      /http-bind: mod_bosh",
                    self.https_port
                ),
            )
        } else {
            (String::new(), String::new())
        };
        let config = CONFIG
            .replace("{domain}", &yaml_string(&self.domain))
            .replace("{conference}", &yaml_string(&self.conference))
            .replace("{c2s}", &self.c2s_port.to_string())
            .replace("{http}", &self.http_port.to_string())
            .replace("{starttls}", if tls { "true" } else { "false" })
            .replace("{certfiles}", &certfiles)
            .replace("{https}", &https);
        std::fs::create_dir_all(self.spool())?;
        std::fs::create_dir_all(self.logs())?;
        std::fs::write(self.config_path(), config)?;
        Ok(())
    }

    /// `erl` with the environment `ejabberdctl` would give it, for this instance's files.
    fn erl(&self) -> Command {
        let install = install().expect("checked at start");
        let mut erl = Command::new(&install.erl);
        erl.current_dir(self.spool())
            .env("EJABBERD_CONFIG_PATH", self.config_path())
            .env("EJABBERD_LOG_PATH", self.log_path())
            .env("EJABBERD_PID_PATH", self.dir.path().join("ejabberd.pid"))
            .env("ERL_CRASH_DUMP", self.logs().join("erl_crash.dump"))
            .env("ERL_MAX_PORTS", "32000")
            .env("ERL_MAX_ETS_TABLES", "1400")
            .env("CONTRIB_MODULES_PATH", self.dir.path().join("modules"))
            .env("CONTRIB_MODULES_CONF_DIR", self.dir.path().join("modules"))
            .env_remove("ERL_INETRC")
            .stdin(Stdio::null());
        if let Some(libs) = &install.erl_libs {
            erl.env("ERL_LIBS", libs);
        }
        erl
    }

    /// Distribution arguments shared by the server and its control nodes: our cookie, our
    /// port, loopback only, no `epmd`.
    fn distribution(&self, erl: &mut Command) {
        erl.args(["-setcookie", &self.cookie])
            .args(["-erl_epmd_port", &self.dist_port.to_string()])
            .args(["-start_epmd", "false"]);
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs().join("console.log"))?;
        let mut erl = self.erl();
        erl.args(["-sname", &self.node, "+K", "true", "+P", "250000"])
            .args(["-env", "ERL_CRASH_DUMP_BYTES", "0"]);
        self.distribution(&mut erl);
        erl.args(["-kernel", "inet_dist_use_interface", "{127,0,0,1}"])
            .arg("-mnesia")
            .arg("dir")
            .arg(format!("\"{}\"", self.spool().to_string_lossy()))
            .args(["-s", "ejabberd", "-noinput"])
            .stdout(Stdio::from(console.try_clone()?))
            .stderr(Stdio::from(console));
        let mut child = erl.spawn().context(INSTALL_HINT)?;
        let waited = self.wait_listening(&mut child);
        self.child = Some(child);
        waited?;
        self.starts += 1;
        Ok(())
    }

    /// Waits for ejabberd's word that both listeners accept connections on our ports. A taken
    /// port makes ejabberd give up and exit, which is noticed here too.
    fn wait_listening(&self, child: &mut Child) -> anyhow::Result<()> {
        let listening = |transport: &str, port: u16, module: &str| {
            format!("Start accepting {transport} connections at 127.0.0.1:{port} for {module}")
        };
        let mut listeners = vec![
            listening("TCP", self.c2s_port, "ejabberd_c2s"),
            listening("TCP", self.http_port, "ejabberd_http"),
        ];
        if self.certificate().exists() {
            listeners.push(listening("TLS", self.https_port, "ejabberd_http"));
        }
        let ready = loopback::ReadyLines {
            log: &self.log_path(),
            lines: &listeners,
            starts: self.starts,
            fatal: None,
        };
        loopback::wait_for_log("ejabberd", child, &ready, START_TIMEOUT, || {
            self.diagnostics()
        })
    }

    /// Adds (or replaces) an account; the server must be running.
    pub fn add_account(&self, user: &str, password: &str) -> anyhow::Result<()> {
        self.register(&[(user, password)])
    }

    /// Registers accounts through a hidden Erlang node that calls the server's
    /// `ejabberd_auth`, the way `ejabberdctl register` reaches it.
    fn register(&self, accounts: &[(&str, &str)]) -> anyhow::Result<()> {
        if accounts.is_empty() {
            return Ok(());
        }
        // A bare node: it only calls the server, so it needs none of ejabberd's code (whose
        // library directory is slow to scan at boot).
        let mut erl = Command::new(&install().expect("checked at start").erl);
        erl.stdin(Stdio::null());
        let name = format!("ctl-{:08x}@localhost", rand::random::<u32>());
        erl.args(["-sname", &name, "-hidden", "-noinput"]);
        self.distribution(&mut erl);
        erl.args(["-dist_listen", "false", "-eval", REGISTER, "-extra"])
            .arg(&self.node)
            .arg(&self.domain);
        for (user, password) in accounts {
            erl.arg(user).arg(password);
        }
        let mut child = erl
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context(INSTALL_HINT)?;
        let deadline = Instant::now() + CTL_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("registering accounts on ejabberd took over {CTL_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if !status.success() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            }
            bail!(
                "ejabberd refused the accounts ({status}): {}",
                err.trim_end()
            );
        }
        Ok(())
    }

    fn diagnostics(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let text = format!(
            "{}{}",
            read(&self.logs().join("console.log")),
            read(&self.logs().join("error.log"))
        );
        loopback::last_lines(&text, 30)
    }

    /// Stops the server gracefully (SIGTERM, which Erlang turns into `init:stop()`), waiting
    /// up to 10 s before killing it.
    pub fn stop(&mut self) {
        self.stop_within(Duration::from_secs(10));
    }

    /// Starts the server again on the same ports, node and spool (so the same accounts)
    /// after [`kill`](Self::kill) or [`stop`](Self::stop).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }
}
