use std::sync::Mutex as StdMutex;

use super::*;
use crate::converja::{
    AgentState, AgentStatus, CallDidStart, CallId, CallRinging, PauseReason, PlatformError,
    QueueAgent, QueueCalls, QueueInfo, QueueSupervisor,
};

/// A platform of two queues: 7 supervised by 9001, 8 by 9002; Maria (22010) in 7, João
/// (22011) in 8.
#[derive(Default)]
struct FakeDirectory {
    statuses: StdMutex<BTreeMap<AgentId, AgentStatus>>,
    acts: StdMutex<Vec<String>>,
}

fn maria() -> AgentId {
    AgentId::new("22010")
}

impl Directory for FakeDirectory {
    async fn queues(&self) -> Result<Vec<QueueInfo>, PlatformError> {
        Ok(vec![
            QueueInfo {
                id: QueueId(7),
                name: "Financeiro".into(),
            },
            QueueInfo {
                id: QueueId(8),
                name: "Suporte".into(),
            },
        ])
    }
    async fn queue_agents(&self, queue: QueueId) -> Result<Vec<QueueAgent>, PlatformError> {
        let (id, name) = if queue == QueueId(7) {
            ("22010", "Maria")
        } else {
            ("22011", "João")
        };
        Ok(vec![QueueAgent {
            agent: AgentId::new(id),
            name: name.into(),
        }])
    }
    async fn queue_supervisors(
        &self,
        queue: QueueId,
    ) -> Result<Vec<QueueSupervisor>, PlatformError> {
        let id = if queue == QueueId(7) { "9001" } else { "9002" };
        Ok(vec![QueueSupervisor {
            supervisor: AgentId::new(id),
            name: "S".into(),
        }])
    }
    async fn queue_calls(&self, queue: QueueId) -> Result<QueueCalls, PlatformError> {
        Ok(QueueCalls {
            calls: vec![],
            queue,
            timestamp: Timestamp(0.0),
        })
    }
    async fn agent_status(&self, agent: &AgentId) -> Result<AgentStatus, PlatformError> {
        Ok(self
            .statuses
            .lock()
            .unwrap()
            .get(agent)
            .cloned()
            .unwrap_or(AgentStatus {
                agent: agent.clone(),
                name: AgentState::Idle,
                show: None,
                timestamp: Timestamp(0.0),
            }))
    }
    async fn terminal_time(&self, _: &AgentId) -> Result<f64, PlatformError> {
        Ok(1.0)
    }
    async fn set_paused(
        &self,
        agent: &AgentId,
        reason: Option<PauseReason>,
    ) -> Result<(), PlatformError> {
        self.acts
            .lock()
            .unwrap()
            .push(format!("paused {agent} {reason:?}"));
        Ok(())
    }
    async fn transfer(&self, agent: &AgentId, number: &str) -> Result<(), PlatformError> {
        self.acts
            .lock()
            .unwrap()
            .push(format!("transfer {agent} {number}"));
        Ok(())
    }
    async fn logout(&self, agent: &AgentId) -> Result<(), PlatformError> {
        self.acts.lock().unwrap().push(format!("logout {agent}"));
        Ok(())
    }
    async fn until_ready(&self, _: Duration) -> bool {
        true
    }
}

fn supervision() -> Arc<Supervision<FakeDirectory>> {
    let settings = SupervisionSettings::from_config(&SupervisorsConfig::default());
    Arc::new(Supervision::new(
        settings,
        FakeDirectory::default(),
        TaskTracker::new(),
        CancellationToken::new(),
    ))
}

fn ana() -> Supervisor {
    Supervisor(AgentId::new("9001"))
}

fn ring(call: u64, at: f64) -> Event {
    Event::CallRinging(CallRinging {
        callid: CallId(call),
        origin: format!("0{call}"),
        queue: QueueId(7),
        timestamp: Timestamp(at),
    })
}

fn start(call: u64, at: f64) -> Event {
    Event::CallDidStart(CallDidStart {
        callid: CallId(call),
        destination: maria(),
        origin: format!("0{call}"),
        queue: QueueId(7),
        timestamp: Timestamp(at),
    })
}

#[tokio::test(start_paused = true)]
async fn a_supervisor_sees_and_acts_on_their_queues_only() {
    let s = supervision();
    let queues = s.ask(&ana(), Ask::Queues).await.unwrap();
    assert_eq!(
        queues,
        Answer::Queues(vec![QueueInfo {
            id: QueueId(7),
            name: "Financeiro".into()
        }])
    );
    let refused = s
        .ask(&ana(), Ask::QueueCalls(QueueId(8)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "not_your_queue");
    let refused = s
        .ask(&ana(), Ask::Logout(AgentId::new("22011")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "not_your_agent");
    s.ask(&ana(), Ask::Pause(maria(), PauseReason(3)))
        .await
        .unwrap();
    s.ask(&ana(), Ask::Logout(maria())).await.unwrap();
    assert_eq!(
        *s.directory.acts.lock().unwrap(),
        vec!["paused 22010 Some(PauseReason(3))", "logout 22010"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_transfer_acts_only_on_the_call_named() {
    let s = supervision();
    s.reconcile().await.unwrap();
    let transfer = |call| Ask::Transfer {
        agent: maria(),
        call: CallId(call),
        destination: "11001".into(),
    };
    // A call Maria does not hold.
    let refused = s.ask(&ana(), transfer(1)).await.unwrap_err();
    assert_eq!(refused.code(), "call_not_held");
    s.apply(&ring(1, 1.0));
    s.apply(&start(1, 2.0));
    s.ask(&ana(), transfer(1)).await.unwrap();
    // With two calls, the platform's current one is the other: nothing is done.
    s.apply(&ring(2, 3.0));
    s.apply(&start(2, 4.0));
    s.directory.statuses.lock().unwrap().insert(
        maria(),
        AgentStatus {
            agent: maria(),
            name: AgentState::Busy,
            show: Some("02".into()),
            timestamp: Timestamp(4.0),
        },
    );
    let refused = s.ask(&ana(), transfer(1)).await.unwrap_err();
    assert_eq!(refused.code(), "not_the_current_call");
    s.ask(&ana(), transfer(2)).await.unwrap();
    assert_eq!(
        *s.directory.acts.lock().unwrap(),
        vec!["transfer 22010 11001", "transfer 22010 11001"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_reaches_a_screen_as_one_batch_per_coalescing_period() {
    let s = supervision();
    s.reconcile().await.unwrap();
    let mut feed = s.feed();
    feed.following().follow(QueueId(7));
    let started = tokio::time::Instant::now();
    for call in 1..=500 {
        s.apply(&ring(call, f64::from(call as u32)));
    }
    let calls = |batch: &[Update]| {
        batch
            .iter()
            .filter(|u| matches!(u, Update::Call(_)))
            .count()
    };
    let stats = |batch: &[Update]| {
        batch
            .iter()
            .filter(|u| matches!(u, Update::Stats(_)))
            .count()
    };
    // The first change goes out at once; the rest of the burst waits out the period.
    let first = feed.next().await;
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!((calls(&first), stats(&first)), (1, 1));
    let second = feed.next().await;
    assert_eq!(started.elapsed(), s.settings.coalesce);
    assert_eq!((calls(&second), stats(&second)), (499, 1));
    for call in 1..=500 {
        s.apply(&start(call, 600.0 + f64::from(call as u32)));
    }
    let third = feed.next().await;
    assert_eq!(
        started.elapsed(),
        s.settings.coalesce * 2,
        "the next batch waits out the period"
    );
    // 500 answers, the queue's figures once, Maria once, not 500 times.
    assert_eq!((calls(&third), stats(&third)), (500, 1));
    let agents: Vec<_> = third
        .iter()
        .filter(|u| matches!(u, Update::Agent(..)))
        .collect();
    assert_eq!(agents.len(), 1);
    match third.iter().find(|u| matches!(u, Update::Stats(_))) {
        Some(Update::Stats(stats)) => assert_eq!(stats.waiting, 0),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_feed_ignores_queues_it_does_not_follow() {
    let s = supervision();
    let mut feed = s.feed();
    feed.following().follow(QueueId(8));
    s.apply(&ring(1, 1.0));
    let waited = tokio::time::timeout(Duration::from_secs(60), feed.next()).await;
    assert!(waited.is_err(), "{waited:?}");
    feed.following().follow(QueueId(7));
    s.apply(&ring(2, 2.0));
    let batch = feed.next().await;
    assert!(
        batch
            .iter()
            .any(|u| matches!(u, Update::Call(c) if c.call == CallId(2)))
    );
    assert!(
        !batch
            .iter()
            .any(|u| matches!(u, Update::Call(c) if c.call == CallId(1)))
    );
}
