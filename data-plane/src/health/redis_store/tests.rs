//! Against real `redis-server` children: the Lua script against breaker.rs, and several
//! "workers" (stores) sharing one Redis through start, trips, trials, leadership and outages.

use std::sync::Arc;
use std::time::Duration;

use mana_llm_shared::bus::BusNames;
use mana_llm_shared::ProviderId;
use tokio_util::sync::CancellationToken;

use super::test_redis::{eventually, fresh_names, shared_redis, RedisServer};
use super::{wire, RedisStore};
use crate::health::{Admission, Breaker, BreakerConfig, HealthStore, Report, Status, Transition};

/// A fractional, present-day time, so float round trips are really tested.
const T: f64 = 1_712_345_678.123;
const SOON: Duration = Duration::from_secs(5);

fn store(redis: &RedisServer, names: &BusNames, worker: &str) -> Arc<RedisStore> {
    start(&redis.url(), names, BreakerConfig::default(), worker)
}

fn start(url: &str, names: &BusNames, config: BreakerConfig, worker: &str) -> Arc<RedisStore> {
    RedisStore::start(
        shared_redis(url, names),
        config,
        worker.to_owned(),
        CancellationToken::new(),
    )
}

/// Waits for the store's connection: request-path calls never wait for one themselves.
async fn connected(store: &RedisStore) {
    assert!(
        store
            .inner
            .redis
            .connection_waiting(Duration::from_secs(5))
            .await
            .is_some(),
        "Redis connection"
    );
}

fn breaker(store: &RedisStore, p: &ProviderId) -> Breaker {
    store.snapshot().get(p).cloned().unwrap_or_default()
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Success,
    Failure,
    RateLimited(Option<f64>),
    ProbeOk,
    ProbeFailure,
}

impl Event {
    fn report(self) -> Report<'static> {
        match self {
            Event::Success => Report::Success,
            Event::Failure => Report::Failure("chat 500"),
            Event::RateLimited(after) => Report::RateLimited(after.map(Duration::from_secs_f64)),
            Event::ProbeOk => Report::Probe(Ok(())),
            Event::ProbeFailure => Report::Probe(Err("probe-timeout")),
        }
    }

    fn apply(self, b: &mut Breaker, now: f64, config: &BreakerConfig) -> Option<Transition> {
        match self.report() {
            Report::Success => b.on_success(now),
            Report::Failure(reason) => b.on_failure(reason, now, config),
            Report::RateLimited(after) => b.on_rate_limited(after, now, config),
            Report::Probe(result) => b.on_probe(result, now, config),
        }
    }
}

#[tokio::test]
async fn the_lua_script_and_breaker_rs_agree() {
    use Event::*;
    let sequences: &[&[(Event, f64)]] = &[
        &[(Failure, 0.0), (Failure, 0.25), (Success, 1.0)],
        &[(Failure, 0.0), (Failure, 0.0), (Failure, 61.5)],
        &[(Failure, 0.0), (Failure, 120.0), (Failure, 200.0)],
        &[(RateLimited(Some(5.5)), 0.0), (RateLimited(None), 1.0)],
        &[(RateLimited(None), 0.0), (RateLimited(Some(120.0)), 2.0)],
        &[
            (Failure, 0.0),
            (Failure, 0.0),
            (RateLimited(Some(5.0)), 1.0),
        ],
        &[
            (ProbeFailure, 0.0),
            (ProbeFailure, 30.0),
            (ProbeOk, 31.0),
            (ProbeOk, 32.0),
        ],
        &[
            (Failure, 0.0),
            (Failure, 0.0),
            (ProbeOk, 1.0),
            (ProbeFailure, 2.0),
            (ProbeOk, 3.0),
        ],
        &[
            (ProbeFailure, 0.0),
            (ProbeFailure, 1.0),
            (Failure, 2.0),
            (ProbeOk, 3.0),
        ],
        &[
            (ProbeFailure, 0.0),
            (Failure, 1.0),
            (Failure, 2.0),
            (Success, 70.0),
        ],
        &[(ProbeOk, 0.0), (Success, 1.0), (Failure, 2.0)],
    ];
    let redis = RedisServer::start();
    let configs = [
        BreakerConfig::default(),
        BreakerConfig::new(
            3,
            Duration::from_secs_f64(7.5),
            Duration::from_secs_f64(2.25),
        )
        .unwrap(),
    ];
    for (c, config) in configs.iter().enumerate() {
        let s = start(&redis.url(), &fresh_names(), *config, "parity");
        connected(&s).await;
        for (i, sequence) in sequences.iter().enumerate() {
            let p = ProviderId::new(&format!("p{c}-{i}"));
            let mut want = Breaker::default();
            for (step, (event, dt)) in sequence.iter().enumerate() {
                let now = T + dt;
                let context = format!("config {c}, sequence {i}, step {step} ({event:?})");
                let expected = event.apply(&mut want, now, config);
                let (transition, message) = s
                    .inner
                    .report_in_redis(&p, event.report(), now)
                    .await
                    .unwrap_or_else(|| panic!("Redis did not answer: {context}"));
                assert_eq!(wire::transition(&transition), expected, "{context}");
                let got = wire::parse(&message).unwrap();
                assert_eq!(got.breaker, want, "{context}");
                assert_eq!(got.provider, p);
            }
            // What the hash holds reads back the same.
            assert!(s.inner.resync().await);
            assert_eq!(breaker(&s, &p), want, "stored state of sequence {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_through_one_worker_reaches_the_others_mirror() {
    let redis = RedisServer::start();
    let names = fresh_names();
    let (a, b) = (store(&redis, &names, "a"), store(&redis, &names, "b"));
    eventually("both subscribed", SOON, || a.shared() && b.shared()).await;
    let p = ProviderId::new("groq");
    assert_eq!(a.report(&p, Report::Failure("x"), T).await, None);
    assert_eq!(
        a.report(&p, Report::Failure("x"), T).await,
        Some(Transition::Tripped)
    );
    assert_eq!(
        breaker(&a, &p).status(T),
        Status::Open,
        "own result mirrored"
    );
    eventually("b sees the trip", Duration::from_secs(2), || {
        breaker(&b, &p).status(T) == Status::Open
    })
    .await;
    assert_eq!(b.admit(&p, T + 1.0).await, Admission::Reject);
    assert_eq!(breaker(&b, &p).last_error.as_deref(), Some("x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_worker_gets_the_half_open_trial() {
    let redis = RedisServer::start();
    let names = fresh_names();
    let (a, b) = (store(&redis, &names, "a"), store(&redis, &names, "b"));
    eventually("both subscribed", SOON, || a.shared() && b.shared()).await;
    let p = ProviderId::new("ollama");
    a.report(&p, Report::Failure("x"), T).await;
    a.report(&p, Report::Failure("x"), T).await;
    eventually("b sees the trip", SOON, || {
        breaker(&b, &p).open_until.is_some()
    })
    .await;

    let later = T + 61.0;
    let (x, y) = tokio::join!(a.admit(&p, later), b.admit(&p, later));
    let mut got = [x, y];
    got.sort_by_key(|a| *a == Admission::Trial);
    assert_eq!(got, [Admission::Reject, Admission::Trial]);
    assert_eq!(a.admit(&p, later).await, Admission::Reject);
    assert_eq!(b.admit(&p, later).await, Admission::Reject);

    let winner = if x == Admission::Trial { &a } else { &b };
    let other = if x == Admission::Trial { &b } else { &a };
    assert_eq!(
        winner.report(&p, Report::Success, later).await,
        Some(Transition::Recovered)
    );
    eventually("the other worker sees the recovery", SOON, || {
        breaker(other, &p).status(later) == Status::Healthy
    })
    .await;
    assert_eq!(other.admit(&p, later).await, Admission::Call);
    let lock = names.trial_lock(p.as_str());
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let held: bool = redis::cmd("EXISTS")
        .arg(lock)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!held, "a reported outcome releases the trial lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_leads_until_the_lock_expires() {
    let redis = RedisServer::start();
    let names = fresh_names();
    let (a, b) = (store(&redis, &names, "a"), store(&redis, &names, "b"));
    // A lock no test run outlives for the exclusivity checks: nothing here races its expiry.
    let long = Duration::from_secs(60);
    assert!(a.try_lead("probe", long).await);
    assert!(!b.try_lead("probe", long).await);
    assert!(
        !a.try_lead("probe", long).await,
        "one tick per ttl, even for the leader"
    );
    assert!(b.try_lead("other-job", long).await, "jobs lock separately");
    // A short one for the expiry: only "eventually" depends on the clock.
    let short = Duration::from_millis(200);
    assert!(a.try_lead("brief", short).await);
    let deadline = tokio::time::Instant::now() + SOON;
    while !b.try_lead("brief", short).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lock never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_falls_back_to_local_breakers_and_a_return_resyncs() {
    let mut redis = RedisServer::start();
    let names = fresh_names();
    let (a, b) = (store(&redis, &names, "a"), store(&redis, &names, "b"));
    eventually("both subscribed", SOON, || a.shared() && b.shared()).await;

    redis.stop();
    let p = ProviderId::new("groq");
    assert_eq!(a.report(&p, Report::Failure("down"), T).await, None);
    assert_eq!(
        a.report(&p, Report::Failure("down"), T).await,
        Some(Transition::Tripped),
        "reports keep working on the local breaker"
    );
    assert_eq!(a.admit(&p, T + 1.0).await, Admission::Reject);
    assert_eq!(a.admit(&p, T + 61.0).await, Admission::Trial, "local trial");
    assert_eq!(a.admit(&p, T + 61.0).await, Admission::Reject);
    assert!(a.try_lead("probe", Duration::from_secs(1)).await);
    eventually("nobody is shared", SOON, || !a.shared() && !b.shared()).await;

    // Back, but locked until a third worker has written a state nobody else saw published.
    redis.restart_locked("pw");
    let url = redis.url().replace("redis://", "redis://:pw@");
    let c = start(&url, &names, BreakerConfig::default(), "c");
    connected(&c).await;
    let q = ProviderId::new("together");
    c.inner
        .report_in_redis(&q, Report::Failure("gone"), T)
        .await
        .unwrap();
    let (tripped, _) = c
        .inner
        .report_in_redis(&q, Report::Failure("gone"), T)
        .await
        .unwrap();
    assert_eq!(tripped, "tripped");
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();

    eventually("shared again", Duration::from_secs(10), || {
        a.shared() && b.shared()
    })
    .await;
    eventually("b re-read what it missed", SOON, || {
        let got = breaker(&b, &q);
        got.status(T) == Status::Open && got.consecutive_failures == 2
    })
    .await;
    assert_eq!(b.admit(&q, T + 1.0).await, Admission::Reject);
    assert_eq!(
        breaker(&a, &p).status(T + 1.0),
        Status::Open,
        "what Redis does not know stays as this worker saw it"
    );
}
