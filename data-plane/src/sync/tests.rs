//! Following versions in-process: the local bus, and the Redis follower against a real
//! `redis-server` (the same helper the shared-breaker tests use).

use std::time::Duration;

use mana_llm_shared::bus::{BusNames, CanaryAssignment, PublishedVersion, VersionAnnouncement};
use mana_llm_shared::{Registry as Parsed, RegistryVersion};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::{GatewayConfig, Source};
use crate::health::redis_store::test_redis::{eventually, fresh_names, RedisServer};
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
    PublishedVersion::of(&Parsed::parse(&yaml, "test", RegistryVersion(n)).unwrap())
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
    let (_canary_tx, canary_rx) = watch::channel(None);
    let cancel = CancellationToken::new();
    let task = follow_local(app.clone(), rx, canary_rx, cancel.clone());
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

/// An assignment of candidate `candidate` beside stable `stable` that puts this worker in
/// the candidate cohort, or not.
fn assignment(app: &App, stable: u64, candidate: u64, included: bool) -> CanaryAssignment {
    let me = crate::fleet::fleet_id(&app.state().config.worker_id);
    let threshold = if included {
        mana_llm_shared::rollout::pick_cohort(
            candidate,
            &[me],
            mana_llm_shared::rollout::CanaryShare::Workers(1),
        )
        .0
    } else {
        0
    };
    CanaryAssignment::new(RegistryVersion(stable), threshold, version(candidate))
}

/// Waits until `app` serves `version`; `what` names the step when it does not.
async fn serves(app: &App, version: u64, what: &str) {
    eventually(what, Duration::from_secs(5), || installed(app) == version).await;
}

#[tokio::test]
async fn a_canary_moves_only_its_cohort_and_its_end_moves_it_back() {
    let app = app();
    let (tx, rx) = watch::channel(Some(version(2)));
    let (canary_tx, canary_rx) = watch::channel(None);
    let cancel = CancellationToken::new();
    let task = follow_local(app.clone(), rx, canary_rx, cancel.clone());
    serves(&app, 2, "version 2").await;

    canary_tx.send_replace(Some(assignment(&app, 2, 3, true)));
    serves(&app, 3, "the candidate").await;
    assert_eq!(app.state().snapshots.stable_version().0, 2, "stable stays");
    // An assignment for another stable version is not this worker's to follow.
    canary_tx.send_replace(Some(assignment(&app, 1, 4, true)));
    serves(&app, 2, "stable again").await;
    canary_tx.send_replace(Some(assignment(&app, 2, 3, true)));
    serves(&app, 3, "the candidate again").await;
    // Aborted: the assignment is gone, the worker serves stable.
    canary_tx.send_replace(None);
    serves(&app, 2, "back to stable").await;
    // Promoted: the candidate becomes current, then the assignment goes.
    canary_tx.send_replace(Some(assignment(&app, 2, 3, true)));
    serves(&app, 3, "the candidate once more").await;
    tx.send_replace(Some(version(3)));
    canary_tx.send_replace(None);
    eventually("promoted", Duration::from_secs(5), || {
        app.state().snapshots.stable_version().0 == 3 && installed(&app) == 3
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
}

#[test]
fn an_assignment_outside_the_cohort_or_left_over_changes_nothing() {
    let app = app();
    assert!(app.install(version(2), Origin::Local).unwrap());
    let mut memory = canary::Memory::default();
    let outside = assignment(&app, 2, 3, false);
    assert_eq!(
        canary::follow(&app, Some(outside), Origin::Local, &mut memory),
        Ok(false)
    );
    assert_eq!(installed(&app), 2, "not in the candidate cohort");
    // An older candidate than the one already taken is left over.
    assert_eq!(
        canary::follow(
            &app,
            Some(assignment(&app, 2, 5, true)),
            Origin::Local,
            &mut memory
        ),
        Ok(true)
    );
    assert_eq!(
        canary::follow(
            &app,
            Some(assignment(&app, 2, 4, true)),
            Origin::Local,
            &mut memory
        ),
        Ok(true),
        "back to stable"
    );
    assert_eq!(installed(&app), 2);
    // Promoted, then its assignment read again: the stable version covers it.
    assert!(app.install(version(5), Origin::Local).unwrap());
    assert_eq!(
        canary::follow(
            &app,
            Some(assignment(&app, 2, 5, true)),
            Origin::Local,
            &mut memory
        ),
        Ok(false)
    );
    assert_eq!(installed(&app), 5);
}

#[test]
fn a_redis_assignment_must_carry_the_fleet_key_and_a_valid_candidate() {
    let key = mana_llm_shared::fleet_key::FleetKey::from_setting(Some("sync-test-fleet-key-01"))
        .unwrap()
        .unwrap();
    let source = Source::default();
    let mut config = GatewayConfig::from_source(&source).unwrap();
    config.fleet_key = Some(key.clone());
    let app = App::with_providers(config, Providers::empty(), Parsed::empty(), source).unwrap();
    assert!(app.install(version(2), Origin::Local).unwrap());
    let mut memory = canary::Memory::default();
    let unsigned = assignment(&app, 2, 3, true);
    assert_eq!(
        canary::follow(&app, Some(unsigned.clone()), Origin::Redis, &mut memory)
            .map_err(|r| r.reason),
        Err("unsigned")
    );
    let other = mana_llm_shared::fleet_key::FleetKey::from_setting(Some("another-fleet-key-0002"))
        .unwrap()
        .unwrap();
    assert_eq!(
        canary::follow(
            &app,
            Some(unsigned.clone().signed(&other)),
            Origin::Redis,
            &mut memory
        )
        .map_err(|r| r.reason),
        Err("bad_signature")
    );
    let mut moved = unsigned.clone().signed(&key);
    moved.threshold = moved.threshold.wrapping_sub(1);
    assert_eq!(
        canary::follow(&app, Some(moved), Origin::Redis, &mut memory).map_err(|r| r.reason),
        Err("bad_signature"),
        "the threshold is signed"
    );
    let mut forged = unsigned.clone();
    forged.candidate.hash = "0".repeat(64).into();
    assert_eq!(
        canary::follow(&app, Some(forged.signed(&key)), Origin::Redis, &mut memory)
            .map_err(|r| r.reason),
        Err("invalid"),
        "a candidate whose content does not match its hash"
    );
    assert_eq!(installed(&app), 2);
    assert_eq!(
        canary::follow(
            &app,
            Some(unsigned.signed(&key)),
            Origin::Redis,
            &mut memory
        ),
        Ok(true)
    );
    assert_eq!(installed(&app), 3);
}

async fn set_current(redis: &RedisServer, names: &BusNames, raw: &str) {
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
    let redis = RedisServer::start();
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
    let redis = RedisServer::start();
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
    assert_eq!(a.version, RegistryVersion(9));
}
