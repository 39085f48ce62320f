//! The platform side against a real Prosody and the simulator: every request, every fault the
//! table must survive, link loss and recovery, and events.

#![allow(clippy::unwrap_used)]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use converja_bridge::config::{HttpUrl, TlsMode};
use converja_bridge::converja::{
    AgentState, CallId, Event, EventMessage, Message, PauseReason, QueueId, RoomName,
};
use converja_bridge::platform::{PlatformError, Update};
use converja_bridge::sim::{Fault, FaultRule};
use converja_bridge::telemetry::DROPPED;
use converja_bridge::xmpp::{Endpoint, connect};

mod events;
mod link;
mod requests;

use events::*;
use link::*;
use requests::*;

over_tcp_and_bosh!(
    every_request_round_trips_to_the_simulator,
    platform_errors_carry_their_status,
    reordered_responses_reach_the_right_caller,
    spoofed_duplicate_and_malformed_answers_are_dropped_and_counted,
    a_slow_answer_times_out_with_a_clear_error,
    a_request_to_an_absent_occupant_fails_fast_from_the_bounce,
    an_agent_room_left_under_requests_loses_no_answer,
    a_full_table_refuses_at_once,
    link_loss_fails_pending_requests_and_the_link_recovers,
    events_arrive_typed_once_and_replays_are_dropped,
    events_published_before_the_bridge_joined_are_not_replayed,
    many_requests_in_flight_never_stall,
    bad_credentials_are_reported_not_retried_silently,
    a_taken_nickname_is_retried_with_a_suffix,
    tls_with_a_trusted_certificate_connects_and_an_untrusted_one_does_not,
    a_server_restarted_under_load_recovers,
);
