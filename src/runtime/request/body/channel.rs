//! A request body the connection reads, handed to the application's thread.
//!
//! What it does: on the server's own HTTP/1.1 path, a body the application's
//! thread cannot read from the socket itself (a chunked one, whose framing
//! the connection decodes; any body on TLS, whose records only the
//! connection decrypts; a body behind `Expect: 100-continue`, whose
//! `100 Continue` the connection writes) is read by the connection task and
//! passed through a bounded channel (`channel`): `ChannelBody` is the
//! application's side, `BodyFeed` the connection's. The connection waits for
//! room in the channel before it reads on (backpressure: a body the
//! application does not read stops being read), and it reads while the
//! response is written, so an application may stream its response while it
//! reads the body.
//!
//! `ChannelBody` tells the connection when the application first asks for
//! body bytes (`BodyFeed::wanted`, what sends `100 Continue`), and when it
//! gave the body up at an error of its own (too large, timed out: the rest is
//! not drained, the connection closes).
//!
//! What it does not do: decode framing (`proto::chunked`), read sockets, or
//! limit the body's size (the body reader does).

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

use super::deadline::BodyClock;
use super::BodyError;

/// Messages in flight, each what one read of the connection gave (at most
/// 64 KiB): at most about 128 KiB of body waits for the application.
const IN_FLIGHT: usize = 2;

/// One message: the body bytes one read gave (a chunked body's chunks are
/// pieces of the connection's buffer, sent together: one wake-up of the
/// application's thread per read, not per chunk), the end, or an error.
pub(crate) enum Message {
    Data(Vec<Bytes>),
    End,
    Failed(BodyError),
}

struct Shared {
    wanted: Notify,
    asked: AtomicBool,
    gave_up: AtomicBool,
}

/// A body channel: the application's side and the connection's.
pub(crate) fn channel(
    rt: tokio::runtime::Handle,
    clock: BodyClock,
    declared: Option<u64>,
) -> (ChannelBody, BodyFeed) {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let shared = Arc::new(Shared {
        wanted: Notify::new(),
        asked: AtomicBool::new(false),
        gave_up: AtomicBool::new(false),
    });
    (
        ChannelBody {
            rx,
            queue: VecDeque::new(),
            shared: shared.clone(),
            rt,
            clock,
            declared,
            received: 0,
            ended: false,
        },
        BodyFeed { tx, shared },
    )
}

/// The application's side.
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Message>,
    /// Bytes received and not handed out yet.
    queue: VecDeque<Bytes>,
    shared: Arc<Shared>,
    rt: tokio::runtime::Handle,
    clock: BodyClock,
    declared: Option<u64>,
    received: u64,
    ended: bool,
}

impl ChannelBody {
    /// Bytes still to come, when the body's length was declared.
    pub(crate) fn remaining(&self) -> Option<u64> {
        let queued: u64 = self.queue.iter().map(|b| b.len() as u64).sum();
        if self.ended {
            return Some(queued);
        }
        self.declared
            .map(|n| n.saturating_sub(self.received) + queued)
    }

    /// Reading stopped at an error of the body's own (too large).
    pub(crate) fn give_up(&self) {
        self.shared.gave_up.store(true, Ordering::Relaxed);
    }

    /// The next bytes; `None` at the end. Waits as `next_chunk_async`
    /// does, as a `pool::blocking` wait (the caller has released the GIL).
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        if let Some(ready) = self.ready() {
            return Ok(ready);
        }
        let rt = self.rt.clone();
        crate::runtime::pool::blocking(|| rt.block_on(self.next_chunk_async()))
    }

    /// What is here without waiting: bytes received, or the end.
    fn ready(&mut self) -> Option<Option<Bytes>> {
        match self.queue.pop_front() {
            Some(data) => Some(Some(data)),
            None => self.ended.then_some(None),
        }
    }

    /// The next bytes; `None` at the end; each wait ends at the body
    /// timeout, or when the body falls below the minimum rate (`BodyClock`).
    pub(crate) async fn next_chunk_async(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            if let Some(ready) = self.ready() {
                return Ok(ready);
            }
            if !self.shared.asked.swap(true, Ordering::Relaxed) {
                self.shared.wanted.notify_one();
            }
            let deadline = self.clock.deadline();
            let message = deadline.wait(self.rx.recv()).await;
            self.clock.waited(&deadline);
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    self.give_up();
                    return Err(e);
                }
            };
            match message {
                None => {
                    return Err(BodyError::Disconnected(
                        "the request is over: its connection stopped reading the body".into(),
                    ))
                }
                Some(Message::Data(pieces)) => {
                    let bytes = pieces.iter().map(|b| b.len() as u64).sum::<u64>();
                    self.received += bytes;
                    self.clock.received(bytes);
                    // An empty message is not the end: ask again.
                    self.queue
                        .extend(pieces.into_iter().filter(|b| !b.is_empty()));
                }
                Some(Message::End) => {
                    self.ended = true;
                    return Ok(None);
                }
                Some(Message::Failed(e)) => return Err(e),
            }
        }
    }
}

/// The connection's side.
pub(crate) struct BodyFeed {
    tx: mpsc::Sender<Message>,
    shared: Arc<Shared>,
}

impl BodyFeed {
    /// Wait until the application first asks for the body.
    pub(crate) async fn wanted(&self) {
        if !self.shared.asked.load(Ordering::Relaxed) {
            self.shared.wanted.notified().await;
        }
    }

    /// Whether the application stopped at an error of the body's own: the
    /// rest must not be drained.
    pub(crate) fn given_up(&self) -> bool {
        self.shared.gave_up.load(Ordering::Relaxed)
    }

    /// Hand over body bytes (waiting for room), the end, or an error. False
    /// when the application's side is gone.
    pub(crate) async fn send(&self, message: Message) -> bool {
        self.tx.send(message).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bytes_then_the_end_and_the_first_read_is_told() {
        // A handle's `block_on` drives timers only on a multi-thread runtime.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let clock = BodyClock::timeout_only(Duration::from_secs(5));
        let (mut body, feed) = channel(rt.handle().clone(), clock, Some(3));
        let sender = std::thread::spawn({
            let handle = rt.handle().clone();
            move || {
                handle.block_on(async {
                    feed.wanted().await;
                    let pieces = vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")];
                    assert!(feed.send(Message::Data(pieces)).await);
                    assert!(feed.send(Message::End).await);
                    feed
                })
            }
        });
        assert_eq!(body.remaining(), Some(3));
        assert_eq!(body.next_chunk().unwrap().unwrap(), &b"ab"[..]);
        assert_eq!(body.remaining(), Some(1));
        assert_eq!(body.next_chunk().unwrap().unwrap(), &b"c"[..]);
        assert_eq!(body.next_chunk().unwrap(), None);
        assert_eq!(body.remaining(), Some(0));
        let feed = sender.join().unwrap();
        assert!(!feed.given_up());
        drop(body);
        assert!(
            !rt.block_on(feed.send(Message::End)),
            "the application's side is gone"
        );
    }

    #[test]
    fn a_feed_gone_before_the_end_is_an_error_and_a_wait_times_out() {
        // A handle's `block_on` drives timers only on a multi-thread runtime.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let clock = BodyClock::timeout_only(Duration::from_millis(20));
        let (mut body, feed) = channel(rt.handle().clone(), clock, None);
        assert!(
            matches!(body.next_chunk(), Err(BodyError::Disconnected(m)) if m.contains("timed out"))
        );
        assert!(feed.given_up());
        drop(feed);
        assert!(matches!(body.next_chunk(), Err(BodyError::Disconnected(m)) if m.contains("over")));
    }
}
