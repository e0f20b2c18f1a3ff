//! The WSGI bridge (PEP 3333, WSGI 1.1): calling an application and turning
//! what it does into a response.
//!
//! One job per file:
//! - `app`: the WSGI `Endpoint` the runtime dispatches to; calls the
//!   application on the pool and picks how its result is sent.
//! - `environ`: the environ dict, with its per-connection template and caches.
//! - `early_hints`: `environ["propylon.early_hints"]`, the application's own
//!   `103 Early Hints`.
//! - `input`: `wsgi.input`.
//! - `start_response`: the `start_response` and `write()` callables.
//! - `head`: their status and headers into a checked head, with per-thread
//!   caches.
//! - `response`: carries out the response state machine's decisions
//!   (`proto::wsgi::response`) on the runtime's reply and body channel.
//! - `iterable`: a list or tuple body, and driving any other iterable.
//! - `file`: `wsgi.file_wrapper` over a regular file, sent from Rust.
//!
//! What it does not do: decide a rule of WSGI or HTTP (`proto`), or I/O (the
//! runtime).

mod app;
mod early_hints;
mod environ;
mod file;
mod head;
mod input;
mod iterable;
mod response;
mod start_response;

use pyo3::prelude::*;

pub(crate) use app::WsgiApp;

/// Imports and makes what every request needs now, so that a broken install
/// fails at start-up rather than on the first request.
pub(crate) fn load(py: Python<'_>) -> PyResult<()> {
    environ::constant_template(py).map(drop)
}

/// `wsgi.multiprocess` for every request of this process: true when other
/// worker processes serve the same application (PEP 3333).
pub(crate) fn set_multiprocess(py: Python<'_>, multiprocess: bool) -> PyResult<()> {
    environ::constant_template(py)?
        .bind(py)
        .set_item("wsgi.multiprocess", multiprocess)
}
