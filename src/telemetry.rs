//! Metric names in one place, their descriptions, and the tracing subscriber.

use metrics::{describe_counter, describe_gauge, describe_histogram};

use crate::config::{LogConfig, LogFormat};

/// Platform requests by `kind` and `outcome`.
pub const REQUESTS: &str = "converja_requests_total";
/// Request round-trip time in seconds, by `kind`.
pub const REQUEST_SECONDS: &str = "converja_request_duration_seconds";
/// Requests waiting for an answer.
pub const PENDING: &str = "converja_pending_requests";
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
/// Room join failures, by `condition`.
pub const JOIN_FAILURES: &str = "converja_xmpp_join_failures_total";

/// Registers help texts for every metric, once at start.
pub fn describe() {
    describe_counter!(REQUESTS, "Platform requests by kind and outcome");
    describe_histogram!(REQUEST_SECONDS, metrics::Unit::Seconds, "Platform request round-trip time by kind");
    describe_gauge!(PENDING, "Platform requests waiting for an answer");
    describe_counter!(DROPPED, "Platform messages dropped, by reason");
    describe_counter!(EVENTS, "Platform events received, by name");
    describe_gauge!(LINK_UP, "1 when the XMPP link is online, else 0");
    describe_counter!(CONNECTS, "XMPP connection attempts by result");
    describe_gauge!(ROOMS_JOINED, "MUC rooms joined now");
    describe_counter!(JOIN_FAILURES, "MUC room join failures by error condition");
}

/// Installs the global tracing subscriber; a second call (as in tests) is a no-op.
pub fn init_tracing(cfg: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    let _ = match cfg.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}
