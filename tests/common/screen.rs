//! What an agent's screen shows, read from the events its UI received, against what the
//! platform has.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use converja_bridge::converja::CallId;
use converja_bridge::sim::SimHandle;

use super::PATIENCE;
use super::agent_ui::Puppet;

/// Each agent's active calls on the platform.
pub(crate) async fn platform_calls(sim: &SimHandle) -> BTreeMap<String, BTreeSet<CallId>> {
    sim.world()
        .await
        .agents
        .iter()
        .map(|(id, a)| (id.to_string(), a.calls.iter().copied().collect()))
        .collect()
}

/// The calls `username`'s UI was given and not told ended.
pub(crate) fn shown(ui: &mut Puppet, username: &str) -> BTreeSet<CallId> {
    let mut calls = BTreeSet::new();
    for line in ui.events(username) {
        let id = |l: &str| -> Option<CallId> {
            let v: serde_json::Value = serde_json::from_str(l.split_once(' ')?.1).ok()?;
            Some(CallId(v["callId"].as_str()?.parse().ok()?))
        };
        if line.starts_with("\"NEW_CALL\"") {
            calls.extend(id(&line));
        } else if line.starts_with("\"CALL_ENDED\"")
            && let Some(call) = id(&line)
        {
            calls.remove(&call);
        }
    }
    calls
}

/// Waits until every UI shows exactly the platform's calls of its agent.
pub(crate) async fn settled(ui: &mut Puppet, sim: &SimHandle, usernames: &[&str]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let platform = platform_calls(sim).await;
        let mut differing = Vec::new();
        for username in usernames {
            let on_screen = shown(ui, username);
            let on_platform = &platform[*username];
            if &on_screen != on_platform {
                let extra: Vec<_> = on_screen.difference(on_platform).collect();
                let missing: Vec<_> = on_platform.difference(&on_screen).collect();
                differing.push(format!("{username}: shown, not on the platform {extra:?}; on the platform, not shown {missing:?}"));
            }
        }
        if differing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "UIs differ from the platform: {differing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
