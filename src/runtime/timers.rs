//! A connection's timers, and what they watch (`Activity`: requests in
//! flight, response progress, bytes received).
//!
//! What a connection is doing, for its three timers: keep-alive (no request
//! in flight for too long), request head (an HTTP/1.1 head that started to
//! arrive and is not complete in time: slowloris) and send stall (a response
//! has data for the client, but the client has taken nothing for too long).
//!
//! Stall detection needs no knowledge of the transport or of HTTP/2 flow
//! control: after a response body hands the connection a chunk, the connection
//! asks for the next one as soon as it can send more. A body that gave data and has not been
//! asked again for `send_timeout` belongs to a client that stopped reading
//! (TCP) or stopped granting window (HTTP/2). A body waiting for the
//! application is not stalled: its last answer to the connection was "not yet".
//!
//! The head timer counts from the first byte the transport receives after the
//! connection went idle (`received`, called by the transport wrapper on every
//! read) to the start of the request (`begin`), not from when the connection
//! begins waiting for the next head (as hyper's `header_read_timeout` does):
//! that would count idle time on a keep-alive connection too and close
//! connections the keep-alive timeout should keep, and cost a timer armed and
//! dropped per request.
//!
//! All timers are one `watch_timers` future that sleeps to its next deadline
//! and looks at the state when it wakes. Nothing wakes it early: requests
//! starting and ending, and bytes arriving, do not touch it (on HTTP/1.1 each
//! request takes an idle connection to busy and back; on HTTP/2 they come by
//! the thousand). An idle connection's sleep is cut to the send and head
//! timeouts instead, since no response (or head) that starts during it can
//! have been due for longer when it ends.
//!
//! What it does not do: close anything (the connection task does, through
//! `transport::guard::GuardHandle`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub(crate) struct Activity {
    state: Mutex<State>,
    /// Only `drained` waits on this (at shutdown).
    drained: Notify,
    /// Someone waits in `drained`: only then does the end of a request
    /// notify (`Notify::notify_waiters` takes a lock even with no waiter).
    draining: AtomicBool,
    /// When the first byte since the connection last went idle arrived, in
    /// nanoseconds after `created`, plus one; 0: none since. An atomic, not
    /// part of `state`: the transport looks at it on every read.
    head_at: AtomicU64,
    created: Instant,
}

/// The limits `Activity::watch_timers` enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// No request in flight for this long: close.
    pub(crate) keep_alive: Duration,
    /// A request head that started to arrive and has not become a request
    /// within this: close. `None` where heads do not apply (HTTP/2 streams
    /// have their own limits in h2 and the guard).
    pub(crate) head: Option<Duration>,
    /// A response the client has taken nothing of for this long: close.
    pub(crate) send: Duration,
}

struct State {
    in_flight: usize,
    idle_since: Instant,
    /// The progress of the responses being sent, and of finished ones kept
    /// for the next (`watch`): one each in flight, a few per connection.
    responses: Vec<Arc<Progress>>,
}

/// One response body's progress, updated by `access_log::tracked::Tracked` on every
/// poll of the body: no lock.
pub(crate) struct Progress {
    /// When the body last handed the connection data, in nanoseconds after `base`,
    /// plus one; 0 when it answered "not yet" or ended since.
    gave_data_at: AtomicU64,
    base: Instant,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            gave_data_at: AtomicU64::new(0),
            base: Instant::now(),
        }
    }

    pub(crate) fn gave_data(&self) {
        // u64 nanoseconds: 584 years of connection.
        let ns = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.gave_data_at.store(ns + 1, Ordering::Relaxed);
    }

    pub(crate) fn waiting(&self) {
        if self.gave_data_at.load(Ordering::Relaxed) != 0 {
            self.gave_data_at.store(0, Ordering::Relaxed);
        }
    }

    fn stalled_for(&self, limit: Duration) -> bool {
        match self.gave_data_at.load(Ordering::Relaxed) {
            0 => false,
            ns => (self.base + Duration::from_nanos(ns - 1)).elapsed() >= limit,
        }
    }
}

/// Drop the `Progress` of finished responses (held only by `responses`)
/// but one, kept for the next response.
fn trim_finished(responses: &mut Vec<Arc<Progress>>) {
    let mut kept = false;
    responses.retain(|p| Arc::strong_count(p) > 1 || !std::mem::replace(&mut kept, true));
}

/// One request in flight on its connection (see `Activity::begin`).
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Why `Activity::watch_timers` returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Expired {
    /// No request in flight for the keep-alive timeout.
    Idle,
    /// A response has waited the send timeout for the client to take data.
    Stalled,
    /// A request head has been arriving for the head timeout.
    SlowHead,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            state: Mutex::new(State {
                in_flight: 0,
                idle_since: Instant::now(),
                responses: Vec::new(),
            }),
            drained: Notify::new(),
            draining: AtomicBool::new(false),
            head_at: AtomicU64::new(0),
            created: Instant::now(),
        }
    }

    /// The transport received bytes. The first since the connection went idle
    /// starts the head timer (one clock read per request, none per read).
    pub(crate) fn received(&self) {
        if self.head_at.load(Ordering::Relaxed) == 0 {
            // u64 nanoseconds: 584 years of connection.
            let ns = u64::try_from(self.created.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
            self.head_at.store(ns + 1, Ordering::Relaxed);
        }
    }

    /// The bytes received since the connection went idle were not a head
    /// (the rest of a body the connection discarded): no head timer.
    pub(crate) fn not_a_head(&self) {
        self.head_at.store(0, Ordering::Relaxed);
    }

    fn head_started(&self) -> Option<Instant> {
        match self.head_at.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.created + Duration::from_nanos(ns - 1)),
        }
    }

    /// A request starts; it is in flight until the guard drops (its response
    /// body was sent or abandoned, or the request was dropped before it had
    /// one: an HTTP/2 stream the client reset, a connection that went away).
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.state.lock().unwrap().in_flight += 1;
        InFlight(self.clone())
    }

    /// A response body is on its way; its progress is watched until it
    /// drops. A finished response's `Progress` is used again (no allocation
    /// per response on a keep-alive connection).
    pub(crate) fn watch(&self) -> Arc<Progress> {
        let mut s = self.state.lock().unwrap();
        // Held only here: its response is over.
        if let Some(free) = s.responses.iter().find(|p| Arc::strong_count(p) == 1) {
            free.gave_data_at.store(0, Ordering::Relaxed);
            return free.clone();
        }
        let progress = Arc::new(Progress::new());
        s.responses.push(progress.clone());
        progress
    }

    fn end(&self) {
        let mut s = self.state.lock().unwrap();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.idle_since = Instant::now();
        // Bytes that came while the request ran were its body (or a pipelined
        // head, already read: `conn::h1` parses it without waiting).
        self.head_at.store(0, Ordering::Relaxed);
        let drained = s.in_flight == 0;
        if drained && s.responses.len() > 1 {
            // An HTTP/2 connection that had many responses at once keeps
            // one finished `Progress` while it is idle, not all of them.
            trim_finished(&mut s.responses);
        }
        drop(s);
        // Read after the lock is released: a `drained` that set the flag
        // after this saw `in_flight` as left here (see `drained`).
        if drained && self.draining.load(Ordering::SeqCst) {
            self.drained.notify_waiters();
        }
    }

    /// No request is in flight.
    pub(crate) fn is_idle(&self) -> bool {
        self.state.lock().unwrap().in_flight == 0
    }

    /// Completes when no request is in flight.
    pub(crate) async fn drained(&self) {
        // Set before `in_flight` is looked at under the lock, so an `end`
        // that this look does not see reads the flag after it.
        self.draining.store(true, Ordering::SeqCst);
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

    /// Completes when the connection has been idle for the keep-alive
    /// timeout, when a request head has been arriving for the head timeout
    /// while no request is in flight, or when a response has stalled for the
    /// send timeout while `sent_nothing_for` (the transport's view: no
    /// response bytes went out for that long, so that a slow but steady reader
    /// of a large chunk is not taken for a stalled one).
    pub(crate) async fn watch_timers(
        &self,
        timeouts: Timeouts,
        sent_nothing_for: impl Fn(Duration) -> bool,
    ) -> Expired {
        let Timeouts {
            keep_alive,
            head,
            send: send_timeout,
        } = timeouts;
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
                    let now = Instant::now();
                    // A request that starts during a sleep starts after `now`:
                    // its response cannot have stalled for the send timeout
                    // before `now + send_timeout`.
                    let first_stall = now.checked_add(send_timeout);
                    match head.and_then(|limit| Some(self.head_started()? + limit)) {
                        // A head is arriving: its timer replaces keep-alive's.
                        Some(due) if now >= due => Next::Done(Expired::SlowHead),
                        Some(due) => Next::Sleep(first_stall.map_or(due, |t| t.min(due))),
                        None => {
                            let idle = s.idle_since + keep_alive;
                            // Likewise a head that starts arriving during it.
                            let first_head = head.and_then(|limit| now.checked_add(limit));
                            if now >= idle {
                                Next::Done(Expired::Idle)
                            } else {
                                let wake = [first_stall, first_head].into_iter().flatten();
                                Next::Sleep(wake.fold(idle, Instant::min))
                            }
                        }
                    }
                } else {
                    trim_finished(&mut s.responses);
                    let stalled = s.responses.iter().any(|p| p.stalled_for(send_timeout));
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

    /// Keep-alive and send timeouts, no head timeout.
    fn timeouts(keep_alive: Duration, send: Duration) -> Timeouts {
        Timeouts {
            keep_alive,
            head: None,
            send,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_gave_data_and_is_not_asked_again_stalls() {
        let activity = Arc::new(Activity::new());
        let _request = activity.begin();
        let progress = activity.watch();
        progress.gave_data();
        let limit = Duration::from_secs(10);
        let expired = tokio::time::timeout(
            Duration::from_secs(12),
            activity.watch_timers(timeouts(LONG, limit), |_| true),
        )
        .await
        .expect("stall detected");
        assert_eq!(expired, Expired::Stalled);
    }

    #[test]
    fn a_finished_responses_progress_is_used_again_and_reset() {
        let activity = Arc::new(Activity::new());
        let first = activity.watch();
        first.gave_data();
        let first_ptr = Arc::as_ptr(&first);
        // Two at once (HTTP/2): two of them.
        let second = activity.watch();
        assert!(!Arc::ptr_eq(&first, &second));
        drop(first);
        drop(second);
        // The next response gets one of them back, with nothing given yet.
        let third = activity.watch();
        assert!(
            Arc::as_ptr(&third) == first_ptr || activity.state.lock().unwrap().responses.len() == 2
        );
        assert!(!third.stalled_for(Duration::ZERO));
        drop(third);
        // Idle again: one finished `Progress` is kept, not both.
        drop(activity.begin());
        assert_eq!(activity.state.lock().unwrap().responses.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_waiting_for_the_application_does_not_stall() {
        let activity = Arc::new(Activity::new());
        let _request = activity.begin();
        let progress = activity.watch();
        progress.gave_data();
        progress.waiting();
        let limit = Duration::from_secs(10);
        let watch = activity.watch_timers(timeouts(LONG, limit), |_| true);
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
        let watch = activity.watch_timers(timeouts(LONG, Duration::from_secs(10)), |_| false);
        assert!(tokio::time::timeout(Duration::from_secs(60), watch)
            .await
            .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_after_the_last_request() {
        let activity = Arc::new(Activity::new());
        drop(activity.begin());
        let watch = activity.watch_timers(timeouts(Duration::from_secs(5), LONG), |_| true);
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
                .watch_timers(timeouts(LONG, Duration::from_secs(2)), |_| true)
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
                    .watch_timers(timeouts(LONG, Duration::from_secs(2)), |_| true)
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

    /// Watches in the background with keep-alive `keep_alive`, a 10 s head
    /// timeout and no send timeout: what expired, and when after the call.
    fn watch_with_head(
        activity: &Arc<Activity>,
        keep_alive: Duration,
    ) -> tokio::task::JoinHandle<(Expired, Duration)> {
        let watcher = activity.clone();
        let start = Instant::now();
        let timeouts = Timeouts {
            keep_alive,
            head: Some(Duration::from_secs(10)),
            send: LONG,
        };
        tokio::spawn(async move {
            let expired = watcher.watch_timers(timeouts, |_| true).await;
            (expired, start.elapsed())
        })
    }

    // Paused time: the durations below are exact.

    #[tokio::test(start_paused = true)]
    async fn a_head_that_does_not_complete_is_cut_at_the_head_timeout() {
        let activity = Arc::new(Activity::new());
        let watch = watch_with_head(&activity, LONG);
        tokio::time::sleep(Duration::from_secs(3)).await;
        activity.received();
        tokio::time::sleep(Duration::from_secs(2)).await;
        activity.received(); // more of the same head: the timer does not restart
        let expired = watch.await.unwrap();
        assert_eq!(expired, (Expired::SlowHead, Duration::from_secs(13)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_waits_the_keep_alive_timeout_not_the_head_timeout() {
        let activity = Arc::new(Activity::new());
        drop(activity.begin());
        let expired = watch_with_head(&activity, Duration::from_secs(60)).await;
        assert_eq!(expired.unwrap(), (Expired::Idle, Duration::from_secs(60)));
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_received_during_a_request_do_not_start_the_head_timer() {
        let activity = Arc::new(Activity::new());
        let request = activity.begin();
        activity.received(); // its body
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(request);
        let expired = watch_with_head(&activity, Duration::from_secs(60)).await;
        assert_eq!(expired.unwrap(), (Expired::Idle, Duration::from_secs(60)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_in_progress_is_not_cut_by_the_keep_alive_timeout() {
        let activity = Arc::new(Activity::new());
        let watch = watch_with_head(&activity, Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(4)).await;
        activity.received();
        let expired = watch.await.unwrap();
        assert_eq!(expired, (Expired::SlowHead, Duration::from_secs(14)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_becomes_a_request_is_not_cut() {
        let activity = Arc::new(Activity::new());
        let watch = watch_with_head(&activity, Duration::from_secs(60));
        activity.received();
        tokio::time::sleep(Duration::from_secs(9)).await;
        let request = activity.begin();
        tokio::time::sleep(Duration::from_secs(20)).await;
        drop(request);
        // Idle from the end of the request: 29 s + 60 s.
        let expired = watch.await.unwrap();
        assert_eq!(expired, (Expired::Idle, Duration::from_secs(89)));
    }

    #[tokio::test(start_paused = true)]
    async fn not_idle_while_a_request_runs() {
        let activity = Arc::new(Activity::new());
        let _request = activity.begin();
        let watch = activity.watch_timers(timeouts(Duration::from_secs(5), LONG), |_| true);
        assert!(tokio::time::timeout(Duration::from_secs(60), watch)
            .await
            .is_err());
    }
}
