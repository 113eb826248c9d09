//! The breaker-change message: what the Lua script publishes on the breaker channel and
//! returns to the worker that made the change, `{"provider", "seq", "breaker": {...}}`, with
//! the breaker's fields named and shaped as [`Breaker`] serializes them.
//!
//! Times are read from their raw JSON text with `str::parse`, which rounds correctly, so the
//! f64 the script wrote (17 significant digits) comes back bit for bit; serde_json's default
//! float parser may be off by one unit in the last place.

use mana_llm_shared::ProviderId;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::health::breaker::OpenedBy;
use crate::health::{Breaker, Transition};

/// One provider's shared breaker at version `seq` (bumped by every change in Redis).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Update {
    pub provider: ProviderId,
    pub seq: u64,
    pub breaker: Breaker,
}

#[derive(Deserialize)]
struct Message<'a> {
    provider: String,
    seq: u64,
    #[serde(borrow)]
    breaker: WireBreaker<'a>,
}

#[derive(Deserialize)]
struct WireBreaker<'a> {
    consecutive_failures: u32,
    last_error: Option<String>,
    #[serde(borrow)]
    last_check: Option<&'a RawValue>,
    #[serde(borrow)]
    open_until: Option<&'a RawValue>,
    opened_by: Option<String>,
    #[serde(borrow)]
    trial_started: Option<&'a RawValue>,
}

fn time(raw: Option<&RawValue>) -> Result<Option<f64>, String> {
    match raw.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some(text) => text
            .parse::<f64>()
            .map(Some)
            .map_err(|e| format!("bad time {text:?}: {e}")),
    }
}

fn opened_by(raw: Option<&str>) -> Result<Option<OpenedBy>, String> {
    match raw {
        None => Ok(None),
        Some("calls") => Ok(Some(OpenedBy::Calls)),
        Some("probe") => Ok(Some(OpenedBy::Probe)),
        Some(other) => Err(format!("unknown opened_by {other:?}")),
    }
}

/// Parses a breaker-change message.
pub(super) fn parse(message: &str) -> Result<Update, String> {
    let m: Message<'_> = serde_json::from_str(message).map_err(|e| e.to_string())?;
    let b = m.breaker;
    Ok(Update {
        provider: ProviderId::new(&m.provider),
        seq: m.seq,
        breaker: Breaker {
            consecutive_failures: b.consecutive_failures,
            last_error: b.last_error,
            last_check: time(b.last_check)?,
            open_until: time(b.open_until)?,
            opened_by: opened_by(b.opened_by.as_deref())?,
            trial_started: time(b.trial_started)?,
        },
    })
}

/// The transition the script reports: `"tripped"`, `"recovered"` or `""`.
pub(super) fn transition(text: &str) -> Option<Transition> {
    match text {
        "tripped" => Some(Transition::Tripped),
        "recovered" => Some(Transition::Recovered),
        _ => None,
    }
}

/// A number as the script's `tonumber` reads it back exactly: Rust prints the shortest
/// decimal that round-trips, never in exponent form.
pub(super) fn number(x: f64) -> String {
    format!("{x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_message_with_exact_times() {
        let now = 1_712_345_678.123_f64;
        let text = format!(
            r#"{{"provider":"groq","seq":7,"breaker":{{"consecutive_failures":2,"last_error":"x \"y\"","last_check":{},"open_until":1.7123457381229999e+09,"opened_by":"probe","trial_started":null}}}}"#,
            "1712345678.1229999"
        );
        let u = parse(&text).unwrap();
        assert_eq!(u.provider, ProviderId::new("groq"));
        assert_eq!(u.seq, 7);
        assert_eq!(u.breaker.last_check, Some(now));
        assert_eq!(u.breaker.open_until, Some(now + 60.0), "exponent form");
        assert_eq!(u.breaker.opened_by, Some(OpenedBy::Probe));
        assert_eq!(u.breaker.last_error.as_deref(), Some("x \"y\""));
        assert_eq!(u.breaker.trial_started, None);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("{}").is_err());
        assert!(parse(r#"{"provider":"a","seq":1,"breaker":{"consecutive_failures":0,"last_error":null,"last_check":null,"open_until":null,"opened_by":"aliens","trial_started":null}}"#).is_err());
        assert_eq!(transition("tripped"), Some(Transition::Tripped));
        assert_eq!(transition(""), None);
        assert_eq!(number(1_000_061.0), "1000061");
        assert_eq!(number(0.5), "0.5");
    }
}
