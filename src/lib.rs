//! converja-bridge: lets socket.io agent UIs work against the Converja contact center
//! platform, which speaks JSON over XMPP multi-user chat.

pub mod config;
pub mod converja;
