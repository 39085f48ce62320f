//! What one client may cost: connections and handshakes per client address, events and
//! usernames per socket. Counting is governor's (GCRA); refusing is the caller's, with a
//! sentence the client can read.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::agents::{ClientEvent, Refusal};
use crate::config::LimitsConfig;

/// What a `USER_CONNECT` costs of a socket's event budget: it is the most expensive event
/// (a room join and a platform request), so a flood of them is refused first.
const USER_CONNECT_COST: u32 = 5;
/// Addresses remembered by the handshake counter before the idle ones are forgotten.
const ADDRESSES_KEPT: usize = 10_000;

/// A limit of a client address reached; the client receives the text.
#[derive(Debug, thiserror::Error)]
pub(super) enum Limited {
    #[error("too many connections from {0}: at most {1} at once")]
    Connections(IpAddr, NonZeroU32),
    #[error("too many new connections from {0}: at most {1} per second; try again in a moment")]
    Handshakes(IpAddr, NonZeroU32),
}

impl Limited {
    /// The metric label of the refusal.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Limited::Connections(..) => "connections",
            Limited::Handshakes(..) => "handshakes",
        }
    }
}

/// Connections and handshakes of every client address.
pub(super) struct AddressLimits {
    connections_per_address: Option<NonZeroU32>,
    connections: Mutex<HashMap<IpAddr, u32>>,
    handshakes: Option<(DefaultKeyedRateLimiter<IpAddr>, NonZeroU32)>,
}

impl AddressLimits {
    pub(super) fn new(limits: &LimitsConfig) -> Self {
        Self {
            connections_per_address: limits.connections_per_address,
            connections: Mutex::new(HashMap::new()),
            handshakes: limits
                .handshakes_per_second_per_address
                .map(|n| (RateLimiter::keyed(Quota::per_second(n)), n)),
        }
    }

    fn connections(&self) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `addr` may start a new handshake now; each call counts as one.
    pub(super) fn handshake(&self, addr: IpAddr) -> Result<(), Limited> {
        self.room_for_connection(addr)?;
        let Some((limiter, n)) = &self.handshakes else {
            return Ok(());
        };
        if limiter.len() > ADDRESSES_KEPT {
            limiter.retain_recent();
        }
        limiter
            .check_key(&addr)
            .map_err(|_| Limited::Handshakes(addr, *n))
    }

    fn room_for_connection(&self, addr: IpAddr) -> Result<(), Limited> {
        let open = self.connections().get(&addr).copied().unwrap_or(0);
        self.room_beside(addr, open)
    }

    /// Whether `addr` may open one more connection beside the `open` ones it has.
    fn room_beside(&self, addr: IpAddr, open: u32) -> Result<(), Limited> {
        match self.connections_per_address {
            Some(n) if open >= n.get() => Err(Limited::Connections(addr, n)),
            _ => Ok(()),
        }
    }

    /// Counts a connection of `addr` until the returned slot is dropped.
    pub(super) fn connect(self: &Arc<Self>, addr: IpAddr) -> Result<Slot, Limited> {
        let mut connections = self.connections();
        let open = connections.entry(addr).or_insert(0);
        self.room_beside(addr, *open)?;
        *open += 1;
        Ok(Slot {
            limits: self.clone(),
            addr,
        })
    }
}

/// One open connection of an address, counted until dropped.
pub(super) struct Slot {
    limits: Arc<AddressLimits>,
    addr: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut connections = self.limits.connections();
        if let Some(open) = connections.get_mut(&self.addr) {
            *open -= 1;
            if *open == 0 {
                connections.remove(&self.addr);
            }
        }
    }
}

/// What one socket may still send.
pub(super) struct SocketBudget {
    events: Option<(DefaultDirectRateLimiter, NonZeroU32)>,
    usernames: Option<(NonZeroU32, Mutex<HashSet<String>>)>,
}

impl SocketBudget {
    pub(super) fn new(limits: &LimitsConfig) -> Self {
        Self {
            events: limits
                .events_per_second_per_socket
                .map(|n| (RateLimiter::direct(Quota::per_second(n)), n)),
            usernames: limits
                .usernames_per_socket
                .map(|n| (n, Mutex::new(HashSet::new()))),
        }
    }

    /// Why `event` is refused, if it is over the socket's budget; it is counted if not.
    pub(super) fn spend(&self, event: &ClientEvent) -> Result<(), Refusal> {
        let login = match event {
            ClientEvent::UserConnect(login) => Some(&login.username),
            _ => None,
        };
        if let (Some(username), Some((n, tried))) = (login, &self.usernames) {
            let mut tried = tried.lock().unwrap_or_else(|e| e.into_inner());
            if !tried.contains(username) {
                if tried.len() >= n.get() as usize {
                    return Err(Refusal::TooManyUsernames(n.get()));
                }
                tried.insert(username.clone());
            }
        }
        let Some((limiter, n)) = &self.events else {
            return Ok(());
        };
        let cost = if login.is_some() {
            USER_CONNECT_COST.min(n.get())
        } else {
            1
        };
        let cost = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        match limiter.check_n(cost) {
            Ok(Ok(())) => Ok(()),
            _ => Err(Refusal::RateLimited(n.get())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::event::Login;
    use crate::converja::CallId;

    fn limits(connections: u32, handshakes: u32, events: u32, usernames: u32) -> LimitsConfig {
        LimitsConfig {
            connections_per_address: NonZeroU32::new(connections),
            handshakes_per_second_per_address: NonZeroU32::new(handshakes),
            events_per_second_per_socket: NonZeroU32::new(events),
            usernames_per_socket: NonZeroU32::new(usernames),
        }
    }

    fn login(username: &str) -> ClientEvent {
        ClientEvent::UserConnect(Login {
            username: username.into(),
            max_calls: 1,
        })
    }

    #[test]
    fn connections_are_counted_per_address_until_their_slot_is_dropped() {
        let limits = Arc::new(AddressLimits::new(&limits(2, 0, 0, 0)));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = limits.connect(a).unwrap();
        let _second = limits.connect(a).unwrap();
        assert!(matches!(limits.connect(a), Err(Limited::Connections(..))));
        assert!(
            limits.handshake(a).is_err(),
            "no handshake while the address is full"
        );
        assert!(limits.connect(b).is_ok(), "another address is not affected");
        drop(first);
        assert!(limits.connect(a).is_ok());
    }

    #[test]
    fn handshakes_past_the_rate_are_refused_for_that_address_alone() {
        let limits = AddressLimits::new(&limits(0, 3, 0, 0));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            limits.handshake(a).unwrap();
        }
        let refused = limits.handshake(a).unwrap_err();
        assert_eq!(refused.reason(), "handshakes");
        assert!(refused.to_string().contains("192.0.2.1"));
        assert!(limits.handshake(b).is_ok());
    }

    #[test]
    fn a_socket_may_try_a_few_usernames_and_repeat_them() {
        let budget = SocketBudget::new(&limits(0, 0, 0, 2));
        budget.spend(&login("maria")).unwrap();
        budget.spend(&login("joao")).unwrap();
        budget.spend(&login("maria")).unwrap();
        assert_eq!(
            budget.spend(&login("carla")),
            Err(Refusal::TooManyUsernames(2))
        );
    }

    #[test]
    fn user_connect_spends_the_event_budget_first() {
        let budget = SocketBudget::new(&limits(0, 0, 10, 0));
        // 10 per second, a USER_CONNECT costs 5: two of them use it all.
        budget.spend(&login("maria")).unwrap();
        budget.spend(&login("maria")).unwrap();
        assert_eq!(
            budget.spend(&ClientEvent::EndCall(CallId(1))),
            Err(Refusal::RateLimited(10))
        );
        let budget = SocketBudget::new(&limits(0, 0, 10, 0));
        for _ in 0..10 {
            budget.spend(&ClientEvent::EndCall(CallId(1))).unwrap();
        }
        assert!(budget.spend(&ClientEvent::EndCall(CallId(1))).is_err());
    }
}
