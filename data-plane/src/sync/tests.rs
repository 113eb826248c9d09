//! Following versions in-process: the local bus, and the Redis follower against a real
//! `redis-server` (the same helper the shared-breaker tests use).

use std::time::Duration;

use mana_llm_shared::bus::{BusNames, PublishedVersion, VersionAnnouncement};
use mana_llm_shared::{Registry as Parsed, RegistryVersion};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::{GatewayConfig, Source};
use crate::health::redis_store::test_redis::{eventually, fresh_names, TestRedis};
use crate::providers::Providers;
use crate::redis::SharedRedis;

fn app() -> App {
    let source = Source::default();
    let config = GatewayConfig::from_source(&source).unwrap();
    App::with_providers(config, Providers::empty(), Parsed::empty(), source).unwrap()
}

/// A connection with a generous command timeout: these tests are about what is read, and a
/// loaded machine must not turn a slow answer into a missed read.
fn patient_redis(url: &str, names: &BusNames) -> Arc<SharedRedis> {
    let up = prometheus::IntGauge::new("redis_up", "test").unwrap();
    let errors =
        prometheus::IntCounterVec::new(prometheus::Opts::new("redis_errors", "test"), &["op"])
            .unwrap();
    crate::redis::connect(
        redis::Client::open(url).unwrap(),
        names.clone(),
        Duration::from_secs(10),
        up,
        errors,
    )
}

fn version(n: u64) -> PublishedVersion {
    let yaml = format!("aliases:\n  mana/a: {{chain: [echo/v{n}]}}\n");
    let registry = Parsed::parse(&yaml, "test", RegistryVersion(n)).unwrap();
    PublishedVersion::new(n, registry.hash().to_owned(), registry.document().clone())
}

fn installed(app: &App) -> u64 {
    app.state().snapshots.version().0
}

fn refused(app: &App, reason: &str) -> u64 {
    app.state()
        .metrics
        .registry_rejected_total
        .with_label_values(&[reason])
        .get()
}

#[tokio::test]
async fn the_local_bus_installs_newer_versions_and_ignores_older_ones() {
    let app = app();
    let (tx, rx) = watch::channel(Some(version(2)));
    let cancel = CancellationToken::new();
    let task = follow_local(app.clone(), rx, cancel.clone());
    eventually("version 2", Duration::from_secs(5), || installed(&app) == 2).await;
    tx.send_replace(Some(version(1)));
    tx.send_replace(Some(version(3)));
    eventually("version 3", Duration::from_secs(5), || installed(&app) == 3).await;
    assert!(
        !app.install(version(1), Origin::Local).unwrap(),
        "an older version is not installed"
    );
    assert_eq!(
        installed(&app),
        3,
        "an older version never replaces a newer one"
    );
    cancel.cancel();
    task.await.unwrap();
}

async fn set_current(redis: &TestRedis, names: &BusNames, raw: &str) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(names.current_key())
        .arg(raw)
        .query_async(&mut conn)
        .await
        .unwrap();
}

fn announcement(n: u64) -> String {
    serde_json::to_string(&version(n).announcement()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_follower_reads_current_only_when_it_may_have_missed_something() {
    let redis = TestRedis::start();
    let names = fresh_names();
    let app = app();
    let follower = Registry::new(
        app.clone(),
        patient_redis(&redis.url(), &names),
        Duration::from_secs(600),
    );

    // A (re)subscription reads `current`.
    set_current(&redis, &names, &serde_json::to_string(&version(2)).unwrap()).await;
    follower.resync().await;
    assert_eq!(installed(&app), 2);

    // An announcement of a version we have (or older) costs no read: `current` holds 5, but
    // nothing announced it.
    set_current(&redis, &names, &serde_json::to_string(&version(5)).unwrap()).await;
    follower.on_message(&announcement(2)).await;
    follower.on_message(&announcement(1)).await;
    assert_eq!(installed(&app), 2);
    // The slow timer is not due (10 min).
    follower.tick(true).await;
    assert_eq!(installed(&app), 2);
    // A newer announcement, or one we cannot read, makes it read.
    follower.on_message(&announcement(5)).await;
    assert_eq!(installed(&app), 5);
    set_current(&redis, &names, &serde_json::to_string(&version(6)).unwrap()).await;
    follower.on_message("not an announcement").await;
    assert_eq!(installed(&app), 6);

    // An older version in `current` is ignored, not refused.
    set_current(&redis, &names, &serde_json::to_string(&version(3)).unwrap()).await;
    follower.resync().await;
    assert_eq!(installed(&app), 6);
    assert_eq!(refused(&app, "invalid"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slow_timer_reads_when_due_and_an_unreadable_value_is_refused_once() {
    let redis = TestRedis::start();
    let names = fresh_names();
    let app = app();
    let follower = Registry::new(
        app.clone(),
        patient_redis(&redis.url(), &names),
        Duration::ZERO,
    );
    set_current(&redis, &names, &serde_json::to_string(&version(4)).unwrap()).await;
    // Never read yet, and due at every tick with a zero interval.
    follower.tick(false).await;
    assert_eq!(installed(&app), 4);

    set_current(&redis, &names, "{not a version").await;
    for _ in 0..3 {
        follower.tick(true).await;
    }
    assert_eq!(installed(&app), 4);
    assert_eq!(
        refused(&app, "unreadable"),
        1,
        "reported once, not every tick"
    );
    // Something new in `current` is looked at again.
    set_current(&redis, &names, &serde_json::to_string(&version(7)).unwrap()).await;
    follower.tick(true).await;
    assert_eq!(installed(&app), 7);
}

#[test]
fn announcements_decode_as_the_follower_expects() {
    let a: VersionAnnouncement = serde_json::from_str(&announcement(9)).unwrap();
    assert_eq!(a.version, 9);
}
