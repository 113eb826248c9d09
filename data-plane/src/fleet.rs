//! This worker's part in the fleet view: figures per registry version, and a heartbeat that
//! reports them (with the version served, in-flight requests, where it listens) every few
//! seconds to the fleet's [`Beats`] store, with an expiry.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use mana_llm_shared::fleet::{is_worker_id, Latency, Window};
use mana_llm_shared::RegistryVersion;
use sha2::{Digest, Sha256};

/// Latency bucket bounds in milliseconds: a p99 is reported as the bound it falls under.
const BOUNDS_MS: [f64; 16] = [
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    50.0,
    100.0,
    200.0,
    500.0,
    1_000.0,
    2_000.0,
    5_000.0,
    10_000.0,
    30_000.0,
    60_000.0,
    f64::INFINITY,
];

/// Figures since the last beat.
#[derive(Default)]
struct Counts {
    requests: u64,
    upstream_errors: u64,
    fallbacks: u64,
    exhausted: u64,
    buckets: [u64; BOUNDS_MS.len()],
    max_ms: f64,
}

impl Counts {
    fn window(&self) -> Window {
        Window {
            requests: self.requests,
            upstream_errors: self.upstream_errors,
            fallbacks: self.fallbacks,
            exhausted: self.exhausted,
            latency_ms: Latency {
                p50: self.quantile(0.5),
                p99: self.quantile(0.99),
                max: self.max_ms,
            },
        }
    }

    fn quantile(&self, q: f64) -> f64 {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bound, n) in BOUNDS_MS.iter().zip(self.buckets) {
            seen += n;
            if seen >= rank {
                // The open bucket reports the largest value seen.
                return if bound.is_finite() {
                    *bound
                } else {
                    self.max_ms
                };
            }
        }
        self.max_ms
    }
}

/// What one request did, for the fleet figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub upstream_error: bool,
    pub fallback: bool,
    pub exhausted: bool,
}

/// Figures per registry version since the last beat.
#[derive(Default)]
pub struct FleetStats {
    windows: Mutex<HashMap<u64, Counts>>,
}

impl FleetStats {
    pub fn record(&self, version: u64, latency: Duration, outcome: Outcome) {
        let ms = latency.as_secs_f64() * 1000.0;
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let c = windows.entry(version).or_default();
        c.requests += 1;
        c.upstream_errors += u64::from(outcome.upstream_error);
        c.fallbacks += u64::from(outcome.fallback);
        c.exhausted += u64::from(outcome.exhausted);
        let bucket = BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BOUNDS_MS.len() - 1);
        c.buckets[bucket] += 1;
        c.max_ms = c.max_ms.max(ms);
    }

    /// The windows since the last call, emptied (the newest versions if there are many).
    pub(crate) fn take(&self) -> BTreeMap<RegistryVersion, Window> {
        let windows = std::mem::take(&mut *self.windows.lock().unwrap_or_else(|e| e.into_inner()));
        let mut out: BTreeMap<RegistryVersion, Window> = windows
            .iter()
            .map(|(v, c)| (RegistryVersion(*v), c.window()))
            .collect();
        while out.len() > mana_llm_shared::fleet::MAX_VERSIONS_PER_BEAT {
            out.pop_first();
        }
        out
    }
}

/// The id this worker reports: its configured id when it is a safe one, else a short hash of
/// it (the fleet view shows ids, so they must not carry arbitrary text).
pub fn fleet_id(worker_id: &str) -> String {
    if is_worker_id(worker_id) {
        return worker_id.to_owned();
    }
    let digest = Sha256::digest(worker_id.as_bytes());
    format!("w-{}", mana_llm_shared::fleet_key::to_hex(&digest[..8]))
}

pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Where this process listens, once it does.
#[derive(Default)]
pub struct Listen(OnceLock<std::net::SocketAddr>);

impl Listen {
    pub fn set(&self, addr: std::net::SocketAddr) {
        let _ = self.0.set(addr);
    }

    pub(crate) fn get(&self) -> Option<std::net::SocketAddr> {
        self.0.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_per_version_and_empty_on_take() {
        let stats = FleetStats::default();
        for ms in [3, 3, 3, 40, 900] {
            stats.record(2, Duration::from_millis(ms), Outcome::default());
        }
        stats.record(
            3,
            Duration::from_millis(1),
            Outcome {
                upstream_error: true,
                fallback: true,
                exhausted: true,
            },
        );
        let w = stats.take();
        assert_eq!(w[&RegistryVersion(2)].requests, 5);
        assert_eq!(w[&RegistryVersion(2)].latency_ms.p50, 5.0);
        assert_eq!(w[&RegistryVersion(2)].latency_ms.p99, 1000.0);
        assert_eq!(w[&RegistryVersion(2)].latency_ms.max, 900.0);
        assert_eq!(
            (
                w[&RegistryVersion(3)].upstream_errors,
                w[&RegistryVersion(3)].fallbacks,
                w[&RegistryVersion(3)].exhausted
            ),
            (1, 1, 1)
        );
        assert!(stats.take().is_empty());
    }

    #[test]
    fn unsafe_ids_are_reported_as_a_hash() {
        assert_eq!(fleet_id("w1"), "w1");
        let hashed = fleet_id("<b>evil</b>");
        assert!(
            hashed.starts_with("w-") && is_worker_id(&hashed),
            "{hashed}"
        );
        assert_eq!(hashed, fleet_id("<b>evil</b>"));
    }
}
