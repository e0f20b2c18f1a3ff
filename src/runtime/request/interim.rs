//! What a request's connection sends before its final response: interim
//! responses (`103 Early Hints`, RFC 8297) and, on HTTP/2, pushes (RFC 9113
//! §8.4).
//!
//! What it owns: the bounded channel from a request (its endpoint, on a pool
//! thread, or `service` before the call) to the connection task that writes
//! its response, and the application's preloads (`Preload`). The connection
//! makes the channel for each request that may get interim responses (never
//! for HTTP/1.0: RFC 9110 §15.2), hands the sender with the request
//! (`http::Request` extensions, then `endpoint::Call`), and writes what
//! comes until the final response does; then it drops the receiver, and
//! what is sent after is dropped. A sender is never blocked: a full channel,
//! or a hint larger than `MAX_HINT_BYTES`, drops the hint (hints are
//! advice), so an application that floods hints holds at most
//! `CAPACITY` × `MAX_HINT_BYTES` per request.
//!
//! What it does not do: decide which requests get the preloads
//! (`proto::early_hints`), or write anything (`conn::h1`, `conn::h2`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use http::header::{HeaderValue, LINK};
use http::uri::PathAndQuery;
use http::HeaderMap;

/// Interim messages one request may have queued: the preloads and a push
/// (`service`), and a few of the application's own hints.
const CAPACITY: usize = 4;

/// The largest hint, in bytes of field names and values: a hint is a few
/// `Link` fields (a hundred preload links fit in 8 KiB). Larger ones are
/// dropped, which bounds what a request's queued hints hold.
pub(crate) const MAX_HINT_BYTES: usize = 16 * 1024;

/// Something to send before a request's final response.
pub(crate) enum Interim {
    /// A `103 Early Hints` with these fields.
    EarlyHints(HeaderMap),
    /// HTTP/2 only: push these requests' responses (PUSH_PROMISE, then the
    /// response on the promised stream). Ignored on HTTP/1.1.
    Push(Vec<http::Request<()>>),
}

/// The channel: a small queue behind a lock (one allocation per request,
/// none more until a message comes; a sender never waits), and the
/// receiver's waker. `queued` says whether the queue holds a message, so
/// the receiver, polled with every poll of its request, takes no lock
/// while nothing comes (nearly always).
struct Channel {
    queue: Mutex<Queue>,
    queued: AtomicBool,
    waker: AtomicWaker,
}

struct Queue {
    messages: VecDeque<Interim>,
    /// The receiver is gone: the final response has started.
    closed: bool,
}

/// The request's side of the channel. `InterimSender::none()` for a request
/// that gets no interim responses (HTTP/1.0).
#[derive(Clone)]
pub(crate) struct InterimSender(Option<Arc<Channel>>);

/// The connection's side: what to send before the final response. Dropping
/// it closes the channel.
pub(crate) struct InterimReceiver(Arc<Channel>);

/// A channel for one request's interim messages.
pub(crate) fn channel() -> (InterimSender, InterimReceiver) {
    let channel = Arc::new(Channel {
        queue: Mutex::new(Queue {
            messages: VecDeque::new(),
            closed: false,
        }),
        queued: AtomicBool::new(false),
        waker: AtomicWaker::new(),
    });
    (
        InterimSender(Some(channel.clone())),
        InterimReceiver(channel),
    )
}

impl Channel {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A queue a panicking holder left is still a valid queue.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a hint was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HintRefused {
    /// HTTP/1.0, or the final response has started: there is no interim
    /// response any more.
    Closed,
    /// `CAPACITY` messages wait already: the connection is slower than the
    /// hints.
    Full,
    /// Larger than `MAX_HINT_BYTES`.
    TooLarge(usize),
}

impl InterimSender {
    /// A sender for a request that gets no interim responses.
    pub(crate) fn none() -> InterimSender {
        InterimSender(None)
    }

    /// Queue a `103 Early Hints`, never waiting.
    pub(crate) fn early_hints(&self, fields: HeaderMap) -> Result<(), HintRefused> {
        let size: usize = fields
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        if size > MAX_HINT_BYTES {
            return Err(HintRefused::TooLarge(size));
        }
        self.send(Interim::EarlyHints(fields))
    }

    /// Queue pushes (HTTP/2), never waiting.
    pub(crate) fn push(&self, requests: Vec<http::Request<()>>) -> Result<(), HintRefused> {
        self.send(Interim::Push(requests))
    }

    fn send(&self, message: Interim) -> Result<(), HintRefused> {
        let channel = self.0.as_ref().ok_or(HintRefused::Closed)?;
        {
            let mut queue = channel.queue();
            if queue.closed {
                return Err(HintRefused::Closed);
            }
            if queue.messages.len() >= CAPACITY {
                return Err(HintRefused::Full);
            }
            queue.messages.push_back(message);
            channel.queued.store(true, Ordering::Release);
        }
        channel.waker.wake();
        Ok(())
    }
}

impl InterimReceiver {
    /// The next message; pending while there is none (a sender's message
    /// wakes the task).
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Interim> {
        if !self.0.queued.load(Ordering::Acquire) {
            self.0.waker.register(cx.waker());
            // A message sent before the registration is seen now.
            if !self.0.queued.load(Ordering::Acquire) {
                return Poll::Pending;
            }
        }
        let mut queue = self.0.queue();
        let message = queue.messages.pop_front();
        self.0
            .queued
            .store(!queue.messages.is_empty(), Ordering::Release);
        drop(queue);
        match message {
            Some(message) => Poll::Ready(message),
            None => {
                self.0.waker.register(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for InterimReceiver {
    fn drop(&mut self) {
        let mut queue = self.0.queue();
        queue.closed = true;
        queue.messages.clear();
    }
}

/// The application's preloads (`plan.preload`): the `Link` fields of the
/// `103 Early Hints` sent before its pages, and the paths among them that
/// this server serves as static files (pushed with `--http2-push`).
pub(crate) struct Preload {
    hint: HeaderMap,
    push: Vec<PathAndQuery>,
}

impl Preload {
    /// `links` are complete `Link` field values; `push` the paths among
    /// them that a static mount serves.
    pub(crate) fn new(links: Vec<HeaderValue>, push: Vec<PathAndQuery>) -> Preload {
        let mut hint = HeaderMap::with_capacity(links.len());
        for link in links {
            hint.append(LINK, link);
        }
        Preload { hint, push }
    }

    /// The fields of the `103 Early Hints`.
    pub(crate) fn hint(&self) -> &HeaderMap {
        &self.hint
    }

    /// What `--http2-push` pushes.
    pub(crate) fn push(&self) -> &[PathAndQuery] {
        &self.push
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(value: &str) -> HeaderMap {
        let mut fields = HeaderMap::new();
        fields.insert(LINK, HeaderValue::from_str(value).unwrap());
        fields
    }

    #[test]
    fn a_flood_of_hints_is_bounded_and_nothing_waits() {
        let (tx, mut rx) = channel();
        for _ in 0..CAPACITY {
            assert_eq!(tx.early_hints(hint("</a.css>; rel=preload")), Ok(()));
        }
        assert_eq!(
            tx.early_hints(hint("</a.css>; rel=preload")),
            Err(HintRefused::Full)
        );
        let waker = futures_util::task::noop_waker();
        let next = rx.poll_recv(&mut Context::from_waker(&waker));
        assert!(matches!(next, Poll::Ready(Interim::EarlyHints(_))));
        assert_eq!(tx.early_hints(hint("</b.css>; rel=preload")), Ok(()));
        let large = format!("</{}>; rel=preload", "x".repeat(MAX_HINT_BYTES));
        assert!(matches!(
            tx.early_hints(hint(&large)),
            Err(HintRefused::TooLarge(_))
        ));
        drop(rx);
        assert_eq!(tx.early_hints(hint("</c>")), Err(HintRefused::Closed));
        assert_eq!(
            InterimSender::none().early_hints(hint("</c>")),
            Err(HintRefused::Closed)
        );
    }
}
