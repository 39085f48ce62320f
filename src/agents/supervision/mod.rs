//! Supervisors: the board kept live from the platform's events and set right from its
//! listings (at start, after every outage, and every `reconcile_every`), what each
//! supervisor may see and do, and the feeds that carry a board's changes to screens.
//!
//! Shape: one [`Supervision`] shared by the gateway's supervisor sockets, the REST API and
//! the platform follower. The board sits behind a mutex held only for synchronous work;
//! platform requests are made outside it and their answers applied after.

mod feed;
mod request;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use feed::{Feed, Following, Update};
pub use request::{Answer, Ask, Denied, Supervisor};

use super::board::{Board, Change, Judging, Presence};
use super::port::Directory;
use crate::config::SupervisorsConfig;
use crate::converja::{AgentId, Event, QueueId, Timestamp};
use crate::telemetry;

/// Changes queued for feeds; a feed that falls this far behind resends everything.
const CHANGES_BUFFER: usize = 4096;
/// How long what `GET /queues/:id/supervisors` said is believed, between reconciliations.
const ACCESS_FRESH: Duration = Duration::from_secs(300);
/// A supervisor who may see no queue makes the bridge read again, at most this often: they
/// may have been added on the platform a moment ago.
const ACCESS_RECHECK: Duration = Duration::from_secs(5);
/// How long the first reconciliation waits for the platform before trying anyway.
const READY_WAIT: Duration = Duration::from_secs(30);

/// How supervision behaves, from `[supervisors]`.
#[derive(Debug, Clone)]
pub struct SupervisionSettings {
    /// How calls are judged.
    pub judging: Judging,
    /// How often the board is set right from the listings.
    pub reconcile_every: Duration,
    /// Changes to a screen are sent at most this often.
    pub coalesce: Duration,
}

impl SupervisionSettings {
    /// The settings of `[supervisors]`.
    pub fn from_config(c: &SupervisorsConfig) -> Self {
        SupervisionSettings {
            judging: Judging {
                threshold: c.service_level_threshold.0,
                short_abandon: c.short_abandon.0,
                windows: c.windows.iter().map(|w| w.0).collect(),
            },
            reconcile_every: c.reconcile_every.0,
            coalesce: c.coalesce.0,
        }
    }
}

/// Who supervises which queue, as the platform last said.
#[derive(Debug, Default)]
struct Access {
    supervisors: BTreeMap<QueueId, BTreeSet<AgentId>>,
    read_at: Option<tokio::time::Instant>,
    /// When the agents' statuses were last read.
    statuses_at: Option<tokio::time::Instant>,
}

/// The supervisors' side of the bridge.
pub struct Supervision<D: Directory> {
    settings: SupervisionSettings,
    directory: D,
    board: Mutex<Board>,
    access: Mutex<Access>,
    changes: broadcast::Sender<Arc<[Change]>>,
    resync: Notify,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl<D: Directory> Supervision<D> {
    /// Supervision asking `directory`; its screens' work runs on `tasks` and stops with
    /// `cancel`.
    pub fn new(
        settings: SupervisionSettings,
        directory: D,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        let board = Board::new(settings.judging.clone());
        Supervision {
            settings,
            directory,
            board: Mutex::new(board),
            access: Mutex::new(Access::default()),
            changes: broadcast::channel(CHANGES_BUFFER).0,
            resync: Notify::new(),
            tasks,
            cancel,
        }
    }

    fn board(&self) -> MutexGuard<'_, Board> {
        // A panic while holding the board leaves it as consistent as any single step: keep it.
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn access(&self) -> MutexGuard<'_, Access> {
        self.access.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, changes: Vec<Change>) {
        if !changes.is_empty() {
            // No feed listening is fine: nobody is watching.
            let _ = self.changes.send(changes.into());
        }
    }

    /// Applies a platform event to the board.
    pub fn apply(&self, event: &Event) {
        let changes = self.board().apply(event);
        self.publish(changes);
    }

    /// Runs a screen's work until it ends or supervision stops.
    pub fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = work => {}
            }
        });
    }

    /// Asks for the board to be set right from the listings now (the link came back).
    pub fn resync(&self) {
        self.resync.notify_one();
    }

    /// A feed of the board's changes for the queues it follows, sent at most every
    /// `coalesce`.
    pub fn feed(self: &Arc<Self>) -> Feed<D> {
        Feed::new(
            self.clone(),
            self.changes.subscribe(),
            self.settings.coalesce,
        )
    }

    /// Sets the board right from the listings at start, on [`resync`](Self::resync) and
    /// every `reconcile_every`, until cancelled.
    pub async fn run(self: Arc<Self>) {
        tokio::select! {
            () = self.cancel.cancelled() => return,
            _ = self.directory.until_ready(READY_WAIT) => {}
        }
        let mut tick = tokio::time::interval(self.settings.reconcile_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gauges = tokio::time::interval(Duration::from_secs(1));
        gauges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tick.tick() => {}
                _ = self.resync.notified() => {}
                _ = gauges.tick() => {
                    self.publish_gauges();
                    continue;
                }
            }
            match self.reconcile().await {
                Ok(queues) => debug!(queues, "supervisors' board set right"),
                Err(e) => warn!("supervisors' board not set right: {e}"),
            }
            // Someone watches: their screens show the agents' states.
            if self.changes.receiver_count() > 0 {
                self.read_statuses().await;
            }
        }
    }

    /// Reads every queue's name, members, supervisors and calls; returns the number of
    /// queues read. Agents' statuses are read apart ([`read_statuses`](Self::read_statuses)),
    /// only while someone watches: one request per agent is load on the platform.
    pub async fn reconcile(&self) -> Result<usize, crate::converja::PlatformError> {
        let queues = self.directory.queues().await?;
        let mut supervisors = BTreeMap::new();
        for q in &queues {
            let members = self.directory.queue_agents(q.id).await?;
            let changes = self
                .board()
                .reconcile_members(q.id, Some(&q.name), &members);
            self.publish(changes);
            let listed = self.directory.queue_supervisors(q.id).await?;
            supervisors.insert(q.id, listed.into_iter().map(|s| s.supervisor).collect());
            let calls = self.directory.queue_calls(q.id).await?;
            let changes = self.board().reconcile_calls(&calls);
            self.publish(changes);
        }
        let mut access = self.access();
        access.supervisors = supervisors;
        access.read_at = Some(tokio::time::Instant::now());
        Ok(queues.len())
    }

    /// Reads the status of every agent of the followed queues.
    pub async fn read_statuses(&self) {
        let agents: Vec<AgentId> = {
            let board = self.board();
            board
                .agents()
                .filter(|card| !card.queues.is_empty())
                .map(|card| card.agent.clone())
                .collect()
        };
        for agent in agents {
            // One agent's failure (gone since the listing) must not stop the others.
            match self.directory.agent_status(&agent).await {
                Ok(status) => {
                    let changes = self.board().reconcile_status(&status);
                    self.publish(changes);
                }
                Err(e) => debug!(%agent, "status not read: {e}"),
            }
        }
        self.access().statuses_at = Some(tokio::time::Instant::now());
    }

    /// Reads the agents' statuses unless that was done within `reconcile_every`.
    async fn statuses_if_stale(&self) {
        let every = self.settings.reconcile_every;
        let stale = self
            .access()
            .statuses_at
            .is_none_or(|at| at.elapsed() >= every);
        if stale {
            self.read_statuses().await;
        }
    }

    /// The queues `who` may see, reading the platform if what it said is stale.
    pub async fn visible(&self, who: &Supervisor) -> Result<BTreeSet<QueueId>, Denied> {
        let (mine, age) = self.mine(who);
        let stale = age.is_none_or(|age| age >= ACCESS_FRESH);
        let recheck = mine.is_empty() && age.is_none_or(|age| age >= ACCESS_RECHECK);
        if !stale && !recheck {
            return Ok(mine);
        }
        self.reconcile().await?;
        Ok(self.mine(who).0)
    }

    /// The queues `who` supervises as last read, and how long ago that was.
    fn mine(&self, who: &Supervisor) -> (BTreeSet<QueueId>, Option<Duration>) {
        let access = self.access();
        let mine = access
            .supervisors
            .iter()
            .filter(|(_, s)| s.contains(&who.0))
            .map(|(q, _)| *q)
            .collect();
        (mine, access.read_at.map(|at| at.elapsed()))
    }

    async fn check_queue(&self, who: &Supervisor, queue: QueueId) -> Result<(), Denied> {
        if self.visible(who).await?.contains(&queue) {
            Ok(())
        } else {
            Err(Denied::NotYourQueue(queue))
        }
    }

    async fn check_agent(&self, who: &Supervisor, agent: &AgentId) -> Result<(), Denied> {
        let mine = self.visible(who).await?;
        let serves = self
            .board()
            .agent(agent)
            .is_some_and(|card| card.queues.iter().any(|q| mine.contains(q)));
        if serves {
            Ok(())
        } else {
            Err(Denied::NotYourAgent(agent.clone()))
        }
    }

    /// Carries out `ask` for `who`.
    pub async fn ask(&self, who: &Supervisor, ask: Ask) -> Result<Answer, Denied> {
        let d = &self.directory;
        let answer = match ask {
            Ask::Queues => {
                let mine = self.visible(who).await?;
                let board = self.board();
                Answer::Queues(
                    mine.into_iter()
                        .map(|id| crate::converja::QueueInfo {
                            id,
                            name: board.queue_name(id).unwrap_or_default().to_owned(),
                        })
                        .collect(),
                )
            }
            Ask::QueueAgents(q) => {
                self.check_queue(who, q).await?;
                Answer::QueueAgents(q, d.queue_agents(q).await?)
            }
            Ask::QueueSupervisors(q) => {
                self.check_queue(who, q).await?;
                Answer::QueueSupervisors(q, d.queue_supervisors(q).await?)
            }
            Ask::QueueCalls(q) => {
                self.check_queue(who, q).await?;
                let listed = d.queue_calls(q).await?;
                let changes = self.board().reconcile_calls(&listed);
                self.publish(changes);
                Answer::QueueCalls(q, listed.calls)
            }
            Ask::AgentStatus(a) => {
                self.check_agent(who, &a).await?;
                let status = d.agent_status(&a).await?;
                let changes = self.board().reconcile_status(&status);
                self.publish(changes);
                Answer::AgentStatus(status)
            }
            Ask::Pause(a, reason) => {
                self.check_agent(who, &a).await?;
                d.set_paused(&a, Some(reason)).await?;
                info!(supervisor = %who.0, agent = %a, %reason, "agent paused by a supervisor");
                Answer::Paused(a, reason)
            }
            Ask::Resume(a) => {
                self.check_agent(who, &a).await?;
                d.set_paused(&a, None).await?;
                info!(supervisor = %who.0, agent = %a, "agent resumed by a supervisor");
                Answer::Resumed(a)
            }
            Ask::Transfer {
                agent,
                call,
                destination,
            } => {
                self.check_agent(who, &agent).await?;
                self.check_current_call(&agent, call).await?;
                d.transfer(&agent, &destination).await?;
                info!(supervisor = %who.0, %agent, %call, %destination, "call transferred by a supervisor");
                Answer::Transferred(agent, call, destination)
            }
            Ask::Logout(a) => {
                self.check_agent(who, &a).await?;
                d.logout(&a).await?;
                info!(supervisor = %who.0, agent = %a, "agent logged out by a supervisor");
                Answer::LoggedOut(a)
            }
            Ask::TerminalTime(a) => {
                self.check_agent(who, &a).await?;
                Answer::TerminalTime(a.clone(), d.terminal_time(&a).await?)
            }
            Ask::Board(q) => {
                self.check_queue(who, q).await?;
                self.statuses_if_stale().await;
                Answer::Board(Box::new(self.snapshot(q)))
            }
        };
        Ok(answer)
    }

    /// The board of `queue` now, for whoever already may see it.
    pub fn snapshot(&self, queue: QueueId) -> super::board::QueueSnapshot {
        self.board().snapshot(queue, Timestamp::now())
    }

    /// The platform acts on an agent's "current" call: refuses unless that is, beyond
    /// doubt, `call`. The agent holding only `call` is beyond doubt; holding several, the
    /// platform's status must name `call`'s caller and no other held call may share it.
    async fn check_current_call(
        &self,
        agent: &AgentId,
        call: crate::converja::CallId,
    ) -> Result<(), Denied> {
        let held = self
            .board()
            .agent(agent)
            .map(|c| c.held())
            .unwrap_or_default();
        let Some(caller) = held.get(&call).cloned() else {
            return Err(Denied::CallNotHeld {
                agent: agent.clone(),
                call,
            });
        };
        if held.len() == 1 {
            return Ok(());
        }
        let status = self.directory.agent_status(agent).await?;
        let shared = held.values().filter(|c| **c == caller).count() > 1;
        if status.show.as_deref() == Some(caller.as_str()) && !shared {
            Ok(())
        } else {
            Err(Denied::NotTheCurrentCall {
                agent: agent.clone(),
                call,
            })
        }
    }

    /// Publishes the board's figures as gauges labelled by queue.
    fn publish_gauges(&self) {
        let now = Timestamp::now();
        let board = self.board();
        for queue in board.queues() {
            let stats = board.stats(queue, now);
            let q = queue.to_string();
            metrics::gauge!(telemetry::QUEUE_WAITING, "queue" => q.clone())
                .set(stats.waiting as f64);
            let longest = stats
                .longest_wait_since
                .map_or(0.0, |s| (now.0 - s.0).max(0.0));
            metrics::gauge!(telemetry::QUEUE_LONGEST_WAIT, "queue" => q.clone()).set(longest);
            for w in &stats.windows {
                let window = humantime::format_duration(w.length).to_string();
                let (q, window) = (q.clone(), window);
                metrics::gauge!(telemetry::QUEUE_ANSWERED, "queue" => q.clone(), "window" => window.clone())
                    .set(w.answered as f64);
                metrics::gauge!(telemetry::QUEUE_MISSED, "queue" => q.clone(), "window" => window.clone())
                    .set(w.missed as f64);
                metrics::gauge!(telemetry::QUEUE_ABANDONED, "queue" => q.clone(), "window" => window.clone())
                    .set(w.abandoned as f64);
                // No figure without calls to measure: the series pauses rather than lies.
                if let Some(level) = w.service_level {
                    metrics::gauge!(telemetry::QUEUE_SERVICE_LEVEL, "queue" => q.clone(), "window" => window.clone())
                        .set(level);
                }
                if let Some(wait) = w.avg_wait {
                    metrics::gauge!(telemetry::QUEUE_AVG_WAIT, "queue" => q.clone(), "window" => window.clone())
                        .set(wait);
                }
                if let Some(handle) = w.avg_handle {
                    metrics::gauge!(telemetry::QUEUE_AVG_HANDLE, "queue" => q, "window" => window)
                        .set(handle);
                }
            }
            for state in ["idle", "busy", "paused", "logged_out", "unknown"] {
                let n = board
                    .agents_of(queue)
                    .filter(|a| presence_label(&a.presence) == state)
                    .count();
                metrics::gauge!(telemetry::QUEUE_AGENTS, "queue" => q.clone(), "state" => state)
                    .set(n as f64);
            }
        }
    }
}

/// The metric label of a presence.
fn presence_label(p: &Presence) -> &'static str {
    match p {
        Presence::Idle => "idle",
        Presence::Busy { .. } => "busy",
        Presence::Paused { .. } => "paused",
        Presence::LoggedOut => "logged_out",
        Presence::Unknown => "unknown",
    }
}
