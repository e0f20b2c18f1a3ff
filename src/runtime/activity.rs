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
//! What it does not do: close anything (the connection task does, through
//! `h2guard::GuardHandle`).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub struct Activity {
    state: Mutex<State>,
    changed: Notify,
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
        *self.gave_data_at.lock().unwrap() = None;
    }

    fn stalled_for(&self, limit: Duration) -> bool {
        self.gave_data_at
            .lock()
            .unwrap()
            .is_some_and(|t| t.elapsed() >= limit)
    }
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
            changed: Notify::new(),
        }
    }

    pub fn begin(&self) {
        self.state.lock().unwrap().in_flight += 1;
        self.changed.notify_waiters();
    }

    /// A response body is on its way; its progress is watched until it drops.
    pub fn watch(&self) -> Arc<Progress> {
        let progress = Arc::new(Progress::default());
        let mut s = self.state.lock().unwrap();
        s.responses.retain(|w| w.strong_count() > 0);
        s.responses.push(Arc::downgrade(&progress));
        progress
    }

    pub fn end(&self) {
        let mut s = self.state.lock().unwrap();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.idle_since = Instant::now();
        drop(s);
        self.changed.notify_waiters();
    }

    /// Completes when no request is in flight.
    pub async fn drained(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state.lock().unwrap().in_flight == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Completes once no request has been in flight for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (active, since) = {
                let s = self.state.lock().unwrap();
                (s.in_flight, s.idle_since)
            };
            if active > 0 {
                notified.await;
                continue;
            }
            let deadline = since + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = notified => {}
            }
        }
    }

    /// Completes once some response has waited `limit` for the client to take
    /// its data, and no response bytes went out for as long (`sent_nothing_for`:
    /// the transport's view, so that a slow but steady reader of a large chunk
    /// is not taken for a stalled one). Checks a few times per `limit`.
    pub async fn stalled_for(&self, limit: Duration, sent_nothing_for: impl Fn(Duration) -> bool) {
        let every = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            // An idle connection runs no timer: it waits for a request.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state.lock().unwrap().in_flight == 0 {
                notified.await;
                continue;
            }
            tokio::time::sleep(every).await;
            let stalled = {
                let mut s = self.state.lock().unwrap();
                s.responses.retain(|w| w.strong_count() > 0);
                s.responses
                    .iter()
                    .filter_map(Weak::upgrade)
                    .any(|p| p.stalled_for(limit))
            };
            if stalled && sent_nothing_for(limit) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_gave_data_and_is_not_asked_again_stalls() {
        let activity = Activity::new();
        activity.begin();
        let progress = activity.watch();
        progress.gave_data();
        let limit = Duration::from_secs(10);
        tokio::time::timeout(
            Duration::from_secs(12),
            activity.stalled_for(limit, |_| true),
        )
        .await
        .expect("stall detected");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_waiting_for_the_application_does_not_stall() {
        let activity = Activity::new();
        activity.begin();
        let progress = activity.watch();
        progress.gave_data();
        progress.waiting();
        let limit = Duration::from_secs(10);
        assert!(tokio::time::timeout(
            Duration::from_secs(60),
            activity.stalled_for(limit, |_| true)
        )
        .await
        .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_after_the_last_request() {
        let activity = Activity::new();
        activity.begin();
        activity.end();
        tokio::time::timeout(
            Duration::from_secs(6),
            activity.idle_for(Duration::from_secs(5)),
        )
        .await
        .expect("idle");
    }
}
