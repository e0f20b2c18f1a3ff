//! The bridge to the worker's asyncio event loop, for async handlers.
//!
//! What it does: the runtime's threads never take the GIL to reach the
//! loop. They push work onto a queue and, when the queue was empty, write
//! to an `eventfd` the loop watches (`loop.add_reader`); the loop then runs
//! `LoopDrain`, which takes the whole queue at once: under load one wake-up
//! of the loop serves many connections. The work is: resolve an asyncio
//! future a connection's wait armed (`FutureWaker`: a `std::task::Waker`
//! the runtime's `Link` wakes like any other), or start an async handler
//! for a handshake (`LoopJob::Run`).
//!
//! What it does not do: decide what a handler does (`propylon.
//! websocket_serving.run_async`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyString;

/// Takes what `source` (a connection object) has for a waiting future, or
/// arms `waker` for when it has: the value (the future's result) or the
/// exception (the future's).
pub(crate) type Take = fn(&Bound<'_, PyAny>, &Waker) -> Option<PyResult<Py<PyAny>>>;

/// Work for the loop's thread.
pub(crate) type OnLoop = Box<dyn FnOnce(Python<'_>, &Arc<LoopBridge>) -> PyResult<()> + Send>;

pub(crate) enum LoopJob {
    /// Give this future a result (None), if it is not done.
    Resolve(Py<PyAny>),
    /// Give this future what `Take` takes from `source`, if it is not done.
    Deliver {
        future: Py<PyAny>,
        source: Py<PyAny>,
        take: Take,
    },
    /// Run this on the loop's thread (start an async handler).
    Run(OnLoop),
}

pub(crate) struct LoopBridge {
    queue: Mutex<Vec<LoopJob>>,
    event: OwnedFd,
    /// The worker's loop.
    event_loop: Py<PyAny>,
}

impl LoopBridge {
    pub(crate) fn new(event_loop: Py<PyAny>) -> std::io::Result<Arc<LoopBridge>> {
        // SAFETY: eventfd returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Arc::new(LoopBridge {
            queue: Mutex::new(Vec::new()),
            // SAFETY: fd is ours, open, and owned by nothing else.
            event: unsafe { OwnedFd::from_raw_fd(fd) },
            event_loop,
        }))
    }

    pub(crate) fn push(&self, job: LoopJob) {
        let was_empty = {
            let mut queue = self.queue.lock().unwrap();
            let was_empty = queue.is_empty();
            queue.push(job);
            was_empty
        };
        if was_empty {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd. It
            // cannot fail but by overflowing the counter, which the loop's
            // read resets.
            unsafe { libc::write(self.event.as_raw_fd(), (&raw const one).cast(), 8) };
        }
    }

    /// Watch the eventfd on the loop (from any thread), and put the loop's
    /// thread in the I/O threads' scheduling class
    /// (`runtime::scheduling::batch_scheduling`): woken by an I/O thread on
    /// the same CPU, it does not preempt it, so the I/O thread finishes its
    /// batch of connections first, and the loop then serves them in one wake.
    pub(crate) fn attach(self: &Arc<Self>, py: Python<'_>) -> PyResult<()> {
        let event_loop = self.event_loop.bind(py);
        let batch = wrap_pyfunction!(batch_scheduling, py)?;
        event_loop.call_method1("call_soon_threadsafe", (batch,))?;
        let drain = Py::new(py, LoopDrain(self.clone()))?;
        event_loop.call_method1(
            "call_soon_threadsafe",
            (
                event_loop.getattr("add_reader")?,
                self.event.as_raw_fd(),
                drain,
            ),
        )?;
        Ok(())
    }

    /// The worker's loop.
    pub(crate) fn event_loop<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.event_loop.bind(py)
    }

    /// Stop watching it.
    pub(crate) fn detach(&self, py: Python<'_>) -> PyResult<()> {
        let event_loop = self.event_loop.bind(py);
        if event_loop.call_method0("is_closed")?.is_truthy()? {
            return Ok(());
        }
        event_loop.call_method1(
            "call_soon_threadsafe",
            (event_loop.getattr("remove_reader")?, self.event.as_raw_fd()),
        )?;
        Ok(())
    }
}

/// Called on the loop's thread.
#[pyfunction]
fn batch_scheduling() {
    crate::runtime::scheduling::batch_scheduling();
}

/// The loop's reader callback: runs what was queued.
#[pyclass(module = "propylon._core", name = "LoopDrain", frozen)]
pub(crate) struct LoopDrain(Arc<LoopBridge>);

static DONE: PyOnceLock<Py<PyString>> = PyOnceLock::new();
static SET_RESULT: PyOnceLock<Py<PyString>> = PyOnceLock::new();
static SET_EXCEPTION: PyOnceLock<Py<PyString>> = PyOnceLock::new();

#[pymethods]
impl LoopDrain {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let bridge = &self.0;
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our eventfd; EAGAIN
        // (nothing to read) leaves it alone.
        unsafe { libc::read(bridge.event.as_raw_fd(), (&raw mut count).cast(), 8) };
        let jobs = std::mem::take(&mut *bridge.queue.lock().unwrap());
        let done = DONE.get_or_init(py, || PyString::intern(py, "done").unbind());
        let set_result = SET_RESULT.get_or_init(py, || PyString::intern(py, "set_result").unbind());
        let set_exception =
            SET_EXCEPTION.get_or_init(py, || PyString::intern(py, "set_exception").unbind());
        for job in jobs {
            match job {
                LoopJob::Resolve(future) => {
                    let future = future.bind(py);
                    if !future.call_method0(done)?.is_truthy()? {
                        future.call_method1(set_result, (py.None(),))?;
                    }
                }
                LoopJob::Deliver {
                    future,
                    source,
                    take,
                } => {
                    if future.bind(py).call_method0(done)?.is_truthy()? {
                        // Cancelled: what was to come stays for the next wait.
                        continue;
                    }
                    let waker = FutureWaker::deliver(
                        bridge.clone(),
                        future.clone_ref(py),
                        source.clone_ref(py),
                        take,
                    );
                    // None: woken early, armed again.
                    let Some(taken) = take(source.bind(py), &waker) else {
                        continue;
                    };
                    let future = future.bind(py);
                    match taken {
                        Ok(value) => future.call_method1(set_result, (value,))?,
                        Err(e) => future.call_method1(set_exception, (e.value(py),))?,
                    };
                }
                LoopJob::Run(run) => {
                    if let Err(e) = run(py, bridge) {
                        e.print(py);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A waker that resolves an asyncio future on the loop, once: with None
/// (the awaited condition may hold: look again), or with the connection's
/// next message.
pub(crate) struct FutureWaker {
    bridge: Arc<LoopBridge>,
    job: Mutex<Option<LoopJob>>,
}

impl FutureWaker {
    pub(crate) fn resolve(bridge: Arc<LoopBridge>, future: Py<PyAny>) -> Waker {
        FutureWaker::waker(bridge, LoopJob::Resolve(future))
    }

    pub(crate) fn deliver(
        bridge: Arc<LoopBridge>,
        future: Py<PyAny>,
        source: Py<PyAny>,
        take: Take,
    ) -> Waker {
        FutureWaker::waker(
            bridge,
            LoopJob::Deliver {
                future,
                source,
                take,
            },
        )
    }

    fn waker(bridge: Arc<LoopBridge>, job: LoopJob) -> Waker {
        Waker::from(Arc::new(FutureWaker {
            bridge,
            job: Mutex::new(Some(job)),
        }))
    }
}

impl Wake for FutureWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(job) = self.job.lock().unwrap().take() {
            self.bridge.push(job);
        }
    }
}
