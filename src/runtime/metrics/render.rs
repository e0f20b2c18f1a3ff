//! The exposition text of a scrape: every slot of the region summed.
//!
//! What it does: reads each series from every worker's slot and adds them
//! up (a scrape lands on any one worker, and answers for the server), then
//! writes the families with `proto::prometheus`. The series and their
//! meaning are listed in docs/guide/observability.md.
//!
//! What it does not do: count (`recorder`), or answer HTTP (`observe`).

use std::sync::atomic::Ordering;

use super::region::{Region, Slot, DURATION_BOUNDS, FIRST_STATUS, PROTOCOLS, STATUSES};
use crate::proto::prometheus::{Exposition, Kind, Value};

/// The text of every family, summed over the region's slots.
pub(crate) fn render(region: &Region) -> String {
    let mut e = Exposition::new();
    let slots: Vec<_> = region.slots().collect();

    // Text format 0.0.4 names a counter's family as its samples, `_total`
    // included (OpenMetrics' family without `_total` is another format).
    e.family(
        "propylon_requests_total",
        Kind::Counter,
        "Responses sent, by status code and HTTP version.",
    );
    for (p, protocol) in PROTOCOLS.iter().enumerate() {
        for code in 0..STATUSES {
            let n: u64 = slots
                .iter()
                .map(|s| s.requests[p][code].load(Ordering::Relaxed))
                .sum();
            if n > 0 {
                let status = (code as u16 + FIRST_STATUS).to_string();
                e.sample(
                    "propylon_requests_total",
                    &[("status", &status), ("protocol", protocol)],
                    Value::Int(to_i64(n)),
                );
            }
        }
    }

    e.family(
        "propylon_request_duration_seconds",
        Kind::Histogram,
        "Time from a request's head to its response's last byte, by HTTP version.",
    );
    for (p, protocol) in PROTOCOLS.iter().enumerate() {
        let mut counts = [0u64; DURATION_BOUNDS.len() + 1];
        let mut micros = 0u64;
        for slot in &slots {
            let h = &slot.durations[p];
            for (count, bucket) in counts.iter_mut().zip(&h.buckets) {
                *count += bucket.load(Ordering::Relaxed);
            }
            micros = micros.wrapping_add(h.sum_micros.load(Ordering::Relaxed));
        }
        if counts.iter().any(|c| *c > 0) {
            e.histogram(
                "propylon_request_duration_seconds",
                &[("protocol", protocol)],
                &DURATION_BOUNDS,
                &counts,
                micros as f64 / 1e6,
            );
        }
    }

    let gauges: [(&str, &str, ReadGauge); 5] = [
        (
            "propylon_connections_open",
            "Client connections open (every protocol; WebSockets included).",
            |s| s.connections_open.load(Ordering::Relaxed),
        ),
        (
            "propylon_websockets_open",
            "WebSocket sessions open.",
            |s| s.websockets_open.load(Ordering::Relaxed),
        ),
        (
            "propylon_queue_depth",
            "Requests waiting for a free Python thread.",
            |s| s.queued.load(Ordering::Relaxed),
        ),
        (
            "propylon_threads_busy",
            "Python threads running application code.",
            |s| s.busy_threads.load(Ordering::Relaxed),
        ),
        (
            "propylon_threads",
            "Python threads that run the application (--threads per worker).",
            |s| s.threads.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, read) in gauges {
        e.family(name, Kind::Gauge, help);
        let total: i64 = slots.iter().map(|s| read(s)).sum();
        e.sample(name, &[], Value::Int(total));
    }

    let header = region.header();
    e.family(
        "propylon_worker_restarts_total",
        Kind::Counter,
        "Worker processes started again by the supervisor after one ended.",
    );
    e.sample(
        "propylon_worker_restarts_total",
        &[],
        Value::Int(to_i64(header.worker_restarts.load(Ordering::Relaxed))),
    );
    e.family(
        "propylon_start_time_seconds",
        Kind::Gauge,
        "When the server started, in seconds since the Unix epoch.",
    );
    let started = header.start_time_ms.load(Ordering::Relaxed) as f64 / 1000.0;
    e.sample("propylon_start_time_seconds", &[], Value::Float(started));
    e.into_text()
}

/// Reads one gauge of a slot.
type ReadGauge = fn(&Slot) -> i64;

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::runtime::metrics::recorder::Recorder;

    #[test]
    fn two_slots_are_summed() {
        let region = Arc::new(Region::new(2).unwrap());
        let first = Arc::new(Recorder::new(region.clone(), 0).unwrap());
        let second = Arc::new(Recorder::new(region.clone(), 1).unwrap());
        first.request(http::Version::HTTP_11, 200, Duration::from_millis(1));
        second.request(http::Version::HTTP_11, 200, Duration::from_millis(2));
        second.request(http::Version::HTTP_2, 503, Duration::from_millis(700));
        let _a = first.connection_opened();
        let _b = second.connection_opened();
        let _c = second.connection_opened();
        region
            .header()
            .worker_restarts
            .fetch_add(1, Ordering::Relaxed);
        let text = render(&region);
        for line in [
            "propylon_requests_total{status=\"200\",protocol=\"http/1.1\"} 2\n",
            "propylon_requests_total{status=\"503\",protocol=\"http/2\"} 1\n",
            "propylon_request_duration_seconds_bucket{protocol=\"http/1.1\",le=\"0.005\"} 2\n",
            "propylon_request_duration_seconds_bucket{protocol=\"http/2\",le=\"0.5\"} 0\n",
            "propylon_request_duration_seconds_bucket{protocol=\"http/2\",le=\"1\"} 1\n",
            "propylon_request_duration_seconds_sum{protocol=\"http/1.1\"} 0.003\n",
            "propylon_request_duration_seconds_count{protocol=\"http/2\"} 1\n",
            "propylon_connections_open 3\n",
            "propylon_worker_restarts_total 1\n",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        assert!(!text.contains("protocol=\"http/1.0\""), "{text}");
        // A dead worker's gauges go, its counts stay.
        region.slot(1).unwrap().clear_gauges();
        let text = render(&region);
        assert!(text.contains("propylon_connections_open 1\n"), "{text}");
        assert!(text.contains("{status=\"200\",protocol=\"http/1.1\"} 2\n"));
    }
}
