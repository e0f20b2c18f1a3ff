//! HTTP/2 streams polled by their connection's task instead of a task each.
//!
//! hyper's HTTP/2 server hands every request stream (its future that calls
//! the service and sends the response) to an executor; hyper-util's
//! `TokioExecutor` spawns a task for each. Per request that is a task's
//! allocation, its registration in the runtime's task list and removal,
//! waker clones and drops, a schedule, and a second wake and poll of the
//! connection task when the stream has answered.
//!
//! Here the executor puts the stream into a queue of the connection being
//! polled (hyper starts streams only from inside the connection's `poll`),
//! and [`Multiplexed`] polls the connection's streams in the same task, each
//! with its own waker (`FuturesUnordered`): a stream woken by its response is
//! polled, and the connection's `poll` right after it writes that response,
//! in one wake of one task. Streams started outside a `Multiplexed` poll
//! (none are) get a task of their own. When the connection's
//! future ends, streams still running move to a task of their own, so they
//! end as they would have. A stream that panics ends alone, as a task would.
//!
//! What it does not do: decide anything HTTP/2 (hyper and h2 do).
//! Measured: see docs/internals/performance.md, "HTTP/2 writes".

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::FutureExt as _;
use futures_util::stream::{FuturesUnordered, StreamExt as _};

type Stream = Pin<Box<dyn Future<Output = ()> + Send>>;

thread_local! {
    /// The queue of the connection being polled on this thread, if any.
    static STARTED: RefCell<Option<Vec<Stream>>> = const { RefCell::new(None) };
}

/// The HTTP/2 builder's executor (see the module).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConnectionExecutor;

impl<F> hyper::rt::Executor<F> for ConnectionExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        let outside = STARTED.with(|started| match started.borrow_mut().as_mut() {
            Some(queue) => {
                // A stream that panics ends alone, as its own task would
                // have: the panic does not reach the connection's task.
                let alone = std::panic::AssertUnwindSafe(fut).catch_unwind();
                queue.push(Box::pin(alone.map(|_| ())));
                None
            }
            None => Some(fut),
        });
        if let Some(fut) = outside {
            tokio::spawn(fut);
        }
    }
}

/// Puts the queue back in its connection when the `poll` ends, panic or not.
struct Polling<'a>(&'a mut Vec<Stream>);

impl Polling<'_> {
    fn start(queue: &mut Vec<Stream>) -> Polling<'_> {
        STARTED.with(|started| *started.borrow_mut() = Some(std::mem::take(queue)));
        Polling(queue)
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        if let Some(queue) = STARTED.with(|started| started.borrow_mut().take()) {
            *self.0 = queue;
        }
    }
}

pin_project_lite::pin_project! {
    /// An HTTP/2 connection's future with its streams (see the module).
    pub(crate) struct Multiplexed<C> {
        #[pin]
        conn: C,
        streams: FuturesUnordered<Stream>,
        started: Vec<Stream>,
    }
}

impl<C> Multiplexed<C> {
    pub(crate) fn new(conn: C) -> Multiplexed<C> {
        Multiplexed {
            conn,
            streams: FuturesUnordered::new(),
            started: Vec::new(),
        }
    }

    /// The connection itself (to start its graceful shutdown, say).
    pub(crate) fn conn(self: Pin<&mut Self>) -> Pin<&mut C> {
        self.project().conn
    }
}

impl<I, S, B, E> Multiplexed<hyper::server::conn::http2::Connection<I, S, E>>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    /// hyper's graceful shutdown: GOAWAY, the streams in flight finish.
    pub(crate) fn graceful_shutdown(self: Pin<&mut Self>) {
        self.conn().graceful_shutdown();
    }
}

/// Polls the streams until none is ready.
fn poll_streams(streams: &mut FuturesUnordered<Stream>, cx: &mut Context<'_>) {
    while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
}

impl<C: Future> Future for Multiplexed<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = self.project();
        // Streams first: what they send, the connection's poll writes.
        poll_streams(this.streams, cx);
        let polled = {
            let _polling = Polling::start(this.started);
            this.conn.poll(cx)
        };
        if !this.started.is_empty() {
            this.streams.extend(this.started.drain(..));
            poll_streams(this.streams, cx);
        }
        let output = std::task::ready!(polled);
        if !this.streams.is_empty() {
            let rest = std::mem::take(this.streams);
            tokio::spawn(async move { rest.for_each(|()| async {}).await });
        }
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A connection stand-in: starts `n` streams on its first poll, each of
    /// which yields once, then counts; ends when all have counted.
    struct Starter {
        n: usize,
        done: Arc<AtomicUsize>,
        tasks: Arc<std::sync::Mutex<Vec<Option<tokio::task::Id>>>>,
        started: bool,
    }

    impl Future for Starter {
        type Output = &'static str;
        fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<&'static str> {
            if !self.started {
                self.started = true;
                for _ in 0..self.n {
                    let done = self.done.clone();
                    let tasks = self.tasks.clone();
                    ConnectionExecutor.execute(async move {
                        tokio::task::yield_now().await;
                        tasks.lock().unwrap().push(tokio::task::try_id());
                        done.fetch_add(1, Ordering::SeqCst);
                    });
                }
            }
            // The streams' wakes are what polls this again.
            if self.done.load(Ordering::SeqCst) == self.n {
                return Poll::Ready("ended");
            }
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn streams_started_in_the_poll_run_in_the_connection_task() {
        let done = Arc::new(AtomicUsize::new(0));
        let tasks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let conn = tokio::spawn(Multiplexed::new(Starter {
            n: 3,
            done: done.clone(),
            tasks: tasks.clone(),
            started: false,
        }));
        let connection_task = conn.id();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
        assert_eq!(ended.unwrap().unwrap(), "ended");
        assert_eq!(done.load(Ordering::SeqCst), 3);
        assert_eq!(*tasks.lock().unwrap(), vec![Some(connection_task); 3]);
    }

    #[tokio::test]
    async fn outside_a_connection_poll_a_stream_gets_its_own_task() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        ConnectionExecutor.execute(async move {
            tx.send(()).unwrap();
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), rx)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn streams_left_when_the_connection_ends_still_finish() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        struct Once(
            Option<(
                tokio::sync::oneshot::Receiver<()>,
                tokio::sync::oneshot::Sender<()>,
            )>,
        );
        impl Future for Once {
            type Output = ();
            fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
                let (rx, seen) = self.0.take().unwrap();
                ConnectionExecutor.execute(async move {
                    rx.await.unwrap();
                    seen.send(()).unwrap();
                });
                Poll::Ready(())
            }
        }
        Multiplexed::new(Once(Some((rx, seen_tx)))).await;
        tx.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), seen_rx)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_panicking_stream_ends_alone() {
        struct Two(bool, Arc<AtomicUsize>);
        impl Future for Two {
            type Output = ();
            fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
                if !self.0 {
                    self.0 = true;
                    ConnectionExecutor.execute(async { panic!("a stream's bug") });
                    let done = self.1.clone();
                    ConnectionExecutor.execute(async move {
                        tokio::task::yield_now().await;
                        done.fetch_add(1, Ordering::SeqCst);
                    });
                }
                if self.1.load(Ordering::SeqCst) == 1 {
                    return Poll::Ready(());
                }
                Poll::Pending
            }
        }
        let done = Arc::new(AtomicUsize::new(0));
        let conn = tokio::spawn(Multiplexed::new(Two(false, done.clone())));
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
        assert!(ended.unwrap().is_ok(), "the connection's task panicked");
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_panicking_connection_leaves_no_queue_behind() {
        let mut queue = Vec::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _polling = Polling::start(&mut queue);
            panic!("in the connection's poll");
        }));
        assert!(result.is_err());
        assert!(STARTED.with(|started| started.borrow().is_none()));
    }
}
