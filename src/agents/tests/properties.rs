//! Random interleavings of UI events, platform events and time against the core. Whatever
//! the order, once settled every logged-in socket shows exactly the calls the platform has
//! for its agent (up to `maxCalls`, oldest first), each NEW_CALL once, and a CALL_ENDED
//! only for a call it was shown.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Step {
    Open,
    Login {
        socket: usize,
        agent: usize,
        max: u32,
    },
    Logout {
        socket: usize,
    },
    Close {
        socket: usize,
    },
    Start {
        agent: usize,
        call: u64,
    },
    Finish {
        call: u64,
    },
    End {
        socket: usize,
        call: u64,
    },
    Reject {
        socket: usize,
        call: u64,
    },
    Wait {
        ms: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Open),
        3 => (0..4usize, 0..3usize, 1..4u32).prop_map(|(socket, agent, max)| Step::Login { socket, agent, max }),
        1 => (0..4usize).prop_map(|socket| Step::Logout { socket }),
        1 => (0..4usize).prop_map(|socket| Step::Close { socket }),
        4 => (0..3usize, 1..12u64).prop_map(|(agent, call)| Step::Start { agent, call }),
        2 => (1..12u64).prop_map(|call| Step::Finish { call }),
        2 => (0..4usize, 1..12u64).prop_map(|(socket, call)| Step::End { socket, call }),
        1 => (0..4usize, 1..12u64).prop_map(|(socket, call)| Step::Reject { socket, call }),
        2 => (0..40_000u64).prop_map(|ms| Step::Wait { ms }),
    ]
}

fn agent_name(agent: usize) -> String {
    format!("2201{agent}")
}

/// What the platform has, as the steps made it.
#[derive(Default)]
struct Model {
    /// Active calls by agent, in the order they started.
    active: BTreeMap<String, Vec<u64>>,
    /// Calls that ever started: an id is never reused.
    started: HashSet<u64>,
    /// Calls a UI rejected: still active on the platform, never shown again.
    rejected: HashSet<u64>,
    /// Calls each socket rejected: its UI dropped them itself.
    dropped: HashMap<usize, HashSet<u64>>,
    /// Logged-in sockets: username and the log position of their session's start.
    logged_in: HashMap<usize, (String, usize)>,
    /// `maxCalls` of each username's session.
    max: HashMap<String, u32>,
}

impl Model {
    fn end(&mut self, call: u64) {
        for calls in self.active.values_mut() {
            calls.retain(|c| *c != call);
        }
    }
}

/// The core under test, its sockets, and the platform the steps describe.
struct Run {
    bench: Bench,
    uis: Vec<Option<Ui>>,
    model: Model,
}

impl Run {
    /// Sends `event` from socket `socket` if it is open; its reply.
    async fn send(&mut self, socket: usize, event: ClientEvent) -> Option<Value> {
        let ui = self.uis.get(socket)?.as_ref()?;
        Some(ui.send(event).await)
    }

    async fn apply(&mut self, step: Step) -> Result<(), TestCaseError> {
        let ok = |reply: &Option<Value>| reply.as_ref().is_some_and(|r| r.get("error").is_none());
        match step {
            Step::Open if self.uis.len() < 4 => self.uis.push(Some(self.bench.open(None))),
            Step::Open => {}
            Step::Login { socket, agent, max } => {
                let name = agent_name(agent);
                let mark = self
                    .uis
                    .get(socket)
                    .and_then(Option::as_ref)
                    .map(Ui::log_len);
                let reply = self.send(socket, connect(&name, max)).await;
                if ok(&reply)
                    && let Some(mark) = mark
                {
                    let entry = self
                        .model
                        .logged_in
                        .entry(socket)
                        .or_insert((name.clone(), mark));
                    prop_assert_eq!(&entry.0, &name);
                    self.model.max.insert(name, max);
                }
            }
            Step::Logout { socket } => {
                let reply = self.send(socket, ClientEvent::UserDisconnect(None)).await;
                if ok(&reply)
                    && let Some(reply) = reply
                {
                    let name = reply["username"].as_str().unwrap().to_owned();
                    self.model.logged_in.retain(|_, (n, _)| *n != name);
                }
            }
            Step::Close { socket } => {
                if let Some(ui) = self.uis.get_mut(socket).and_then(Option::take) {
                    ui.close().await;
                    self.model.logged_in.remove(&socket);
                }
            }
            // The platform starts a call once, and ends only a call that started.
            Step::Start { agent, call } => {
                if self.model.started.insert(call) {
                    let name = agent_name(agent);
                    self.model
                        .active
                        .entry(name.clone())
                        .or_default()
                        .push(call);
                    self.bench.start_call(&name, call);
                }
            }
            Step::Finish { call } => {
                if self.model.started.contains(&call) {
                    self.model.end(call);
                    self.bench.core.call_ended(CallId(call));
                }
            }
            Step::End { socket, call } => {
                if ok(&self.send(socket, ClientEvent::EndCall(CallId(call))).await) {
                    self.model.end(call);
                }
            }
            Step::Reject { socket, call } => {
                let reason = "x".to_owned();
                let event = ClientEvent::NewCallError {
                    call: CallId(call),
                    reason,
                };
                if ok(&self.send(socket, event).await) {
                    self.model.rejected.insert(call);
                    self.model.dropped.entry(socket).or_default().insert(call);
                }
            }
            Step::Wait { ms } => after(Duration::from_millis(ms)).await,
        }
        Ok(())
    }

    /// Once settled, every logged-in socket against the platform.
    fn check(&mut self) -> Result<(), TestCaseError> {
        let Run { uis, model, .. } = self;
        for (socket, (name, mark)) in &model.logged_in {
            let ui = uis[*socket].as_mut().unwrap();
            let mut shown: Vec<u64> = Vec::new();
            let mut seen = HashSet::new();
            for (event, payload) in ui.log_since(*mark) {
                let Some(id) = payload["callId"].as_str() else {
                    continue;
                };
                let call: u64 = id.parse().unwrap();
                match event {
                    "NEW_CALL" => {
                        prop_assert!(seen.insert(call), "NEW_CALL {} twice on one socket", call);
                        shown.push(call);
                    }
                    "CALL_ENDED" => {
                        prop_assert!(shown.contains(&call), "CALL_ENDED {} never shown", call);
                        shown.retain(|c| *c != call);
                    }
                    _ => {}
                }
            }
            // Never a call that is not there; never one hidden that the capacity allows. (A
            // call shown before a repeated USER_CONNECT lowered `maxCalls` stays shown: the
            // platform still has it.)
            if let Some(dropped) = model.dropped.get(socket) {
                shown.retain(|c| !dropped.contains(c));
            }
            let max = model.max[name] as usize;
            let all = model.active.get(name).cloned().unwrap_or_default();
            let active: Vec<u64> = all
                .iter()
                .copied()
                .filter(|c| !model.rejected.contains(c))
                .collect();
            for call in &shown {
                prop_assert!(
                    all.contains(call),
                    "socket {} of {} shows call {} the platform does not have",
                    socket,
                    name,
                    call
                );
            }
            for call in active.iter().take(max) {
                prop_assert!(
                    shown.contains(call),
                    "socket {} of {} (max {}) does not show call {}: shows {:?}",
                    socket,
                    name,
                    max,
                    call,
                    shown
                );
            }
        }
        Ok(())
    }
}

async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut run = Run {
        bench: Bench::new(),
        uis: Vec::new(),
        model: Model::default(),
    };
    for step in steps {
        run.apply(step).await?;
    }
    after(SETTLE).await;
    run.check()?;
    run.bench.stop().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_logged_in_socket_shows_what_the_platform_has(steps in prop::collection::vec(step(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(run(steps))?;
    }
}
