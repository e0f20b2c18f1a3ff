//! The bridge to the worker's asyncio event loop, for async handlers.
//!
//! What it does: the runtime's threads never take the GIL to reach the
//! loop. They push work onto a queue and, when the queue was empty, write
//! to an `eventfd` the loop watches (`loop.add_reader`); the loop then runs
//! `LoopDrain`, which takes the whole queue at once: under load one wake-up
//! of the loop serves many connections. The work is: resolve an asyncio
//! future a connection's wait armed (`FutureWaker`: a `std::task::Waker`
//! the runtime's `Link` wakes like any other), or start an async handler
//! for a handshake (`LoopJob::Start`).
//!
//! What it does not do: decide what a handler does (`propylon.
//! websocket_serving.run_async`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyString;

use super::connection::Connection;
use super::imported;
use crate::runtime::websocket::Opening;

pub(crate) enum LoopJob {
    /// Give this future a result (None), if it is not done.
    Resolve(Py<PyAny>),
    /// Give this future the connection's next message (or its close, as
    /// the exception), if it is not done.
    Deliver(Py<PyAny>, Py<Connection>),
    /// Start `handler` for a handshake.
    Start(Arc<Py<PyAny>>, Box<Opening>),
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
                LoopJob::Deliver(future, connection) => {
                    if future.bind(py).call_method0(done)?.is_truthy()? {
                        // Cancelled: the message stays for the next receive.
                        continue;
                    }
                    let waker = FutureWaker::deliver(
                        bridge.clone(),
                        future.clone_ref(py),
                        connection.clone_ref(py),
                    );
                    let polled = connection
                        .get()
                        .link()
                        .poll_receive(&mut std::task::Context::from_waker(&waker));
                    let std::task::Poll::Ready(got) = polled else {
                        // Woken early: armed again.
                        continue;
                    };
                    let future = future.bind(py);
                    match connection.get().received(py, got) {
                        Ok(message) => future.call_method1(set_result, (message,))?,
                        Err(closed) => future.call_method1(set_exception, (closed.value(py),))?,
                    };
                }
                LoopJob::Start(handler, opening) => {
                    let connection = Connection::new(py, *opening, Some(bridge.clone()))?;
                    let connection = Py::new(py, connection)?;
                    let start = &imported(py)?.start_async;
                    if let Err(e) = start.call1(py, (&*handler, connection, &bridge.event_loop)) {
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
        connection: Py<Connection>,
    ) -> Waker {
        FutureWaker::waker(bridge, LoopJob::Deliver(future, connection))
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
