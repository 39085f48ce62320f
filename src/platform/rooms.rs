//! Room membership: the platform's base rooms, the followed queue rooms, and the agent rooms
//! requests about one agent need.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_xmpp::jid::BareJid;
use tracing::{info, warn};

use super::{Client, PlatformError, Update};
use crate::config::QueueSelection;
use crate::converja::{AgentId, QueueId, RoomName};
use crate::xmpp::{LinkError, LinkStatus};

/// Wait before re-reading the queue list after a failure.
const QUEUE_RETRY: Duration = Duration::from_secs(5);

impl Client {
    /// Joins `agent.<id>` unless already joined; requests to the agent's occupant need it.
    /// A leave of the room under way is done first.
    pub async fn join_agent_room(&self, agent: &AgentId) -> Result<(), PlatformError> {
        let room = self
            .shared
            .addresses
            .room(&RoomName::Agent(agent.clone()))
            .map_err(|e| PlatformError::BadResponse(e.to_string()))?;
        let _in_room = self.shared.occupancy.request(&room).await;
        self.join_room(room).await
    }

    /// Joins `room` unless already joined. The caller holds the room's use, so that no leave
    /// of it is under way.
    pub(super) async fn join_room(&self, room: BareJid) -> Result<(), PlatformError> {
        if self.shared.link.state().borrow().joined.contains(&room) {
            return Ok(());
        }
        match tokio::time::timeout(
            self.shared.timeout,
            self.shared.link.join(room, &self.shared.nickname),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(LinkError::Down(reason))) => Err(PlatformError::LinkDown(reason)),
            Ok(Err(e)) => Err(PlatformError::Room(e.to_string())),
            Err(_) => Err(PlatformError::Timeout(self.shared.timeout)),
        }
    }

    /// Leaves `agent.<id>` once the answers awaited there have come; requests meanwhile wait
    /// for the leave, then join the room again.
    pub async fn leave_agent_room(&self, agent: &AgentId) {
        if let Ok(room) = self.shared.addresses.room(&RoomName::Agent(agent.clone())) {
            self.leave_room(room).await;
        }
    }

    async fn leave_room(&self, room: BareJid) {
        let shared = &self.shared;
        shared
            .occupancy
            .leave(&room, shared.link.leave(room.clone()))
            .await;
    }

    /// Joins filis and catraquis, then follows the queue rooms, re-reading the queue list
    /// periodically and after every reconnect.
    pub(super) async fn keep_rooms(
        self,
        selection: QueueSelection,
        refresh: Duration,
        cancel: CancellationToken,
    ) {
        let shared = &self.shared;
        for room in [RoomName::Filis, RoomName::Catraquis] {
            let jid = shared
                .addresses
                .room(&room)
                .expect("fixed room names are valid JIDs");
            // Offline now is fine: the link remembers the room and joins it once online.
            let _ = shared.link.join(jid, &shared.nickname).await;
        }
        let mut state = shared.link.state();
        let mut updates = self.subscribe();
        let mut followed: BTreeSet<QueueId> = BTreeSet::new();
        loop {
            // Wait for the link before asking anything.
            if state
                .wait_for(|s| s.status == LinkStatus::Online)
                .await
                .is_err()
            {
                return;
            }
            let session = state.borrow().sessions;
            let next = match self.queues().await {
                Ok(queues) => {
                    let names: HashMap<QueueId, String> =
                        queues.iter().map(|q| (q.id, q.name.clone())).collect();
                    *shared.queue_names.lock().unwrap_or_else(|e| e.into_inner()) = names;
                    let wanted: BTreeSet<QueueId> = match &selection {
                        QueueSelection::All(_) => queues.iter().map(|q| q.id).collect(),
                        QueueSelection::List(list) => list.iter().copied().collect(),
                    };
                    self.follow(&mut followed, wanted).await;
                    refresh
                }
                Err(e) => {
                    warn!(error = %e, "cannot read the queue list");
                    if let QueueSelection::List(list) = &selection {
                        self.follow(&mut followed, list.iter().copied().collect())
                            .await;
                    }
                    QUEUE_RETRY
                }
            };
            // Sleep until the next refresh, or re-read at once after a reconnect that
            // happened since this read.
            let deadline = tokio::time::sleep(next);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = &mut deadline => break,
                    update = updates.recv() => match update {
                        Ok(Update::LinkUp) if state.borrow().sessions != session => break,
                        Err(broadcast::error::RecvError::Closed) => return,
                        _ => continue,
                    },
                }
            }
        }
    }

    async fn follow(&self, followed: &mut BTreeSet<QueueId>, wanted: BTreeSet<QueueId>) {
        let shared = &self.shared;
        let new: Vec<(QueueId, BareJid)> = wanted
            .difference(followed)
            .filter_map(|q| Some((*q, shared.addresses.room(&RoomName::Queue(*q)).ok()?)))
            .collect();
        // Every room readiness waits for is listed before readiness can say yes.
        shared
            .base_rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(new.iter().map(|(_, room)| room.clone()));
        shared.queues_known.send_replace(true);
        // All at once: one round trip to the server for every room, not one per room.
        let joins = new.into_iter().map(|(queue, room)| async move {
            info!(%queue, "following queue");
            // A failure is logged by the link, which keeps retrying; readiness shows it.
            if let Err(e) =
                tokio::time::timeout(shared.timeout, shared.link.join(room, &shared.nickname))
                    .await
                    .unwrap_or(Err(LinkError::Down("join timed out".into())))
            {
                warn!(%queue, error = %e, "queue room not joined yet");
            }
        });
        futures::future::join_all(joins).await;
        for queue in followed.difference(&wanted) {
            let Ok(room) = shared.addresses.room(&RoomName::Queue(*queue)) else {
                continue;
            };
            info!(%queue, "no longer following queue");
            shared
                .base_rooms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&room);
            self.leave_room(room).await;
        }
        *followed = wanted;
    }
}
