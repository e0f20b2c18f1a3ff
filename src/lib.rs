//! Propylon: a Python application server. Dependencies point one way:
//! `proto` (protocol rules, no I/O) <- `runtime` (tokio + hyper, no Python) <-
//! `py` (the PyO3 bridge, the only code that touches the interpreter).

pub mod proto;
pub mod runtime;

#[cfg(feature = "python")]
mod py;

#[cfg(feature = "python")]
#[pyo3::pymodule]
fn _core(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    py::register(m)
}
