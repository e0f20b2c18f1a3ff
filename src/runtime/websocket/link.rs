//! The link between a WebSocket session and the application: two bounded
//! queues and the close.
//!
//! What it owns: the messages received and not yet taken by the application
//! (at most `INBOX` of them: past that the session stops reading, and TCP's
//! or HTTP/2's flow control holds the client back), the messages the
//! application sent and the session has not yet written (up to the send
//! queue's size in bytes: past that `poll_send` waits), the application's
//! close, and how the connection ended. Both sides wait through wakers, so
//! the application side can be a blocked thread (`wait`), an asyncio
//! future resolved by a waker of the Python bridge, or a job submitted to
//! the pool by one: the link does not know which.
//!
//! What it does not do: frames, timers or I/O (`session`), or Python.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use bytes::Bytes;

use crate::proto::websocket::message::ABNORMAL;

/// Messages received and not yet taken before the session stops reading.
const INBOX: usize = 16;

/// A message, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    /// Valid UTF-8 (checked on the way in; a `str` on the way out).
    Text(Bytes),
    Binary(Bytes),
}

impl Data {
    fn len(&self) -> usize {
        match self {
            Data::Text(b) | Data::Binary(b) => b.len(),
        }
    }
}

/// How a connection ended, as the application is told: the close frame's
/// code and reason; 1005 when it had no code, 1006 when the connection
/// ended without one (RFC 6455 §7.1.5, §7.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Closed {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

impl Closed {
    pub(crate) fn new(code: u16, reason: impl Into<String>) -> Closed {
        Closed {
            code,
            reason: reason.into(),
        }
    }

    /// The connection ended without a close frame.
    pub(crate) fn abnormal() -> Closed {
        Closed::new(ABNORMAL, "")
    }
}

/// What the session has to write.
pub(crate) enum Outgoing {
    Data(Data),
    /// The application's close: the code and reason it gave.
    Close(u16, String),
}

struct State {
    inbox: VecDeque<Data>,
    outbox: VecDeque<Outgoing>,
    outbox_bytes: usize,
    send_queue: usize,
    /// The application asked to close: nothing more is queued.
    closing: bool,
    /// Set by the session when the connection is over; what is still in
    /// the inbox is taken first.
    closed: Option<Closed>,
    receiver: Option<Waker>,
    senders: Vec<Waker>,
    session: Option<Waker>,
}

/// One connection's link; the session holds one clone, the application side
/// (`Socket`) another.
#[derive(Clone)]
pub(crate) struct Link(Arc<Mutex<State>>);

impl Link {
    /// A link whose outgoing queue holds up to `send_queue` bytes (one
    /// message of any size when it is empty).
    pub(crate) fn new(send_queue: usize) -> Link {
        Link(Arc::new(Mutex::new(State {
            inbox: VecDeque::new(),
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            send_queue,
            closing: false,
            closed: None,
            receiver: None,
            senders: Vec::new(),
            session: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent: no code runs under the lock that can panic halfway.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- the application's side

    /// The next message, or how the connection ended once every message
    /// received before the end was taken.
    pub(crate) fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<Result<Data, Closed>> {
        let mut state = self.lock();
        if let Some(data) = state.inbox.pop_front() {
            if state.inbox.len() == INBOX - 1 {
                // The session may have stopped reading for want of room.
                wake(state.session.take());
            }
            return Poll::Ready(Ok(data));
        }
        if let Some(closed) = &state.closed {
            return Poll::Ready(Err(closed.clone()));
        }
        set_waker(&mut state.receiver, cx);
        Poll::Pending
    }

    /// Queue `data` for sending (taken out of `data` when queued), or wait for
    /// room. Fails once the connection is closed or closing.
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        data: &mut Option<Data>,
    ) -> Poll<Result<(), Closed>> {
        let mut state = self.lock();
        if let Some(closed) = &state.closed {
            return Poll::Ready(Err(closed.clone()));
        }
        let Some(len) = data.as_ref().map(Data::len) else {
            return Poll::Ready(Ok(()));
        };
        if state.outbox_bytes > 0 && state.outbox_bytes + len > state.send_queue {
            if !state.senders.iter().any(|w| w.will_wake(cx.waker())) {
                state.senders.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        state.outbox_bytes += len;
        state.outbox.extend(data.take().map(Outgoing::Data));
        wake(state.session.take());
        Poll::Ready(Ok(()))
    }

    /// Start the close handshake with `code` and `reason` (checked by the
    /// caller: `proto::websocket::message::check_close`). For the
    /// application the connection is closed from now on, with that code and
    /// reason (messages not yet taken are dropped). False when the
    /// connection is already closed or closing.
    pub(crate) fn close(&self, code: u16, reason: String) -> bool {
        let (receiver, senders) = {
            let mut state = self.lock();
            if state.closed.is_some() || state.closing {
                return false;
            }
            state.closing = true;
            state.closed = Some(Closed::new(code, reason.clone()));
            state.inbox.clear();
            state.outbox.push_back(Outgoing::Close(code, reason));
            wake(state.session.take());
            (state.receiver.take(), std::mem::take(&mut state.senders))
        };
        wake(receiver);
        senders.into_iter().for_each(Waker::wake);
        true
    }

    /// How the connection ended, if it has.
    pub(crate) fn closed(&self) -> Option<Closed> {
        self.lock().closed.clone()
    }

    // ---- the session's side

    /// Whether the inbox has room; if not, the session is woken when it has.
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        if state.inbox.len() < INBOX {
            return Poll::Ready(());
        }
        set_waker(&mut state.session, cx);
        Poll::Pending
    }

    /// A message received, for the application.
    pub(crate) fn deliver(&self, data: Data) {
        let mut state = self.lock();
        state.inbox.push_back(data);
        wake(state.receiver.take());
    }

    /// The next thing to write, if any; else the session is woken when
    /// there is.
    pub(crate) fn poll_outgoing(&self, cx: &mut Context<'_>) -> Poll<Outgoing> {
        let mut state = self.lock();
        match state.outbox.pop_front() {
            Some(out) => {
                if let Outgoing::Data(data) = &out {
                    state.outbox_bytes -= data.len();
                }
                for waker in std::mem::take(&mut state.senders) {
                    waker.wake();
                }
                Poll::Ready(out)
            }
            None => {
                set_waker(&mut state.session, cx);
                Poll::Pending
            }
        }
    }

    /// The connection is over: the application's waits end, what it had
    /// queued is dropped. The first end recorded is the one it sees.
    pub(crate) fn finish(&self, closed: Closed) {
        let (receiver, senders) = {
            let mut state = self.lock();
            state.closed.get_or_insert(closed);
            state.outbox.clear();
            state.outbox_bytes = 0;
            (state.receiver.take(), std::mem::take(&mut state.senders))
        };
        wake(receiver);
        senders.into_iter().for_each(Waker::wake);
    }
}

fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Block the calling thread until `poll` is ready (the application's side
/// of a sync handler; the caller lets go of the interpreter first).
pub(crate) fn wait<T>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(value) = poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &'static str) -> Data {
        Data::Text(Bytes::from_static(s.as_bytes()))
    }

    fn noop() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn messages_pass_in_order_then_the_close() {
        let link = Link::new(1024);
        link.deliver(text("a"));
        link.deliver(text("b"));
        link.finish(Closed::new(1000, "bye"));
        let mut cx = noop();
        assert_eq!(link.poll_receive(&mut cx), Poll::Ready(Ok(text("a"))));
        assert_eq!(link.poll_receive(&mut cx), Poll::Ready(Ok(text("b"))));
        assert_eq!(
            link.poll_receive(&mut cx),
            Poll::Ready(Err(Closed::new(1000, "bye")))
        );
    }

    #[test]
    fn a_full_send_queue_waits_but_an_empty_one_takes_any_message() {
        let link = Link::new(4);
        let mut cx = noop();
        let mut big = Some(Data::Binary(Bytes::from(vec![0; 100])));
        assert_eq!(link.poll_send(&mut cx, &mut big), Poll::Ready(Ok(())));
        let mut next = Some(text("x"));
        assert_eq!(link.poll_send(&mut cx, &mut next), Poll::Pending);
        assert!(matches!(
            link.poll_outgoing(&mut cx),
            Poll::Ready(Outgoing::Data(_))
        ));
        assert_eq!(link.poll_send(&mut cx, &mut next), Poll::Ready(Ok(())));
        assert!(next.is_none());
    }

    #[test]
    fn the_inbox_is_bounded() {
        let link = Link::new(1024);
        let mut cx = noop();
        for _ in 0..INBOX {
            assert_eq!(link.poll_room(&mut cx), Poll::Ready(()));
            link.deliver(text("m"));
        }
        assert_eq!(link.poll_room(&mut cx), Poll::Pending);
        let _ = link.poll_receive(&mut cx);
        assert_eq!(link.poll_room(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn sending_after_close_fails_and_close_is_once() {
        let link = Link::new(1024);
        let mut cx = noop();
        assert!(link.close(1000, String::new()));
        assert!(!link.close(1000, String::new()));
        let mut data = Some(text("late"));
        assert!(matches!(
            link.poll_send(&mut cx, &mut data),
            Poll::Ready(Err(_))
        ));
    }

    #[test]
    fn wait_returns_once_woken_from_another_thread() {
        let link = Link::new(1024);
        let remote = link.clone();
        let t = std::thread::spawn(move || remote.deliver(text("hi")));
        let got = wait(|cx| link.poll_receive(cx));
        t.join().unwrap();
        assert_eq!(got, Ok(text("hi")));
    }
}
