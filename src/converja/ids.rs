//! Identifiers as the platform writes them, parsed liberally: the published API shows the
//! same id as a number in one place and a string in another.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize};

/// A value the platform may write as a JSON number or a JSON string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Loose {
    Int(u64),
    Float(f64),
    Text(String),
}

impl Loose {
    fn into_text(self) -> String {
        match self {
            Loose::Int(n) => n.to_string(),
            Loose::Float(f) => f.to_string(),
            Loose::Text(s) => s,
        }
    }

    fn into_u64<E: serde::de::Error>(self, what: &str) -> Result<u64, E> {
        match self {
            Loose::Int(n) => Ok(n),
            Loose::Float(f) if f >= 0.0 && f.fract() == 0.0 && f < 9.007_199_254_740_992e15 => {
                Ok(f as u64)
            }
            Loose::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| E::custom(format!("{what} `{s}` is not a whole number"))),
            Loose::Float(f) => Err(E::custom(format!("{what} {f} is not a whole number"))),
        }
    }
}

/// The platform's id of an agent, such as `"22010"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AgentId(String);

impl AgentId {
    /// Wraps an agent id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(AgentId(Loose::deserialize(d)?.into_text()))
    }
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Loose::deserialize(d)?.into_u64($what).map($name)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim().parse().map($name)
            }
        }
    };
}

numeric_id!(
    /// A queue's id, such as `7`.
    QueueId,
    "queue id"
);
numeric_id!(
    /// A call's id (the platform's `callid`).
    CallId,
    "call id"
);

/// A pause reason id: a number in `PUT /session/paused`, a string in events and status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct PauseReason(pub u32);

impl<'de> Deserialize<'de> for PauseReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = Loose::deserialize(d)?.into_u64::<D::Error>("pause reason")?;
        u32::try_from(n)
            .map(PauseReason)
            .map_err(|_| serde::de::Error::custom(format!("pause reason {n} is too large")))
    }
}

impl fmt::Display for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A platform timestamp: float seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
pub struct Timestamp(pub f64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Loose::deserialize(d)? {
            Loose::Int(n) => Ok(Timestamp(n as f64)),
            Loose::Float(f) => Ok(Timestamp(f)),
            Loose::Text(s) => {
                s.trim().parse().map(Timestamp).map_err(|_| {
                    serde::de::Error::custom(format!("timestamp `{s}` is not a number"))
                })
            }
        }
    }
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since.as_secs_f64())
    }

    /// ISO 8601 UTC with milliseconds, as JavaScript's `Date.toJSON()` writes it.
    pub fn to_iso8601(self) -> String {
        // Out-of-range or non-finite values fall back to the epoch rather than panicking.
        let secs = if self.0.is_finite() && (0.0..1e11).contains(&self.0) {
            self.0
        } else {
            0.0
        };
        let millis = (secs * 1000.0).round() as u64;
        humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(millis))
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids_parse_from_strings_and_numbers() {
        assert_eq!(
            serde_json::from_str::<AgentId>("\"22010\"").unwrap(),
            AgentId::new("22010")
        );
        assert_eq!(
            serde_json::from_str::<AgentId>("22010").unwrap(),
            AgentId::new("22010")
        );
        assert_eq!(
            serde_json::to_string(&AgentId::new("22010")).unwrap(),
            "\"22010\""
        );
    }

    #[test]
    fn numeric_ids_accept_numeric_strings_only() {
        assert_eq!(serde_json::from_str::<CallId>("123").unwrap(), CallId(123));
        assert_eq!(
            serde_json::from_str::<CallId>("\"123\"").unwrap(),
            CallId(123)
        );
        assert!(serde_json::from_str::<CallId>("\"abc\"").is_err());
        assert!(serde_json::from_str::<CallId>("1.5").is_err());
        assert_eq!(
            serde_json::from_str::<PauseReason>("\"11\"").unwrap(),
            PauseReason(11)
        );
        assert_eq!(
            serde_json::from_str::<PauseReason>("11").unwrap(),
            PauseReason(11)
        );
    }

    #[test]
    fn timestamps_render_like_javascript_dates() {
        assert_eq!(
            Timestamp(1468418331.7214).to_iso8601(),
            "2016-07-13T13:58:51.721Z"
        );
        assert_eq!(Timestamp(0.0).to_iso8601(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp(f64::NAN).to_iso8601(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            serde_json::from_str::<Timestamp>("1468418331").unwrap(),
            Timestamp(1468418331.0)
        );
    }
}
