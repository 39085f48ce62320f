//! The XMPP server of a test stack: Prosody, or ejabberd with `CONVERJA_TEST_SERVER=ejabberd`,
//! so that the same suites run against both.

use std::path::PathBuf;

use converja_bridge::ejabberd::LocalEjabberd;
use converja_bridge::prosody::LocalProsody;
use converja_bridge::xmpp::ConnectSettings;

/// Which server the suites run against.
pub(crate) fn ejabberd_wanted() -> bool {
    std::env::var("CONVERJA_TEST_SERVER").is_ok_and(|v| v == "ejabberd")
}

enum Kind {
    Prosody(LocalProsody),
    Ejabberd(LocalEjabberd),
}

/// A private XMPP server on loopback, whichever it is.
pub(crate) struct Server {
    /// The client-to-server port.
    pub c2s_port: u16,
    /// The HTTP port (BOSH).
    pub http_port: u16,
    /// The XMPP domain.
    pub domain: String,
    /// The MUC service.
    pub conference: String,
    kind: Kind,
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match &$self.kind {
            Kind::Prosody($s) => $e,
            Kind::Ejabberd($s) => $e,
        }
    };
}

impl Server {
    /// Starts the server the suites run against, with `accounts`.
    pub(crate) fn start(domain: &str, accounts: &[(&str, &str)]) -> anyhow::Result<Server> {
        let kind = if ejabberd_wanted() {
            Kind::Ejabberd(LocalEjabberd::start(domain, accounts)?)
        } else {
            Kind::Prosody(LocalProsody::start(domain, accounts)?)
        };
        let (c2s_port, http_port, domain, conference) = match &kind {
            Kind::Prosody(p) => (
                p.c2s_port,
                p.http_port,
                p.domain.clone(),
                p.conference.clone(),
            ),
            Kind::Ejabberd(e) => (
                e.c2s_port,
                e.http_port,
                e.domain.clone(),
                e.conference.clone(),
            ),
        };
        Ok(Server {
            c2s_port,
            http_port,
            domain,
            conference,
            kind,
        })
    }

    /// Whether this is ejabberd.
    pub(crate) fn is_ejabberd(&self) -> bool {
        matches!(self.kind, Kind::Ejabberd(_))
    }

    /// Settings for `user` over the client port.
    pub(crate) fn account(&self, user: &str, password: &str) -> ConnectSettings {
        each!(self, s => s.account(user, password))
    }

    /// Settings for `user` over BOSH.
    pub(crate) fn bosh_account(&self, user: &str, password: &str) -> ConnectSettings {
        each!(self, s => s.bosh_account(user, password))
    }

    /// The BOSH endpoint.
    pub(crate) fn bosh_url(&self) -> String {
        each!(self, s => s.bosh_url())
    }

    /// The server's log.
    pub(crate) fn log_path(&self) -> PathBuf {
        each!(self, s => s.log_path())
    }

    /// Removes occupant `nick` from `room` without telling anyone. Prosody only: ejabberd has
    /// no command that does it.
    pub(crate) fn remove_silently(&self, room: &str, nick: &str) -> anyhow::Result<()> {
        match &self.kind {
            Kind::Prosody(p) => p.remove_silently(room, nick),
            Kind::Ejabberd(_) => anyhow::bail!(
                "ejabberd cannot remove an occupant silently; run this test against Prosody"
            ),
        }
    }

    /// SIGKILL, as a crash.
    pub(crate) fn kill(&mut self) {
        match &mut self.kind {
            Kind::Prosody(p) => p.kill(),
            Kind::Ejabberd(e) => e.kill(),
        }
    }

    /// Starts again on the same ports and data.
    pub(crate) fn restart(&mut self) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Prosody(p) => p.restart(),
            Kind::Ejabberd(e) => e.restart(),
        }
    }
}
