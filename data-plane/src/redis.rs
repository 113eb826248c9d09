//! This worker's Redis connection: the one holder every process uses
//! ([`mana_llm_shared::redis_conn::SharedRedis`]), reporting into this worker's metrics, and
//! its one [`subscriber`] for every fleet channel.

pub mod subscriber;

use std::sync::Arc;
use std::time::Duration;

use mana_llm_shared::bus::BusNames;
use prometheus::{IntCounterVec, IntGauge};

pub use mana_llm_shared::redis_conn::{RedisObserver, SharedRedis, RECONNECT_EVERY};

/// `mana_llm_redis_up` and `mana_llm_redis_errors_total{op}`.
struct Gauges {
    up: IntGauge,
    errors: IntCounterVec,
}

impl RedisObserver for Gauges {
    fn up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    fn error(&self, op: &'static str) {
        self.errors.with_label_values(&[op]).inc();
    }
}

/// A holder for `client` whose state and errors land in these metrics.
pub fn connect(
    client: redis::Client,
    names: BusNames,
    timeout: Duration,
    up: IntGauge,
    errors: IntCounterVec,
) -> Arc<SharedRedis> {
    SharedRedis::new(client, names, timeout, Arc::new(Gauges { up, errors }))
}
