//! One worker's handle on its slot of the metrics region: what the
//! connection and request code calls.
//!
//! What it does: counts a finished request (its protocol, status and
//! duration: three relaxed atomic adds), and keeps the open-connection and
//! open-WebSocket gauges with guards that count down when dropped. The
//! worker pool's gauges are refreshed from a reading the bridge supplies
//! (`PoolGauges`), by the `sampler` and before each scrape.
//!
//! What it does not do: write text (`render`), or know what a pool is.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::region::{Region, Slot, DURATION_BOUNDS, FIRST_STATUS, STATUSES};

/// The worker pool's load, as the gauges show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PoolGauges {
    /// Requests waiting for a Python thread.
    pub(crate) queued: usize,
    /// Python threads running application code.
    pub(crate) busy: usize,
    pub(crate) threads: usize,
}

/// Reads the pool's load (supplied by whoever made the pool).
pub(crate) type ReadPool = Box<dyn Fn() -> PoolGauges + Send + Sync>;

/// Worker `index`'s view of the region.
pub(crate) struct Recorder {
    region: Arc<Region>,
    index: usize,
    read_pool: OnceLock<ReadPool>,
}

/// The `protocol` label of an HTTP version (`region::PROTOCOLS`).
pub(crate) fn protocol_index(version: http::Version) -> usize {
    match version {
        http::Version::HTTP_2 | http::Version::HTTP_3 => 2,
        http::Version::HTTP_11 => 1,
        _ => 0,
    }
}

impl Recorder {
    /// None when the region has no slot `index`.
    pub(crate) fn new(region: Arc<Region>, index: usize) -> Option<Recorder> {
        region.slot(index)?;
        Some(Recorder {
            region,
            index,
            read_pool: OnceLock::new(),
        })
    }

    pub(crate) fn region(&self) -> &Arc<Region> {
        &self.region
    }

    fn slot(&self) -> &Slot {
        self.region.slot(self.index).expect("checked in new")
    }

    /// A response ended: `elapsed` from its request's head to its last byte.
    pub(crate) fn request(&self, version: http::Version, status: u16, elapsed: Duration) {
        let slot = self.slot();
        let protocol = protocol_index(version);
        let code = usize::from(status.saturating_sub(FIRST_STATUS)).min(STATUSES - 1);
        slot.requests[protocol][code].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = DURATION_BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BOUNDS.len());
        let histogram = &slot.durations[protocol];
        histogram.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        histogram.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A connection opened; it counts until the guard drops.
    pub(crate) fn connection_opened(self: &Arc<Self>) -> OpenGuard {
        self.slot().connections_open.fetch_add(1, Ordering::Relaxed);
        OpenGuard {
            recorder: self.clone(),
            what: Open::Connection,
        }
    }

    /// A WebSocket session started; it counts until the guard drops.
    pub(crate) fn websocket_opened(self: &Arc<Self>) -> OpenGuard {
        self.slot().websockets_open.fetch_add(1, Ordering::Relaxed);
        OpenGuard {
            recorder: self.clone(),
            what: Open::WebSocket,
        }
    }

    /// Where the pool's load is read from (once; later calls are ignored).
    pub(crate) fn read_pool_with(&self, read: ReadPool) {
        let _ = self.read_pool.set(read);
    }

    /// Copy the pool's load into the slot, when a reading is supplied.
    pub(crate) fn refresh(&self) {
        let Some(read) = self.read_pool.get() else {
            return;
        };
        let load = read();
        let slot = self.slot();
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        slot.queued.store(gauge(load.queued), Ordering::Relaxed);
        slot.busy_threads.store(gauge(load.busy), Ordering::Relaxed);
        slot.threads.store(gauge(load.threads), Ordering::Relaxed);
    }

    /// The worker's pool is gone: its gauges read zero.
    pub(crate) fn clear_pool(&self) {
        let slot = self.slot();
        for gauge in [&slot.queued, &slot.busy_threads, &slot.threads] {
            gauge.store(0, Ordering::Relaxed);
        }
    }
}

enum Open {
    Connection,
    WebSocket,
}

/// Counts one open connection or WebSocket until dropped.
pub(crate) struct OpenGuard {
    recorder: Arc<Recorder>,
    what: Open,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let slot = self.recorder.slot();
        let gauge = match self.what {
            Open::Connection => &slot.connections_open,
            Open::WebSocket => &slot.websockets_open,
        };
        gauge.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_their_protocol_status_and_bucket() {
        let region = Arc::new(Region::new(1).unwrap());
        let r = Recorder::new(region.clone(), 0).unwrap();
        r.request(http::Version::HTTP_11, 200, Duration::from_millis(3));
        r.request(http::Version::HTTP_2, 404, Duration::from_secs(20));
        let slot = region.slot(0).unwrap();
        assert_eq!(slot.requests[1][100].load(Ordering::Relaxed), 1);
        assert_eq!(slot.requests[2][304].load(Ordering::Relaxed), 1);
        assert_eq!(slot.durations[1].buckets[0].load(Ordering::Relaxed), 1);
        assert_eq!(
            slot.durations[2].buckets[DURATION_BOUNDS.len()].load(Ordering::Relaxed),
            1
        );
        assert_eq!(slot.durations[1].sum_micros.load(Ordering::Relaxed), 3000);
        assert!(Recorder::new(region, 1).is_none());
    }

    #[test]
    fn guards_count_down() {
        let region = Arc::new(Region::new(1).unwrap());
        let r = Arc::new(Recorder::new(region.clone(), 0).unwrap());
        let a = r.connection_opened();
        let b = r.websocket_opened();
        let slot = region.slot(0).unwrap();
        assert_eq!(slot.connections_open.load(Ordering::Relaxed), 1);
        drop(a);
        assert_eq!(slot.connections_open.load(Ordering::Relaxed), 0);
        assert_eq!(slot.websockets_open.load(Ordering::Relaxed), 1);
        drop(b);
        assert_eq!(slot.websockets_open.load(Ordering::Relaxed), 0);
    }
}
