//! Errors between Rust and Python: the `propylon.errors` exceptions a request
//! body error becomes, which of them an application let through, and
//! application errors logged with their traceback on `propylon.error`.
//!
//! What it does not do: decide what a failure does to a response (that is
//! `proto::wsgi::response`), or log anything but application errors.

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::runtime::request::body::BodyError;

/// The Python objects this module needs, looked up once.
struct Imported {
    client_disconnected: Py<PyType>,
    too_large: Py<PyType>,
    too_slow: Py<PyType>,
    invalid_body: Py<PyType>,
    log_app_error: Py<PyAny>,
}

static IMPORTED: PyOnceLock<Imported> = PyOnceLock::new();

fn imported(py: Python<'_>) -> PyResult<&Imported> {
    IMPORTED.get_or_try_init(py, || {
        let errors = py.import("propylon.errors")?;
        let logging = py.import("propylon._logging")?;
        let class = |name: &str| -> PyResult<Py<PyType>> {
            Ok(errors.getattr(name)?.cast_into::<PyType>()?.unbind())
        };
        Ok(Imported {
            client_disconnected: class("ClientDisconnected")?,
            too_large: class("RequestBodyTooLarge")?,
            too_slow: class("RequestBodyTooSlow")?,
            invalid_body: class("InvalidRequestBody")?,
            log_app_error: logging.getattr("log_app_error")?.unbind(),
        })
    })
}

/// Imports what this module needs now, so that a broken install fails at
/// start-up rather than on the first request.
pub(crate) fn load(py: Python<'_>) -> PyResult<()> {
    imported(py).map(drop)
}

/// The `propylon.errors` exception for a body error.
pub(crate) fn body_error(py: Python<'_>, e: &BodyError) -> PyErr {
    let Ok(t) = imported(py) else {
        return PyOSError::new_err(e.to_string());
    };
    let class = match e {
        BodyError::Disconnected(_) => &t.client_disconnected,
        BodyError::TooSlow(_) => &t.too_slow,
        BodyError::TooLarge(_) => &t.too_large,
        BodyError::Invalid(_) => &t.invalid_body,
    };
    match class.bind(py).call1((e.to_string(),)) {
        Ok(value) => PyErr::from_value(value),
        Err(err) => err,
    }
}

/// A `propylon.errors` class of body errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyErrorClass {
    ClientDisconnected,
    RequestBodyTooLarge,
    RequestBodyTooSlow,
    InvalidRequestBody,
}

/// Whether `err` is an instance of `class` (false when the classes cannot
/// be imported).
pub(crate) fn is_body_error(py: Python<'_>, err: &PyErr, class: BodyErrorClass) -> bool {
    imported(py).is_ok_and(|t| {
        let class = match class {
            BodyErrorClass::ClientDisconnected => &t.client_disconnected,
            BodyErrorClass::RequestBodyTooLarge => &t.too_large,
            BodyErrorClass::RequestBodyTooSlow => &t.too_slow,
            BodyErrorClass::InvalidRequestBody => &t.invalid_body,
        };
        err.is_instance(py, class.bind(py))
    })
}

/// Log `err` with its traceback on `propylon.error`.
pub(crate) fn log_error(py: Python<'_>, message: &str, err: &PyErr) {
    // The traceback travels beside the exception in a PyErr; put it back on the
    // exception so `logging` prints it.
    let value = err.value(py);
    if let Some(tb) = err.traceback(py) {
        let _ = value.setattr("__traceback__", tb);
    }
    let logged =
        imported(py).and_then(|t| t.log_app_error.bind(py).call1((message, value)).map(drop));
    if logged.is_err() {
        err.print(py);
    }
}
