//! The PyO3 bridge: the only code that touches the interpreter.
//!
//! One file per concern: `serve` (the `_core.serve` entry point), `config`
//! (the Python `Config` into `runtime::config::ServerConfig`, once), `wsgi`
//! (calling a WSGI application and driving its response), `input`
//! (`wsgi.input`), `types` (Python classes the bridge raises or hands out),
//! `logging` (Rust `log` records into Python `logging`).

mod config;
mod input;
mod logging;
mod serve;
mod types;
mod wsgi;

use pyo3::prelude::*;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(serve::serve, m)?)?;
    Ok(())
}
