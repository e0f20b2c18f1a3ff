//! The shared memory the metrics live in.
//!
//! What it owns: one anonymous `MAP_SHARED` mapping, made by whoever starts
//! the server (the supervisor, before it forks the workers, so that every
//! worker inherits the same pages): a `Header` for the whole server, then
//! one `Slot` per worker index. Every field is an atomic: workers add to
//! their own slot without locks, and a scrape on any worker reads them all.
//! A dead worker's slot keeps its counters (totals stay monotonic across
//! restarts); its gauges are cleared (`Slot::clear_gauges`).
//!
//! What it does not do: decide what is counted (`recorder`) or write text
//! (`render`).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::SystemTime;

/// The `protocol` label's values, by `recorder::protocol_index`.
pub(crate) const PROTOCOLS: [&str; 3] = ["http/1.0", "http/1.1", "http/2"];

/// Upper bounds of the request-duration buckets, in seconds: the Prometheus
/// client libraries' default buckets (.005 to 10 s).
pub(crate) const DURATION_BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Status codes counted: 100 to 999, every code `http::StatusCode` holds.
pub(crate) const FIRST_STATUS: u16 = 100;
pub(crate) const STATUSES: usize = 900;

/// Most slots a region may have: far beyond any `--workers`.
pub(crate) const MAX_SLOTS: usize = 4096;

/// What the whole server shares.
#[repr(C, align(64))]
pub(crate) struct Header {
    /// Workers the supervisor started again after one ended.
    pub(crate) worker_restarts: AtomicU64,
    /// When the region was made (the server's start), in Unix milliseconds.
    pub(crate) start_time_ms: AtomicU64,
}

/// One request-duration histogram: counts per bucket (the last: above every
/// bound) and the sum, in microseconds.
#[repr(C)]
pub(crate) struct Histogram {
    pub(crate) buckets: [AtomicU64; DURATION_BOUNDS.len() + 1],
    pub(crate) sum_micros: AtomicU64,
}

/// What one worker counts. The gauges are signed: a connection closed by
/// a worker whose slot was cleared must not wrap to 2^64.
#[repr(C, align(64))]
pub(crate) struct Slot {
    pub(crate) durations: [Histogram; PROTOCOLS.len()],
    pub(crate) connections_open: AtomicI64,
    pub(crate) websockets_open: AtomicI64,
    pub(crate) queued: AtomicI64,
    pub(crate) busy_threads: AtomicI64,
    pub(crate) threads: AtomicI64,
    /// By protocol, then by status code less `FIRST_STATUS`.
    pub(crate) requests: [[AtomicU64; STATUSES]; PROTOCOLS.len()],
}

impl Slot {
    /// The gauges of a worker that is gone go to zero; its counters stay.
    pub(crate) fn clear_gauges(&self) {
        for gauge in [
            &self.connections_open,
            &self.websockets_open,
            &self.queued,
            &self.busy_threads,
            &self.threads,
        ] {
            gauge.store(0, Ordering::Relaxed);
        }
    }
}

/// The mapping: a `Header` and `slots` `Slot`s, zeroed by the kernel (every
/// atomic starts at 0). Unmapped when dropped; a forked child has its own
/// mapping of the same pages.
pub(crate) struct Region {
    base: NonNull<u8>,
    len: usize,
    slots: usize,
}

// SAFETY: the mapping holds only atomics, and lives as long as the Region.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    /// Map a region for `slots` workers (1 to `MAX_SLOTS`).
    pub(crate) fn new(slots: usize) -> io::Result<Region> {
        if !(1..=MAX_SLOTS).contains(&slots) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("metrics slots must be between 1 and {MAX_SLOTS}, got {slots}"),
            ));
        }
        let len = Self::slots_offset() + slots * size_of::<Slot>();
        // SAFETY: a fresh anonymous mapping; no address is given.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        let region = Region { base, len, slots };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        region.header().start_time_ms.store(now, Ordering::Relaxed);
        Ok(region)
    }

    fn slots_offset() -> usize {
        size_of::<Header>().next_multiple_of(align_of::<Slot>())
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a Header (page-aligned, zeroed:
        // valid atomics), and lives as long as `self`.
        unsafe { &*self.base.as_ptr().cast::<Header>() }
    }

    pub(crate) fn slot_count(&self) -> usize {
        self.slots
    }

    /// Worker `index`'s slot; None past the last.
    pub(crate) fn slot(&self, index: usize) -> Option<&Slot> {
        if index >= self.slots {
            return None;
        }
        let offset = Self::slots_offset() + index * size_of::<Slot>();
        debug_assert!(offset + size_of::<Slot>() <= self.len);
        // SAFETY: in bounds (above), aligned (the offset is a multiple of
        // Slot's alignment, the mapping page-aligned), zeroed atomics.
        Some(unsafe { &*self.base.as_ptr().add(offset).cast::<Slot>() })
    }

    pub(crate) fn slots(&self) -> impl Iterator<Item = &Slot> {
        (0..self.slots).filter_map(|i| self.slot(i))
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_separate_and_zeroed() {
        let region = Region::new(3).unwrap();
        assert_eq!(region.slot_count(), 3);
        assert!(region.slot(3).is_none());
        region.slot(1).unwrap().requests[1][100].fetch_add(2, Ordering::Relaxed);
        assert_eq!(
            region.slot(0).unwrap().requests[1][100].load(Ordering::Relaxed),
            0
        );
        assert_eq!(
            region.slot(2).unwrap().requests[1][100].load(Ordering::Relaxed),
            0
        );
        assert_eq!(
            region.slot(1).unwrap().requests[1][100].load(Ordering::Relaxed),
            2
        );
        assert!(region.header().start_time_ms.load(Ordering::Relaxed) > 0);
        assert!(Region::new(0).is_err());
    }

    #[test]
    fn a_forked_child_adds_to_the_same_counters() {
        let region = Region::new(2).unwrap();
        // SAFETY: the child only touches atomics and exits at once.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            region
                .slot(1)
                .unwrap()
                .connections_open
                .fetch_add(5, Ordering::Relaxed);
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(
            region
                .slot(1)
                .unwrap()
                .connections_open
                .load(Ordering::Relaxed),
            5
        );
    }
}
