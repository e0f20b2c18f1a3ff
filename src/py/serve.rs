//! `_core.serve(config, app)`: bind, serve until a signal, drain, return.

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use super::{config, logging, types, wsgi};
use crate::runtime::pool::{Pool, ThreadMain, Worker};
use crate::runtime::server::{Server, Stopped};

/// How long, after the connections are gone, work still on the pool may take
/// to notice and finish (it sees closed channels and returns).
const POOL_GRACE: Duration = Duration::from_secs(2);

/// Returns True when every request finished; False when the graceful timeout
/// expired with application code still running (the caller should then exit
/// without waiting for those threads).
#[pyfunction]
pub fn serve(py: Python<'_>, config: &Bound<'_, PyAny>, app: Py<PyAny>) -> PyResult<bool> {
    let config = config::extract(config)?;
    logging::install(py)?;
    types::get(py)?;
    let server = Server::bind(config.clone()).map_err(|e| PyOSError::new_err(e.to_string()))?;
    // Each pool thread attaches to the interpreter once, for its whole life,
    // runs jobs back to back while there are any, and detaches only to wait for
    // more: a busy server does not hand the GIL over once per request.
    let thread_main: ThreadMain = Arc::new(|mut worker: Worker| {
        Python::attach(|py| loop {
            if let Some(job) = worker.next(false) {
                Worker::run(job);
                continue;
            }
            match py.detach(|| worker.next(true)) {
                Some(job) => Worker::run(job),
                None => break,
            }
        });
    });
    let pool = Arc::new(
        Pool::new(config.threads, config.queue_size, thread_main)
            .map_err(|e| PyOSError::new_err(e.to_string()))?,
    );
    let app = wsgi::WsgiApp::new(app, pool.clone());
    let (stopped, pool_idle) = py.detach(move || {
        let stopped = server.run(Arc::new(app));
        let idle = pool.shutdown(POOL_GRACE);
        (stopped, idle)
    });
    let stopped = stopped.map_err(|e| PyOSError::new_err(e.to_string()))?;
    let clean = stopped == Stopped::Drained && pool_idle;
    log::info!(target: "propylon.server", "Stopped");
    py.detach(logging::flush);
    Ok(clean)
}
