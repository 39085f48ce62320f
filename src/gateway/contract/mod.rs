//! The socket.io contract on the wire: how each event a UI sends is read into the core's
//! [`ClientEvent`](crate::agents::ClientEvent) ([`read`]), and how each event and
//! acknowledgement the bridge sends is written as JSON ([`write`](mod@write)). The core's events are
//! typed and carry no JSON; this module is the one place that knows the payloads.

mod read;
pub mod supervisor;
mod write;

pub use read::parse;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::Value;

    use super::parse;
    use crate::agents::refusal::Refusal;
    use crate::agents::{ClientEvent, ServerEvent};

    /// A scalar a UI sent comes back in the error reply written exactly as JSON wrote it.
    #[test]
    fn echoed_scalars_are_written_as_they_were_read() {
        let sent = [
            "\"22010\"",
            "12",
            "-7",
            "2.5",
            "0.1",
            "1e300",
            "-0.0",
            "18446744073709551615",
            "-9223372036854775808",
            "true",
        ];
        for max_calls in sent {
            let data: Value =
                serde_json::from_str(&format!(r#"{{"username":"a@b","maxCalls":{max_calls}}}"#))
                    .unwrap();
            let as_json = serde_json::to_string(&data["maxCalls"]).unwrap();
            let ClientEvent::Invalid { echo, .. } = parse("USER_CONNECT", Some(data), 32) else {
                panic!("{max_calls} is refused");
            };
            let reply = ServerEvent::UserConnectionError {
                echo,
                error: Refusal::NotConnected,
            };
            assert_eq!(
                serde_json::to_string(&reply).unwrap(),
                format!(
                    r#"{{"username":"a@b","maxCalls":{as_json},"error":"{}"}}"#,
                    Refusal::NotConnected
                ),
                "{max_calls}"
            );
        }
    }
}
