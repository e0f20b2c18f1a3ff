//! The response body from the application's iterable (PEP 3333 §"Buffering
//! and Streaming"), and its `close()`.
//!
//! What it does: an exact `list` or `tuple` has every chunk known, so its body
//! goes out as one buffer (`send_sequence`); any other iterable is driven a
//! chunk per `next()` (`Driver`), queued on a bounded channel. When the
//! channel is full (a slow client) the driver stops and the thread is free;
//! the channel resumes it as a new pool job once the client has drained it,
//! so a slow reader never holds a Python thread. `close()` on the result is
//! called exactly once on every path.
//!
//! What it does not do: decide when the head goes out or how much of a chunk
//! may be sent (`proto::wsgi::response`), or send files (`file`).

use std::sync::Arc;

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator};

use super::response::{fail, send_head, violation, SharedResponse};
use crate::proto::wsgi::response::Whole;
use crate::py::errors;
use crate::runtime::pool::Pool;
use crate::runtime::request::response::{Push, ResponseBody};

/// Calls the result's `close()`, if it has one (PEP 3333), logging an error.
pub(crate) fn close(py: Python<'_>, result: &Bound<'_, PyAny>) {
    if let Ok(true) = result.hasattr(intern!(py, "close")) {
        if let Err(err) = result.call_method0(intern!(py, "close")) {
            errors::log_error(py, "Error in the close() method of a WSGI response", &err);
        }
    }
}

/// A list or tuple: all chunks are here, send them as one buffer.
pub(crate) fn send_sequence(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    response: &SharedResponse,
) -> PyResult<()> {
    let mut chunks: Vec<Bound<'_, PyBytes>> = Vec::new();
    let mut total = 0;
    for item in result.try_iter()? {
        let item = item?;
        let bytes = item
            .cast_into::<PyBytes>()
            .map_err(|e| not_bytes(e.into_inner()))?;
        total += bytes.as_bytes().len();
        chunks.push(bytes);
    }
    let mut response = response.lock().unwrap();
    match response.state.whole(total).map_err(violation)? {
        Whole::AfterWrite => {
            // write() was used: the rest goes the streaming way.
            for c in chunks {
                response.push(py_bytes(&c), true, py);
            }
            response.finish();
        }
        Whole::Short => {
            // Too short: send what there is, then abort the response.
            response.open_stream()?;
            response.push(joined(&chunks, total), false, py);
            response.finish();
        }
        Whole::Send { reply, head, len } => {
            response.report_surplus();
            let body = match len {
                None => ResponseBody::Empty,
                Some(n) if n < total => ResponseBody::full(joined(&chunks, total).slice(..n)),
                Some(_) => ResponseBody::full(joined(&chunks, total)),
            };
            send_head(reply, head, body);
        }
    }
    Ok(())
}

/// The chunks of a list or tuple as one buffer. One chunk (the usual
/// `[body]`): the bytes object itself, no copy.
#[inline]
fn joined(chunks: &[Bound<'_, PyBytes>], total: usize) -> Bytes {
    if chunks.len() == 1 {
        return py_bytes(&chunks[0]);
    }
    let mut body = Vec::with_capacity(total);
    for c in chunks {
        body.extend_from_slice(c.as_bytes());
    }
    Bytes::from(body)
}

/// A `bytes` object as `Bytes`, without copying: the buffer of a Python
/// `bytes` never changes, and the owner keeps the object alive. (Dropping it
/// without the GIL is fine: PyO3 defers the decref to the next GIL holder.)
fn py_bytes(b: &Bound<'_, PyBytes>) -> Bytes {
    struct Owner {
        _object: Py<PyBytes>,
        data: *const u8,
        len: usize,
    }
    // SAFETY: the pointer is into an immutable bytes object kept alive by `_object`.
    unsafe impl Send for Owner {}
    unsafe impl Sync for Owner {}
    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            // SAFETY: see above; `len` is the object's length.
            unsafe { std::slice::from_raw_parts(self.data, self.len) }
        }
    }
    let data = b.as_bytes();
    if data.len() < 1024 {
        // Small bodies: a copy is cheaper than an owner and a later decref.
        return Bytes::copy_from_slice(data);
    }
    Bytes::from_owner(Owner {
        _object: b.clone().unbind(),
        data: data.as_ptr(),
        len: data.len(),
    })
}

fn not_bytes(item: Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "the WSGI response iterable yielded {} instead of bytes (PEP 3333)",
        item.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    ))
}

/// Iterates a response iterable, a chunk per `next()`, pausing while the client
/// is slow. Owns the iterable until it is closed.
pub(crate) struct Driver {
    result: Py<PyAny>,
    iter: Py<PyIterator>,
    response: SharedResponse,
    pool: Arc<Pool>,
}

enum Step {
    Continue,
    Pause,
    Stop,
}

impl Driver {
    pub(crate) fn new(
        result: Py<PyAny>,
        iter: Py<PyIterator>,
        response: SharedResponse,
        pool: Arc<Pool>,
    ) -> Driver {
        Driver {
            result,
            iter,
            response,
            pool,
        }
    }

    pub(crate) fn pump(self, py: Python<'_>) {
        loop {
            match self.step(py) {
                Ok(Step::Continue) => continue,
                Ok(Step::Pause) => return self.pause(),
                Ok(Step::Stop) => break,
                Err(err) => {
                    fail(py, &self.response, &err);
                    break;
                }
            }
        }
        close(py, self.result.bind(py));
    }

    fn step(&self, py: Python<'_>) -> PyResult<Step> {
        {
            let response = self.response.lock().unwrap();
            if response.state.sink().is_some_and(|sink| sink.is_closed()) {
                log::debug!(target: "propylon.server", "client went away; closing the response iterable");
                return Ok(Step::Stop);
            }
            if response.state.is_over() {
                return Ok(Step::Stop);
            }
        }
        let next = self.iter.bind(py).clone().next();
        let mut response = self.response.lock().unwrap();
        match next {
            None => {
                response.open_at_end()?;
                response.finish();
                Ok(Step::Stop)
            }
            Some(Err(err)) => Err(err),
            Some(Ok(item)) => {
                let bytes = item
                    .cast_into::<PyBytes>()
                    .map_err(|e| not_bytes(e.into_inner()))?;
                let data = bytes.as_bytes();
                if data.is_empty() {
                    return Ok(Step::Continue);
                }
                response.open_stream()?;
                if response.state.is_bodiless() {
                    return Ok(Step::Stop);
                }
                match response.push(py_bytes(&bytes), false, py) {
                    Some(Push::Ready) => Ok(Step::Continue),
                    Some(Push::Full) => Ok(Step::Pause),
                    Some(Push::Closed) => Ok(Step::Stop),
                    None if response.state.wants_surplus_check() => {
                        // Content-Length is met: stop, but look once more so
                        // that an application producing more gets a log line.
                        drop(response);
                        self.check_surplus(py);
                        Ok(Step::Stop)
                    }
                    None => Ok(Step::Stop),
                }
            }
        }
    }

    fn check_surplus(&self, py: Python<'_>) {
        if let Some(Ok(item)) = self.iter.bind(py).clone().next() {
            if item
                .cast::<PyBytes>()
                .map_or(true, |b| !b.as_bytes().is_empty())
            {
                let mut response = self.response.lock().unwrap();
                response.state.surplus_found();
                response.report_surplus();
            }
        }
    }

    /// Free this thread; continue as a new pool job once the client drained.
    fn pause(self) {
        let response = self.response.clone();
        let response = response.lock().unwrap();
        let Some(sink) = response.state.sink() else {
            unreachable!("paused without a stream")
        };
        let pool = self.pool.clone();
        sink.pause(Box::new(move || {
            pool.submit_resumed(Box::new(move || Python::attach(|py| self.pump(py))));
        }));
    }
}
