//! XEP-0410 self-pings: checking that each room still has us. A server may drop an occupant
//! without telling it (a MUC component restarted under a live stream), and events published
//! in that room would then be missed in silence.
//!
//! Their cost is bounded, not proportional to the rooms: at most [`PINGS_PER_TICK`] go out
//! per link tick (one second), rooms taken in turn, so each room is checked every
//! `self_ping_interval` or every `rooms / PINGS_PER_TICK` seconds, whichever is longer (with
//! 10,000 agent rooms, one check per room every 500 s for 20 pings a second, where checking
//! every room every 120 s took 83). A removal found in one room has every joined room checked
//! on the next tick: a MUC service that lost one room after a restart has most likely lost
//! them all.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use tokio::time::Instant;
use tokio_xmpp::jid::{BareJid, FullJid};

use super::rooms::Room;

/// Self-pings sent per link tick at most, outside a sweep after a removal.
pub(super) const PINGS_PER_TICK: usize = 20;
/// A self-ping unanswered this long tells nothing; the next one is sent on schedule.
const PATIENCE: Duration = Duration::from_secs(60);
/// Prefix of self-ping request ids, to recognise their answers.
pub(super) const ID_PREFIX: &str = "self-ping-";

/// The self-ping schedule of one link.
#[derive(Debug, Default)]
pub(super) struct SelfPings {
    /// Self-pings sent on this link, numbering their ids.
    sent: u64,
    /// The last room pinged: the next tick starts after it.
    cursor: Option<BareJid>,
    /// A removal was found: every joined room is checked on the next tick.
    sweep: bool,
}

impl SelfPings {
    /// A self-ping revealed a removal.
    pub(super) fn removal_found(&mut self) {
        self.sweep = true;
    }

    /// The self-pings to send at `now`, as (occupant, request id), each marked in flight in
    /// its room and its next check set `every` later.
    pub(super) fn due(
        &mut self,
        rooms: &mut BTreeMap<BareJid, Room>,
        every: Duration,
        now: Instant,
    ) -> Vec<(FullJid, String)> {
        let sweep = std::mem::take(&mut self.sweep);
        let budget = if sweep { usize::MAX } else { PINGS_PER_TICK };
        let mut due = Vec::new();
        let mut last = None;
        let sent = &mut self.sent;
        // Returns false once the budget is spent.
        let mut visit = |room: &BareJid, r: &mut Room| {
            if r.ping_out
                .as_ref()
                .is_some_and(|(_, at)| now.duration_since(*at) > PATIENCE)
            {
                r.ping_out = None;
            }
            let is_due = sweep || r.next_ping.is_some_and(|t| t <= now);
            if !(r.joined && r.ping_out.is_none() && is_due) {
                return true;
            }
            if due.len() >= budget {
                return false;
            }
            // The nickname was a valid resource when the room was joined.
            if let Ok(occupant) = room.with_resource_str(&r.nick) {
                *sent += 1;
                let id = format!("{ID_PREFIX}{sent}");
                r.ping_out = Some((id.clone(), now));
                r.next_ping = Some(now + every);
                due.push((occupant, id));
                last = Some(room.clone());
            }
            true
        };
        // In turn: from just after the cursor to the end, then from the start up to it.
        let after: (Bound<&BareJid>, Bound<&BareJid>) = match &self.cursor {
            Some(c) => (Bound::Excluded(c), Bound::Unbounded),
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        let spent = !rooms
            .range_mut::<BareJid, _>(after)
            .all(|(room, r)| visit(room, r));
        if !spent && let Some(c) = &self.cursor {
            for (room, r) in rooms.range_mut::<BareJid, _>((Bound::Unbounded, Bound::Included(c))) {
                if !visit(room, r) {
                    break;
                }
            }
        }
        if last.is_some() {
            self.cursor = last;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `n` joined rooms, every one due now.
    fn rooms(n: usize, now: Instant) -> BTreeMap<BareJid, Room> {
        (0..n)
            .map(|i| {
                let mut r = Room::new("converja-bridge".into());
                r.joined = true;
                r.next_ping = Some(now);
                (format!("agent.{i:05}@conference.x").parse().unwrap(), r)
            })
            .collect()
    }

    /// Each pinged room answers.
    fn answer(rooms: &mut BTreeMap<BareJid, Room>) {
        for r in rooms.values_mut() {
            r.ping_out = None;
        }
    }

    #[test]
    fn rooms_are_checked_in_turn_within_the_budget() {
        let now = Instant::now();
        let mut map = rooms(100, now);
        let mut pings = SelfPings::default();
        let every = Duration::from_secs(1);
        let mut seen = BTreeSet::new();
        for tick in 0..5u32 {
            let at = now + Duration::from_secs(tick.into());
            let due = pings.due(&mut map, every, at);
            assert_eq!(due.len(), PINGS_PER_TICK, "tick {tick}");
            for (occupant, _) in &due {
                assert!(
                    seen.insert(occupant.to_bare()),
                    "pinged twice before every room was"
                );
            }
            answer(&mut map);
        }
        assert_eq!(seen.len(), 100, "five ticks of 20 check all 100 rooms");
        // The turn starts again from the first room.
        let due = pings.due(&mut map, every, now + Duration::from_secs(5));
        assert_eq!(due[0].0.to_bare(), *map.keys().next().unwrap());
    }

    #[test]
    fn with_few_rooms_each_is_checked_on_its_interval() {
        let now = Instant::now();
        let mut map = rooms(5, now);
        let mut pings = SelfPings::default();
        let every = Duration::from_secs(120);
        assert_eq!(pings.due(&mut map, every, now).len(), 5);
        answer(&mut map);
        let almost = now + every - Duration::from_millis(1);
        assert!(pings.due(&mut map, every, almost).is_empty());
        assert_eq!(pings.due(&mut map, every, now + every).len(), 5);
    }

    #[test]
    fn a_removal_has_every_joined_room_checked_at_once() {
        let now = Instant::now();
        let mut map = rooms(100, now);
        let mut pings = SelfPings::default();
        let every = Duration::from_secs(120);
        pings.due(&mut map, every, now);
        answer(&mut map);
        // One room is not joined: a sweep leaves it to its rejoin.
        map.values_mut().next().unwrap().joined = false;
        pings.removal_found();
        let swept = pings.due(&mut map, every, now + Duration::from_secs(1));
        assert_eq!(swept.len(), 99, "every joined room, beyond the budget");
        answer(&mut map);
        // The sweep is one tick; then the schedule and the budget hold again.
        assert!(
            pings
                .due(&mut map, every, now + Duration::from_secs(2))
                .is_empty()
        );
    }

    #[test]
    fn an_unanswered_ping_is_given_up_after_its_patience() {
        let now = Instant::now();
        let mut map = rooms(1, now);
        let mut pings = SelfPings::default();
        let every = Duration::from_secs(1);
        let (_, first) = pings.due(&mut map, every, now).remove(0);
        // Due again, but the first is still in flight.
        assert!(pings.due(&mut map, every, now + every).is_empty());
        let later = now + PATIENCE + Duration::from_secs(1);
        let (_, second) = pings.due(&mut map, every, later).remove(0);
        assert_ne!(
            first, second,
            "a fresh id, so a late answer to the first is ignored"
        );
    }
}
