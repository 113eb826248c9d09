//! What the Redis-backed tests share beyond the server itself ([`RedisServer`]): a worker's
//! connection under a fresh prefix, and waiting for a condition.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mana_llm_shared::bus::BusNames;
use prometheus::{IntCounterVec, IntGauge, Opts};

use crate::redis::SharedRedis;
pub use crate::testing::RedisServer;

/// A worker's connection to `url` under a fresh prefix (or `names`, to share one).
pub fn shared_redis(url: &str, names: &BusNames) -> Arc<SharedRedis> {
    let up = IntGauge::new("redis_up", "test").unwrap();
    let errors = IntCounterVec::new(Opts::new("redis_errors", "test"), &["op"]).unwrap();
    let client = redis::Client::open(url).unwrap();
    crate::redis::connect(
        client,
        names.clone(),
        Duration::from_millis(200),
        up,
        errors,
    )
}

pub fn fresh_names() -> BusNames {
    BusNames::new(&format!("test-{}", uuid::Uuid::new_v4().simple()))
}

/// Polls `check` every few milliseconds until it holds; fails the test after `within`.
pub async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
