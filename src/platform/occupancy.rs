//! Order between requests to a room's occupants and the bridge's own leave of that room. An
//! answer comes back to the bridge's occupant in the room: a leave waits for the answers in
//! flight there, which would otherwise go to an occupant that has just left, and a request
//! waits until a leave under way is done, then joins the room afresh.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_xmpp::jid::BareJid;

/// The requests in flight and the leave under way, per room in use.
#[derive(Default)]
pub(super) struct Occupancy {
    rooms: Mutex<HashMap<BareJid, Use>>,
    /// Woken whenever a request ends or a leave is done.
    changed: Notify,
}

#[derive(Default)]
struct Use {
    requests: usize,
    leaving: bool,
}

impl Occupancy {
    /// Waits until no leave of `room` is under way, then counts a request there until the
    /// returned guard is dropped.
    pub(super) async fn request(&self, room: &BareJid) -> InRoom<'_> {
        self.wait(room, |u| {
            if u.leaving {
                return false;
            }
            u.requests += 1;
            true
        })
        .await;
        InRoom {
            occupancy: self,
            room: room.clone(),
            leave: false,
        }
    }

    /// Runs `leave` once no other leave of `room` is under way and every request there has
    /// ended; requests that come meanwhile wait until it is done.
    pub(super) async fn leave(&self, room: &BareJid, leave: impl Future<Output = ()>) {
        self.wait(room, |u| !std::mem::replace(&mut u.leaving, true))
            .await;
        // Released however this ends, cancelled included.
        let _leaving = InRoom {
            occupancy: self,
            room: room.clone(),
            leave: true,
        };
        self.wait(room, |u| u.requests == 0).await;
        leave.await;
    }

    /// Waits until `take` says yes on `room`'s use, which it may change.
    async fn wait(&self, room: &BareJid, mut take: impl FnMut(&mut Use) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if take(self.lock().entry(room.clone()).or_default()) {
                return;
            }
            changed.await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<BareJid, Use>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rooms with a request in flight or a leave under way.
    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.lock().len()
    }
}

/// A request in a room, or a leave of it, until dropped.
pub(super) struct InRoom<'a> {
    occupancy: &'a Occupancy,
    room: BareJid,
    leave: bool,
}

impl Drop for InRoom<'_> {
    fn drop(&mut self) {
        let mut rooms = self.occupancy.lock();
        if let Some(u) = rooms.get_mut(&self.room) {
            if self.leave {
                u.leaving = false;
            } else {
                u.requests -= 1;
            }
            if u.requests == 0 && !u.leaving {
                rooms.remove(&self.room);
            }
        }
        drop(rooms);
        self.occupancy.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    fn room() -> BareJid {
        "agent.22010@conference.platform.test"
            .parse()
            .expect("valid")
    }

    #[tokio::test(start_paused = true)]
    async fn a_leave_waits_for_the_answers_in_flight_in_its_room() {
        let occupancy = Arc::new(Occupancy::default());
        let request = occupancy.request(&room()).await;
        let left = Arc::new(AtomicBool::new(false));
        let leave = tokio::spawn({
            let (occupancy, left) = (occupancy.clone(), left.clone());
            async move {
                occupancy
                    .leave(&room(), async { left.store(true, Ordering::SeqCst) })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!left.load(Ordering::SeqCst), "the answer is still awaited");
        drop(request);
        leave.await.expect("the leave ends");
        assert!(left.load(Ordering::SeqCst));
        assert_eq!(
            occupancy.in_use(),
            0,
            "nothing kept for a room no longer in use"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_until_a_leave_under_way_is_done() {
        let occupancy = Arc::new(Occupancy::default());
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let leave = tokio::spawn({
            let occupancy = occupancy.clone();
            async move {
                occupancy
                    .leave(&room(), async {
                        let _ = released.await;
                    })
                    .await
            }
        });
        tokio::task::yield_now().await;
        let request = tokio::spawn({
            let occupancy = occupancy.clone();
            async move {
                let _in_room = occupancy.request(&room()).await;
            }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !request.is_finished(),
            "no request while the room is being left"
        );
        let _ = release.send(());
        leave.await.expect("the leave ends");
        request.await.expect("the request goes out after it");
        assert_eq!(occupancy.in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_leave_lets_requests_through() {
        let occupancy = Arc::new(Occupancy::default());
        let leave = tokio::spawn({
            let occupancy = occupancy.clone();
            async move { occupancy.leave(&room(), std::future::pending()).await }
        });
        tokio::task::yield_now().await;
        leave.abort();
        let _ = leave.await;
        let request = tokio::time::timeout(Duration::from_secs(1), async {
            drop(occupancy.request(&room()).await);
        });
        assert!(request.await.is_ok(), "the room is no longer being left");
    }
}
