//! `USER_DISCONNECT {username?}`: `agents.on_disconnect` on the platform, then the session
//! ends. If the platform refuses, the session stays as it was.

use std::sync::Arc;

use tracing::{info, warn};

use super::reply;
use crate::agents::event::{ServerEvent, SocketId};
use crate::agents::refusal::{Refusal, Subject};
use crate::agents::{Agents, Platform, Sink};
use crate::store::Change;

/// Ends the socket's session on the platform and in the core, or tells it why not.
pub(super) async fn handle<P: Platform, S: Sink>(
    agents: &Arc<Agents<P, S>>,
    socket: SocketId,
    named: Option<String>,
    ack: Option<S::Ack>,
) {
    let session = {
        let state = agents.state();
        match state.registry.session_of(socket) {
            None => Err((named.unwrap_or_default(), Refusal::NotConnected)),
            Some(session) => match named {
                Some(named) if named != session.username => {
                    Err((named, Refusal::LoggedInAs(session.username.clone())))
                }
                _ => Ok((session.username.clone(), session.agent.clone())),
            },
        }
    };
    let reply = match session {
        Err((username, error)) => ServerEvent::UserDisconnectionError { username, error },
        Ok((username, agent)) => match agents.end_on_platform(&agent).await {
            Ok(()) => {
                agents.state().registry.end_session(&username);
                info!(%username, %agent, "agent disconnected");
                let journal = agents.journal();
                let forgotten = journal.commit(Change::Ended(username.clone()));
                if let Err(error) = forgotten.await {
                    // The agent is logged out on the platform either way; a restart would
                    // bring the session back and log it out again after the grace.
                    warn!(%username, %error, "ended session not removed from the store");
                }
                ServerEvent::UserDisconnected { username }
            }
            Err(error) => ServerEvent::UserDisconnectionError {
                username,
                error: Refusal::Platform {
                    subject: Subject::TheAgent,
                    error,
                },
            },
        },
    };
    reply::event(agents, socket, reply, ack);
}
