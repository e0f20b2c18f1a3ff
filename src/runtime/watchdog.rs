//! What the pool's threads are doing, watched: jobs that run too long
//! (`--timeout`) and the number of requests a worker has started
//! (`--max-requests`).
//!
//! What it owns: `Slots`, one per pool thread, written by that thread when
//! it takes a job and when it is done with it (two relaxed stores per job,
//! no clock read), and `Watchdog`, which the pool's monitor thread runs
//! about once a second: a slot that holds the same job at two looks has
//! run that job for the time between them. A thread waiting for the
//! network (`pool::blocking`: a request body, room for a response) is not
//! running application code and is not counted; its own timers bound that
//! wait.
//!
//! What it does not do: act. It reports `Event`s to the embedder, which
//! logs, dumps the Python stacks and tells the supervisor (`control`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest time between two looks of the watchdog.
pub(crate) const TICK: Duration = Duration::from_secs(1);

/// One pool thread, as the watchdog sees it.
#[derive(Default)]
struct Slot {
    /// The job the thread runs (the pool's count of jobs taken when it took
    /// it, so never 0); 0: none.
    job: AtomicU64,
    /// The job waits for the network, not for application code.
    waiting: AtomicBool,
    /// The thread's id as the system knows it (`pthread_self`), which is
    /// also Python's `threading.get_ident()` and what Python's fault
    /// handler prints for it.
    thread_id: AtomicU64,
}

/// Every pool thread's slot.
pub(crate) struct Slots(Box<[Slot]>);

impl Slots {
    pub(crate) fn new(threads: usize) -> Slots {
        Slots((0..threads).map(|_| Slot::default()).collect())
    }

    /// Run on the thread of slot `index`, once, when it starts.
    pub(crate) fn register_current_thread(&self, index: usize) {
        // SAFETY: pthread_self has no preconditions.
        let id = unsafe { libc::pthread_self() } as u64;
        self.0[index].thread_id.store(id, Ordering::Relaxed);
    }

    pub(crate) fn took(&self, index: usize, job: u64) {
        self.0[index].job.store(job, Ordering::Relaxed);
    }

    pub(crate) fn done(&self, index: usize) {
        self.0[index].job.store(0, Ordering::Relaxed);
    }

    pub(crate) fn set_waiting(&self, index: usize, waiting: bool) {
        self.0[index].waiting.store(waiting, Ordering::Relaxed);
    }
}

/// What the watchdog reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A job has run longer than `--timeout` on the thread `thread_id`;
    /// reported once per job.
    Stuck { thread_id: u64, running: Duration },
    /// Every thread is running a job that has run longer than `--timeout`
    /// (after their `Stuck` events); reported once until a thread is free
    /// again.
    AllStuck,
    /// `--max-requests` new requests have started; reported once.
    RequestLimit,
}

/// Gets the events of one look together (a look can find several threads
/// stuck at once: their stacks are dumped once).
pub(crate) type Report = Arc<dyn Fn(&[Event]) + Send + Sync>;

/// What to watch for, and whom to tell.
#[derive(Clone)]
pub(crate) struct Watch {
    /// `--timeout`; None: jobs may run for ever.
    pub(crate) stuck_after: Option<Duration>,
    /// `--max-requests` (with its jitter); None: no limit.
    pub(crate) max_requests: Option<u64>,
    pub(crate) report: Report,
}

/// A slot as the last look found it.
#[derive(Clone, Copy, Default)]
struct Seen {
    job: u64,
    /// How long that job has been seen running.
    running: Duration,
    reported: bool,
}

pub(crate) struct Watchdog {
    watch: Watch,
    seen: Vec<Seen>,
    last: Option<Instant>,
    all_reported: bool,
    limit_reported: bool,
}

impl Watchdog {
    pub(crate) fn new(watch: Watch, threads: usize) -> Watchdog {
        Watchdog {
            watch,
            seen: vec![Seen::default(); threads],
            last: None,
            all_reported: false,
            limit_reported: false,
        }
    }

    /// Whether a look is due at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|last| now.duration_since(last) >= TICK)
    }

    /// Look at the slots at `now`, `started` new requests having started
    /// so far, and return what to report.
    pub(crate) fn look(&mut self, slots: &Slots, started: u64, now: Instant) -> Vec<Event> {
        let elapsed = self
            .last
            .map_or(Duration::ZERO, |last| now.duration_since(last));
        self.last = Some(now);
        let mut events = Vec::new();
        if let Some(limit) = self.watch.max_requests {
            if started >= limit && !self.limit_reported {
                self.limit_reported = true;
                events.push(Event::RequestLimit);
            }
        }
        let Some(stuck_after) = self.watch.stuck_after else {
            return events;
        };
        let mut all_stuck = !self.seen.is_empty();
        for (seen, slot) in self.seen.iter_mut().zip(slots.0.iter()) {
            let job = match slot.waiting.load(Ordering::Relaxed) {
                true => 0,
                false => slot.job.load(Ordering::Relaxed),
            };
            if job == 0 || job != seen.job {
                *seen = Seen {
                    job,
                    ..Seen::default()
                };
                all_stuck = false;
                continue;
            }
            seen.running += elapsed;
            if seen.running < stuck_after {
                all_stuck = false;
                continue;
            }
            if !seen.reported {
                seen.reported = true;
                events.push(Event::Stuck {
                    thread_id: slot.thread_id.load(Ordering::Relaxed),
                    running: seen.running,
                });
            }
        }
        match all_stuck {
            true if !self.all_reported => {
                self.all_reported = true;
                events.push(Event::AllStuck);
            }
            true => {}
            false => self.all_reported = false,
        }
        events
    }

    pub(crate) fn report(&self, events: &[Event]) {
        (self.watch.report)(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watchdog(stuck_after: Option<u64>, max_requests: Option<u64>, threads: usize) -> Watchdog {
        let watch = Watch {
            stuck_after: stuck_after.map(Duration::from_secs),
            max_requests,
            report: Arc::new(|_| {}),
        };
        Watchdog::new(watch, threads)
    }

    fn stuck_threads(events: &[Event]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Stuck { thread_id, .. } => Some(*thread_id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_job_seen_running_past_the_timeout_is_reported_once() {
        let slots = Slots::new(2);
        slots.0[0].thread_id.store(7, Ordering::Relaxed);
        let mut dog = watchdog(Some(3), None, 2);
        let t0 = Instant::now();
        slots.took(0, 1);
        assert!(dog.look(&slots, 1, t0).is_empty());
        for second in 1..3 {
            assert!(dog
                .look(&slots, 1, t0 + Duration::from_secs(second))
                .is_empty());
        }
        let events = dog.look(&slots, 1, t0 + Duration::from_secs(3));
        assert_eq!(stuck_threads(&events), [7]);
        assert!(!events.contains(&Event::AllStuck), "thread 1 is free");
        assert!(dog.look(&slots, 1, t0 + Duration::from_secs(4)).is_empty());
    }

    #[test]
    fn a_new_job_on_the_thread_starts_from_zero() {
        let slots = Slots::new(1);
        let mut dog = watchdog(Some(2), None, 1);
        let t0 = Instant::now();
        slots.took(0, 1);
        dog.look(&slots, 1, t0);
        dog.look(&slots, 1, t0 + Duration::from_secs(1));
        slots.took(0, 2);
        assert!(dog.look(&slots, 2, t0 + Duration::from_secs(2)).is_empty());
        assert!(dog.look(&slots, 2, t0 + Duration::from_secs(3)).is_empty());
        assert_eq!(dog.look(&slots, 2, t0 + Duration::from_secs(4)).len(), 2);
    }

    #[test]
    fn waiting_for_the_network_is_not_running() {
        let slots = Slots::new(1);
        let mut dog = watchdog(Some(1), None, 1);
        let t0 = Instant::now();
        slots.took(0, 1);
        slots.set_waiting(0, true);
        for second in 0..5 {
            assert!(dog
                .look(&slots, 1, t0 + Duration::from_secs(second))
                .is_empty());
        }
    }

    #[test]
    fn every_thread_stuck_is_reported_once_until_one_is_free() {
        let slots = Slots::new(2);
        let mut dog = watchdog(Some(1), None, 2);
        let t0 = Instant::now();
        slots.took(0, 1);
        slots.took(1, 2);
        dog.look(&slots, 2, t0);
        let events = dog.look(&slots, 2, t0 + Duration::from_secs(1));
        assert_eq!(events.last(), Some(&Event::AllStuck));
        assert!(dog.look(&slots, 2, t0 + Duration::from_secs(2)).is_empty());
        slots.done(1);
        assert!(dog.look(&slots, 2, t0 + Duration::from_secs(3)).is_empty());
        slots.took(1, 3);
        dog.look(&slots, 3, t0 + Duration::from_secs(4));
        let events = dog.look(&slots, 3, t0 + Duration::from_secs(5));
        assert_eq!(events.last(), Some(&Event::AllStuck));
    }

    #[test]
    fn the_request_limit_is_reported_once() {
        let slots = Slots::new(1);
        let mut dog = watchdog(None, Some(3), 1);
        let t0 = Instant::now();
        assert!(dog.look(&slots, 2, t0).is_empty());
        assert_eq!(dog.look(&slots, 3, t0), [Event::RequestLimit]);
        assert!(dog.look(&slots, 9, t0).is_empty());
    }
}
