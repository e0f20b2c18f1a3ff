//! What a connection is doing, for its two timers: keep-alive (no request in
//! flight for too long) and send stall (a response has data for the client,
//! but the client has taken nothing for too long).
//!
//! Stall detection needs no knowledge of the transport or of HTTP/2 flow
//! control: after a response body hands hyper a chunk, hyper asks for the next
//! one as soon as it can send more. A body that gave data and has not been
//! asked again for `send_timeout` belongs to a client that stopped reading
//! (TCP) or stopped granting window (HTTP/2). A body waiting for the
//! application is not stalled: its last answer to hyper was "not yet".
//!
//! Both timers are one `watch_timers` future that sleeps to its next deadline
//! and looks at the state when it wakes. Nothing wakes it early: requests
//! starting and ending do not touch it (on HTTP/1.1 each request takes an idle
//! connection to busy and back; on HTTP/2 they come by the thousand). An idle
//! connection's sleep is cut to the send timeout instead, since no response
//! that starts during it can have stalled for longer when it ends.
//!
//! What it does not do: close anything (the connection task does, through
//! `h2guard::GuardHandle`).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub struct Activity {
    state: Mutex<State>,
    /// Only `drained` waits on this (at shutdown).
    drained: Notify,
}

struct State {
    in_flight: usize,
    idle_since: Instant,
    responses: Vec<Weak<Progress>>,
}

/// One response body's progress, updated by `access_log::Tracked`.
#[derive(Default)]
pub struct Progress {
    /// Set when the body last handed hyper data; cleared when it answered
    /// "not yet" or ended.
    gave_data_at: Mutex<Option<Instant>>,
}

impl Progress {
    pub fn gave_data(&self) {
        *self.gave_data_at.lock().unwrap() = Some(Instant::now());
    }

    pub fn waiting(&self) {
        let mut at = self.gave_data_at.lock().unwrap();
        if at.is_some() {
            *at = None;
        }
    }

    fn stalled_for(&self, limit: Duration) -> bool {
        self.gave_data_at
            .lock()
            .unwrap()
            .is_some_and(|t| t.elapsed() >= limit)
    }
}

/// One request in flight on its connection (see `Activity::begin`).
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Why `Activity::watch_timers` returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Expired {
    /// No request in flight for the keep-alive timeout.
    Idle,
    /// A response has waited the send timeout for the client to take data.
    Stalled,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            state: Mutex::new(State {
                in_flight: 0,
                idle_since: Instant::now(),
                responses: Vec::new(),
            }),
            drained: Notify::new(),
        }
    }

    /// A request starts; it is in flight until the guard drops (its response
    /// body was sent or abandoned, or the request was dropped before it had
    /// one: an HTTP/2 stream the client reset, a connection that went away).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.state.lock().unwrap().in_flight += 1;
        InFlight(self.clone())
    }

    /// A response body is on its way; its progress is watched until it drops.
    pub fn watch(&self) -> Arc<Progress> {
        let progress = Arc::new(Progress::default());
        let mut s = self.state.lock().unwrap();
        s.responses.retain(|w| w.strong_count() > 0);
        s.responses.push(Arc::downgrade(&progress));
        progress
    }

    fn end(&self) {
        let mut s = self.state.lock().unwrap();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.idle_since = Instant::now();
        let drained = s.in_flight == 0;
        drop(s);
        if drained {
            // Cheap when nobody waits (the usual case: only shutdown does).
            self.drained.notify_waiters();
        }
    }

    /// Completes when no request is in flight.
    pub async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state.lock().unwrap().in_flight == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Completes when the connection has been idle for `keep_alive`, or when a
    /// response has stalled for `send_timeout` while `sent_nothing_for` (the
    /// transport's view: no response bytes went out for that long, so that a
    /// slow but steady reader of a large chunk is not taken for a stalled one).
    pub async fn watch_timers(
        &self,
        keep_alive: Duration,
        send_timeout: Duration,
        sent_nothing_for: impl Fn(Duration) -> bool,
    ) -> Expired {
        let stall_check =
            (send_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        enum Next {
            Sleep(Instant),
            Done(Expired),
        }
        loop {
            let next = {
                let mut s = self.state.lock().unwrap();
                if s.in_flight == 0 {
                    let deadline = s.idle_since + keep_alive;
                    let now = Instant::now();
                    if now >= deadline {
                        Next::Done(Expired::Idle)
                    } else {
                        // A request that starts during this sleep starts after
                        // `now`: its response cannot have stalled for the send
                        // timeout before `now + send_timeout`.
                        let first_stall = now.checked_add(send_timeout).unwrap_or(deadline);
                        Next::Sleep(deadline.min(first_stall))
                    }
                } else {
                    s.responses.retain(|w| w.strong_count() > 0);
                    let stalled = s
                        .responses
                        .iter()
                        .filter_map(Weak::upgrade)
                        .any(|p| p.stalled_for(send_timeout));
                    if stalled && sent_nothing_for(send_timeout) {
                        Next::Done(Expired::Stalled)
                    } else {
                        Next::Sleep(Instant::now() + stall_check)
                    }
                }
            };
            match next {
                Next::Done(expired) => return expired,
                Next::Sleep(at) => tokio::time::sleep_until(at).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn a_body_that_gave_data_and_is_not_asked_again_stalls() {
        let activity = Arc::new(Activity::new());
        let _request = activity.begin();
        let progress = activity.watch();
        progress.gave_data();
        let limit = Duration::from_secs(10);
        let expired = tokio::time::timeout(
            Duration::from_secs(12),
            activity.watch_timers(LONG, limit, |_| true),
        )
        .await
        .expect("stall detected");
        assert_eq!(expired, Expired::Stalled);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_waiting_for_the_application_does_not_stall() {
        let activity = Arc::new(Activity::new());
        let _request = activity.begin();
        let progress = activity.watch();
        progress.gave_data();
        progress.waiting();
        let limit = Duration::from_secs(10);
        let watch = activity.watch_timers(LONG, limit, |_| true);
        assert!(tokio::time::timeout(Duration::from_secs(60), watch)
            .await
            .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_needs_the_transport_to_be_quiet_too() {
        let activity = Arc::new(Activity::new());
        let _request = activity.begin();
        let progress = activity.watch();
        progress.gave_data();
        let watch = activity.watch_timers(LONG, Duration::from_secs(10), |_| false);
        assert!(tokio::time::timeout(Duration::from_secs(60), watch)
            .await
            .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_after_the_last_request() {
        let activity = Arc::new(Activity::new());
        drop(activity.begin());
        let watch = activity.watch_timers(Duration::from_secs(5), LONG, |_| true);
        let expired = tokio::time::timeout(Duration::from_secs(6), watch)
            .await
            .expect("idle");
        assert_eq!(expired, Expired::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_on_an_idle_connection_starts_the_stall_checks() {
        let activity = Arc::new(Activity::new());
        let watcher = activity.clone();
        let watch = tokio::spawn(async move {
            watcher
                .watch_timers(LONG, Duration::from_secs(2), |_| true)
                .await
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _request = activity.begin();
        let progress = activity.watch();
        progress.gave_data();
        let expired = tokio::time::timeout(Duration::from_secs(4), watch).await;
        assert!(matches!(expired, Ok(Ok(Expired::Stalled))), "{expired:?}");
    }

    /// Nothing wakes the idle sleep when a request starts: its cut to the send
    /// timeout still finds a stall within one stall check of it being due.
    #[tokio::test(start_paused = true)]
    async fn a_stall_is_found_in_time_whenever_the_request_starts() {
        for starts_after in [100, 1900, 2100, 3999] {
            let activity = Arc::new(Activity::new());
            let watcher = activity.clone();
            let watch = tokio::spawn(async move {
                watcher
                    .watch_timers(LONG, Duration::from_secs(2), |_| true)
                    .await
            });
            tokio::time::sleep(Duration::from_millis(starts_after)).await;
            let _request = activity.begin();
            let progress = activity.watch();
            progress.gave_data();
            // Due 2 s after the data; the checks run every 0.5 s.
            let expired = tokio::time::timeout(Duration::from_millis(2501), watch).await;
            assert!(
                matches!(expired, Ok(Ok(Expired::Stalled))),
                "{starts_after} ms: {expired:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn not_idle_while_a_request_runs() {
        let activity = Arc::new(Activity::new());
        let _request = activity.begin();
        let watch = activity.watch_timers(Duration::from_secs(5), LONG, |_| true);
        assert!(tokio::time::timeout(Duration::from_secs(60), watch)
            .await
            .is_err());
    }
}
