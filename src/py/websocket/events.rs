//! Event handlers: a connection's events as short jobs on the Python
//! thread pool.
//!
//! What it does: `connect` (a pool job) makes the connection object and
//! calls `propylon.websocket_serving.events_connect` (`on_connect`, then
//! the implicit accept). From then on an `EventPump` is the waker of the
//! connection's inbox: a message arriving schedules one job, which calls
//! `on_message(ws, message)` for every message waiting, then arms the waker
//! again; at the close, `on_close(ws, code, reason)`, once. At most one job
//! per connection is scheduled or running, so a connection's events run one
//! at a time and in order, and a connection with nothing to deliver holds no
//! thread.
//!
//! What it does not do: decide anything of the protocol.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use pyo3::prelude::*;

use super::connection::Connection;
use super::imported;
use crate::runtime::pool::Pool;
use crate::runtime::websocket::link::Data;
use crate::runtime::websocket::Opening;

/// On a pool thread: the connection's start.
pub(crate) fn connect(py: Python<'_>, handler: Arc<Py<PyAny>>, opening: Opening, pool: Arc<Pool>) {
    let start = || -> PyResult<Option<Arc<EventPump>>> {
        let connection = Py::new(py, Connection::new(py, opening, None)?)?;
        let accepted = imported(py)?
            .events_connect
            .call1(py, (&*handler, &connection))?
            .is_truthy(py)?;
        if !accepted {
            return Ok(None);
        }
        let bound = handler.bind(py);
        let on_close = match bound.hasattr("on_close")? {
            true => Some(bound.getattr("on_close")?.unbind()),
            false => None,
        };
        Ok(Some(Arc::new(EventPump {
            on_message: bound.getattr("on_message")?.unbind(),
            on_close,
            connection,
            pool,
            scheduled: AtomicBool::new(true),
            failed: AtomicBool::new(false),
        })))
    };
    match start() {
        Ok(Some(pump)) => pump.run(py),
        Ok(None) => {}
        Err(e) => e.print(py),
    }
}

struct EventPump {
    on_message: Py<PyAny>,
    on_close: Option<Py<PyAny>>,
    connection: Py<Connection>,
    pool: Arc<Pool>,
    /// A job is scheduled or running (cleared by the job before it arms
    /// the waker again).
    scheduled: AtomicBool,
    /// `on_message` raised: the connection is closing with 1011, and its
    /// other messages are not delivered.
    failed: AtomicBool,
}

impl EventPump {
    /// Deliver what is waiting, then wait (as the inbox's waker).
    fn run(self: Arc<Self>, py: Python<'_>) {
        let link = self.connection.get().link().clone();
        let noop = Waker::noop();
        loop {
            let mut cx = Context::from_waker(noop);
            while let Poll::Ready(got) = link.poll_receive(&mut cx) {
                if !self.deliver(py, got) {
                    return;
                }
            }
            self.scheduled.store(false, Ordering::Release);
            let waker = Waker::from(self.clone());
            match link.poll_receive(&mut Context::from_waker(&waker)) {
                Poll::Pending => return,
                Poll::Ready(got) => {
                    // No waker is armed after a ready poll: this job goes on.
                    self.scheduled.store(true, Ordering::Release);
                    if !self.deliver(py, got) {
                        return;
                    }
                }
            }
        }
    }

    /// One event; false at the close (no more jobs).
    fn deliver(
        &self,
        py: Python<'_>,
        got: Result<Data, crate::runtime::websocket::link::Closed>,
    ) -> bool {
        let connection = self.connection.bind(py);
        match got {
            Ok(data) => {
                if self.failed.load(Ordering::Relaxed) {
                    return true;
                }
                let message = match data {
                    Data::Text(text) => pyo3::types::PyString::new(
                        py,
                        std::str::from_utf8(&text).expect("a text message is UTF-8"),
                    )
                    .into_any(),
                    Data::Binary(data) => pyo3::types::PyBytes::new(py, &data).into_any(),
                };
                if let Err(e) = self.on_message.call1(py, (connection, message)) {
                    self.failed.store(true, Ordering::Relaxed);
                    log_error(py, "error in WebSocket on_message", e);
                    connection.get().fail();
                }
                true
            }
            Err(closed) => {
                if let Some(on_close) = &self.on_close {
                    if let Err(e) = on_close.call1(py, (connection, closed.code, closed.reason)) {
                        log_error(py, "error in WebSocket on_close", e);
                    }
                }
                false
            }
        }
    }
}

fn log_error(py: Python<'_>, what: &str, e: PyErr) {
    // The exception object carries its traceback only once it is given it.
    let value = e.value(py);
    if let Some(traceback) = e.traceback(py) {
        let _ = value.setattr("__traceback__", traceback);
    }
    let logged = imported(py).and_then(|i| i.log_app_error.call1(py, (what, value)));
    if logged.is_err() {
        e.print(py);
    }
}

impl Wake for EventPump {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            let pump = self.clone();
            self.pool
                .submit_resumed(Box::new(move || Python::attach(|py| pump.run(py))));
        }
    }
}
