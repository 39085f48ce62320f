//! How the bridge reads each event a UI sends: parsed here, once, into a [`ClientEvent`]. Parsing
//! is liberal where UIs in the wild differ (numbers as strings, `userName`), strict where a
//! value ends up in an address (usernames).

use serde_json::{Number, Value};

use crate::agents::event::{ClientEvent, ClientEventKind, Echo, Login, Scalar};
use crate::agents::refusal::PayloadError;
use crate::config::valid_nickname;
use crate::converja::{CallId, PauseReason};

/// Parses event `name` with payload `data` (`None` when the UI sent none).
pub fn parse(name: &str, data: Option<Value>, max_calls_limit: u32) -> ClientEvent {
    let Some(kind) = kind_named(name) else {
        return ClientEvent::Unknown(clip(name));
    };
    let parsed = match kind {
        ClientEventKind::UserConnect => {
            login(data.as_ref(), max_calls_limit).map(ClientEvent::UserConnect)
        }
        ClientEventKind::UserDisconnect => Ok(ClientEvent::UserDisconnect(logout(data.as_ref()))),
        ClientEventKind::EndCall => call_of(data.as_ref(), kind).map(ClientEvent::EndCall),
        ClientEventKind::NewCallAnswered => {
            call_of(data.as_ref(), kind).map(ClientEvent::NewCallAnswered)
        }
        ClientEventKind::NewCallError => rejection(data.as_ref()),
        ClientEventKind::Pause => pause(data.as_ref()).map(ClientEvent::Pause),
        ClientEventKind::Resume => Ok(ClientEvent::Resume),
        ClientEventKind::TransferCall => transfer(data.as_ref()),
    };
    parsed.unwrap_or_else(|error| ClientEvent::Invalid {
        kind,
        error,
        echo: echo(data.as_ref()),
    })
}

/// The contract's event named `name`, if it defines one for a UI to send.
fn kind_named(name: &str) -> Option<ClientEventKind> {
    ClientEventKind::ALL
        .into_iter()
        .find(|kind| kind.name() == name)
}

/// Longest text kept from what a client sent, for logs and echoes: a client that sends
/// megabytes of garbage gets a short answer, and its queued events stay small.
const CLIP: usize = 128;

fn clip(text: &str) -> String {
    match text.char_indices().nth(CLIP) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The fields an error reply echoes, clipped: scalars as sent, anything else as absent.
fn echo(data: Option<&Value>) -> Echo {
    let kept = |key: &str| match data.and_then(|d| d.get(key)) {
        Some(Value::String(s)) => Some(Scalar::Text(clip(s))),
        Some(Value::Number(n)) => Some(number(n)),
        Some(Value::Bool(b)) => Some(Scalar::Flag(*b)),
        _ => None,
    };
    Echo {
        username: kept("username"),
        max_calls: kept("maxCalls"),
        call_id: kept("callId"),
    }
}

/// A number as JSON holds it, so that it is written back exactly as it was read.
fn number(n: &Number) -> Scalar {
    match (n.as_u64(), n.as_i64()) {
        (Some(whole), _) => Scalar::Whole(whole),
        (None, Some(negative)) => Scalar::Negative(negative),
        (None, None) => Scalar::Fraction(n.as_f64().unwrap_or_default()),
    }
}

fn field<'a>(data: &'a Value, name: &str) -> &'a Value {
    data.get(name).unwrap_or(&Value::Null)
}

/// USER_CONNECT's `{username, maxCalls}`.
fn login(data: Option<&Value>, max_calls_limit: u32) -> Result<Login, PayloadError> {
    let data = data
        .filter(|d| d.is_object())
        .ok_or(PayloadError::LoginNotAnObject)?;
    let username = match field(data, "username") {
        Value::String(s) if valid_nickname(s) => s.clone(),
        Value::String(_) => return Err(PayloadError::UsernameInvalid),
        Value::Null => return Err(PayloadError::UsernameMissing),
        _ => return Err(PayloadError::UsernameNotText),
    };
    let max_calls = match field(data, "maxCalls") {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let max_calls = max_calls
        .filter(|n| (1..=u64::from(max_calls_limit)).contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(PayloadError::MaxCalls {
            limit: max_calls_limit,
        })?;
    Ok(Login {
        username,
        max_calls,
    })
}

/// USER_DISCONNECT's username, from `username` or `userName`; `None` when absent.
fn logout(data: Option<&Value>) -> Option<String> {
    let data = data?;
    ["username", "userName"]
        .iter()
        .find_map(|k| data.get(*k).and_then(Value::as_str).map(str::to_owned))
}

/// NEW_CALL_ERROR's `{callId, error}`.
fn rejection(data: Option<&Value>) -> Result<ClientEvent, PayloadError> {
    let data = data.ok_or(PayloadError::RejectionMissing)?;
    let reason = match data.get("error") {
        Some(Value::String(s)) => clip(s),
        Some(other) => clip(&other.to_string()),
        None => String::new(),
    };
    Ok(ClientEvent::NewCallError {
        call: call_id(data)?,
        reason,
    })
}

/// PAUSE's `{reason}`: a pause reason id above 0, as a number or a string.
fn pause(data: Option<&Value>) -> Result<PauseReason, PayloadError> {
    let reason = match data.map(|d| field(d, "reason")) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    reason
        .filter(|r| *r > 0)
        .and_then(|r| u32::try_from(r).ok())
        .map(PauseReason)
        .ok_or(PayloadError::PauseReason)
}

/// TRANSFER_CALL's `{callId, destination}`: the destination is dialled, so only what a
/// phone number holds is accepted.
fn transfer(data: Option<&Value>) -> Result<ClientEvent, PayloadError> {
    let data = data.ok_or(PayloadError::CallMissing(
        ClientEventKind::TransferCall.name(),
    ))?;
    let call = call_id(data)?;
    let destination = match field(data, "destination") {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        _ => return Err(PayloadError::Destination),
    };
    let dialable = |c: char| c.is_ascii_digit() || "+*#".contains(c);
    if destination.is_empty() || destination.len() > 32 || !destination.chars().all(dialable) {
        return Err(PayloadError::Destination);
    }
    Ok(ClientEvent::TransferCall { call, destination })
}

fn call_of(data: Option<&Value>, kind: ClientEventKind) -> Result<CallId, PayloadError> {
    call_id(data.ok_or(PayloadError::CallMissing(kind.name()))?)
}

/// The `callId` of END_CALL, NEW_CALL_ANSWERED and NEW_CALL_ERROR: a string or a number.
fn call_id(data: &Value) -> Result<CallId, PayloadError> {
    match field(data, "callId") {
        Value::Number(n) => n
            .as_u64()
            .map(CallId)
            .ok_or_else(|| PayloadError::CallIdNumber(n.to_string())),
        Value::String(s) => s
            .trim()
            .parse()
            .map(CallId)
            .map_err(|_| PayloadError::CallIdText(s.clone())),
        Value::Null => Err(PayloadError::CallIdMissing),
        _ => Err(PayloadError::CallIdType),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn connect(data: Value) -> Result<Login, PayloadError> {
        match parse("USER_CONNECT", Some(data), 32) {
            ClientEvent::UserConnect(login) => Ok(login),
            ClientEvent::Invalid { error, .. } => Err(error),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn logins_accept_numeric_strings_and_refuse_the_rest() {
        assert_eq!(
            connect(json!({"username": "22010", "maxCalls": 8})),
            Ok(Login {
                username: "22010".into(),
                max_calls: 8
            })
        );
        assert_eq!(
            connect(json!({"username": "maria.s", "maxCalls": "3"})).map(|l| l.max_calls),
            Ok(3)
        );
        for bad in [
            json!({"username": "22010", "maxCalls": 0}),
            json!({"username": "22010", "maxCalls": null}),
            json!({"username": "22010"}),
            json!({"username": "22010", "maxCalls": 33}),
            json!({"username": "22010", "maxCalls": 2.5}),
            json!({"username": "22010", "maxCalls": "many"}),
        ] {
            assert_eq!(
                connect(bad.clone()),
                Err(PayloadError::MaxCalls { limit: 32 }),
                "{bad}"
            );
        }
        for bad in [
            json!({"username": "a@b", "maxCalls": 1}),
            json!({"username": "", "maxCalls": 1}),
            json!({"username": "x/y", "maxCalls": 1}),
            json!({"username": "a".repeat(65), "maxCalls": 1}),
        ] {
            assert_eq!(
                connect(bad.clone()),
                Err(PayloadError::UsernameInvalid),
                "{bad}"
            );
        }
        assert_eq!(connect(json!("22010")), Err(PayloadError::LoginNotAnObject));
        assert_eq!(
            connect(json!({"username": 22010, "maxCalls": 1})),
            Err(PayloadError::UsernameNotText)
        );
    }

    #[test]
    fn a_bad_payload_is_echoed_back() {
        let sent = json!({"username": "a@b", "maxCalls": 1, "extra": [1, 2]});
        assert_eq!(
            parse("USER_CONNECT", Some(sent), 32),
            ClientEvent::Invalid {
                kind: ClientEventKind::UserConnect,
                error: PayloadError::UsernameInvalid,
                echo: Echo {
                    username: Some(Scalar::Text("a@b".into())),
                    max_calls: Some(Scalar::Whole(1)),
                    call_id: None,
                },
            }
        );
        // A huge value comes back clipped, so that replies and queued events stay small.
        let huge = "x".repeat(60_000);
        let ClientEvent::Invalid { echo, .. } = parse(
            "USER_CONNECT",
            Some(json!({"username": huge, "maxCalls": {"deep": [huge]}})),
            32,
        ) else {
            panic!("refused");
        };
        let Some(Scalar::Text(username)) = echo.username else {
            panic!("the username is echoed");
        };
        assert_eq!(username.chars().count(), 129);
        assert_eq!(echo.max_calls, None);
        match parse(&huge, None, 32) {
            ClientEvent::Unknown(name) => assert!(name.len() < 200),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_contract_event_name_round_trips() {
        for kind in ClientEventKind::ALL {
            assert_eq!(kind_named(kind.name()), Some(kind));
        }
        assert_eq!(kind_named("NEW_CALL"), None);
    }

    #[test]
    fn logouts_take_either_spelling_or_nothing() {
        let logout = |data| parse("USER_DISCONNECT", data, 32);
        assert_eq!(
            logout(Some(json!({"username": "a"}))),
            ClientEvent::UserDisconnect(Some("a".into()))
        );
        assert_eq!(
            logout(Some(json!({"userName": "b"}))),
            ClientEvent::UserDisconnect(Some("b".into()))
        );
        assert_eq!(logout(Some(json!({}))), ClientEvent::UserDisconnect(None));
        assert_eq!(logout(None), ClientEvent::UserDisconnect(None));
    }

    #[test]
    fn call_ids_are_strings_or_numbers() {
        let end = |data| parse("END_CALL", Some(data), 32);
        assert_eq!(
            end(json!({"callId": "123"})),
            ClientEvent::EndCall(CallId(123))
        );
        assert_eq!(
            end(json!({"callId": 123})),
            ClientEvent::EndCall(CallId(123))
        );
        for (bad, error) in [
            (
                json!({"callId": "abc"}),
                PayloadError::CallIdText("abc".into()),
            ),
            (
                json!({"callId": -1}),
                PayloadError::CallIdNumber("-1".into()),
            ),
            (json!({"callId": [1]}), PayloadError::CallIdType),
            (json!({}), PayloadError::CallIdMissing),
        ] {
            assert!(
                matches!(end(bad.clone()), ClientEvent::Invalid { error: e, .. } if e == error),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("END_CALL", None, 32),
            ClientEvent::Invalid {
                error: PayloadError::CallMissing("END_CALL"),
                ..
            }
        ));
    }

    #[test]
    fn rejections_keep_the_reason_and_unknown_events_their_name() {
        assert_eq!(
            parse(
                "NEW_CALL_ERROR",
                Some(json!({"callId": 5, "error": "busy"})),
                32
            ),
            ClientEvent::NewCallError {
                call: CallId(5),
                reason: "busy".into()
            }
        );
        assert!(matches!(
            parse("NEW_CALL_ERROR", None, 32),
            ClientEvent::Invalid {
                error: PayloadError::RejectionMissing,
                ..
            }
        ));
        assert_eq!(
            parse("HELLO", Some(json!({})), 32),
            ClientEvent::Unknown("HELLO".into())
        );
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::{Map, Value};

        use super::super::{kind_named, parse};
        use crate::agents::event::ClientEvent;

        /// Any JSON value, nested a few levels, with long strings and odd numbers.
        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                ".{0,80}".prop_map(Value::String),
                "[0-9 ]{0,25}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 64, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                    prop::collection::vec(
                        (
                            prop_oneof![
                                Just("username".to_owned()),
                                Just("userName".to_owned()),
                                Just("maxCalls".to_owned()),
                                Just("callId".to_owned()),
                                Just("error".to_owned()),
                                ".{0,12}",
                            ],
                            inner
                        ),
                        0..6
                    )
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
                ]
            })
        }

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("USER_CONNECT".to_owned()),
                Just("USER_DISCONNECT".to_owned()),
                Just("END_CALL".to_owned()),
                Just("NEW_CALL_ANSWERED".to_owned()),
                Just("NEW_CALL_ERROR".to_owned()),
                ".{0,30}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Whatever a client sends, parsing answers: a contract event of the kind named,
            /// the same kind refused with a reason, or an unknown event, never a panic.
            #[test]
            fn every_payload_parses_to_its_own_kind_or_a_reason(
                name in name(),
                data in prop::option::of(json()),
                limit in 1u32..64,
            ) {
                let event = parse(&name, data, limit);
                match kind_named(&name) {
                    None => prop_assert_eq!(event, ClientEvent::Unknown(name)),
                    Some(kind) => {
                        prop_assert_eq!(event.label(), kind.name());
                        if let ClientEvent::UserConnect(login) = &event {
                            prop_assert!((1..=limit).contains(&login.max_calls));
                            prop_assert!(crate::config::valid_nickname(&login.username));
                        }
                    }
                }
            }
        }
    }
}
