//! Metric names in one place, their descriptions, and the tracing subscriber.

pub mod latency;

use std::io::IsTerminal;

use metrics::{describe_counter, describe_gauge, describe_histogram};

use crate::config::{LogConfig, LogFormat};

/// Platform requests by `kind` and `outcome`.
pub const REQUESTS: &str = "converja_requests_total";
/// Request round-trip time in seconds, by `kind`.
pub const REQUEST_SECONDS: &str = "converja_request_duration_seconds";
/// Latency the bridge itself adds on the call path, by `path`: `to_platform` (agent event
/// taken in to request stanza written), `to_agent` (platform stanza read to emit).
pub const BRIDGE_LATENCY: &str = "converja_bridge_latency_seconds";
/// Buckets of [`BRIDGE_LATENCY`]: fine below a millisecond, where the bridge's share is.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_15, 0.000_2, 0.000_3, 0.000_4, 0.000_5, 0.000_75, 0.001,
    0.002, 0.005, 0.01, 0.05,
];
/// Requests waiting for an answer.
pub const PENDING: &str = "converja_pending_requests";
/// How many requests may wait at once (`converja.max_pending`).
pub const PENDING_MAX: &str = "converja_pending_requests_max";
/// 1 when `/readyz` would answer 200, as of the last scrape.
pub const READY: &str = "converja_ready";
/// Platform messages dropped, by `reason`.
pub const DROPPED: &str = "converja_platform_messages_dropped_total";
/// Platform events delivered to the bridge, by `name`.
pub const EVENTS: &str = "converja_platform_events_total";
/// 1 when the XMPP link is online.
pub const LINK_UP: &str = "converja_xmpp_link_up";
/// XMPP connection attempts, by `result`.
pub const CONNECTS: &str = "converja_xmpp_connect_attempts_total";
/// Rooms joined now.
pub const ROOMS_JOINED: &str = "converja_xmpp_rooms_joined";
/// Times the bridge found itself removed from a room it had joined.
pub const ROOM_REMOVALS: &str = "converja_xmpp_room_removals_total";
/// Room join failures, by `condition`.
pub const JOIN_FAILURES: &str = "converja_xmpp_join_failures_total";
/// BOSH HTTP requests, by `outcome`: `ok`, `retransmitted`, `failed`.
pub const BOSH_REQUESTS: &str = "converja_xmpp_bosh_requests_total";

/// 1, labelled with the bridge's `version` and the `revision` it was built from.
pub const BUILD_INFO: &str = "converja_build_info";
/// The revision the binary was built from (see `build.rs`).
pub const REVISION: &str = env!("CONVERJA_REVISION");

/// Every metric as Prometheus text, the process's own (CPU, memory, file descriptors,
/// threads, start time) read at this moment.
pub fn render() -> String {
    static PROCESS: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    let handle = prometheus();
    PROCESS
        .get_or_init(|| {
            let collector = metrics_process::Collector::default();
            collector.describe();
            collector
        })
        .collect();
    handle.render()
}

/// A Prometheus recorder with the bridge's histogram buckets.
pub(crate) fn recorder() -> metrics_exporter_prometheus::PrometheusRecorder {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(REQUEST_SECONDS.into()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )
        .expect("the bucket list is not empty")
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(BRIDGE_LATENCY.into()),
            LATENCY_BUCKETS,
        )
        .expect("the bucket list is not empty")
        .build_recorder()
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests embedding several bridges); the
        // handle still renders what this recorder would have seen, which is then nothing.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

/// How often histograms are drained into their summaries; without it they grow between
/// scrapes, forever when nobody scrapes.
const UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Keeps the Prometheus recorder's memory bounded until `cancel`.
pub async fn upkeep(cancel: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => prometheus().run_upkeep(),
        }
    }
}

/// The value of counter `name` with labels `labels` (as rendered, e.g. `outcome="ok"`; empty
/// for none) in this process's recorder, 0 when absent. For tests and benchmarks.
pub fn counter(name: &str, labels: &str) -> f64 {
    counter_in(prometheus(), name, labels)
}

/// [`counter`] read from the recorder behind `handle`, such as one a test installs locally
/// so that tests running in parallel do not count each other's metrics.
pub fn counter_in(
    handle: &metrics_exporter_prometheus::PrometheusHandle,
    name: &str,
    labels: &str,
) -> f64 {
    let key = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    handle
        .render()
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(k, _)| *k == key)
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

/// Socket.io events by `event` and `outcome`.
pub const SOCKET_EVENTS: &str = "converja_socket_events_total";
/// Socket.io events the contract does not define.
pub const UNKNOWN_EVENTS: &str = "converja_socket_unknown_events_total";
/// Events emitted to agent UIs by `event` and `outcome`.
pub const EMITS: &str = "converja_socket_emits_total";
/// Sockets refused at connect, by `reason`.
pub const SOCKETS_REFUSED: &str = "converja_sockets_refused_total";
/// Counter: socket events refused by a per-socket limit, by `reason`.
pub const EVENTS_LIMITED: &str = "converja_events_limited_total";
/// Sockets the bridge closed itself, by `reason`.
pub const SOCKETS_DROPPED: &str = "converja_sockets_dropped_total";
/// Connected sockets.
pub const SOCKETS: &str = "converja_sockets";
/// Sockets attached to a session.
pub const SESSION_SOCKETS: &str = "converja_session_sockets";
/// Agent sessions.
pub const SESSIONS: &str = "converja_sessions";
/// Calls held by sessions, by `state` (offered, waiting).
pub const CALLS: &str = "converja_calls";
/// NEW_CALLs never answered within `agents.ack_timeout`.
pub const UNANSWERED: &str = "converja_calls_unanswered_total";

/// Session store transactions by `outcome` (ok, failed, closed).
pub const STORE_WRITES: &str = "converja_store_writes_total";
/// Stored sessions a restart brought back, by what became of them (`reclaimed` by their UI,
/// `expired` after the reconnect grace).
pub const RESTORED_SESSIONS: &str = "converja_restored_sessions_total";
/// Sessions taken back by a reconnecting socket with no event from its UI, by what named
/// the session (`pid`: socket.io's private session id; `token`: the handshake token).
pub const SESSIONS_TAKEN_BACK: &str = "converja_sessions_taken_back_total";
/// Sessions the platform ended (`UserSessionDidFinish`), by `outcome`: `ended`, or `ignored`
/// when the event was older than the session's login.
pub const PLATFORM_LOGOUTS: &str = "converja_platform_logouts_total";

/// Calls waiting in a queue, by `queue`.
pub const QUEUE_WAITING: &str = "converja_queue_calls_waiting";
/// How long the call waiting longest has waited, by `queue`.
pub const QUEUE_LONGEST_WAIT: &str = "converja_queue_longest_wait_seconds";
/// Calls answered in the sliding `window`, by `queue`.
pub const QUEUE_ANSWERED: &str = "converja_queue_answered";
/// Calls that left unanswered in the sliding `window`, by `queue`.
pub const QUEUE_MISSED: &str = "converja_queue_missed";
/// Missed calls whose caller waited at least the short-abandon time, by `queue`, `window`.
pub const QUEUE_ABANDONED: &str = "converja_queue_abandoned";
/// Answered within threshold over answered plus abandoned, by `queue`, `window`.
pub const QUEUE_SERVICE_LEVEL: &str = "converja_queue_service_level_ratio";
/// Mean wait of the answered calls, by `queue`, `window`.
pub const QUEUE_AVG_WAIT: &str = "converja_queue_average_wait_seconds";
/// Mean talk time of the calls that ended, by `queue`, `window`.
pub const QUEUE_AVG_HANDLE: &str = "converja_queue_average_handle_seconds";
/// A queue's agents by `state` (idle, busy, paused, logged_out, unknown).
pub const QUEUE_AGENTS: &str = "converja_queue_agents";
/// Supervisor requests by `request` and `outcome` (ok or the refusal's code).
pub const SUPERVISOR_REQUESTS: &str = "converja_supervisor_requests_total";

/// 1 for the role this bridge has now (`role` = active or standby), 0 for the other.
pub const ROLE: &str = "converja_role";

/// Records whether this bridge is the active one.
pub fn set_role(active: bool) {
    metrics::gauge!(ROLE, "role" => "active").set(f64::from(u8::from(active)));
    metrics::gauge!(ROLE, "role" => "standby").set(f64::from(u8::from(!active)));
}

/// Describes the supervisors' figures.
fn describe_queues() {
    describe_gauge!(QUEUE_WAITING, "Calls waiting in the queue");
    describe_gauge!(
        QUEUE_LONGEST_WAIT,
        "How long the longest-waiting call has waited"
    );
    describe_gauge!(QUEUE_ANSWERED, "Calls answered in the sliding window");
    describe_gauge!(
        QUEUE_MISSED,
        "Calls that left unanswered in the sliding window"
    );
    describe_gauge!(
        QUEUE_ABANDONED,
        "Missed calls past the short-abandon time, in the window"
    );
    describe_gauge!(
        QUEUE_SERVICE_LEVEL,
        "Answered within threshold over answered plus abandoned"
    );
    describe_gauge!(
        QUEUE_AVG_WAIT,
        "Mean wait of the calls answered in the window"
    );
    describe_gauge!(
        QUEUE_AVG_HANDLE,
        "Mean talk time of the calls that ended in the window"
    );
    describe_gauge!(QUEUE_AGENTS, "The queue's agents by state");
    describe_counter!(
        SUPERVISOR_REQUESTS,
        "Supervisor requests by request and outcome"
    );
}

/// Registers help texts for every metric, once at start, and the build's own gauge.
pub fn describe() {
    describe_gauge!(
        BUILD_INFO,
        "1, labelled with the bridge's version and the revision it was built from"
    );
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "revision" => REVISION)
        .set(1.0);
    describe_counter!(REQUESTS, "Platform requests by kind and outcome");
    describe_queues();
    describe_histogram!(
        BRIDGE_LATENCY,
        metrics::Unit::Seconds,
        "Latency the bridge adds: agent event to request stanza, platform stanza to emit"
    );
    describe_histogram!(
        REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "Platform request round-trip time by kind"
    );
    describe_gauge!(PENDING, "Platform requests waiting for an answer");
    describe_gauge!(PENDING_MAX, "How many platform requests may wait at once");
    describe_gauge!(
        READY,
        "1 when /readyz answers 200 (active, XMPP online, rooms joined), as of this scrape"
    );
    describe_counter!(DROPPED, "Platform messages dropped, by reason");
    describe_counter!(EVENTS, "Platform events received, by name");
    describe_gauge!(LINK_UP, "1 when the XMPP link is online, else 0");
    describe_counter!(CONNECTS, "XMPP connection attempts by result");
    describe_gauge!(ROOMS_JOINED, "MUC rooms joined now");
    describe_counter!(
        ROOM_REMOVALS,
        "Removals from a joined room (kick, room destroyed); each is followed by a rejoin"
    );
    describe_counter!(JOIN_FAILURES, "MUC room join failures by error condition");
    describe_counter!(
        BOSH_REQUESTS,
        "BOSH HTTP requests by outcome (ok, retransmitted, failed)"
    );
    describe_counter!(SOCKET_EVENTS, "socket.io events by event and outcome");
    describe_counter!(UNKNOWN_EVENTS, "socket.io events outside the contract");
    describe_counter!(EMITS, "Events emitted to agent UIs by event and outcome");
    describe_counter!(
        SOCKETS_REFUSED,
        "Connections refused at the handshake or at connect, by reason"
    );
    describe_counter!(
        EVENTS_LIMITED,
        "Socket events refused by a per-socket limit, by reason"
    );
    describe_counter!(
        SOCKETS_DROPPED,
        "Sockets closed by the bridge, by reason (stalled: stopped reading)"
    );
    describe_gauge!(SOCKETS, "Connected socket.io sockets");
    describe_gauge!(SESSION_SOCKETS, "Sockets logged in to an agent session");
    describe_gauge!(SESSIONS, "Agent sessions");
    describe_gauge!(CALLS, "Calls held by agent sessions, by state");
    describe_counter!(
        UNANSWERED,
        "NEW_CALLs not answered within agents.ack_timeout"
    );
    describe_counter!(STORE_WRITES, "Session store transactions by outcome");
    describe_gauge!(
        ROLE,
        "1 for this bridge's role now (active: serving; standby: waiting for the lease)"
    );
    describe_counter!(
        RESTORED_SESSIONS,
        "Sessions restored at start, by outcome (restored, reclaimed, expired)"
    );
    describe_counter!(
        SESSIONS_TAKEN_BACK,
        "Sessions taken back by a reconnecting socket without an event, by what named them (pid, token)"
    );
    describe_counter!(
        PLATFORM_LOGOUTS,
        "UserSessionDidFinish events for a session, by outcome (ended, ignored)"
    );
}

/// Installs the global tracing subscriber; a second call (as in tests) is a no-op.
pub fn init_tracing(cfg: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours(
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        ))
        .with_target(true);
    let _ = match cfg.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}

/// Whether human logs carry terminal colour codes: only on a terminal, and never when
/// `NO_COLOR` is set (no-color.org), so that files, pipes and journald get plain text.
fn colours(terminal: bool, no_color: bool) -> bool {
    terminal && !no_color
}
