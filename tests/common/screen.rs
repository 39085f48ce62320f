//! What an agent's screen shows, read from the events its UI received, against what the
//! platform has.

use std::collections::{BTreeMap, BTreeSet};

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

/// What happened to a call on a screen.
enum Change {
    Shown(CallId),
    Ended(CallId),
}

/// The NEW_CALLs and CALL_ENDEDs `username`'s UI received, in order.
fn changes(ui: &mut Puppet, username: &str) -> Vec<Change> {
    let id = |l: &str| -> Option<CallId> {
        let v: serde_json::Value = serde_json::from_str(l.split_once(' ')?.1).ok()?;
        Some(CallId(v["callId"].as_str()?.parse().ok()?))
    };
    ui.events(username)
        .iter()
        .filter_map(|line| {
            if line.starts_with("\"NEW_CALL\"") {
                id(line).map(Change::Shown)
            } else if line.starts_with("\"CALL_ENDED\"") {
                id(line).map(Change::Ended)
            } else {
                None
            }
        })
        .collect()
}

/// The calls `username`'s UI was given and not told ended.
pub(crate) fn shown(ui: &mut Puppet, username: &str) -> BTreeSet<CallId> {
    let mut calls = BTreeSet::new();
    for change in changes(ui, username) {
        match change {
            Change::Shown(call) => calls.insert(call),
            Change::Ended(call) => calls.remove(&call),
        };
    }
    calls
}

/// Asserts that `username`'s UI was never given a call it already showed.
pub(crate) fn nothing_twice(ui: &mut Puppet, username: &str) {
    let mut showing = BTreeSet::new();
    for change in changes(ui, username) {
        match change {
            Change::Shown(call) => {
                assert!(showing.insert(call), "{username} was given {call} twice");
            }
            Change::Ended(call) => {
                showing.remove(&call);
            }
        }
    }
}

/// Waits until every UI shows exactly the platform's calls of its agent.
pub(crate) async fn settled(ui: &mut Puppet, sim: &SimHandle, usernames: &[&str]) {
    let ui = std::cell::RefCell::new(ui);
    super::poll_for("every UI shows the platform's calls;", PATIENCE, || async {
        let platform = platform_calls(sim).await;
        let mut ui = ui.borrow_mut();
        let mut differing = Vec::new();
        for username in usernames {
            let on_screen = shown(&mut ui, username);
            let on_platform = &platform[*username];
            if &on_screen != on_platform {
                let extra: Vec<_> = on_screen.difference(on_platform).collect();
                let missing: Vec<_> = on_platform.difference(&on_screen).collect();
                differing.push(format!("{username}: shown, not on the platform {extra:?}; on the platform, not shown {missing:?}"));
            }
        }
        if differing.is_empty() {
            Ok(())
        } else {
            Err(format!("UIs differ from the platform: {differing:?}"))
        }
    })
    .await;
}
