//! Platform-link benchmark: request/response round trips through the bridge's link, pending
//! table and dispatcher, Prosody and the simulator, with N requests in flight, over TCP and
//! over BOSH; next to the same exchange done in the same run by a bare tokio-xmpp stream over
//! TCP without link or table (the ceiling on this machine).
//!
//! Run: `cargo bench --bench platform_link` (options: `-- --requests 20000 --in-flight 1,16,64`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use converja_bridge::config::{ConverjaConfig, HumanDuration, QueueSelection};
use converja_bridge::converja::{AgentId, Message, Request};
use converja_bridge::platform::Client;
use converja_bridge::sim::{self, Scenario};
use converja_bridge::xmpp::{Stream, connect};
use converja_testkit::prosody::LocalProsody;
use futures::{SinkExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::{BareJid, FullJid};
use tokio_xmpp::parsers::message::{Id, Lang, Message as XmppMessage, MessageType};
use tokio_xmpp::parsers::muc::Muc;
use tokio_xmpp::parsers::muc::muc::History;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::xmlstream::{FallibleStreamElement, XmppStreamElement};

const DOMAIN: &str = "bench.test";
const SCENARIO: &str = r#"
seed = 1
[[queues]]
id = 7
name = "Financeiro"
agents = ["22010"]
[[agents]]
id = "22010"
name = "Maria"
"#;

struct Stats {
    count: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Stats {
    fn from(mut latencies: Vec<Duration>, elapsed: Duration) -> Stats {
        latencies.sort_unstable();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        Stats {
            count: latencies.len(),
            elapsed,
            p50: at(0.50),
            p99: at(0.99),
        }
    }

    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

/// The bridge path: `Client::agent_status` with `in_flight` concurrent callers.
async fn through_bridge(platform: &Client, total: usize, in_flight: usize) -> Stats {
    let agent = AgentId::new("22010");
    let started = Instant::now();
    let per_worker = total / in_flight;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let p = platform.clone();
        let agent = agent.clone();
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let t = Instant::now();
                p.agent_status(&agent)
                    .await
                    .expect("the bridge request succeeds");
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut all = Vec::with_capacity(total);
    while let Some(r) = workers.join_next().await {
        all.extend(r.expect("worker"));
    }
    Stats::from(all, started.elapsed())
}

/// The ceiling: one task writes requests and reads responses on a raw tokio-xmpp stream,
/// keeping `in_flight` outstanding, matching by `to` in a plain map.
async fn bare(
    stream: &mut Stream,
    filis: &FullJid,
    total: usize,
    in_flight: usize,
    first_id: u64,
) -> Stats {
    let agent = AgentId::new("22010");
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(total);
    let mut next = first_id;
    let started = Instant::now();
    let mut issued = 0;
    while latencies.len() < total {
        while issued < total && sent.len() < in_flight {
            let body =
                Message::Request(Request::AgentStatus(agent.clone()).to_message(next)).to_json();
            let mut msg = XmppMessage::new_with_type(MessageType::Chat, Some(filis.clone().into()))
                .with_body(Lang::default(), body);
            msg.id = Some(Id(next.to_string()));
            stream
                .feed(&XmppStreamElement::Stanza(Stanza::Message(msg)))
                .await
                .expect("write");
            sent.insert(next, Instant::now());
            next += 1;
            issued += 1;
        }
        <Stream as SinkExt<&XmppStreamElement>>::flush(stream)
            .await
            .expect("flush");
        match stream.next().await {
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(Stanza::Message(m))))) => {
                let Some(body) = m.bodies.values().next() else {
                    continue;
                };
                if let Ok(Message::Response(r)) = Message::parse(body)
                    && let Some(t) = sent.remove(&r.to)
                {
                    latencies.push(t.elapsed());
                }
            }
            Some(Ok(_)) | Some(Err(tokio_xmpp::xmlstream::ReadError::SoftTimeout)) => {}
            other => panic!("bare stream failed: {other:?}"),
        }
    }
    Stats::from(latencies, started.elapsed())
}

async fn join(stream: &mut Stream, room: &BareJid, nick: &str) {
    let occupant = room.with_resource_str(nick).expect("valid nick");
    let presence = Presence::available()
        .with_to(occupant)
        .with_payload(Muc::new().with_history(History::new().with_maxstanzas(0)));
    stream
        .send(&XmppStreamElement::Stanza(Stanza::Presence(presence)))
        .await
        .expect("join");
    loop {
        if let Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(Stanza::Presence(p))))) =
            stream.next().await
            && p.from
                .as_ref()
                .is_some_and(|f| f.resource().is_some_and(|r| r.as_str() == nick))
        {
            return;
        }
    }
}

/// BOSH HTTP requests answered so far, from the bridge's own metrics.
fn bosh_requests() -> f64 {
    use converja_bridge::telemetry::{BOSH_REQUESTS, counter};
    counter(BOSH_REQUESTS, "outcome=\"ok\"")
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let total: usize = arg("--requests")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let levels: Vec<usize> = arg("--in-flight")
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 16, 64]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        converja_bridge::telemetry::prometheus();
        let prosody = LocalProsody::start(DOMAIN, &[("bridge", "b"), ("bosh", "h"), ("platform", "p"), ("bare", "r")]).unwrap_or_else(|e| panic!("{e}"));
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let scenario: Scenario = toml::from_str(SCENARIO).expect("scenario");
        let conference: BareJid = prosody.conference.parse().expect("domain");
        let sim = sim::start(prosody.account("platform", "p"), conference.clone(), scenario, &tracker, cancel.clone());
        sim.ready().await;
        let cfg = ConverjaConfig {
            conference: conference.clone(),
            request_timeout: HumanDuration(Duration::from_secs(30)),
            queues: QueueSelection::default(),
            queue_refresh: HumanDuration(Duration::from_secs(3600)),
            max_pending: 100_000,
        };
        let platform = Client::start(prosody.account("bridge", "b"), "converja-bridge".into(), &cfg, &tracker, cancel.clone());
        let over_bosh = Client::start(prosody.bosh_account("bosh", "h"), "converja-bridge".into(), &cfg, &tracker, cancel.clone());
        while !platform.readiness().is_ready() || !over_bosh.readiness().is_ready() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (mut raw, _) = connect(&prosody.account("bare", "r"), &tracker).await.expect("bare stream");
        let filis_room: BareJid = format!("filis@{conference}").parse().expect("room");
        join(&mut raw, &filis_room, "bare-client").await;
        let filis: FullJid = format!("filis@{conference}/filis").parse().expect("occupant");
        // Warm both paths up.
        through_bridge(&platform, 500, 8).await;
        through_bridge(&over_bosh, 500, 8).await;
        bare(&mut raw, &filis, 500, 8, 1).await;

        println!("platform link: {total} GET /agents/:id/status round trips per row, Prosody + converja-sim on loopback");
        println!(
            "{:>9} | {:>22} | {:>22} | {:>22} | {:>8} | {:>8} | {:>14}",
            "in flight", "bridge TCP req/s p50/p99", "bridge BOSH req/s p50/p99", "bare TCP req/s p50/p99", "BOSH/TCP", "TCP/bare", "HTTP per req"
        );
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let cell = |s: &Stats| format!("{:>7.0} {:>5.2}/{:>5.2} ms", s.rate(), ms(s.p50), ms(s.p99));
        let mut id = 1_000_000;
        for n in levels {
            let t = through_bridge(&platform, total, n).await;
            let http_before = bosh_requests();
            let b = through_bridge(&over_bosh, total, n).await;
            let http_per_request = (bosh_requests() - http_before) / total as f64;
            let r = bare(&mut raw, &filis, total, n, id).await;
            id += total as u64 + 1;
            println!(
                "{:>9} | {:>24} | {:>25} | {:>22} | {:>7.2}x | {:>7.2}x | {:>14.2}",
                n,
                cell(&t),
                cell(&b),
                cell(&r),
                b.rate() / t.rate(),
                t.rate() / r.rate(),
                http_per_request
            );
        }
        cancel.cancel();
        tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        drop(Arc::new(prosody));
    });
}
