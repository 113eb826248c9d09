//! The one retry rhythm of every background loop that waits for Redis or a peer: start small,
//! double on each failure up to a ceiling, start small again after a success.

use std::time::Duration;

/// A doubling delay between `min` and `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    /// 100 ms, 200 ms, … up to 2 s: quick to notice a peer that is back, cheap while it is not.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(2))
    }
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay to wait now; the one after it is twice as long (up to the ceiling).
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// Back to the smallest delay.
    pub fn succeeded(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let waits: Vec<u128> = (0..5).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(100));
    }

    #[test]
    fn a_ceiling_below_the_floor_is_the_floor() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_millis(1));
        assert_eq!(b.failed(), Duration::from_secs(1));
        assert_eq!(b.failed(), Duration::from_secs(1));
    }
}
