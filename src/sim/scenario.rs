//! The TOML scenario a simulator run starts from: queues, agents, supervisors, call traffic
//! and the random seed that makes a run repeatable.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::world::{AgentModel, QueueModel, World};
use crate::config::HumanDuration;
use crate::converja::{AgentId, QueueId, Timestamp};

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed of every random choice (arrivals, callers, durations): same seed, same run.
    #[serde(default)]
    pub seed: u64,
    /// The queues.
    #[serde(default)]
    pub queues: Vec<QueueSpec>,
    /// The agents.
    #[serde(default)]
    pub agents: Vec<AgentSpec>,
    /// Generated call traffic; absent means calls only start when a test starts them.
    pub traffic: Option<Traffic>,
    /// Which of an agent's calls `DELETE /calls/active`, `PUT /calls/active/local` and the
    /// status's `show` refer to when the agent has several: the API does not say.
    #[serde(default)]
    pub current_call: CurrentCall,
}

/// The platform's "current call" of an agent holding several.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CurrentCall {
    /// The call answered last.
    #[default]
    Newest,
    /// The call answered first.
    Oldest,
}

/// One queue of the scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    /// Queue id.
    pub id: QueueId,
    /// Display name.
    pub name: String,
    /// Agent ids serving the queue.
    #[serde(default)]
    pub agents: Vec<AgentId>,
    /// Supervisors.
    #[serde(default)]
    pub supervisors: Vec<SupervisorSpec>,
}

/// One supervisor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSpec {
    /// Supervisor id.
    pub id: AgentId,
    /// Display name.
    pub name: String,
}

/// One agent of the scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Agent id, e.g. "22010".
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// Logged in at start.
    #[serde(default = "yes")]
    pub logged_in: bool,
}

fn yes() -> bool {
    true
}

/// Generated call traffic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Mean time between new calls, over all queues (exponentially distributed).
    pub arrival_interval: HumanDuration,
    /// Mean call duration once answered (uniform in 0.5x-1.5x).
    pub duration: HumanDuration,
    /// How long a caller waits in the queue before hanging up (the longest, when
    /// `patience_min` is set).
    pub patience: HumanDuration,
    /// The shortest patience: each caller's is drawn between this and `patience`, so that
    /// some hang up at once (short abandons) and others late.
    pub patience_min: Option<HumanDuration>,
    /// A free agent takes up to this long to answer a ringing call (drawn per call): what
    /// moves the service level. Absent: at once.
    pub answer_delay: Option<HumanDuration>,
    /// Agents take breaks, paused with a reason, by turns.
    pub breaks: Option<Breaks>,
    /// Calls an agent holds at once when calls are dispatched to it.
    #[serde(default = "one")]
    pub calls_per_agent: usize,
    /// Agents logged out by a request log in again after this long (absent: never).
    pub relogin_after: Option<HumanDuration>,
}

fn one() -> usize {
    1
}

/// Agents' breaks: each agent pauses about every `every` for about `length`, with one of
/// `reasons`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breaks {
    /// Mean time between an agent's breaks.
    pub every: HumanDuration,
    /// Mean length of a break.
    pub length: HumanDuration,
    /// Pause reason ids to pick from.
    pub reasons: Vec<u32>,
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read scenario {}: {e}", path.display()))?;
        let scenario: Scenario = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("scenario {}: {e}", path.display()))?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Checks references between queues and agents.
    pub fn check(&self) -> anyhow::Result<()> {
        for q in &self.queues {
            for a in &q.agents {
                if !self.agents.iter().any(|s| &s.id == a) {
                    anyhow::bail!(
                        "queue {} lists agent {a}, which is not among [[agents]]",
                        q.id
                    );
                }
            }
        }
        for a in &self.agents {
            if !crate::config::valid_nickname(a.id.as_str()) {
                anyhow::bail!(
                    "agent id `{}` must be 1-64 characters of A-Z a-z 0-9 . _ -",
                    a.id
                );
            }
        }
        if let Some(t) = &self.traffic {
            if t.arrival_interval.0 < Duration::from_millis(1) {
                anyhow::bail!("traffic.arrival_interval must be at least 1ms");
            }
            if t.calls_per_agent == 0 {
                anyhow::bail!("traffic.calls_per_agent must be at least 1");
            }
            if t.patience_min.is_some_and(|min| min.0 > t.patience.0) {
                anyhow::bail!("traffic.patience_min must not exceed traffic.patience");
            }
            if let Some(b) = &t.breaks
                && (b.reasons.is_empty() || b.reasons.contains(&0) || b.every.0.is_zero())
            {
                anyhow::bail!("traffic.breaks needs reasons above 0 and a non-zero `every`");
            }
        }
        Ok(())
    }

    /// The world at the start of the run.
    pub fn world(&self, first_call: u64, now: Timestamp) -> World {
        let mut world = World::new(first_call);
        world.current_call = self.current_call;
        for a in &self.agents {
            world.agents.insert(
                a.id.clone(),
                AgentModel {
                    name: a.name.clone(),
                    logged_in: a.logged_in,
                    paused: None,
                    calls: vec![],
                    since: now,
                },
            );
        }
        for q in &self.queues {
            world.queues.insert(
                q.id,
                QueueModel {
                    name: q.name.clone(),
                    agents: q.agents.clone(),
                    supervisors: q
                        .supervisors
                        .iter()
                        .map(|s| (s.id.clone(), s.name.clone()))
                        .collect(),
                },
            );
        }
        world
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("config/ exists") {
            let path = entry.expect("readable").path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("scenario"))
            {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert!(!s.queues.is_empty(), "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 1, "no scenario in {}", dir.display());
    }

    #[test]
    fn traffic_that_cannot_happen_is_refused() {
        let traffic = |extra: &str| {
            let text = format!(
                "[traffic]\narrival_interval = \"4s\"\nduration = \"1m\"\npatience = \"30s\"\n{extra}"
            );
            toml::from_str::<Scenario>(&text).unwrap().check()
        };
        assert!(traffic("patience_min = \"3s\"\nanswer_delay = \"20s\"").is_ok());
        let err = traffic("patience_min = \"1m\"").unwrap_err().to_string();
        assert!(err.contains("patience_min"), "{err}");
        let err = traffic("[traffic.breaks]\nevery = \"4m\"\nlength = \"1m\"\nreasons = [0]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("breaks"), "{err}");
    }

    #[test]
    fn dangling_agent_references_are_refused() {
        let s: Scenario =
            toml::from_str("[[queues]]\nid = 7\nname = \"x\"\nagents = [\"1\"]\n").unwrap();
        assert!(s.check().unwrap_err().to_string().contains("agent 1"));
    }
}
