//! A private XMPP server on loopback, Prosody or ejabberd, behind one type, so that the test
//! suites and the benchmarks run unchanged against either.

use std::path::PathBuf;
use std::str::FromStr;

use crate::ejabberd::LocalEjabberd;
use crate::prosody::LocalProsody;
use crate::xmpp_server::XmppServer;

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

/// A running private XMPP server, whichever it is; its ports, domains, process and accounts
/// are those of its [`XmppServer`].
#[derive(Debug)]
pub struct LocalServer {
    running: Running,
}

impl std::ops::Deref for LocalServer {
    type Target = XmppServer;

    fn deref(&self) -> &XmppServer {
        match &self.running {
            Running::Prosody(p) => p,
            Running::Ejabberd(e) => e,
        }
    }
}

impl std::ops::DerefMut for LocalServer {
    fn deref_mut(&mut self) -> &mut XmppServer {
        match &mut self.running {
            Running::Prosody(p) => p,
            Running::Ejabberd(e) => e,
        }
    }
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
        Ok(LocalServer { running })
    }

    /// Which server this is.
    pub fn kind(&self) -> ServerKind {
        match self.running {
            Running::Prosody(_) => ServerKind::Prosody,
            Running::Ejabberd(_) => ServerKind::Ejabberd,
        }
    }

    /// The server's log.
    pub fn log_path(&self) -> PathBuf {
        match &self.running {
            Running::Prosody(p) => p.log_path(),
            Running::Ejabberd(e) => e.log_path(),
        }
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

    /// Starts again on the same ports and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        match &mut self.running {
            Running::Prosody(p) => p.restart(),
            Running::Ejabberd(e) => e.restart(),
        }
    }
}
