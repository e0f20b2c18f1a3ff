//! WebSocket handlers: the runtime's `WebSocketEndpoint` for each handler
//! the application declared, in the handler's style
//! (docs/spec/websocket.md, "Handler styles"):
//!
//! - `Async` (`async def handler(ws)`): the handshake goes to the worker's
//!   event loop (`aio`), which starts `propylon.websocket_serving.run_async`
//!   as a task; every wait of the connection resolves an asyncio future.
//! - `Events` (an object with `on_message`): `on_connect` is a job on the
//!   Python thread pool, and so is each batch of messages (`events`): a
//!   connection with nothing to deliver holds no thread.
//! - `Blocking` (any other callable): a thread of its own for the
//!   connection's life, at most `--websocket-threads` at once (503 beyond).
//!
//! What it does not do: frames or the handshake's rules (`runtime::
//! websocket`, `proto::websocket`).

pub(crate) mod aio;
pub(crate) mod connection;
mod events;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use self::aio::{LoopBridge, LoopJob};
use self::connection::Connection;
use crate::runtime::pool::{Pool, Queued};
use crate::runtime::websocket::{NoThread, Opening, WebSocketEndpoint};

/// The Python objects this module needs, looked up once.
pub(crate) struct Imported {
    /// `propylon.websocket.WebSocketClosed`.
    pub(crate) closed: Py<PyType>,
    pub(crate) start_async: Py<PyAny>,
    run_blocking: Py<PyAny>,
    events_connect: Py<PyAny>,
    pub(crate) log_app_error: Py<PyAny>,
}

static IMPORTED: PyOnceLock<Imported> = PyOnceLock::new();

pub(crate) fn imported(py: Python<'_>) -> PyResult<&Imported> {
    IMPORTED.get_or_try_init(py, || {
        let serving = py.import("propylon.websocket_serving")?;
        let websocket = py.import("propylon.websocket")?;
        let logging = py.import("propylon._logging")?;
        Ok(Imported {
            closed: websocket
                .getattr("WebSocketClosed")?
                .cast_into::<PyType>()?
                .unbind(),
            start_async: serving.getattr("start_async")?.unbind(),
            run_blocking: serving.getattr("run_blocking")?.unbind(),
            events_connect: serving.getattr("events_connect")?.unbind(),
            log_app_error: logging.getattr("log_app_error")?.unbind(),
        })
    })
}

/// Imports what this module needs now: a broken install fails at start-up.
pub(crate) fn load(py: Python<'_>) -> PyResult<()> {
    imported(py).map(drop)
}

/// A handler and how it runs.
pub(crate) enum Style {
    Async(Arc<LoopBridge>),
    Events(Arc<Pool>),
    Blocking {
        running: Arc<AtomicUsize>,
        max: usize,
    },
}

pub(crate) struct Handler {
    handler: Arc<Py<PyAny>>,
    style: Style,
}

impl Handler {
    pub(crate) fn new(handler: Py<PyAny>, style: Style) -> Handler {
        Handler {
            handler: Arc::new(handler),
            style,
        }
    }
}

impl WebSocketEndpoint for Handler {
    fn open(&self, opening: Opening) -> Result<(), NoThread> {
        match &self.style {
            Style::Async(bridge) => {
                let handler = self.handler.clone();
                bridge.push(LoopJob::Run(Box::new(move |py, bridge| {
                    let connection = Connection::new(py, opening, Some(bridge.clone()))?;
                    let connection = Py::new(py, connection)?;
                    imported(py)?
                        .start_async
                        .call1(py, (&*handler, connection, bridge.event_loop(py)))?;
                    Ok(())
                })));
                Ok(())
            }
            Style::Events(pool) => {
                let handler = self.handler.clone();
                let events = pool.clone();
                let job = Box::new(move || {
                    Python::attach(|py| events::connect(py, handler, opening, events))
                });
                pool.try_submit_queued(job, Queued::default())
                    .map_err(|_| NoThread)
            }
            Style::Blocking { running, max } => {
                if running.fetch_add(1, Ordering::AcqRel) >= *max {
                    running.fetch_sub(1, Ordering::AcqRel);
                    log::warn!(target: "propylon.server", "WebSocket refused: all {max} --websocket-threads are serving connections");
                    return Err(NoThread);
                }
                let handler = self.handler.clone();
                let done = running.clone();
                let spawned = std::thread::Builder::new()
                    .name("propylon-websocket".into())
                    .spawn(move || {
                        Python::attach(|py| run_blocking(py, &handler, opening));
                        done.fetch_sub(1, Ordering::AcqRel);
                    });
                spawned.map(drop).map_err(|e| {
                    log::error!(target: "propylon.server", "WebSocket refused: no thread: {e}");
                    running.fetch_sub(1, Ordering::AcqRel);
                    NoThread
                })
            }
        }
    }
}

fn run_blocking(py: Python<'_>, handler: &Py<PyAny>, opening: Opening) {
    let run = || -> PyResult<()> {
        let connection = Py::new(py, Connection::new(py, opening, None)?)?;
        imported(py)?
            .run_blocking
            .call1(py, (handler, connection))?;
        Ok(())
    };
    if let Err(e) = run() {
        e.print(py);
    }
}
