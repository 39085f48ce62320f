//! A reconnect is not a new login. socket.io-client (4.6 and later) keeps the private session
//! id (`pid`) the bridge put in its CONNECT reply and hands it back, with the last `offset`
//! it received, on every reconnection of the same socket, without any code of the UI's.
//! The `pid` names the session the socket acted for, and the `offset` says what the UI shows:
//! every event the bridge emits to a socket of a session carries, as its last argument, the
//! session's username and the calls that socket has been shown. A reconnecting socket takes
//! its session back at once, is sent the calls it has not been shown and the end of the
//! calls it shows that ended meanwhile, and nothing twice, with no write on the call path:
//! the client holds what it was shown.
//!
//! The `pid` is a bearer secret: 256 random bits, bound to one username, stored (as its
//! SHA-256) with the session so that it holds across a restart and a failover, and
//! forgotten with the session. The `offset` only ever changes what is sent to the socket
//! that presents it, so it needs no protection.

use sha2::{Digest, Sha256};

use crate::converja::CallId;

/// Offset format version, so that a later format can tell an older one apart.
const OFFSET_VERSION: &str = "1";
/// Calls read from an offset at most: a UI shows at most `agents.max_calls_limit` calls, and
/// a larger offset is not the bridge's.
const OFFSET_MAX_CALLS: usize = 256;

/// What a socket's handshake hands back from an earlier connection of the same UI socket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Resume {
    /// The private session id the bridge gave that connection.
    pub pid: Option<String>,
    /// The last offset that connection received.
    pub offset: Option<String>,
}

/// How a `pid` is known to the bridge and its store: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PidKey(pub String);

impl PidKey {
    /// The key of `pid`.
    pub(crate) fn of(pid: &str) -> Self {
        PidKey(hex::encode(Sha256::digest(pid.as_bytes())))
    }
}

/// What an offset says a UI shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shown {
    /// The username the UI acted for.
    pub username: String,
    /// The calls it shows.
    pub calls: Vec<CallId>,
}

impl Shown {
    /// The offset the bridge sends for a socket of `username` shown `calls`.
    pub(crate) fn offset(username: &str, calls: impl Iterator<Item = CallId>) -> String {
        let calls: Vec<String> = calls.map(|c| c.to_string()).collect();
        format!("{OFFSET_VERSION}|{username}|{}", calls.join(","))
    }

    /// Reads an offset the bridge sent; `None` for anything else (an empty offset is what a
    /// socket is left with once its session ended).
    pub(crate) fn parse(offset: &str) -> Option<Shown> {
        let mut parts = offset.splitn(3, '|');
        if parts.next()? != OFFSET_VERSION {
            return None;
        }
        let username = parts.next()?;
        let calls = parts.next()?;
        if username.is_empty() {
            return None;
        }
        let calls = calls
            .split(',')
            .filter(|c| !c.is_empty())
            .take(OFFSET_MAX_CALLS)
            .map(|c| c.parse::<u64>().map(CallId))
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        Some(Shown {
            username: username.to_owned(),
            calls,
        })
    }
}

/// A new unguessable `pid`.
pub(crate) fn new_pid() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_reads_back_as_written() {
        let offset = Shown::offset("maria.s", [CallId(7), CallId(12)].into_iter());
        assert_eq!(offset, "1|maria.s|7,12");
        assert_eq!(
            Shown::parse(&offset),
            Some(Shown {
                username: "maria.s".into(),
                calls: vec![CallId(7), CallId(12)],
            })
        );
        assert_eq!(
            Shown::parse("1|22010|"),
            Some(Shown {
                username: "22010".into(),
                calls: vec![],
            })
        );
    }

    #[test]
    fn anything_else_is_no_offset() {
        for bad in ["", "2|22010|1", "1||1", "1|22010|x", "1|22010", "hello"] {
            assert_eq!(Shown::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pids_are_distinct_and_keys_hide_them() {
        let (a, b) = (new_pid(), new_pid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(PidKey::of(&a), PidKey::of(&a));
        assert!(!PidKey::of(&a).0.contains(&a));
    }
}
