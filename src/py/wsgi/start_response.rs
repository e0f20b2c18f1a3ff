//! The `start_response` and `write()` callables an application is given
//! (PEP 3333 §"The start_response() Callable").
//!
//! What it does: takes their Python arguments, asks the state machine
//! whether the call is legal (re-raising `exc_info` or raising
//! `AssertionError` when it is not), and hands the head or the data on.
//!
//! What it does not do: check the head (`head`), decide the rules
//! (`proto::wsgi::response`), or send (`response`).

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::head::parse_head;
use super::response::{violation, SharedResponse};
use crate::proto::wsgi::response::StartRefused;

#[pyclass(module = "propylon._core", name = "StartResponse")]
pub(crate) struct StartResponse {
    response: SharedResponse,
}

impl StartResponse {
    pub(crate) fn new(response: SharedResponse) -> StartResponse {
        StartResponse { response }
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        let mut response = self.response.lock().unwrap();
        let started = response
            .state
            .start_response(exc_info.is_some(), || parse_head(py, status, headers));
        match started {
            Ok(()) => Ok(Write {
                response: self.response.clone(),
            }),
            // PEP 3333: with exc_info after the headers were sent, re-raise.
            Err(StartRefused::Reraise) => match exc_info {
                Some(info) => Err(PyErr::from_value(info.get_item(1)?)),
                None => unreachable!("a re-raise without exc_info"),
            },
            Err(StartRefused::Illegal(v)) => Err(violation(v)),
            Err(StartRefused::BadHead(err)) => Err(err),
        }
    }
}

/// The `write()` callable returned by start_response: sends its argument at once
/// (after the head), waiting while the client is slow.
#[pyclass(module = "propylon._core", name = "Write")]
pub(crate) struct Write {
    response: SharedResponse,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "write() takes bytes, not {}",
                data.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let mut response = self.response.lock().unwrap();
        response.open_stream()?;
        if !data.as_bytes().is_empty() {
            response.push(Bytes::copy_from_slice(data.as_bytes()), true, py);
        }
        Ok(())
    }
}
