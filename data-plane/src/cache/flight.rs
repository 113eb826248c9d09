//! Single flight: concurrent identical misses on this worker make one upstream call.
//!
//! The first caller for a key becomes the leader and runs the fetch itself (in its own task, so
//! the fetch may borrow from the request); later callers for the same key wait on a
//! `tokio::sync::watch` channel for the leader's result. The result travels type-erased
//! (`Arc<dyn Any>`) because the cache is not generic over the callers' error type; a waiter
//! whose type does not match (two call sites with different error types) is told so and
//! fetches on its own.
//!
//! The map entry belongs to the leader's guard and is removed when the guard drops: after the
//! result is published, or when the leader's future is dropped mid-way (its client went away).
//! In the latter case the channel closes without a value, waiters see [`Waited::Abandoned`] and
//! retry from the start: the first of them to get back becomes the new leader.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

type Payload = Arc<dyn Any + Send + Sync>;

#[derive(Default)]
pub(super) struct Flights {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Key → (flight id, the channel its result arrives on).
    map: HashMap<String, (u64, watch::Receiver<Option<Payload>>)>,
    next_id: u64,
}

/// What a caller does about a key.
pub(super) enum Join<'a> {
    /// Nobody is fetching it: run the fetch and [`Leader::finish`] with the result.
    Lead(Leader<'a>),
    /// Somebody is: wait for their result.
    Wait(Waiter),
    /// Somebody is, but this caller must not share (it asked for a fresh answer): fetch alone.
    Alone,
}

/// The leader's handle; finishing or dropping it ends the flight.
pub(super) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    id: u64,
    tx: watch::Sender<Option<Payload>>,
}

pub(super) struct Waiter {
    rx: watch::Receiver<Option<Payload>>,
}

pub(super) enum Waited<T> {
    Done(T),
    /// The leader went away without a result.
    Abandoned,
    /// The leader's result is of another type.
    Mismatch,
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the flight for `key`, or starts one. With `may_wait` false a running flight is
    /// not joined ([`Join::Alone`]), but a new one is still started so others can share it.
    pub(super) fn join(&self, key: &str, may_wait: bool) -> Join<'_> {
        let mut inner = self.lock();
        if let Some((_, rx)) = inner.map.get(key) {
            return if may_wait {
                Join::Wait(Waiter { rx: rx.clone() })
            } else {
                Join::Alone
            };
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let (tx, rx) = watch::channel(None);
        inner.map.insert(key.to_owned(), (id, rx));
        Join::Lead(Leader {
            flights: self,
            key: key.to_owned(),
            id,
            tx,
        })
    }

    #[cfg(test)]
    pub(super) fn in_flight(&self) -> usize {
        self.lock().map.len()
    }
}

impl Leader<'_> {
    /// Ends the flight and hands the result made by `make` to every waiter. `make` runs only
    /// when somebody waits, so the common case (no concurrent twin) copies nothing.
    pub(super) fn finish<T: Any + Send + Sync>(self, make: impl FnOnce() -> T) {
        // Removing the entry first, under the lock `join` takes, means nobody can start
        // waiting after the count below: each waiter either is counted or starts afresh.
        self.remove_entry();
        if self.tx.receiver_count() > 0 {
            self.tx.send_replace(Some(Arc::new(make())));
        }
    }

    fn remove_entry(&self) {
        let mut inner = self.flights.lock();
        // Only our own flight: after `finish` removed ours, a new leader may own the key.
        if inner
            .map
            .get(&self.key)
            .is_some_and(|(id, _)| *id == self.id)
        {
            inner.map.remove(&self.key);
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.remove_entry();
    }
}

impl Waiter {
    pub(super) async fn wait<T: Any + Clone>(mut self) -> Waited<T> {
        // `wait_for` still sees a value sent just before the sender dropped.
        let payload = match self.rx.wait_for(Option::is_some).await {
            Ok(value) => value.clone(),
            Err(_) => return Waited::Abandoned,
        };
        match payload.as_deref().and_then(|p| p.downcast_ref::<T>()) {
            Some(result) => Waited::Done(result.clone()),
            None => Waited::Mismatch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_get_the_leaders_result() {
        let flights = Flights::default();
        let Join::Lead(leader) = flights.join("k", true) else {
            panic!("first caller leads");
        };
        let Join::Wait(waiter) = flights.join("k", true) else {
            panic!("second caller waits");
        };
        assert!(matches!(flights.join("k", false), Join::Alone));
        leader.finish::<Result<u32, String>>(|| Ok(7));
        assert_eq!(flights.in_flight(), 0);
        match waiter.wait::<Result<u32, String>>().await {
            Waited::Done(Ok(7)) => {}
            _ => panic!("expected the leader's value"),
        }
    }

    #[tokio::test]
    async fn a_dropped_leader_abandons_the_flight() {
        let flights = Flights::default();
        let Join::Lead(leader) = flights.join("k", true) else {
            panic!("first caller leads");
        };
        let Join::Wait(waiter) = flights.join("k", true) else {
            panic!("second caller waits");
        };
        drop(leader);
        assert_eq!(flights.in_flight(), 0);
        assert!(matches!(waiter.wait::<u32>().await, Waited::Abandoned));
        assert!(matches!(flights.join("k", true), Join::Lead(_)));
    }

    #[test]
    fn nothing_is_copied_without_waiters() {
        let flights = Flights::default();
        let Join::Lead(leader) = flights.join("k", true) else {
            panic!("first caller leads");
        };
        leader.finish::<u32>(|| panic!("no waiter, no copy"));
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn another_type_is_a_mismatch() {
        let flights = Flights::default();
        let Join::Lead(leader) = flights.join("k", true) else {
            panic!("first caller leads");
        };
        let Join::Wait(waiter) = flights.join("k", true) else {
            panic!("second caller waits");
        };
        leader.finish(|| 1u32);
        assert!(matches!(waiter.wait::<String>().await, Waited::Mismatch));
    }
}
