//! converja-bridge: lets socket.io agent UIs work against the Converja contact center
//! platform, which speaks JSON over XMPP multi-user chat.

pub mod agents;
pub mod app;
pub mod bridge;
pub mod config;
pub mod converja;
pub mod demo;
pub mod gateway;
pub mod http;
pub mod pending;
pub mod platform;
pub mod prosody;
pub mod recent;
pub mod sim;
pub mod telemetry;
pub mod xmpp;
