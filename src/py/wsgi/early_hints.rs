//! `environ["propylon.early_hints"]`: a WSGI application's own
//! `103 Early Hints` (RFC 8297).
//!
//! What it does: `early_hints(headers)` takes a list of `(name, value)` str
//! pairs, checked as `start_response`'s headers are (`head`), and queues
//! them on the request's interim channel (`runtime::request::interim`): the
//! connection writes a `103 Early Hints` with them before the response.
//! It returns None and never waits. Hints are advice, so a call that cannot
//! be honoured is ignored, not an error: on HTTP/1.0 (RFC 9110 §15.2),
//! with `--no-early-hints`, once the response's headers are sent (PEP
//! 3333's sense: with its first body bytes), when hints already wait (a
//! flood), or when the fields are larger than `interim::MAX_HINT_BYTES`.
//! An empty list sends nothing.
//! Invalid fields raise as they would in `start_response` (TypeError,
//! ValueError).
//!
//! What it does not do: write anything (the connection does), or announce
//! the application's preloads (`runtime::request::service`).

use pyo3::prelude::*;

use super::head::parse_fields;
use super::response::SharedResponse;
use crate::runtime::request::interim::{HintRefused, InterimSender};

#[pyclass(module = "propylon._core", name = "EarlyHints", frozen)]
pub(crate) struct EarlyHints {
    interim: InterimSender,
    response: SharedResponse,
}

impl EarlyHints {
    pub(crate) fn new(interim: InterimSender, response: SharedResponse) -> EarlyHints {
        EarlyHints { interim, response }
    }
}

#[pymethods]
impl EarlyHints {
    fn __call__(&self, py: Python<'_>, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        let fields = parse_fields(py, headers)?;
        if fields.is_empty() {
            return Ok(());
        }
        if self.response.lock().unwrap().state.is_sent() {
            return Ok(());
        }
        match self.interim.early_hints(fields) {
            Ok(()) | Err(HintRefused::Closed) => {}
            Err(HintRefused::Full) => {
                log::debug!(target: "propylon.server", "early hint dropped: earlier hints still wait");
            }
            Err(HintRefused::TooLarge(size)) => {
                log::warn!(target: "propylon.server", "early hint dropped: its fields are {size} bytes, more than {}", crate::runtime::request::interim::MAX_HINT_BYTES);
            }
        }
        Ok(())
    }
}
