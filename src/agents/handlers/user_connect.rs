//! `USER_CONNECT {username, maxCalls}`: the socket may act for the username, the platform
//! knows the agent, then the socket joins the session and receives its unfinished calls.

use std::sync::Arc;

use tracing::info;

use super::reply;
use crate::agents::event::{Echo, Login, Scalar, ServerEvent, SocketId};
use crate::agents::refusal::{Refusal, Subject};
use crate::agents::{Agents, Platform, Sink, now, restore};
use crate::converja::{AgentId, Timestamp};
use crate::store::Change;

/// Logs the socket in for the username, or tells it why not.
pub(super) async fn handle<P: Platform, S: Sink>(
    agents: &Arc<Agents<P, S>>,
    socket: SocketId,
    login: Login,
    ack: Option<S::Ack>,
) {
    let agent = agents.settings.agent_for(&login.username);
    let reply = match check(agents, socket, &login, &agent) {
        Err(error) => Err(error),
        Ok(checked) => admit(agents, socket, &login, &agent, checked).await,
    };
    let reply = match reply {
        Ok(()) => {
            info!(username = %login.username, %agent, max_calls = login.max_calls, "agent connected");
            ServerEvent::UserConnected(login)
        }
        Err(error) => ServerEvent::UserConnectionError {
            echo: echo(&login),
            error,
        },
    };
    reply::event(agents, socket, reply, ack);
    // A logout the platform announced while it was answering for this login, but after the
    // status it answered with, ends the session as it would have ended it a moment later.
    let crossed = agents.state().logout_since_confirmed(&agent);
    if let Some(at) = crossed {
        agents.session_finished(&agent, at);
    }
}

/// Confirms the agent with the platform (unless the socket already acts for it), stores the
/// session, then attaches the socket: a crash after USER_CONNECTED must not lose the session.
async fn admit<P: Platform, S: Sink>(
    agents: &Arc<Agents<P, S>>,
    socket: SocketId,
    login: &Login,
    agent: &AgentId,
    checked: Checked,
) -> Result<(), Refusal> {
    let new = matches!(checked, Checked::New);
    let mut known_since = None;
    if new {
        match check_agent(agents, agent).await {
            Ok(since) => known_since = Some(since),
            Err(error) => {
                agents.leave_if_unused(agent);
                return Err(Refusal::Platform {
                    subject: Subject::Agent(agent.clone()),
                    error,
                });
            }
        }
    }
    let (stored, reclaimed, changed, pid) = {
        let state = agents.state();
        let stored = state.stored_session(socket, &login.username, agent, login.max_calls);
        let session = state.registry.session(&login.username);
        let reclaimed = session.is_some_and(|s| s.restored);
        let changed = new || session.is_none_or(|s| s.max_calls != login.max_calls);
        (stored, reclaimed, changed, state.pid_of(socket))
    };
    if new && let Some(pid) = &pid {
        // Written with the session, so that a reconnect after a crash right after
        // USER_CONNECTED finds it.
        agents.journal().note(Change::Pid {
            key: pid.0.clone(),
            username: login.username.clone(),
        });
    }
    if changed && let Err(error) = agents.journal().commit(Change::Session(stored)).await {
        if new {
            agents.leave_if_unused(agent);
        }
        return Err(Refusal::Unsaved(error));
    }
    let attached = attach(agents, socket, login, agent);
    if attached.is_ok() {
        let mut state = agents.state();
        if let Some(pid) = pid {
            state.registry.bind_pid(pid, &login.username);
        }
        if let Some(since) = known_since {
            state.registry.known_since(&login.username, since);
        }
    }
    if attached.is_err() && agents.state().registry.session(&login.username).is_none() {
        agents.journal().note(Change::Ended(login.username.clone()));
    }
    if attached.is_ok() && reclaimed {
        restore::reclaimed(&login.username, agent);
    }
    attached
}

/// Returns once no session end of `agent` is under way on the platform.
async fn ended<P: Platform, S: Sink>(agents: &Agents<P, S>, agent: &AgentId) {
    loop {
        let Some(ending) = agents.state().ending(agent) else {
            return;
        };
        ending.cancelled().await;
    }
}

/// Asks the platform about `agent`, once any end of its previous session is done there.
async fn check_agent<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    agent: &AgentId,
) -> Result<Timestamp, crate::converja::PlatformError> {
    ended(agents, agent).await;
    agents.platform.check_agent(agent).await
}

enum Checked {
    /// The socket already acts for this username.
    Again,
    /// The platform must confirm the agent first.
    New,
}

fn check<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    socket: SocketId,
    login: &Login,
    agent: &AgentId,
) -> Result<Checked, Refusal> {
    let state = agents.state();
    if agents.settings.authenticated && state.proven(socket) != Some(login.username.as_str()) {
        return Err(Refusal::TokenNotFor(login.username.clone()));
    }
    state.registry.can_attach(socket, &login.username, agent)?;
    if state.registry.username_of(socket) == Some(login.username.as_str()) {
        Ok(Checked::Again)
    } else {
        Ok(Checked::New)
    }
}

fn attach<P: Platform, S: Sink>(
    agents: &Agents<P, S>,
    socket: SocketId,
    login: &Login,
    agent: &AgentId,
) -> Result<(), Refusal> {
    let mut state = agents.state();
    state
        .registry
        .attach(socket, &login.username, agent, login.max_calls, now())?;
    Ok(())
}

pub(super) fn echo(login: &Login) -> Echo {
    Echo {
        username: Some(Scalar::Text(login.username.clone())),
        max_calls: Some(Scalar::Whole(u64::from(login.max_calls))),
        call_id: None,
    }
}
