//! `[supervisors]`: who is a supervisor, and how the queues' figures are judged and kept.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, HumanDuration, valid_nickname};

/// `[supervisors]`, as written and as used: every field has a default.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorsConfig {
    /// Usernames that are supervisors whatever the sign-in says (the only way with
    /// `auth.mode = "hmac"`).
    pub ids: Vec<String>,
    /// With `auth.mode = "jwt"`: the claim listing the user's roles (a string or an array).
    pub role_claim: String,
    /// With `auth.mode = "proxy"`: the header where the proxy lists the user's groups,
    /// comma-separated; none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_header: Option<String>,
    /// The role or group that makes a supervisor.
    pub role: String,
    /// Answered within this is within service level.
    pub service_level_threshold: HumanDuration,
    /// Callers who hang up sooner are not counted as abandoned.
    pub short_abandon: HumanDuration,
    /// The sliding windows of the figures, e.g. `["15m", "60m"]`.
    pub windows: Vec<HumanDuration>,
    /// How often the board is set right from the platform's listings.
    pub reconcile_every: HumanDuration,
    /// Changes to one screen are sent at most this often, the latest of each.
    pub coalesce: HumanDuration,
}

impl Default for SupervisorsConfig {
    fn default() -> Self {
        SupervisorsConfig {
            ids: Vec::new(),
            role_claim: "roles".into(),
            groups_header: None,
            role: "supervisor".into(),
            service_level_threshold: HumanDuration(Duration::from_secs(20)),
            short_abandon: HumanDuration(Duration::from_secs(5)),
            windows: vec![
                HumanDuration(Duration::from_secs(15 * 60)),
                HumanDuration(Duration::from_secs(60 * 60)),
            ],
            reconcile_every: HumanDuration(Duration::from_secs(60)),
            coalesce: HumanDuration(Duration::from_millis(500)),
        }
    }
}

impl SupervisorsConfig {
    /// Checks the section, sorting the windows shortest first.
    pub(super) fn check(mut self) -> Result<Self, ConfigError> {
        if let Some(bad) = self.ids.iter().find(|id| !valid_nickname(id)) {
            return Err(ConfigError::key(
                "supervisors.ids",
                format!("`{bad}` is not a username (1-64 of A-Z a-z 0-9 . _ -)"),
            ));
        }
        if let Some(h) = &self.groups_header
            && http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            return Err(ConfigError::key(
                "supervisors.groups_header",
                format!("`{h}` is not a header name"),
            ));
        }
        if self.windows.is_empty() || self.windows.iter().any(|w| w.0 < Duration::from_secs(60)) {
            return Err(ConfigError::key(
                "supervisors.windows",
                "list at least one window, each a minute or more",
            ));
        }
        if self
            .windows
            .iter()
            .any(|w| w.0 > Duration::from_secs(24 * 3600))
        {
            return Err(ConfigError::key(
                "supervisors.windows",
                "a window is at most 24h: the board keeps its records in memory",
            ));
        }
        if self.reconcile_every.0 < Duration::from_secs(1) {
            return Err(ConfigError::key(
                "supervisors.reconcile_every",
                "must be at least 1s",
            ));
        }
        if self.coalesce.0 > Duration::from_secs(10) {
            return Err(ConfigError::key(
                "supervisors.coalesce",
                "must be at most 10s",
            ));
        }
        self.windows.sort_by_key(|w| w.0);
        self.windows.dedup();
        Ok(self)
    }
}
