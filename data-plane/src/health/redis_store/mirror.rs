//! This worker's copy of the fleet's breakers: what admissions are decided from, without a
//! Redis round trip.
//!
//! Each entry carries the `seq` of the Redis version it holds. Updates reach the mirror from
//! two directions (this worker's own script results and the channel), so they can arrive out
//! of order; an update only replaces an entry with a lower `seq`. A full re-sync replaces
//! unconditionally, since after a Redis restart the counters start again from zero.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use mana_llm_shared::ProviderId;

use super::wire::Update;
use crate::health::{Admission, Breaker, BreakerConfig, Status};

#[derive(Debug, Clone, Default)]
struct Entry {
    breaker: Breaker,
    /// The Redis version this entry reflects; 0 for state Redis has not confirmed.
    seq: u64,
}

/// What the mirror alone can say about an admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Local {
    /// Call or Reject: final.
    Decided(Admission),
    /// Half-open with no trial known to run: the fleet-wide trial lock decides. `seq` is the
    /// version looked at, so the outcome is only noted if nothing changed meanwhile.
    TrialFree { seq: u64 },
}

#[derive(Default)]
pub(super) struct Mirror {
    entries: Mutex<HashMap<ProviderId, Entry>>,
}

impl Mirror {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProviderId, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a newer version from Redis; older or repeated ones are ignored.
    pub fn apply(&self, update: Update) {
        let mut entries = self.lock();
        let entry = entries.entry(update.provider).or_default();
        if update.seq > entry.seq {
            *entry = Entry {
                breaker: update.breaker,
                seq: update.seq,
            };
        }
    }

    /// Takes every breaker Redis has. Providers Redis does not know keep their local state
    /// (it is all this worker knows about them) but lose their version, so the first update
    /// from a restarted Redis is taken.
    pub fn resync(&self, updates: Vec<Update>) {
        let mut entries = self.lock();
        for entry in entries.values_mut() {
            entry.seq = 0;
        }
        for update in updates {
            entries.insert(
                update.provider,
                Entry {
                    breaker: update.breaker,
                    seq: update.seq,
                },
            );
        }
    }

    /// Whether `provider`'s breaker is closed with nothing counted and no trial: a success
    /// would change nothing about it.
    pub fn is_clean(&self, provider: &ProviderId) -> bool {
        self.lock().get(provider).is_none_or(|e| {
            e.breaker.consecutive_failures == 0
                && e.breaker.open_until.is_none()
                && e.breaker.trial_started.is_none()
        })
    }

    /// Runs `f` on the local breaker alone: the fallback while Redis is down, exactly as
    /// `MemoryStore` would.
    pub fn local<T>(&self, provider: &ProviderId, f: impl FnOnce(&mut Breaker) -> T) -> T {
        f(&mut self.lock().entry(provider.clone()).or_default().breaker)
    }

    /// Decides what it can without Redis. The breaker's own rules answer; only a trial it
    /// would grant needs the fleet-wide lock.
    pub fn admit(&self, provider: &ProviderId, now: f64, config: &BreakerConfig) -> Local {
        let entries = self.lock();
        let Some(entry) = entries.get(provider) else {
            return Local::Decided(Admission::Call);
        };
        match entry.breaker.status(now) {
            Status::Healthy => Local::Decided(Admission::Call),
            Status::Open => Local::Decided(Admission::Reject),
            // A throwaway copy (half-open is rare, so the clone stays off the common path):
            // granting a trial here must not mark one as started.
            Status::HalfOpen => match entry.breaker.clone().admit(now, config) {
                Admission::Trial => Local::TrialFree { seq: entry.seq },
                decided => Local::Decided(decided),
            },
        }
    }

    /// Notes that a trial runs somewhere in the fleet since `now` (this worker's, or another's
    /// whose lock we met), so further admissions here reject without asking Redis until the
    /// outcome arrives or the trial goes stale.
    pub fn trial_started(&self, provider: &ProviderId, seq: u64, now: f64) {
        if let Some(entry) = self.lock().get_mut(provider) {
            if entry.seq == seq {
                entry.breaker.trial_started = Some(now);
            }
        }
    }

    pub fn snapshot(&self) -> BTreeMap<ProviderId, Breaker> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.breaker.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(seq: u64, failures: u32) -> Update {
        Update {
            provider: ProviderId::new("groq"),
            seq,
            breaker: Breaker {
                consecutive_failures: failures,
                ..Breaker::default()
            },
        }
    }

    fn failures(m: &Mirror) -> u32 {
        m.snapshot()[&ProviderId::new("groq")].consecutive_failures
    }

    #[test]
    fn older_updates_never_replace_newer_ones() {
        let m = Mirror::default();
        m.apply(update(2, 2));
        m.apply(update(1, 1));
        assert_eq!(failures(&m), 2);
        m.apply(update(3, 3));
        assert_eq!(failures(&m), 3);
    }

    #[test]
    fn a_resync_wins_and_resets_versions_of_what_redis_forgot() {
        let m = Mirror::default();
        m.apply(update(9, 5));
        m.resync(vec![update(1, 1)]);
        assert_eq!(failures(&m), 1, "a restarted Redis counts from zero again");
        let other = ProviderId::new("ollama");
        m.local(&other, |b| b.consecutive_failures = 4);
        m.resync(vec![]);
        assert_eq!(m.snapshot()[&other].consecutive_failures, 4);
        m.apply(update(1, 7));
        assert_eq!(failures(&m), 7, "versions restart after a resync");
    }

    #[test]
    fn admission_is_decided_locally_except_a_free_trial() {
        let m = Mirror::default();
        let p = ProviderId::new("groq");
        let cfg = BreakerConfig::default();
        assert_eq!(m.admit(&p, 0.0, &cfg), Local::Decided(Admission::Call));
        m.apply(Update {
            provider: p.clone(),
            seq: 4,
            breaker: Breaker {
                open_until: Some(100.0),
                ..Breaker::default()
            },
        });
        assert_eq!(m.admit(&p, 50.0, &cfg), Local::Decided(Admission::Reject));
        assert_eq!(m.admit(&p, 100.0, &cfg), Local::TrialFree { seq: 4 });
        assert_eq!(m.admit(&p, 100.0, &cfg), Local::TrialFree { seq: 4 });
        m.trial_started(&p, 4, 100.0);
        assert_eq!(m.admit(&p, 101.0, &cfg), Local::Decided(Admission::Reject));
    }
}
