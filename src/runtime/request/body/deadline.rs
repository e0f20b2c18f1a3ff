//! How long one wait for request body bytes may last.
//!
//! What it owns: `Deadline`, the end of one wait: the body timeout
//! (`--body-timeout`: then the client is taken to be gone) or, sooner, the
//! moment the body falls below the minimum rate (`--min-body-rate`, then
//! `BodyError::TooSlow`); `RateClock`, which measures a body's average rate
//! over the time spent waiting for it, as Kestrel's `MinRequestBodyDataRate`
//! does: the bytes received must stay at or above `rate × time waited` once
//! the grace period has passed. Time the application spends not reading is
//! not counted against the client.
//!
//! What it does not do: read anything (the sources do, within a deadline).

use std::future::Future;
use std::time::{Duration, Instant};

use super::BodyError;
use crate::runtime::config::MinRate;

/// The end of one wait for body bytes.
pub(crate) struct Deadline {
    start: Instant,
    timeout: Instant,
    /// When the body falls below the minimum rate, and that rate.
    slow: Option<(Instant, u64)>,
}

impl Deadline {
    /// A wait that ends at the body timeout only.
    pub(crate) fn after(timeout: Duration) -> Deadline {
        let start = Instant::now();
        Deadline {
            start,
            timeout: start + timeout,
            slow: None,
        }
    }

    /// `f`, or the error of the deadline that came first.
    pub(crate) async fn wait<F: Future>(&self, f: F) -> Result<F::Output, BodyError> {
        let (at, slow) = match self.slow {
            Some((at, rate)) if at < self.timeout => (at, Some(rate)),
            _ => (self.timeout, None),
        };
        tokio::time::timeout_at(at.into(), f)
            .await
            .map_err(|_| match slow {
                Some(rate) => BodyError::TooSlow(rate),
                None => BodyError::Disconnected("timed out waiting for the body".into()),
            })
    }
}

/// A body's rate: the bytes received against the time spent waiting.
pub(crate) struct RateClock {
    rate: MinRate,
    waited: Duration,
    received: u64,
}

impl RateClock {
    pub(crate) fn new(rate: MinRate) -> RateClock {
        RateClock {
            rate,
            waited: Duration::ZERO,
            received: 0,
        }
    }

    /// The deadline of a wait starting now.
    pub(crate) fn deadline(&self, timeout: Duration) -> Deadline {
        let mut deadline = Deadline::after(timeout);
        let rate = self.rate.bytes_per_second;
        if rate > 0 {
            // Below the rate once `waited > received / rate`, never within
            // the grace period.
            let earned = Duration::from_secs_f64(self.received as f64 / rate as f64);
            let allowed = self.rate.grace.max(earned).saturating_sub(self.waited);
            deadline.slow = Some((deadline.start + allowed, rate));
        }
        deadline
    }

    /// A wait under `deadline` ended with `bytes` bytes.
    pub(crate) fn record(&mut self, deadline: &Deadline, bytes: u64) {
        self.waited += deadline.start.elapsed();
        self.received += bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_owed_after_the_grace_period_and_earned_by_bytes() {
        let rate = MinRate {
            bytes_per_second: 100,
            grace: Duration::from_secs(5),
        };
        let mut clock = RateClock::new(rate);
        let first = clock.deadline(Duration::from_secs(60));
        let (slow, _) = first.slow.unwrap();
        assert!(slow - first.start == Duration::from_secs(5));
        // 1000 bytes at once: 10 s of waiting earned.
        clock.record(&first, 1000);
        let next = clock.deadline(Duration::from_secs(60));
        let (slow, r) = next.slow.unwrap();
        assert_eq!(r, 100);
        assert!(slow - next.start > Duration::from_secs(9));
        assert!(RateClock::new(MinRate {
            bytes_per_second: 0,
            grace: Duration::ZERO
        })
        .deadline(Duration::from_secs(1))
        .slow
        .is_none());
    }
}
