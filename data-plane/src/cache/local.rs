//! The in-process tier in front of Redis: a small bounded map of recent answers.
//!
//! Entries expire after a fixed time and, when the map is full, the oldest-inserted entry goes
//! first. Every entry has the same lifetime, so the oldest-inserted is also the first to expire:
//! FIFO eviction is as good as LRU here and needs no extra bookkeeping on reads.
//!
//! Time is `tokio::time::Instant` so tests can pause and advance the clock instead of sleeping.
//! The lock is a std mutex held only for a map operation, never across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::Cached;

pub(super) struct LocalTier {
    capacity: usize,
    ttl: Duration,
    inner: Mutex<Inner>,
}

struct Entry {
    value: Arc<Cached>,
    expires: Instant,
    /// Which insertion this is; `order` may still hold older, stale insertions of the same key.
    seq: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    /// Insertions, oldest first. A key re-inserted (or removed on expiry) leaves a stale pair
    /// behind, recognised by its `seq`; they are skipped on eviction and compacted away.
    order: VecDeque<(String, u64)>,
    next_seq: u64,
}

impl LocalTier {
    /// A tier of at most `capacity` entries living `ttl` each; `capacity` 0 switches it off.
    pub(super) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity,
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves the map consistent enough for a cache.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn get(&self, key: &str) -> Option<Arc<Cached>> {
        if self.capacity == 0 {
            return None;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.map.get(key) {
            Some(entry) if entry.expires > now => Some(entry.value.clone()),
            Some(_) => {
                // Dropped now so the memory goes back early; its `order` pair becomes stale.
                inner.map.remove(key);
                None
            }
            None => None,
        }
    }

    pub(super) fn insert(&self, key: &str, value: Arc<Cached>) {
        if self.capacity == 0 {
            return;
        }
        let expires = Instant::now() + self.ttl;
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.map.insert(
            key.to_owned(),
            Entry {
                value,
                expires,
                seq,
            },
        );
        inner.order.push_back((key.to_owned(), seq));
        while inner.map.len() > self.capacity {
            let Some((oldest, seq)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&oldest).is_some_and(|e| e.seq == seq) {
                inner.map.remove(&oldest);
            }
        }
        // Re-inserts and expiries leave stale pairs; keep `order` proportional to the map.
        if inner.order.len() > 2 * self.capacity + 16 {
            let Inner { map, order, .. } = &mut *inner;
            order.retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().map.len()
    }

    #[cfg(test)]
    fn order_len(&self) -> usize {
        self.lock().order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::ChatCompletion;

    fn cached(text: &str) -> Arc<Cached> {
        let completion: ChatCompletion = serde_json::from_value(serde_json::json!({
            "id": "c1", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
        }))
        .unwrap();
        Arc::new(Cached {
            target: "p/m".to_owned(),
            completion,
        })
    }

    fn text(c: &Cached) -> String {
        c.completion.choices[0].message.content.clone().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn put_then_get() {
        let tier = LocalTier::new(10, Duration::from_secs(60));
        assert!(tier.get("a").is_none());
        tier.insert("a", cached("one"));
        assert_eq!(text(&tier.get("a").unwrap()), "one");
        tier.insert("a", cached("two"));
        assert_eq!(text(&tier.get("a").unwrap()), "two");
        assert_eq!(tier.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire() {
        let tier = LocalTier::new(10, Duration::from_secs(60));
        tier.insert("a", cached("one"));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(tier.get("a").is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(tier.get("a").is_none());
        assert_eq!(tier.len(), 0, "an expired entry is dropped when seen");
    }

    #[tokio::test(start_paused = true)]
    async fn full_tier_evicts_the_oldest_insert() {
        let tier = LocalTier::new(3, Duration::from_secs(60));
        for k in ["a", "b", "c"] {
            tier.insert(k, cached(k));
        }
        // Re-inserting "a" makes it the newest: "b" is now the oldest.
        tier.insert("a", cached("a2"));
        tier.insert("d", cached("d"));
        assert_eq!(tier.len(), 3);
        assert!(tier.get("b").is_none());
        assert_eq!(text(&tier.get("a").unwrap()), "a2");
        assert!(tier.get("c").is_some());
        assert!(tier.get("d").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn stale_order_entries_are_compacted() {
        let tier = LocalTier::new(2, Duration::from_secs(60));
        for _ in 0..100 {
            tier.insert("a", cached("a"));
        }
        assert_eq!(tier.len(), 1);
        assert!(tier.order_len() <= 2 * 2 + 16);
    }

    #[tokio::test]
    async fn capacity_zero_is_off() {
        let tier = LocalTier::new(0, Duration::from_secs(60));
        tier.insert("a", cached("a"));
        assert!(tier.get("a").is_none());
    }
}
