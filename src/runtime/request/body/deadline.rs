//! How long one wait for request body bytes may last.
//!
//! What it owns: `Deadline`, the end of one wait: the body timeout
//! (`--body-timeout`: then the client is taken to be gone) or, sooner, the
//! moment the body falls below the minimum rate (`--min-body-rate`, then
//! `BodyError::TooSlow`); `BodyClock`, which measures a body's average rate
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
    /// When the wait ends.
    pub(crate) fn end(&self) -> Instant {
        match self.slow {
            Some((at, _)) => at.min(self.timeout),
            None => self.timeout,
        }
    }

    /// The error of a wait that reached `end()`.
    pub(crate) fn expired(&self) -> BodyError {
        match self.slow {
            Some((at, rate)) if at < self.timeout => BodyError::TooSlow(rate),
            _ => BodyError::Disconnected("timed out waiting for the body".into()),
        }
    }

    /// `f`, or the error of the deadline.
    pub(crate) async fn wait<F: Future>(&self, f: F) -> Result<F::Output, BodyError> {
        tokio::time::timeout_at(self.end().into(), f)
            .await
            .map_err(|_| self.expired())
    }
}

/// The waits of one body: each bounded by the body timeout, all together by
/// the minimum rate (the bytes received against the time spent waiting).
pub(crate) struct BodyClock {
    timeout: Duration,
    rate: MinRate,
    waited: Duration,
    received: u64,
}

impl BodyClock {
    pub(crate) fn new(timeout: Duration, rate: MinRate) -> BodyClock {
        BodyClock {
            timeout,
            rate,
            waited: Duration::ZERO,
            received: 0,
        }
    }

    /// A clock with the body timeout only.
    #[cfg(test)]
    pub(crate) fn timeout_only(timeout: Duration) -> BodyClock {
        BodyClock::new(
            timeout,
            MinRate {
                bytes_per_second: 0,
                grace: Duration::ZERO,
            },
        )
    }

    /// The deadline of a wait starting now.
    pub(crate) fn deadline(&self) -> Deadline {
        let start = Instant::now();
        let rate = self.rate.bytes_per_second;
        // Below the rate once `waited > received / rate`, never within the
        // grace period.
        let slow = (rate > 0).then(|| {
            let earned = Duration::from_secs_f64(self.received as f64 / rate as f64);
            let allowed = self.rate.grace.max(earned).saturating_sub(self.waited);
            (start + allowed, rate)
        });
        Deadline {
            start,
            timeout: start + self.timeout,
            slow,
        }
    }

    /// A wait under `deadline` is over.
    pub(crate) fn waited(&mut self, deadline: &Deadline) {
        self.waited += deadline.start.elapsed();
    }

    /// `bytes` more of the body came.
    pub(crate) fn received(&mut self, bytes: u64) {
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
        let mut clock = BodyClock::new(Duration::from_secs(60), rate);
        let first = clock.deadline();
        assert_eq!(first.end() - first.start, Duration::from_secs(5));
        assert_eq!(first.expired(), BodyError::TooSlow(100));
        // 1000 bytes: 10 s of waiting earned.
        clock.waited(&first);
        clock.received(1000);
        let next = clock.deadline();
        assert!(next.end() - next.start > Duration::from_secs(9));
        let timeout_only = BodyClock::timeout_only(Duration::from_secs(1)).deadline();
        assert_eq!(
            timeout_only.end() - timeout_only.start,
            Duration::from_secs(1)
        );
        assert!(matches!(timeout_only.expired(), BodyError::Disconnected(_)));
    }
}
