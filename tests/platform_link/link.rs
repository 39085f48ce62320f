//! The link: outages, credentials, TLS, nicknames, restarts and BOSH.

use super::*;
use converja_testkit::local_server::ServerKind;

pub(crate) async fn link_loss_fails_pending_requests_and_the_link_recovers(via: Via) {
    let mut s = stack_with(via, scenario(), Duration::from_secs(30), 1000).await;
    s.platform
        .agent_status(&agent("22010"))
        .await
        .expect("works before");
    s.sim
        .set_faults(vec![FaultRule::new(
            "/agents",
            Fault {
                drop: true,
                ..Fault::default()
            },
        )])
        .await;
    let p = s.platform.clone();
    let pending = tokio::spawn(async move { p.agent_status(&agent("22010")).await });
    eventually("requests are pending", || async {
        s.platform.pending() >= 1
    })
    .await;
    let mut updates = s.platform.subscribe();
    let started = Instant::now();
    s.xmpp.kill();
    let err = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("fails at once")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, PlatformError::LinkDown(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    next_update(&mut updates, |u| (*u == Update::LinkDown).then_some(())).await;
    // While down, requests fail at once instead of waiting for the timeout.
    let err = s.platform.queues().await.unwrap_err();
    assert!(matches!(err, PlatformError::LinkDown(_)), "{err}");

    s.xmpp.restart().expect("prosody restarts");
    next_update(&mut updates, |u| (*u == Update::LinkUp).then_some(())).await;
    tokio::time::timeout(PATIENCE, s.sim.ready())
        .await
        .expect("the simulator rejoins");
    wait_ready(&s.platform).await;
    s.sim.set_faults(vec![]).await;
    let status = s
        .platform
        .agent_status(&agent("22010"))
        .await
        .expect("works again");
    assert_eq!(status.agent.as_str(), "22010");

    let ids: Vec<u64> = s
        .sim
        .requests()
        .await
        .iter()
        .map(|r| r.message.id)
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "request ids never reused: {ids:?}"
    );
}

pub(crate) async fn bad_credentials_are_reported_not_retried_silently(via: Via) {
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (prosody, _sim) = start_sim(scenario(), &tracker, &cancel).await;
    let cfg = converja(&prosody, Duration::from_secs(5));
    let wrong = converja_bridge::platform::Client::start(
        via.account(&prosody, "bridge", "wrong"),
        BRIDGE_NICK.into(),
        &cfg,
        &tracker,
        cancel.clone(),
    );
    let mut state = wrong.link_state();
    let s = tokio::time::timeout(PATIENCE, state.wait_for(|s| s.last_error.is_some()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(
        s.last_error.as_deref().unwrap().contains("credentials"),
        "{s:?}"
    );
    assert!(!wrong.readiness().is_ready());
    cancel.cancel();
}

/// TCP only: BOSH has no STARTTLS, and plain-HTTP URLs are refused by the configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn a_server_without_starttls_is_refused() {
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (prosody, _sim) = start_sim(scenario(), &tracker, &cancel).await;
    let cfg = converja(&prosody, Duration::from_secs(5));
    let mut tls = settings(&prosody, "bridge", "bridge-pw");
    tls.endpoint = Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port: prosody.c2s_port,
        tls: TlsMode::Required,
    };
    let no_tls = converja_bridge::platform::Client::start(
        tls,
        BRIDGE_NICK.into(),
        &cfg,
        &tracker,
        cancel.clone(),
    );
    let mut state = no_tls.link_state();
    let s = tokio::time::timeout(PATIENCE, state.wait_for(|s| s.last_error.is_some()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(
        s.last_error.as_deref().unwrap().contains("STARTTLS"),
        "{s:?}"
    );
    cancel.cancel();
}

pub(crate) async fn a_taken_nickname_is_retried_with_a_suffix(via: Via) {
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (prosody, _sim) = start_sim(scenario(), &tracker, &cancel).await;
    // Someone else already sits in filis under the bridge's nickname.
    let (squatter, _inbound) = converja_bridge::xmpp::Link::spawn(
        settings(&prosody, "other", "other-pw"),
        &tracker,
        cancel.clone(),
    );
    let filis: tokio_xmpp::jid::BareJid = format!("filis@{}", prosody.conference).parse().unwrap();
    tokio::time::timeout(PATIENCE, async {
        while squatter.join(filis.clone(), BRIDGE_NICK).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the squatter joins");
    let cfg = converja(&prosody, Duration::from_secs(5));
    let platform = converja_bridge::platform::Client::start(
        via.account(&prosody, "bridge", "bridge-pw"),
        BRIDGE_NICK.into(),
        &cfg,
        &tracker,
        cancel.clone(),
    );
    wait_ready(&platform).await;
    // Requests work from the suffixed nickname: answers go back to whoever asked.
    assert_eq!(platform.queues().await.expect("answered").len(), 2);
    cancel.cancel();
}

/// STARTTLS on the client port, HTTPS for BOSH.
pub(crate) async fn tls_with_a_trusted_certificate_connects_and_an_untrusted_one_does_not(
    via: Via,
) {
    let prosody = converja_testkit::prosody::LocalProsody::start_with(
        DOMAIN,
        &[("bridge", "bridge-pw")],
        true,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tracker = tokio_util::task::TaskTracker::new();
    let mut trusted = prosody.account("bridge", "bridge-pw");
    trusted.endpoint = match via {
        Via::Tcp => Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: prosody.c2s_port,
            tls: TlsMode::Required,
        },
        Via::Bosh => Endpoint::Bosh(HttpUrl::parse(&prosody.bosh_https_url()).unwrap()),
    };
    trusted.ca_file = Some(prosody.certificate());
    let (stream, bound) = connect(&trusted, &tracker)
        .await
        .expect("TLS with the test CA");
    assert_eq!(bound.to_bare().to_string(), format!("bridge@{DOMAIN}"));
    drop(stream);

    let mut untrusted = trusted.clone();
    untrusted.ca_file = None;
    let err = connect(&untrusted, &tracker)
        .await
        .err()
        .expect("a self-signed certificate is refused");
    assert!(err.to_string().contains("TLS"), "{err}");
    tracker.close();
    tokio::time::timeout(PATIENCE, tracker.wait())
        .await
        .expect("the transport's tasks end with their stream");
}

/// Prosody killed and started again at once while requests stream through: every request
/// ends (answered, or failed as link-down or bounced; none hangs until its timeout), the link
/// comes back by itself, and ids are never reused.
pub(crate) async fn a_server_restarted_under_load_recovers(via: Via) {
    let mut s = stack_with(via, scenario(), Duration::from_secs(30), 1000).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..32 {
        let p = s.platform.clone();
        let stop = stop.clone();
        workers.spawn(async move {
            let (mut ok, mut down) = (0u32, 0u32);
            while !stop.is_cancelled() {
                let id = ["22010", "22011", "22012"][i % 3];
                match p.agent_status(&agent(id)).await {
                    Ok(st) => {
                        assert_eq!(st.agent.as_str(), id, "answer for the right agent");
                        ok += 1;
                    }
                    // While the platform's own occupant is away, requests bounce.
                    Err(PlatformError::LinkDown(_) | PlatformError::Bounced { .. }) => {
                        down += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("unexpected failure under restart: {e}"),
                }
            }
            (ok, down)
        });
    }
    let mut updates = s.platform.subscribe();
    eventually("requests flow", || async {
        s.sim.requests().await.len() > 200
    })
    .await;
    s.xmpp.restart().expect("prosody restarts");
    next_update(&mut updates, |u| (*u == Update::LinkDown).then_some(())).await;
    next_update(&mut updates, |u| (*u == Update::LinkUp).then_some(())).await;
    tokio::time::timeout(PATIENCE, s.sim.ready())
        .await
        .expect("the simulator rejoins");
    wait_ready(&s.platform).await;
    let before = s.sim.requests().await.len();
    eventually("requests flow again", || async {
        s.sim.requests().await.len() > before + 200
    })
    .await;
    stop.cancel();
    let (mut ok, mut down) = (0, 0);
    let all = tokio::time::timeout(PATIENCE, async {
        while let Some(r) = workers.join_next().await {
            let (o, d) = r.unwrap();
            ok += o;
            down += d;
        }
    });
    all.await.expect("no request hangs");
    assert!(ok >= 300, "answered: {ok}");
    assert!(down > 0, "the restart was noticed");
    assert_eq!(s.platform.pending(), 0);
    let ids: Vec<u64> = s
        .sim
        .requests()
        .await
        .iter()
        .map(|r| r.message.id)
        .collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "request ids never reused");
}

/// BOSH only: on shutdown the session is terminated at once, not left to time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn the_bosh_session_is_terminated_on_shutdown() {
    let s = stack(Via::Bosh).await;
    let log = s.xmpp.log_path();
    // How each server logs the end of a BOSH session.
    let line = if s.xmpp.kind() == ServerKind::Ejabberd {
        "Closing c2s session"
    } else {
        "BOSH client disconnected"
    };
    let closed = |text: &str| text.matches(line).count();
    let before = closed(&std::fs::read_to_string(&log).unwrap());
    s.cancel.cancel();
    s.tracker.close();
    tokio::time::timeout(PATIENCE, s.tracker.wait())
        .await
        .expect("the link and its BOSH session stop");
    eventually("the server saw the session end", || async {
        closed(&std::fs::read_to_string(&log).unwrap()) > before
    })
    .await;
}

/// BOSH only: an endpoint that is not a BOSH service is reported with its HTTP status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn a_wrong_bosh_url_is_reported_with_its_status() {
    let tracker = tokio_util::task::TaskTracker::new();
    let prosody = converja_testkit::prosody::LocalProsody::start(DOMAIN, &[("bridge", "b")])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut wrong = prosody.bosh_account("bridge", "b");
    let url = format!("http://127.0.0.1:{}/not-bosh", prosody.http_port);
    wrong.endpoint = Endpoint::Bosh(HttpUrl::parse(&url).unwrap());
    let err = connect(&wrong, &tracker).await.err().expect("refused");
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    let closed = format!("http://127.0.0.1:{}/http-bind", common::unused_port());
    wrong.endpoint = Endpoint::Bosh(HttpUrl::parse(&closed).unwrap());
    let err = connect(&wrong, &tracker).await.err().expect("refused");
    assert!(err.to_string().contains("cannot reach"), "{err}");
}

/// BOSH only: answers lost on the way back are fetched again by retransmitting the same
/// `rid`; Prosody replays them, and the session survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn lost_bosh_answers_are_recovered_by_retransmission() {
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (prosody, _sim) = start_sim(scenario(), &tracker, &cancel).await;
    let proxy = AnswerDroppingProxy::start(prosody.http_port, 9).await;
    let mut settings = prosody.bosh_account("bridge", "bridge-pw");
    let url = format!("http://127.0.0.1:{}/http-bind", proxy.port);
    settings.endpoint = Endpoint::Bosh(HttpUrl::parse(&url).unwrap());
    let platform = converja_bridge::platform::Client::start(
        settings,
        BRIDGE_NICK.into(),
        &converja(&prosody, Duration::from_secs(10)),
        &tracker,
        cancel.clone(),
    );
    wait_ready(&platform).await;
    let sessions = platform.link_state().borrow().sessions;
    for i in 0..150 {
        let id = ["22010", "22011", "22012"][i % 3];
        let status = platform.agent_status(&agent(id)).await.expect("answered");
        assert_eq!(status.agent.as_str(), id);
    }
    let dropped = proxy.dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped >= 10, "answers dropped: {dropped}");
    assert_eq!(
        platform.link_state().borrow().sessions,
        sessions,
        "no reconnection was needed"
    );
    cancel.cancel();
}
