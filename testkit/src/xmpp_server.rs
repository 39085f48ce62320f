//! What the private Prosody and the private ejabberd have alike: a temporary directory, free
//! loopback ports, a MUC service, a test certificate, their process, and connection settings
//! for their accounts. Each of them wraps one and dereferences to it.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use anyhow::Context;
use converja_bridge::xmpp::ConnectSettings;

use crate::loopback::{self, free_ports, make_certificate};

/// A private XMPP server's files, ports and process, whichever server it is.
#[derive(Debug)]
pub struct XmppServer {
    /// The server's process, while it runs.
    pub(crate) child: Option<Child>,
    /// Config, data and logs, removed when dropped.
    pub(crate) dir: tempfile::TempDir,
    /// Completed starts, to find this start's lines in the log, which restarts append to.
    pub(crate) starts: usize,
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

impl XmppServer {
    /// Files under a new temporary directory named `prefix…`, and free ports, for `domain`.
    pub(crate) fn new(prefix: &str, domain: &str) -> anyhow::Result<XmppServer> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context("cannot create a temporary directory")?;
        let [c2s_port, http_port, https_port] = free_ports()?;
        Ok(XmppServer {
            child: None,
            dir,
            starts: 0,
            c2s_port,
            http_port,
            https_port,
            domain: domain.to_owned(),
            conference: format!("conference.{domain}"),
        })
    }

    /// Other free ports, after the server found one of its own taken.
    pub(crate) fn move_ports(&mut self) -> anyhow::Result<()> {
        [self.c2s_port, self.http_port, self.https_port] = free_ports()?;
        Ok(())
    }

    /// The self-signed certificate (PEM) of a server started with TLS.
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join(format!("{}.crt", self.domain))
    }

    /// The key of [`certificate`](Self::certificate).
    pub(crate) fn key(&self) -> PathBuf {
        self.dir.path().join(format!("{}.key", self.domain))
    }

    /// Makes the certificate and its key, for the domain and the MUC service.
    pub(crate) fn make_certificate(&self) -> anyhow::Result<()> {
        make_certificate(
            &[&self.domain, &self.conference],
            &self.key(),
            &self.certificate(),
        )
    }

    /// The server's process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        loopback::kill(&mut self.child);
    }

    /// Stops the server with SIGTERM, killing it if it has not exited within `grace`.
    pub(crate) fn stop_within(&mut self, grace: Duration) {
        loopback::stop(&mut self.child, grace);
    }

    /// Connection settings for `user` on this server: loopback, plaintext.
    pub fn account(&self, user: &str, password: &str) -> ConnectSettings {
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
    pub fn bosh_account(&self, user: &str, password: &str) -> ConnectSettings {
        loopback::over_bosh(self.account(user, password), &self.bosh_url())
    }
}

impl Drop for XmppServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes the type `$t`, whose field `server` is its [`XmppServer`], read and act as one.
macro_rules! wraps_server {
    ($t:ty) => {
        impl std::ops::Deref for $t {
            type Target = $crate::xmpp_server::XmppServer;

            fn deref(&self) -> &Self::Target {
                &self.server
            }
        }

        impl std::ops::DerefMut for $t {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.server
            }
        }
    };
}

pub(crate) use wraps_server;
