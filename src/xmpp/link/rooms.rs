//! Room membership: joining, retrying, nickname conflicts, and the joined set published in
//! the link state.

use std::time::Duration;

use futures::SinkExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::muc::Muc;
use tokio_xmpp::parsers::muc::muc::History;
use tokio_xmpp::parsers::muc::user::{MucUser, Status};
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::xmlstream::XmppStreamElement;
use tracing::{debug, info, warn};

use super::super::{Backoff, Inbound, LinkError, Stream};
use super::inbound::error_condition;
use super::{LinkTask, write};
use crate::telemetry;

/// A room join unanswered for this long is sent again.
const JOIN_ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// A leave unanswered for this long is taken as done, so that a join waiting for it goes
/// out. Servers answer a leave at once; this only bounds a lost answer.
const LEAVE_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Nickname conflicts tolerated per room before it counts as a join failure.
const MAX_NICK_SUFFIX: u32 = 20;

/// A room the link is in or is joining.
pub(super) struct Room {
    /// The nickname asked for in the configuration or by the caller.
    base_nick: String,
    /// The nickname in use (base plus a suffix after conflicts).
    pub(super) nick: String,
    /// Nickname conflicts met so far.
    conflicts: u32,
    /// The server confirmed the join on the current stream.
    pub(super) joined: bool,
    /// When the last join presence went out, while unanswered.
    pub(super) join_sent: Option<Instant>,
    /// When to try again after a join error.
    pub(super) retry_at: Option<Instant>,
    retry: Backoff,
    /// When to check next that the room still has us.
    pub(super) next_ping: Option<Instant>,
    /// The self-ping in flight, with when it went out.
    pub(super) ping_out: Option<(String, Instant)>,
    /// Callers waiting for the join to succeed or fail.
    pub(super) waiters: Vec<oneshot::Sender<Result<(), LinkError>>>,
}

impl Room {
    pub(super) fn new(nick: String) -> Self {
        Room {
            base_nick: nick.clone(),
            nick,
            conflicts: 0,
            joined: false,
            join_sent: None,
            retry_at: None,
            retry: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            next_ping: None,
            ping_out: None,
            waiters: Vec::new(),
        }
    }

    pub(super) fn settle(&mut self, result: Result<(), LinkError>) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(result.clone());
        }
    }
}

impl LinkTask {
    pub(super) async fn send_join(
        &mut self,
        stream: &mut Stream,
        room: &BareJid,
    ) -> Result<(), String> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Ok(());
        };
        let Ok(occupant) = room.with_resource_str(&r.nick) else {
            let error = LinkError::Join {
                room: room.to_string(),
                condition: format!("invalid nickname `{}`", r.nick),
            };
            r.settle(Err(error));
            self.rooms.remove(room);
            return Ok(());
        };
        r.join_sent = Some(Instant::now());
        r.retry_at = None;
        debug!(%room, nick = %r.nick, "joining room");
        // No history: old events replayed on join must not be acted on again.
        let muc = Muc::new().with_history(History::new().with_maxstanzas(0));
        let presence = Presence::available().with_to(occupant).with_payload(muc);
        write(stream, Stanza::Presence(presence)).await
    }

    pub(super) async fn retry_joins(&mut self, stream: &mut Stream) -> Result<(), String> {
        let now = Instant::now();
        let unanswered: Vec<BareJid> = self
            .leaving
            .iter()
            .filter(|(_, sent)| now.duration_since(**sent) > LEAVE_ANSWER_TIMEOUT)
            .map(|(room, _)| room.clone())
            .collect();
        for room in unanswered {
            debug!(%room, "leave unanswered; taken as done");
            self.left(stream, &room).await?;
        }
        let due: Vec<BareJid> = self
            .rooms
            .iter()
            .filter(|(_, r)| {
                !r.joined
                    && (r.retry_at.is_some_and(|t| t <= now)
                        || r.join_sent
                            .is_some_and(|t| now.duration_since(t) > JOIN_ANSWER_TIMEOUT))
            })
            .map(|(room, _)| room.clone())
            .collect();
        for room in due {
            self.send_join(stream, &room).await?;
        }
        Ok(())
    }

    /// Leaves `room`. Unless it was never entered on this stream, the leave lasts until the
    /// server's unavailable self-presence, and a join meanwhile waits for that: sent at once,
    /// it could be taken as answered by the self-presence of the occupancy being left, and
    /// requests would then go out to the room while the server is removing the bridge.
    pub(super) async fn leave(&mut self, stream: &mut Stream, room: BareJid) -> Result<(), String> {
        let Some(mut r) = self.rooms.remove(&room) else {
            return Ok(());
        };
        r.settle(Err(LinkError::Down("left".into())));
        self.publish_joined(&room, false);
        self.outq.push_back(Inbound::Left { room: room.clone() });
        if !r.joined && r.join_sent.is_none() {
            return Ok(());
        }
        let Ok(occupant) = room.with_resource_str(&r.nick) else {
            return Ok(());
        };
        self.leaving.insert(room, Instant::now());
        let presence = Presence::unavailable().with_to(occupant);
        stream
            .feed(&XmppStreamElement::Stanza(Stanza::Presence(presence)))
            .await
            .map_err(|e| format!("write failed: {e}"))
    }

    /// The leave of `room` is over: a join that waited for it goes out now.
    async fn left(&mut self, stream: &mut Stream, room: &BareJid) -> Result<(), String> {
        self.leaving.remove(room);
        if self.rooms.get(room).is_some_and(|r| r.join_sent.is_none()) {
            self.send_join(stream, room).await?;
        }
        Ok(())
    }

    /// The room no longer has us: join it again shortly.
    fn removed(&mut self, room: &BareJid) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        metrics::counter!(telemetry::ROOM_REMOVALS).increment(1);
        r.joined = false;
        r.ping_out = None;
        r.retry_at = Some(Instant::now() + r.retry.next_delay());
        self.publish_joined(room, false);
    }

    /// Sends the self-pings that are due (see [`super::self_ping`]).
    pub(super) async fn self_ping(&mut self, stream: &mut Stream) -> Result<(), String> {
        let every = self.settings.self_ping_every;
        for (occupant, id) in self.pings.due(&mut self.rooms, every, Instant::now()) {
            let ping = Iq::from_get(id, Ping).with_to(occupant.into());
            write(stream, Stanza::Iq(ping)).await?;
        }
        Ok(())
    }

    /// The answer to a self-ping from `room`: an error saying we are not an occupant means
    /// removal. Found by its sender, not by scanning every room for the id.
    pub(super) fn on_self_ping_answer(
        &mut self,
        room: Option<BareJid>,
        id: &str,
        error: Option<&str>,
    ) {
        let Some(room) = room else { return };
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        if r.ping_out.as_ref().is_none_or(|(sent, _)| sent != id) {
            return;
        }
        r.ping_out = None;
        // XEP-0410: not-acceptable (not an occupant) and item-not-found (no such room) mean
        // we are out; any other error only says the ping itself is not supported.
        if matches!(error, Some("not-acceptable" | "item-not-found")) {
            warn!(%room, "no longer in the room, unannounced; rejoining, and checking every room");
            self.removed(&room);
            self.pings.removal_found();
        }
    }

    /// Publishes that the link is in `room` now, or no longer. One set operation per change:
    /// rebuilding the set on every join cost O(rooms) per agent login.
    pub(super) fn publish_joined(&mut self, room: &BareJid, joined: bool) {
        self.state.send_modify(|s| {
            if joined {
                s.joined.insert(room.clone());
            } else {
                s.joined.remove(room);
            }
            metrics::gauge!(telemetry::ROOMS_JOINED).set(s.joined.len() as f64);
        });
    }

    pub(super) async fn on_presence(
        &mut self,
        presence: Presence,
        stream: &mut Stream,
    ) -> Result<(), String> {
        let Some(from) = presence.from.clone().and_then(|j| j.try_into_full().ok()) else {
            return Ok(());
        };
        let room = from.to_bare();
        let is_self = presence
            .payloads
            .iter()
            .filter_map(|p| MucUser::try_from(p.clone()).ok())
            .any(|x| x.status.contains(&Status::SelfPresence));
        if self.leaving.contains_key(&room) {
            // Our unavailable self-presence ends the leave; an error ends it too, as it says
            // the join being left failed. Anything else is the old occupancy's.
            let over = match presence.type_ {
                PresenceType::Unavailable => is_self,
                PresenceType::Error => true,
                _ => false,
            };
            if over {
                self.left(stream, &room).await?;
            }
            return Ok(());
        }
        let Some(r) = self.rooms.get_mut(&room) else {
            return Ok(());
        };
        match presence.type_ {
            PresenceType::Error => {
                if from.resource().as_str() != r.nick {
                    return Ok(());
                }
                let condition = error_condition(&presence.payloads)
                    .unwrap_or_else(|| "undefined-condition".into());
                r.join_sent = None;
                if condition == "conflict" && r.conflicts < MAX_NICK_SUFFIX {
                    r.conflicts += 1;
                    r.nick = format!("{}-{}", r.base_nick, r.conflicts + 1);
                    info!(%room, nick = %r.nick, "nickname taken; retrying with a suffix");
                    return self.send_join(stream, &room).await;
                }
                let delay = r.retry.next_delay();
                warn!(%room, %condition, retry_in = ?delay, "cannot join room");
                metrics::counter!(telemetry::JOIN_FAILURES, "condition" => condition.clone())
                    .increment(1);
                r.retry_at = Some(Instant::now() + delay);
                r.settle(Err(LinkError::Join {
                    room: room.to_string(),
                    condition,
                }));
            }
            PresenceType::None if is_self => {
                r.joined = true;
                r.join_sent = None;
                // Spread the checks so that thousands of rooms are not pinged at once.
                // A server may drop an occupant without telling it (a MUC component restarted
                // under a live stream); events published there would be missed in silence.
                let every = self.settings.self_ping_every;
                let spread = every.mul_f64(rand::random::<f64>() / 4.0);
                r.next_ping = Some(Instant::now() + every + spread);
                r.retry.reset();
                r.settle(Ok(()));
                debug!(%room, nick = %r.nick, "joined room");
                self.publish_joined(&room, true);
                self.outq.push_back(Inbound::Joined { room });
            }
            PresenceType::Unavailable if is_self && r.joined => {
                // Kicked, or the room went away: join again shortly.
                warn!(%room, "removed from room; rejoining");
                self.removed(&room);
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::super::Consumer;
    use super::super::self_ping::ID_PREFIX;
    use super::*;

    const EVERY: Duration = Duration::from_secs(120);

    /// A link task in `rooms`, every one joined and not due for a check for a while.
    fn in_rooms(rooms: &[&str], now: Instant) -> LinkTask {
        let settings = super::super::tests::settings("converja-bridge", EVERY);
        let (queue, _) = mpsc::channel(1);
        let (mut link, _) = LinkTask::new(
            settings,
            Consumer::Queue(queue),
            &TaskTracker::new(),
            CancellationToken::new(),
        );
        link.rooms = rooms
            .iter()
            .map(|jid| {
                let mut r = Room::new("converja-bridge".into());
                r.joined = true;
                r.next_ping = Some(now + EVERY);
                (jid.parse().expect("valid"), r)
            })
            .collect();
        link
    }

    /// `room`'s self-ping is out, and the server answers it with `error`.
    fn answered(link: &mut LinkTask, room: &str, error: Option<&str>, now: Instant) {
        let room: BareJid = room.parse().expect("valid");
        let id = format!("{ID_PREFIX}7");
        link.rooms
            .get_mut(&room)
            .expect("a room of the link")
            .ping_out = Some((id.clone(), now));
        link.on_self_ping_answer(Some(room), &id, error);
    }

    /// The rooms the next tick checks.
    fn checked_next(link: &mut LinkTask, now: Instant) -> Vec<String> {
        link.pings
            .due(&mut link.rooms, EVERY, now)
            .into_iter()
            .map(|(occupant, _)| occupant.to_bare().to_string())
            .collect()
    }

    #[test]
    fn a_removal_found_by_a_self_ping_has_every_other_room_checked_on_the_next_tick() {
        let now = Instant::now();
        let mut link = in_rooms(&["a@muc.test", "b@muc.test", "c@muc.test"], now);
        answered(&mut link, "b@muc.test", Some("not-acceptable"), now);
        let b: BareJid = "b@muc.test".parse().expect("valid");
        assert!(
            !link.rooms[&b].joined,
            "the removed room is to be joined again"
        );
        assert!(link.rooms[&b].retry_at.is_some());
        assert_eq!(checked_next(&mut link, now), ["a@muc.test", "c@muc.test"]);
        assert!(
            checked_next(&mut link, now).is_empty(),
            "one sweep, not more"
        );
    }

    #[test]
    fn a_self_ping_the_room_does_not_support_is_no_removal() {
        let now = Instant::now();
        let mut link = in_rooms(&["a@muc.test", "b@muc.test"], now);
        answered(
            &mut link,
            "b@muc.test",
            Some("feature-not-implemented"),
            now,
        );
        let b: BareJid = "b@muc.test".parse().expect("valid");
        assert!(link.rooms[&b].joined);
        assert!(link.rooms[&b].ping_out.is_none(), "the check is over");
        assert!(checked_next(&mut link, now).is_empty(), "no sweep");
    }

    #[test]
    fn an_answer_to_another_ping_than_the_one_out_is_ignored() {
        let now = Instant::now();
        let mut link = in_rooms(&["a@muc.test"], now);
        let a: BareJid = "a@muc.test".parse().expect("valid");
        link.rooms.get_mut(&a).expect("a").ping_out = Some((format!("{ID_PREFIX}8"), now));
        link.on_self_ping_answer(
            Some(a.clone()),
            &format!("{ID_PREFIX}7"),
            Some("not-acceptable"),
        );
        assert!(
            link.rooms[&a].joined,
            "a spoofed or stale answer removes nothing"
        );
        assert!(link.rooms[&a].ping_out.is_some());
    }
}
