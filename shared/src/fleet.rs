//! The fleet as an object: what each worker reports about itself, and where.
//!
//! Every worker (and `serve`) writes a [`Beat`] every few seconds under its own key with an
//! expiry, so a worker that stops beating disappears on its own. A beat is bounded in size and
//! carries no user strings: ids and addresses are checked before they are written and again
//! when they are read (anyone who reaches Redis can write there).

mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::registry::RegistryVersion;

pub use store::{Beats, MemoryBeats, RedisBeats};

/// Largest beat accepted when read back; a real one is well under 2 KiB.
pub const MAX_BEAT_BYTES: usize = 16 * 1024;
/// Registry versions one beat may report figures for (a worker sees one or two per window).
pub const MAX_VERSIONS_PER_BEAT: usize = 8;

/// A worker's id in the fleet (`MANA_LLM_WORKER_ID`, or one made at start): what its
/// heartbeat, its cohort and the rollout events name it by. Stored as the bare string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(String);

impl WorkerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for WorkerId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for WorkerId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl AsRef<str> for WorkerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

/// One worker's report of itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beat {
    pub worker_id: WorkerId,
    /// Where it listens (`ip:port`).
    pub listen: String,
    /// The `mana-llm` binary version.
    pub binary_version: String,
    /// The registry version it serves (0: none yet).
    pub registry_version: RegistryVersion,
    /// Unix seconds.
    pub started_at: f64,
    pub beat_at: f64,
    /// Seconds after which this beat expires.
    pub ttl: f64,
    pub in_flight: u64,
    /// Figures since the previous beat, per registry version served.
    pub windows: BTreeMap<RegistryVersion, Window>,
    /// Each configured provider's circuit breaker as this worker sees it: `healthy`,
    /// `half_open` or `open`.
    #[serde(default)]
    pub breakers: BTreeMap<String, String>,
}

/// Providers one beat may report a breaker for.
pub const MAX_BREAKERS_PER_BEAT: usize = 64;

/// The breaker states a beat may report.
pub const BREAKER_STATES: [&str; 3] = ["healthy", "half_open", "open"];

/// Requests served under one registry version in one beat interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub requests: u64,
    /// Requests that ended in an upstream error (5xx from the gateway).
    pub upstream_errors: u64,
    /// Requests answered by a later chain entry than the first.
    pub fallbacks: u64,
    /// Requests whose whole chain was exhausted.
    pub exhausted: u64,
    pub latency_ms: Latency,
}

/// A latency summary of one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Beat {
    /// Whether every field is something a worker could have written: a bounded id of safe
    /// characters, an address, bounded counts. A beat that is not is ignored by readers.
    pub fn is_plausible(&self) -> bool {
        is_worker_id(self.worker_id.as_str())
            && self.listen.len() <= 64
            && self.listen.parse::<std::net::SocketAddr>().is_ok()
            && self.binary_version.len() <= 32
            && self
                .binary_version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-+".contains(&b))
            && self.windows.len() <= MAX_VERSIONS_PER_BEAT
            && self.breakers.len() <= MAX_BREAKERS_PER_BEAT
            && self
                .breakers
                .iter()
                .all(|(p, s)| is_worker_id(p) && BREAKER_STATES.contains(&s.as_str()))
            && [self.started_at, self.beat_at, self.ttl]
                .iter()
                .all(|t| t.is_finite() && *t >= 0.0)
    }
}

/// A worker id as the fleet shows it: 1–64 of `A-Z a-z 0-9 . _ -`.
pub fn is_worker_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat() -> Beat {
        Beat {
            worker_id: "w-1".into(),
            listen: "127.0.0.1:3025".into(),
            binary_version: "0.1.0".into(),
            registry_version: RegistryVersion(3),
            started_at: 1.0,
            beat_at: 2.0,
            ttl: 15.0,
            in_flight: 0,
            windows: BTreeMap::new(),
            breakers: BTreeMap::from([("ollama".into(), "open".into())]),
        }
    }

    #[test]
    fn plausible_beats_only() {
        assert!(beat().is_plausible());
        for bad in [
            Beat {
                worker_id: "".into(),
                ..beat()
            },
            Beat {
                worker_id: "a b".into(),
                ..beat()
            },
            Beat {
                worker_id: "x".repeat(65).into(),
                ..beat()
            },
            Beat {
                worker_id: "<script>".into(),
                ..beat()
            },
            Beat {
                listen: "somewhere".into(),
                ..beat()
            },
            Beat {
                binary_version: "1 2".into(),
                ..beat()
            },
            Beat {
                beat_at: f64::NAN,
                ..beat()
            },
            Beat {
                ttl: -1.0,
                ..beat()
            },
            Beat {
                windows: (0..9)
                    .map(|v| (RegistryVersion(v), Window::default()))
                    .collect(),
                ..beat()
            },
            Beat {
                breakers: BTreeMap::from([("ollama".into(), "<b>".into())]),
                ..beat()
            },
            Beat {
                breakers: BTreeMap::from([("a provider".into(), "open".into())]),
                ..beat()
            },
            Beat {
                breakers: (0..65).map(|i| (format!("p{i}"), "open".into())).collect(),
                ..beat()
            },
        ] {
            assert!(!bad.is_plausible(), "{bad:?}");
        }
    }
}
