//! A private XMPP server on loopback, Prosody or ejabberd, behind one type, so that the test
//! suites and the benchmarks run unchanged against either.

use std::path::PathBuf;
use std::str::FromStr;

use crate::ejabberd::LocalEjabberd;
use crate::prosody::LocalProsody;
use converja_bridge::xmpp::ConnectSettings;

/// Which XMPP server to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Prosody: one process, one core.
    Prosody,
    /// ejabberd: one Erlang node, every core.
    Ejabberd,
}

impl FromStr for ServerKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<ServerKind> {
        match s {
            "prosody" => Ok(ServerKind::Prosody),
            "ejabberd" => Ok(ServerKind::Ejabberd),
            other => anyhow::bail!("unknown XMPP server {other:?}: prosody or ejabberd"),
        }
    }
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerKind::Prosody => "Prosody",
            ServerKind::Ejabberd => "ejabberd",
        })
    }
}

#[derive(Debug)]
enum Running {
    Prosody(LocalProsody),
    Ejabberd(LocalEjabberd),
}

/// A running private XMPP server, whichever it is.
#[derive(Debug)]
pub struct LocalServer {
    /// The client-to-server port.
    pub c2s_port: u16,
    /// The HTTP port (BOSH at `/http-bind`).
    pub http_port: u16,
    /// The XMPP domain of the accounts.
    pub domain: String,
    /// The MUC service domain.
    pub conference: String,
    running: Running,
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match &$self.running {
            Running::Prosody($s) => $e,
            Running::Ejabberd($s) => $e,
        }
    };
}

impl LocalServer {
    /// Starts a `kind` server for `domain` with the given `(user, password)` accounts.
    pub fn start(
        kind: ServerKind,
        domain: &str,
        accounts: &[(&str, &str)],
    ) -> anyhow::Result<LocalServer> {
        let running = match kind {
            ServerKind::Prosody => Running::Prosody(LocalProsody::start(domain, accounts)?),
            ServerKind::Ejabberd => Running::Ejabberd(LocalEjabberd::start(domain, accounts)?),
        };
        let (c2s_port, http_port, domain, conference) = match &running {
            Running::Prosody(p) => (p.c2s_port, p.http_port, &p.domain, &p.conference),
            Running::Ejabberd(e) => (e.c2s_port, e.http_port, &e.domain, &e.conference),
        };
        Ok(LocalServer {
            c2s_port,
            http_port,
            domain: domain.clone(),
            conference: conference.clone(),
            running,
        })
    }

    /// Which server this is.
    pub fn kind(&self) -> ServerKind {
        match self.running {
            Running::Prosody(_) => ServerKind::Prosody,
            Running::Ejabberd(_) => ServerKind::Ejabberd,
        }
    }

    /// The server's process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        each!(self, s => s.pid())
    }

    /// Settings for `user` over the client port, plaintext.
    pub fn account(&self, user: &str, password: &str) -> ConnectSettings {
        each!(self, s => s.account(user, password))
    }

    /// Settings for `user` over BOSH.
    pub fn bosh_account(&self, user: &str, password: &str) -> ConnectSettings {
        each!(self, s => s.bosh_account(user, password))
    }

    /// The BOSH endpoint.
    pub fn bosh_url(&self) -> String {
        each!(self, s => s.bosh_url())
    }

    /// The server's log.
    pub fn log_path(&self) -> PathBuf {
        each!(self, s => s.log_path())
    }

    /// Removes occupant `nick` from `room` without telling anyone. Prosody only: ejabberd has
    /// no command that does it.
    pub fn remove_silently(&self, room: &str, nick: &str) -> anyhow::Result<()> {
        match &self.running {
            Running::Prosody(p) => p.remove_silently(room, nick),
            Running::Ejabberd(_) => anyhow::bail!(
                "ejabberd cannot remove an occupant silently; run this against Prosody"
            ),
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        match &mut self.running {
            Running::Prosody(p) => p.kill(),
            Running::Ejabberd(e) => e.kill(),
        }
    }

    /// Starts again on the same ports and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        match &mut self.running {
            Running::Prosody(p) => p.restart(),
            Running::Ejabberd(e) => e.restart(),
        }
    }
}
