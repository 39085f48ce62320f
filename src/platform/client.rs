//! Requests to the platform: the round trip through the pending table, and one typed method
//! per request the API defines.

use serde_json::Value;
use tokio::time::Instant;
use tracing::{Instrument, debug, warn};

use super::{Client, PlatformError};
use crate::converja::{
    AgentId, AgentStatus, Data, Destination, Empty, Message, PauseReason, ProtocolError,
    QueueAgent, QueueCalls, QueueId, QueueInfo, QueueSupervisor, Request, ResponseParams,
    TerminalTime,
};
use crate::pending::Failure;
use crate::telemetry;

impl Client {
    /// Sends `request` and decodes its response as `T`.
    pub async fn call<T: ResponseParams>(&self, request: Request) -> Result<T, PlatformError> {
        let kind = request.kind();
        let started = Instant::now();
        let result = self
            .exchange(&request)
            .await
            .and_then(|params| T::decode(kind, params).map_err(bad_response));
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        metrics::counter!(telemetry::REQUESTS, "kind" => kind, "outcome" => outcome).increment(1);
        metrics::histogram!(telemetry::REQUEST_SECONDS, "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn exchange(&self, request: &Request) -> Result<Value, PlatformError> {
        let shared = &self.shared;
        let destination = request.destination();
        let occupant = shared
            .addresses
            .destination(&destination)
            .map_err(|e| PlatformError::BadResponse(e.to_string()))?;
        // Held until the answer or the timeout: the room is not left under this request.
        let _in_room = shared.occupancy.request(&occupant.to_bare()).await;
        if let Destination::Agent(_) = &destination {
            self.join_room(occupant.to_bare()).await?;
        }
        let mut ticket = shared
            .table
            .register(occupant.clone())
            .map_err(|_| PlatformError::Overloaded)?;
        let id = ticket.id();
        let span = tracing::debug_span!("request", id, kind = request.kind(), to = %occupant);
        async {
            metrics::gauge!(telemetry::PENDING).set(shared.table.len() as f64);
            let body = Message::Request(request.to_message(id)).to_json();
            debug!(%body, "sending request");
            shared
                .link
                .send_chat(occupant.clone(), id.to_string(), body)
                .await
                .map_err(|e| PlatformError::LinkDown(e.to_string()))?;
            let answer = tokio::time::timeout(shared.timeout, ticket.wait()).await;
            drop(ticket);
            metrics::gauge!(telemetry::PENDING).set(shared.table.len() as f64);
            let response = match answer {
                Err(_) => {
                    warn!(timeout = ?shared.timeout, "request timed out");
                    return Err(PlatformError::Timeout(shared.timeout));
                }
                Ok(Err(Failure::LinkDown(reason))) => return Err(PlatformError::LinkDown(reason)),
                Ok(Err(Failure::Bounced(condition))) => {
                    return Err(PlatformError::Bounced {
                        occupant: occupant.to_string(),
                        condition,
                    });
                }
                Ok(Ok(response)) => response,
            };
            if response.is_success() {
                Ok(response.params)
            } else {
                debug!(status = response.status, "platform refused the request");
                Err(PlatformError::Status {
                    status: response.status,
                    params: response.params,
                })
            }
        }
        .instrument(span)
        .await
    }

    /// `GET /queues`.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>, PlatformError> {
        Ok(self.call::<Data<QueueInfo>>(Request::Queues).await?.data)
    }

    /// `GET /queues/:id/agents`.
    pub async fn queue_agents(&self, queue: QueueId) -> Result<Vec<QueueAgent>, PlatformError> {
        Ok(self
            .call::<Data<QueueAgent>>(Request::QueueAgents(queue))
            .await?
            .data)
    }

    /// `GET /queues/:id/supervisors`.
    pub async fn queue_supervisors(
        &self,
        queue: QueueId,
    ) -> Result<Vec<QueueSupervisor>, PlatformError> {
        Ok(self
            .call::<Data<QueueSupervisor>>(Request::QueueSupervisors(queue))
            .await?
            .data)
    }

    /// `GET /queues/:id/calls`.
    pub async fn queue_calls(&self, queue: QueueId) -> Result<QueueCalls, PlatformError> {
        self.call(Request::QueueCalls(queue)).await
    }

    /// `GET /agents/:id/status`.
    pub async fn agent_status(&self, agent: &AgentId) -> Result<AgentStatus, PlatformError> {
        self.call(Request::AgentStatus(agent.clone())).await
    }

    /// `DELETE /calls/active`: hangs up the agent's current call.
    pub async fn end_active_call(&self, agent: &AgentId) -> Result<(), PlatformError> {
        self.call::<Empty>(Request::EndActiveCall(agent.clone()))
            .await
            .map(drop)
    }

    /// `DELETE /session`: logs the agent out.
    pub async fn logout(&self, agent: &AgentId) -> Result<(), PlatformError> {
        self.call::<Empty>(Request::Logout(agent.clone()))
            .await
            .map(drop)
    }

    /// `GET /timestamp`: the agent terminal's clock in milliseconds.
    pub async fn terminal_time(&self, agent: &AgentId) -> Result<f64, PlatformError> {
        Ok(self
            .call::<TerminalTime>(Request::Timestamp(agent.clone()))
            .await?
            .timestamp)
    }

    /// `PUT /calls/active/local`: transfers the agent's current call to `number`.
    pub async fn transfer(&self, agent: &AgentId, number: &str) -> Result<(), PlatformError> {
        self.call::<Empty>(Request::Transfer(agent.clone(), number.to_owned()))
            .await
            .map(drop)
    }

    /// `PUT /session/paused`: pauses with `reason`, or resumes with `None`.
    pub async fn set_paused(
        &self,
        agent: &AgentId,
        reason: Option<PauseReason>,
    ) -> Result<(), PlatformError> {
        self.call::<Empty>(Request::SetPaused(agent.clone(), reason))
            .await
            .map(drop)
    }
}

fn bad_response(e: ProtocolError) -> PlatformError {
    PlatformError::BadResponse(e.to_string())
}
