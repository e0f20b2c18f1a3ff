//! The PyO3 bridge: the only code that touches the interpreter.
//!
//! One module per concern: `serve` (the `_core.serve` entry point), `config`
//! (the Python `Config` into `runtime::config::ServerConfig`, once), `wsgi/`
//! (calling a WSGI application and driving its response, `wsgi.input`),
//! `errors` (the exceptions body errors become, application errors logged),
//! `logging` (Rust `log` records into Python `logging`), `metrics` (the
//! shared metrics region, `_core.Metrics`).
//!
//! What it does not do: decide protocol rules (`proto`) or do I/O (`runtime`).

mod config;
mod errors;
mod logging;
mod metrics;
mod serve;
mod websocket;
mod wsgi;

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(serve::serve, m)?)?;
    m.add_function(wrap_pyfunction!(serve::bind_listeners, m)?)?;
    m.add_class::<websocket::connection::Connection>()?;
    m.add_class::<metrics::Metrics>()?;
    Ok(())
}
