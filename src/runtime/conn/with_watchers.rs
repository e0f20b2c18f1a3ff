//! `WithWatchers`: a connection future (`main`) run beside its watchers
//! (`side`: the timers, the shutdown signal) until the first of them
//! finishes, where the watchers are polled only when they have been woken.
//!
//! `tokio::select!` polls every branch each time the task is woken; a
//! connection is woken twice per request (the socket, then the application's
//! response), and re-polling its watchers each time costs about 2% of a
//! hello-world request's CPU time. Their own wakers only fire when a timer is
//! due or shutdown begins, so `WithWatchers` gives `side` a waker of its own,
//! and polls it on the first poll and after that waker fired, never otherwise.
//!
//! What it does not do: cancel or drop either future (both are borrowed), or
//! decide anything about connections (`task::drive!` does).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// Which future finished first.
pub(crate) enum Either<A, B> {
    Main(A),
    Side(B),
}

/// See the module documentation.
pub(crate) struct WithWatchers<'a, M: ?Sized, S: ?Sized> {
    main: Pin<&'a mut M>,
    side: Pin<&'a mut S>,
    wake: Arc<SideWake>,
    side_waker: Waker,
    /// The task's waker as last given to `wake` (compared without the lock).
    task: Option<Waker>,
    polled_side: bool,
}

/// `side`'s waker: notes that it was woken, and wakes the task.
struct SideWake {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap().clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl<'a, M, S> WithWatchers<'a, M, S>
where
    M: Future + ?Sized,
    S: Future + ?Sized,
{
    pub(crate) fn new(main: Pin<&'a mut M>, side: Pin<&'a mut S>) -> WithWatchers<'a, M, S> {
        let wake = Arc::new(SideWake {
            woken: AtomicBool::new(false),
            task: Mutex::new(None),
        });
        WithWatchers {
            main,
            side,
            side_waker: Waker::from(wake.clone()),
            wake,
            task: None,
            polled_side: false,
        }
    }
}

impl<M, S> Future for WithWatchers<'_, M, S>
where
    M: Future + ?Sized,
    S: Future + ?Sized,
{
    type Output = Either<M::Output, S::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(out) = this.main.as_mut().poll(cx) {
            return Poll::Ready(Either::Main(out));
        }
        // Before looking at the flag: a wake from now on reaches this task.
        if !this.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            this.task = Some(cx.waker().clone());
            *this.wake.task.lock().unwrap() = this.task.clone();
        }
        if !this.polled_side || this.wake.woken.swap(false, Ordering::AcqRel) {
            this.polled_side = true;
            let mut side_cx = Context::from_waker(&this.side_waker);
            if let Poll::Ready(out) = this.side.as_mut().poll(&mut side_cx) {
                return Poll::Ready(Either::Side(out));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its wakes (the test's stand-in for a task).
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Pending until `ready` is set; counts its polls.
    struct Probe {
        polls: usize,
        ready: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Probe {
        fn new() -> (Probe, Arc<AtomicBool>, Arc<Mutex<Option<Waker>>>) {
            let ready = Arc::new(AtomicBool::new(false));
            let waker = Arc::new(Mutex::new(None));
            let probe = Probe {
                polls: 0,
                ready: ready.clone(),
                waker: waker.clone(),
            };
            (probe, ready, waker)
        }
    }

    impl Future for Probe {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.ready.load(Ordering::Relaxed) {
                return Poll::Ready(self.polls);
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn the_side_is_polled_on_the_first_poll_and_when_it_woke() {
        let task = Arc::new(Task::default());
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let (mut main, _, _) = Probe::new();
        let (mut side, side_ready, side_waker) = Probe::new();
        let mut race = WithWatchers::new(Pin::new(&mut main), Pin::new(&mut side));
        // Ten polls (the main future's wakes): the side is polled once.
        for _ in 0..10 {
            assert!(Pin::new(&mut race).poll(&mut cx).is_pending());
        }
        drop(race);
        assert_eq!((main.polls, side.polls), (10, 1));
        // The side's own waker fires: the task is woken, the side polled.
        let mut race = WithWatchers::new(Pin::new(&mut main), Pin::new(&mut side));
        assert!(Pin::new(&mut race).poll(&mut cx).is_pending());
        side_ready.store(true, Ordering::Relaxed);
        side_waker.lock().unwrap().take().unwrap().wake();
        assert_eq!(task.0.load(Ordering::Relaxed), 1, "the task was woken");
        match Pin::new(&mut race).poll(&mut cx) {
            Poll::Ready(Either::Side(polls)) => assert_eq!(polls, 3),
            _ => panic!("the side finished"),
        }
    }

    #[test]
    fn the_main_future_is_polled_first_every_time() {
        let waker = Waker::from(Arc::new(Task::default()));
        let mut cx = Context::from_waker(&waker);
        let (mut main, main_ready, _) = Probe::new();
        let (mut side, side_ready, _) = Probe::new();
        let mut race = WithWatchers::new(Pin::new(&mut main), Pin::new(&mut side));
        assert!(Pin::new(&mut race).poll(&mut cx).is_pending());
        main_ready.store(true, Ordering::Relaxed);
        side_ready.store(true, Ordering::Relaxed);
        assert!(matches!(
            Pin::new(&mut race).poll(&mut cx),
            Poll::Ready(Either::Main(2))
        ));
    }
}
