//! The socket.io contract end to end: the reference socket.io client against the real bridge,
//! a real Prosody and the simulator. Each test asserts what the UI saw and, where it matters,
//! what the platform saw.

#![allow(clippy::unwrap_used)]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::agent_ui::{Puppet, admin_get, bridge, bridge_with};
use common::{Calls, Via, agent, counter, eventually, poll_for};
use converja_bridge::config::{AuthConfig, OnCallError, OnDisconnect, Secret};
use converja_bridge::converja::{Method, PauseReason};
use converja_bridge::gateway::mint_token;
use converja_bridge::sim::{Fault, FaultRule};
use converja_bridge::telemetry;
use serde_json::json;

mod calls;
mod login;
mod sessions;
mod signin;

use calls::*;
use login::*;
use sessions::*;
use signin::*;

fn is_iso_millis(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
}

async fn requests_to(
    stack: &common::agent_ui::BridgeStack,
    method: Method,
    resource: &str,
) -> usize {
    stack
        .sim
        .requests()
        .await
        .iter()
        .filter(|r| r.message.method == method && r.message.resource == resource)
        .count()
}

over_tcp_and_bosh!(
    an_agent_logs_in_takes_a_call_and_ends_it,
    both_paths_both_namespaces_and_both_transports_work,
    logins_are_validated_liberally_but_strictly,
    events_before_login_and_unknown_events_get_errors_not_crashes,
    one_agent_cannot_end_another_agents_call,
    capacity_holds_calls_back_in_arrival_order,
    calls_reach_each_socket_once_and_a_new_socket_gets_them_all,
    disconnect_logs_out_with_or_without_a_payload,
    a_disconnect_sent_with_the_close_is_still_handled,
    a_lost_socket_keeps_its_session_for_the_grace_period_then_logs_out,
    a_rejected_call_frees_its_slot_and_applies_on_call_error,
    platform_failures_reach_the_ui_as_sentences,
    acknowledgements_receive_the_reply_payload,
    events_of_one_socket_are_served_in_the_order_sent,
    with_auth_the_token_decides_the_username,
    origins_outside_the_list_are_refused_even_over_websocket,
    calls_missed_during_an_outage_are_delivered_after_it,
    health_readiness_metrics_and_graceful_shutdown,
    shutdown_answers_the_requests_in_flight_before_closing,
    on_call_error_transfer_and_on_disconnect_none,
    with_jwt_the_token_decides_the_username,
    each_limit_refuses_with_its_reason_while_a_good_agent_keeps_working,
);
