//! converja-testkit: what runs the bridge on loopback for its tests, benchmarks and demo, kept
//! out of the bridge itself so that a production build carries none of it.
//!
//! - [`prosody`], [`ejabberd`]: a private Prosody and a private ejabberd, each with its own
//!   config, data, ports and accounts in a temporary directory; what they have alike (ports,
//!   MUC service, certificate, process, accounts) is one [`xmpp_server::XmppServer`].
//! - [`local_server`]: either of them behind one type, [`local_server::LocalServer`], so that
//!   the suites and benchmarks run unchanged against both.
//! - [`postgres`]: a private PostgreSQL, for the session store of a pair of bridges.
//! - [`nginx`]: a private nginx that signs agents in with basic auth, in front of a bridge.
//! - [`balancer`]: a TCP proxy playing the load balancer in front of a pair, or the network
//!   between a bridge and its database.
//! - [`loopback`]: free ports, test certificates, waiting for and stopping a server's process.
//! - [`http`], [`process`]: probing a bridge over HTTP, driving a binary as a user would.
//! - [`demo`]: the `converja-demo` command's wiring.

pub mod balancer;
pub mod demo;
pub mod ejabberd;
pub mod http;
pub mod local_server;
pub mod loopback;
pub mod nginx;
pub mod postgres;
pub mod process;
pub mod prosody;
pub mod xmpp_server;
