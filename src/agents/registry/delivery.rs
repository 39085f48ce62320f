//! Which NEW_CALLs each socket is due, and which delivered calls went unanswered.

use std::collections::HashMap;
use std::time::Instant;

use super::{Notice, Registry, Session};
use crate::agents::event::{NewCall, SocketId};
use crate::converja::CallId;

impl Registry {
    /// NEW_CALLs due now, per socket, over the sessions whose wakeup came due: offered calls
    /// the socket has not seen (once its first-call delay has passed), and unanswered ones
    /// again if redelivery is on. Run periodically, for the deliveries that wait on the clock.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<(SocketId, NewCall)> {
        self.wake(now);
        let mut out = Vec::new();
        for session in self.timed_sessions() {
            self.session_due(session, now, &mut out);
        }
        out
    }

    /// Like [`due`](Self::due), for the sessions changed since the last call only.
    pub(crate) fn due_changed(&mut self, now: Instant) -> Vec<(SocketId, NewCall)> {
        let mut out = Vec::new();
        for username in std::mem::take(&mut self.changed) {
            if let Some(session) = self.sessions.get(&username) {
                self.session_due(session, now, &mut out);
            }
        }
        out
    }

    fn session_due(&self, session: &Session, now: Instant, out: &mut Vec<(SocketId, NewCall)>) {
        for (socket, view) in &session.sockets {
            if view.ready_at.is_none_or(|t| now < t) {
                continue;
            }
            for slot in session.offered() {
                let due = match view.delivered.get(&slot.call) {
                    None => true,
                    Some(at) => {
                        self.rules.redeliver_unanswered
                            && !slot.answered
                            && now.duration_since(*at) >= self.rules.ack_timeout
                    }
                };
                if due {
                    out.push((*socket, slot.info.clone()));
                }
            }
        }
    }

    /// Records that `call` reached `socket`.
    pub(crate) fn delivered(&mut self, socket: SocketId, call: CallId, now: Instant) {
        let Some(username) = self.by_socket.get(&socket).cloned() else {
            return;
        };
        if let Some(view) = self
            .sessions
            .get_mut(&username)
            .and_then(|s| s.sockets.get_mut(&socket))
        {
            view.delivered.insert(call, now);
            self.wake_at(now + self.rules.ack_timeout, &username);
        }
    }

    /// Calls delivered `ack_timeout` ago and never answered, each reported once.
    pub(crate) fn notices(&mut self, now: Instant) -> Vec<Notice> {
        self.wake(now);
        let mut out = Vec::new();
        let timeout = self.rules.ack_timeout;
        for username in &self.timed {
            let Some(session) = self.sessions.get_mut(username) else {
                continue;
            };
            let oldest: HashMap<CallId, Instant> = session
                .sockets
                .values()
                .flat_map(|v| v.delivered.iter())
                .fold(HashMap::new(), |mut m, (c, t)| {
                    let e = m.entry(*c).or_insert(*t);
                    if *t < *e {
                        *e = *t;
                    }
                    m
                });
            for slot in session.calls.iter_mut() {
                if !slot.answered
                    && !slot.unanswered_reported
                    && oldest
                        .get(&slot.call)
                        .is_some_and(|t| now.duration_since(*t) >= timeout)
                {
                    slot.unanswered_reported = true;
                    out.push(Notice::Unanswered {
                        username: session.username.clone(),
                        call: slot.call,
                    });
                }
            }
        }
        out
    }
}
