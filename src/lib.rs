//! converja-bridge: lets socket.io agent UIs work against the Converja contact center
//! platform, which speaks JSON over XMPP multi-user chat.

pub mod config;
pub mod converja;
pub mod pending;
pub mod telemetry;
pub mod xmpp;
pub mod platform;
pub mod sim;
pub mod prosody;
pub mod agents;
pub mod app;
pub mod demo;
pub mod gateway;
pub mod http;
