//! The XMPP server of a test stack: Prosody, or ejabberd with `CONVERJA_TEST_SERVER=ejabberd`,
//! so that the same suites run against both.

pub(crate) use converja_testkit::local_server::LocalServer as Server;
use converja_testkit::local_server::ServerKind;

/// Which server the suites run against.
pub(crate) fn wanted() -> ServerKind {
    match std::env::var("CONVERJA_TEST_SERVER").as_deref() {
        Ok("ejabberd") => ServerKind::Ejabberd,
        _ => ServerKind::Prosody,
    }
}

/// Starts the server the suites run against, with `accounts`.
pub(crate) fn start(domain: &str, accounts: &[(&str, &str)]) -> anyhow::Result<Server> {
    Server::start(wanted(), domain, accounts)
}
