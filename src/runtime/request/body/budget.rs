//! Budgets of the bytes request bodies hold before the call.
//!
//! What it owns: `Budget`, the bytes all bodies of one kind may hold at
//! once: in memory, read before the call (`MemoryBudget`,
//! `--preread-memory-limit`), or on disk, spooled (`DiskBudget`,
//! `--buffer-disk-limit`); and `Reservation`, one body's part of it, grown
//! as the body grows and given back when the body is dropped.
//!
//! What it does not do: read or write bodies, or choose which are read
//! ahead or spooled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The bytes that bodies may hold together.
pub(crate) struct Budget {
    limit: u64,
    used: AtomicU64,
}

/// The memory of the bodies read ahead (`preread`), of those that came
/// with their head on the own HTTP/1.1 engine, and of those spooled in
/// memory (`spool`).
pub(crate) type MemoryBudget = Budget;

/// The temporary files of the bodies spooled for `--buffer-body` (`spool`).
pub(crate) type DiskBudget = Budget;

impl Budget {
    pub(crate) fn new(limit: u64) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// The most all bodies may hold together.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// `bytes` of the budget, if it has room for them.
    pub(crate) fn reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        self.take(bytes).then(|| Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    /// A reservation of nothing yet, to grow.
    pub(crate) fn reserve_none(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    /// Count `bytes` more as used, if the limit allows.
    fn take(&self, bytes: u64) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = used.checked_add(bytes).filter(|&n| n <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    #[cfg(test)]
    pub(super) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// Part of the budget, given back when dropped.
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Reservation {
    /// The bytes reserved.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Reserve `bytes` more, if the budget has room for them.
    pub(super) fn grow(&mut self, bytes: u64) -> bool {
        let grown = self.budget.take(bytes);
        if grown {
            self.bytes += bytes;
        }
        grown
    }

    /// Give back what is reserved beyond `bytes`.
    pub(super) fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.budget
                .used
                .fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_past_its_limit_and_is_given_back_on_drop() {
        let budget = Budget::new(100);
        let mut a = budget.reserve(60).unwrap();
        assert!(budget.reserve(41).is_none());
        a.shrink_to(10);
        let b = budget.reserve(90).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_reservation_grows_while_the_budget_has_room() {
        let budget = Budget::new(100);
        let mut a = budget.reserve(0).unwrap();
        assert!(a.grow(70));
        let b = budget.reserve(20).unwrap();
        assert!(!a.grow(11), "past the limit");
        assert_eq!((a.bytes(), budget.used()), (70, 90));
        assert!(a.grow(10));
        drop(b);
        drop(a);
        assert_eq!(budget.used(), 0);
    }
}
