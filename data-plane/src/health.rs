//! Provider health: one circuit breaker per provider behind a [`HealthStore`], transition
//! listeners, and a background [`probe`].
//!
//! The router only talks to [`Health`]; whether breakers live in this process
//! ([`MemoryStore`]) or are shared by the fleet (the Redis store of the scale-out work) is the
//! store's business.

pub mod breaker;
pub mod probe;
pub mod redis_store;

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use mana_llm_shared::ProviderId;

use crate::scrub::Scrubber;

pub use breaker::{Admission, Breaker, BreakerConfig, Status, Transition};

/// Wall-clock time in Unix seconds; injected so tests control it.
pub trait Clock: Send + Sync {
    fn now(&self) -> f64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

/// What happened on a call or probe.
#[derive(Debug, Clone, Copy)]
pub enum Report<'a> {
    Success,
    Failure(&'a str),
    RateLimited(Option<Duration>),
    Probe(Result<(), &'a str>),
}

/// Where breakers live. Each operation is atomic for one provider.
#[async_trait]
pub trait HealthStore: Send + Sync {
    async fn admit(&self, provider: &ProviderId, now: f64) -> Admission;
    async fn report(
        &self,
        provider: &ProviderId,
        report: Report<'_>,
        now: f64,
    ) -> Option<Transition>;
    fn snapshot(&self) -> BTreeMap<ProviderId, Breaker>;
    /// Whether this state is shared by the fleet right now.
    fn shared(&self) -> bool;
    fn config(&self) -> &BreakerConfig;
    /// Whether this worker should run a fleet-wide periodic job now, e.g. a probe tick.
    async fn try_lead(&self, _name: &str, _ttl: Duration) -> bool {
        true
    }
}

/// Breakers in this process only.
pub struct MemoryStore {
    config: BreakerConfig,
    breakers: Mutex<HashMap<ProviderId, Breaker>>,
}

impl MemoryStore {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            breakers: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, provider: &ProviderId, f: impl FnOnce(&mut Breaker) -> T) -> T {
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        f(breakers.entry(provider.clone()).or_default())
    }
}

#[async_trait]
impl HealthStore for MemoryStore {
    async fn admit(&self, provider: &ProviderId, now: f64) -> Admission {
        let config = self.config;
        self.with(provider, |b| b.admit(now, &config))
    }

    async fn report(
        &self,
        provider: &ProviderId,
        report: Report<'_>,
        now: f64,
    ) -> Option<Transition> {
        let config = self.config;
        self.with(provider, |b| match report {
            Report::Success => b.on_success(now),
            Report::Failure(reason) => b.on_failure(reason, now, &config),
            Report::RateLimited(after) => b.on_rate_limited(after, now, &config),
            Report::Probe(result) => b.on_probe(result, now, &config),
        })
    }

    fn snapshot(&self) -> BTreeMap<ProviderId, Breaker> {
        let breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        breakers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn shared(&self) -> bool {
        false
    }

    fn config(&self) -> &BreakerConfig {
        &self.config
    }
}

pub type Listener = Arc<dyn Fn(&ProviderId, Transition) + Send + Sync>;

pub struct Health {
    store: Arc<dyn HealthStore>,
    clock: Arc<dyn Clock>,
    listeners: RwLock<Vec<Listener>>,
    /// Failure reasons become `last_error`, shown by `/v1/health` and shared through Redis.
    scrubber: Arc<Scrubber>,
}

impl Health {
    pub fn new(store: Arc<dyn HealthStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            listeners: RwLock::new(Vec::new()),
            scrubber: Arc::default(),
        }
    }

    /// Scrubs failure reasons of these secrets before they are stored. The providers already
    /// report scrubbed errors; this holds for any reason that reaches a breaker another way.
    pub fn with_scrubber(mut self, scrubber: Arc<Scrubber>) -> Self {
        self.scrubber = scrubber;
        self
    }

    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    pub fn in_memory(config: BreakerConfig) -> Self {
        Self::new(Arc::new(MemoryStore::new(config)), Arc::new(SystemClock))
    }

    pub fn now(&self) -> f64 {
        self.clock.now()
    }

    pub fn config(&self) -> &BreakerConfig {
        self.store.config()
    }

    pub fn shared(&self) -> bool {
        self.store.shared()
    }

    /// Whether this worker should run the fleet-wide job `name` now (e.g. a probe tick).
    pub async fn try_lead(&self, name: &str, ttl: Duration) -> bool {
        self.store.try_lead(name, ttl).await
    }

    pub async fn admit(&self, provider: &ProviderId) -> Admission {
        self.store.admit(provider, self.now()).await
    }

    pub async fn report(&self, provider: &ProviderId, report: Report<'_>) {
        let clean;
        let report = match report {
            Report::Failure(reason) => {
                clean = self.scrubber.scrub(reason);
                Report::Failure(&clean)
            }
            Report::Probe(Err(reason)) => {
                clean = self.scrubber.scrub(reason);
                Report::Probe(Err(&clean))
            }
            other => other,
        };
        if let Some(transition) = self.store.report(provider, report, self.now()).await {
            self.notify(provider, transition);
        }
    }

    /// Listeners run in registration order; one that panics is logged and the rest still run.
    pub fn add_listener(&self, listener: Listener) {
        self.listeners
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(listener);
    }

    fn notify(&self, provider: &ProviderId, transition: Transition) {
        match transition {
            Transition::Tripped => {
                tracing::warn!(%provider, "provider marked unhealthy: circuit open")
            }
            Transition::Recovered => tracing::info!(%provider, "provider recovered"),
        }
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for listener in listeners {
            if catch_unwind(AssertUnwindSafe(|| listener(provider, transition))).is_err() {
                tracing::error!(%provider, "health-change listener panicked; other listeners still ran");
            }
        }
    }

    /// Every expected provider (zero state if never seen) plus any other the store knows.
    pub fn snapshot<'a>(
        &self,
        expected: impl IntoIterator<Item = &'a ProviderId>,
    ) -> BTreeMap<ProviderId, Breaker> {
        let mut all = self.store.snapshot();
        for id in expected {
            all.entry(id.clone()).or_default();
        }
        all
    }

    pub fn status(&self, breaker: &Breaker) -> Status {
        breaker.status(self.now())
    }

    /// How long until `provider`'s open breaker lets a call (its half-open trial) through;
    /// `None` when it is not open, or its window has already passed.
    pub fn reopens_in(&self, provider: &ProviderId) -> Option<Duration> {
        let until = self.store.snapshot().get(provider)?.open_until?;
        let wait = until - self.now();
        (wait > 0.0).then(|| Duration::from_secs_f64(wait))
    }
}

#[cfg(test)]
pub mod testing {
    //! A clock tests move by hand.
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::Clock;

    #[derive(Default)]
    pub struct ManualClock(AtomicU64);

    impl ManualClock {
        pub fn at(secs: f64) -> Self {
            Self(AtomicU64::new((secs * 1000.0) as u64))
        }

        pub fn advance(&self, secs: f64) {
            self.0.fetch_add((secs * 1000.0) as u64, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> f64 {
            self.0.load(Ordering::SeqCst) as f64 / 1000.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::ManualClock;
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn health(clock: Arc<ManualClock>) -> Health {
        Health::new(Arc::new(MemoryStore::new(BreakerConfig::default())), clock)
    }

    #[tokio::test]
    async fn listeners_fire_once_per_transition_and_survive_a_failing_one() {
        let clock = Arc::new(ManualClock::at(1000.0));
        let h = health(clock.clone());
        let events = Arc::new(Mutex::new(Vec::new()));
        h.add_listener(Arc::new(|_, _| panic!("a broken listener")));
        let sink = events.clone();
        h.add_listener(Arc::new(move |p, t| {
            sink.lock().unwrap().push((p.to_string(), t))
        }));
        let second = Arc::new(AtomicUsize::new(0));
        let count = second.clone();
        h.add_listener(Arc::new(move |_, _| {
            count.fetch_add(1, Ordering::SeqCst);
        }));

        let p = ProviderId::new("ollama");
        h.report(&p, Report::Failure("x")).await;
        assert!(
            events.lock().unwrap().is_empty(),
            "no event on the first failure"
        );
        h.report(&p, Report::Failure("x")).await;
        h.report(&p, Report::Failure("x")).await;
        h.report(&p, Report::Success).await;
        h.report(&p, Report::Success).await;
        let got = events.lock().unwrap().clone();
        assert_eq!(
            got,
            [
                ("ollama".to_owned(), Transition::Tripped),
                ("ollama".to_owned(), Transition::Recovered)
            ]
        );
        assert_eq!(
            second.load(Ordering::SeqCst),
            2,
            "listeners after a panicking one still run"
        );
    }

    #[tokio::test]
    async fn stored_reasons_are_scrubbed() {
        let h = health(Arc::new(ManualClock::at(0.0)))
            .with_scrubber(Arc::new(Scrubber::default().with("sk-stored-key")));
        let (calls, probed) = (ProviderId::new("groq"), ProviderId::new("openai"));
        h.report(&calls, Report::Failure("bad key sk-stored-key"))
            .await;
        h.report(&probed, Report::Probe(Err("probe: sk-stored-key")))
            .await;
        let snap = h.snapshot([]);
        assert_eq!(
            snap[&calls].last_error.as_deref(),
            Some("bad key [redacted]")
        );
        assert_eq!(
            snap[&probed].last_error.as_deref(),
            Some("probe: [redacted]")
        );
    }

    #[tokio::test]
    async fn snapshot_includes_expected_providers_in_zero_state() {
        let h = health(Arc::new(ManualClock::at(0.0)));
        let p = ProviderId::new("groq");
        let snap = h.snapshot([&p]);
        assert_eq!(snap[&p], Breaker::default());
        assert_eq!(h.status(&snap[&p]), Status::Healthy);
    }

    #[tokio::test]
    async fn half_open_admits_one_trial_as_time_passes() {
        let clock = Arc::new(ManualClock::at(1000.0));
        let h = health(clock.clone());
        let p = ProviderId::new("groq");
        h.report(&p, Report::Failure("x")).await;
        h.report(&p, Report::Failure("x")).await;
        assert_eq!(h.admit(&p).await, Admission::Reject);
        clock.advance(61.0);
        assert_eq!(h.admit(&p).await, Admission::Trial);
        assert_eq!(h.admit(&p).await, Admission::Reject);
    }
}
