//! The ten requests the API defines: their method, resource, params and destination, and the
//! reverse mapping (used by the simulator) from a received request to its typed form.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{AgentId, Destination, PauseReason, QueueId};

/// A request's method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// Read.
    Get,
    /// Update.
    Put,
    /// Remove.
    Delete,
    /// Create (the API defines none, but a peer may send it).
    Post,
}

/// A request on the wire: `{id, type: "request", method, resource, params}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestMessage {
    /// Unique for the life of the deployment.
    pub id: u64,
    /// The method.
    pub method: Method,
    /// The resource path, such as `/agents/22010/status`.
    pub resource: String,
    /// Request parameters.
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// Every request the platform understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `GET /queues` (filis).
    Queues,
    /// `GET /queues/:id/agents` (filis).
    QueueAgents(QueueId),
    /// `GET /queues/:id/supervisors` (filis).
    QueueSupervisors(QueueId),
    /// `GET /queues/:id/calls` (filis).
    QueueCalls(QueueId),
    /// `GET /agents/:id/status` (filis).
    AgentStatus(AgentId),
    /// `DELETE /calls/active` (agent): hang up the agent's current call.
    EndActiveCall(AgentId),
    /// `DELETE /session` (agent): log the agent out.
    Logout(AgentId),
    /// `GET /timestamp` (agent): the agent terminal's clock.
    Timestamp(AgentId),
    /// `PUT /calls/active/local {value: number}` (agent): transfer the current call.
    Transfer(AgentId, String),
    /// `PUT /session/paused {value}` (agent): pause with a reason, or resume with `None`.
    SetPaused(AgentId, Option<PauseReason>),
}

/// Why a received request could not be mapped to a [`Request`], as the platform reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// 404: no such resource at this occupant.
    #[error("resource {0} does not exist")]
    NotFound(String),
    /// 405: the resource exists but not with this method.
    #[error("method {method:?} is not allowed for {resource}")]
    MethodNotAllowed {
        /// The method used.
        method: Method,
        /// The resource.
        resource: String,
    },
    /// 400: a required parameter is missing or has the wrong type.
    #[error("{0}")]
    BadRequest(String),
}

impl RouteError {
    /// The status code the platform answers with.
    pub fn status(&self) -> u16 {
        match self {
            RouteError::NotFound(_) => 404,
            RouteError::MethodNotAllowed { .. } => 405,
            RouteError::BadRequest(_) => 400,
        }
    }
}

impl Request {
    /// The request's method.
    pub fn method(&self) -> Method {
        match self {
            Request::Queues
            | Request::QueueAgents(_)
            | Request::QueueSupervisors(_)
            | Request::QueueCalls(_)
            | Request::AgentStatus(_)
            | Request::Timestamp(_) => Method::Get,
            Request::EndActiveCall(_) | Request::Logout(_) => Method::Delete,
            Request::Transfer(..) | Request::SetPaused(..) => Method::Put,
        }
    }

    /// The resource path.
    pub fn resource(&self) -> String {
        match self {
            Request::Queues => "/queues".into(),
            Request::QueueAgents(q) => format!("/queues/{q}/agents"),
            Request::QueueSupervisors(q) => format!("/queues/{q}/supervisors"),
            Request::QueueCalls(q) => format!("/queues/{q}/calls"),
            Request::AgentStatus(a) => format!("/agents/{a}/status"),
            Request::EndActiveCall(_) => "/calls/active".into(),
            Request::Logout(_) => "/session".into(),
            Request::Timestamp(_) => "/timestamp".into(),
            Request::Transfer(..) => "/calls/active/local".into(),
            Request::SetPaused(..) => "/session/paused".into(),
        }
    }

    /// The request's params object.
    pub fn params(&self) -> Map<String, Value> {
        let value = match self {
            Request::Transfer(_, number) => json!({ "value": number }),
            Request::SetPaused(_, reason) => json!({ "value": reason.map_or(0, |r| r.0) }),
            _ => return Map::new(),
        };
        match value {
            Value::Object(map) => map,
            _ => unreachable!("built from an object literal above"),
        }
    }

    /// The occupant the request must be sent to.
    pub fn destination(&self) -> Destination {
        match self {
            Request::Queues
            | Request::QueueAgents(_)
            | Request::QueueSupervisors(_)
            | Request::QueueCalls(_)
            | Request::AgentStatus(_) => Destination::Filis,
            Request::EndActiveCall(a)
            | Request::Logout(a)
            | Request::Timestamp(a)
            | Request::Transfer(a, _)
            | Request::SetPaused(a, _) => Destination::Agent(a.clone()),
        }
    }

    /// A short stable name, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Queues => "queues",
            Request::QueueAgents(_) => "queue_agents",
            Request::QueueSupervisors(_) => "queue_supervisors",
            Request::QueueCalls(_) => "queue_calls",
            Request::AgentStatus(_) => "agent_status",
            Request::EndActiveCall(_) => "end_active_call",
            Request::Logout(_) => "logout",
            Request::Timestamp(_) => "timestamp",
            Request::Transfer(..) => "transfer",
            Request::SetPaused(..) => "set_paused",
        }
    }

    /// The wire form with the given id.
    pub fn to_message(&self, id: u64) -> RequestMessage {
        RequestMessage {
            id,
            method: self.method(),
            resource: self.resource(),
            params: self.params(),
        }
    }

    /// Maps a request received by occupant `at` to its typed form, or to the error status the
    /// platform answers with.
    pub fn route(at: &Destination, msg: &RequestMessage) -> Result<Request, RouteError> {
        let segments: Vec<&str> = msg
            .resource
            .trim_end_matches('/')
            .split('/')
            .skip(1)
            .collect();
        let not_found = || RouteError::NotFound(msg.resource.clone());
        let expect = |method: Method, req: Request| {
            if msg.method == method {
                Ok(req)
            } else {
                Err(RouteError::MethodNotAllowed {
                    method: msg.method,
                    resource: msg.resource.clone(),
                })
            }
        };
        match at {
            Destination::Filis => match segments.as_slice() {
                ["queues"] => expect(Method::Get, Request::Queues),
                ["queues", id, what] => {
                    let q: QueueId = id.parse().map_err(|_| not_found())?;
                    match *what {
                        "agents" => expect(Method::Get, Request::QueueAgents(q)),
                        "supervisors" => expect(Method::Get, Request::QueueSupervisors(q)),
                        "calls" => expect(Method::Get, Request::QueueCalls(q)),
                        _ => Err(not_found()),
                    }
                }
                ["agents", id, "status"] if !id.is_empty() => {
                    expect(Method::Get, Request::AgentStatus(AgentId::new(*id)))
                }
                _ => Err(not_found()),
            },
            Destination::Agent(agent) => {
                let agent = agent.clone();
                match segments.as_slice() {
                    ["calls", "active"] => expect(Method::Delete, Request::EndActiveCall(agent)),
                    ["session"] => expect(Method::Delete, Request::Logout(agent)),
                    ["timestamp"] => expect(Method::Get, Request::Timestamp(agent)),
                    ["calls", "active", "local"] => {
                        expect(Method::Put, Request::Transfer(agent.clone(), String::new()))?;
                        let number = match msg.params.get("value") {
                            Some(Value::String(s)) if !s.is_empty() => s.clone(),
                            Some(Value::Number(n)) => n.to_string(),
                            _ => {
                                return Err(RouteError::BadRequest(
                                    "params.value (destination number) is required".into(),
                                ));
                            }
                        };
                        Ok(Request::Transfer(agent, number))
                    }
                    ["session", "paused"] => {
                        expect(Method::Put, Request::SetPaused(agent.clone(), None))?;
                        let value = msg
                            .params
                            .get("value")
                            .filter(|v| !v.is_null())
                            .ok_or_else(|| {
                                RouteError::BadRequest(
                                    "params.value (pause reason, 0 to resume) is required".into(),
                                )
                            })?;
                        let reason: PauseReason = serde_json::from_value(value.clone())
                            .map_err(|e| RouteError::BadRequest(format!("params.value: {e}")))?;
                        Ok(Request::SetPaused(agent, (reason.0 != 0).then_some(reason)))
                    }
                    _ => Err(not_found()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_requests() -> Vec<Request> {
        let a = AgentId::new("22010");
        vec![
            Request::Queues,
            Request::QueueAgents(QueueId(7)),
            Request::QueueSupervisors(QueueId(7)),
            Request::QueueCalls(QueueId(7)),
            Request::AgentStatus(a.clone()),
            Request::EndActiveCall(a.clone()),
            Request::Logout(a.clone()),
            Request::Timestamp(a.clone()),
            Request::Transfer(a.clone(), "11001".into()),
            Request::SetPaused(a.clone(), Some(PauseReason(3))),
            Request::SetPaused(a, None),
        ]
    }

    #[test]
    fn every_request_routes_back_to_itself_at_its_destination() {
        for req in all_requests() {
            let msg = req.to_message(1);
            assert_eq!(
                Request::route(&req.destination(), &msg),
                Ok(req.clone()),
                "{msg:?}"
            );
        }
    }

    #[test]
    fn routing_errors_carry_the_documented_status() {
        let filis = Destination::Filis;
        let agent = Destination::Agent(AgentId::new("1"));
        let msg = |method, resource: &str, params: Value| RequestMessage {
            id: 1,
            method,
            resource: resource.into(),
            params: params.as_object().cloned().unwrap_or_default(),
        };
        assert_eq!(
            Request::route(&filis, &msg(Method::Get, "/nothing", json!({})))
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            Request::route(&filis, &msg(Method::Get, "/queues/x/agents", json!({})))
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            Request::route(&filis, &msg(Method::Delete, "/queues", json!({})))
                .unwrap_err()
                .status(),
            405
        );
        assert_eq!(
            Request::route(&agent, &msg(Method::Get, "/queues", json!({})))
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            Request::route(&agent, &msg(Method::Put, "/session/paused", json!({})))
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            Request::route(&agent, &msg(Method::Put, "/calls/active/local", json!({})))
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            Request::route(
                &agent,
                &msg(Method::Get, "/session/paused", json!({"value": 1}))
            )
            .unwrap_err()
            .status(),
            405
        );
        assert_eq!(
            Request::route(
                &agent,
                &msg(Method::Put, "/session/paused", json!({"value": "11"}))
            ),
            Ok(Request::SetPaused(AgentId::new("1"), Some(PauseReason(11))))
        );
    }

    #[test]
    fn destinations_match_the_api_table() {
        for req in all_requests() {
            let to_filis = matches!(req.destination(), Destination::Filis);
            assert_eq!(
                to_filis,
                req.resource().starts_with("/queues") || req.resource().starts_with("/agents"),
                "{req:?}"
            );
        }
    }
}
