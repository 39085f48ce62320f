//! The supervisors' side end to end: the reference socket.io client on `/supervisor` and
//! the REST API against the real bridge, a real Prosody and the simulator. Ana Lima (9001)
//! supervises queue 7 (Maria 22010, João 22011); queue 8 (João, Carla 22012) has no
//! supervisor. Each test checks what the screen got and what the platform did.

#![allow(clippy::unwrap_used)]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod admission;
mod agent_extras;
mod requests;
mod rest;
mod subscriptions;
