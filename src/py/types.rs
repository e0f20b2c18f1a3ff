//! Python objects the bridge needs on every request, looked up once.

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::runtime::request::body::BodyError;

pub struct Types {
    pub client_disconnected: Py<PyType>,
    pub too_large: Py<PyType>,
    pub invalid_body: Py<PyType>,
    pub file_wrapper: Py<PyType>,
    pub log_app_error: Py<PyAny>,
    /// The constant entries of every WSGI environ.
    pub environ_template: Py<PyDict>,
}

/// What the environ template is made of.
pub struct Constants {
    pub file_wrapper: Py<PyType>,
    pub error_stream: Py<PyAny>,
    pub wsgi_version: Py<PyTuple>,
}

static TYPES: PyOnceLock<Types> = PyOnceLock::new();

pub fn get(py: Python<'_>) -> PyResult<&Types> {
    TYPES.get_or_try_init(py, || {
        let errors = py.import("propylon.errors")?;
        let logging = py.import("propylon._logging")?;
        let class = |m: &Bound<'_, PyModule>, name: &str| -> PyResult<Py<PyType>> {
            Ok(m.getattr(name)?.cast_into::<PyType>()?.unbind())
        };
        let constants = Constants {
            file_wrapper: class(&py.import("propylon.filewrapper")?, "FileWrapper")?,
            error_stream: logging.getattr("ErrorStream")?.call0()?.unbind(),
            wsgi_version: PyTuple::new(py, [1, 1])?.unbind(),
        };
        Ok(Types {
            client_disconnected: class(&errors, "ClientDisconnected")?,
            too_large: class(&errors, "RequestBodyTooLarge")?,
            invalid_body: class(&errors, "InvalidRequestBody")?,
            file_wrapper: constants.file_wrapper.clone_ref(py),
            log_app_error: logging.getattr("log_app_error")?.unbind(),
            environ_template: super::wsgi::environ_template(py, &constants)?.unbind(),
        })
    })
}

/// The `propylon.errors` exception for a body error.
pub fn body_error(py: Python<'_>, e: &BodyError) -> PyErr {
    let Ok(t) = get(py) else {
        return PyOSError::new_err(e.to_string());
    };
    let class = match e {
        BodyError::Disconnected(_) => &t.client_disconnected,
        BodyError::TooLarge(_) => &t.too_large,
        BodyError::Invalid(_) => &t.invalid_body,
    };
    match class.bind(py).call1((e.to_string(),)) {
        Ok(value) => PyErr::from_value(value),
        Err(err) => err,
    }
}

/// Log `err` with its traceback on `propylon.error`.
pub fn log_error(py: Python<'_>, message: &str, err: &PyErr) {
    // The traceback travels beside the exception in a PyErr; put it back on the
    // exception so `logging` prints it.
    let value = err.value(py);
    if let Some(tb) = err.traceback(py) {
        let _ = value.setattr("__traceback__", tb);
    }
    let logged = get(py).and_then(|t| t.log_app_error.bind(py).call1((message, value)).map(drop));
    if logged.is_err() {
        err.print(py);
    }
}
