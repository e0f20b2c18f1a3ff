//! `wsgi.file_wrapper` over a regular file, sent from Rust (PEP 3333
//! §"Optional Platform-Specific File Handling").
//!
//! What it does: when the application returns a `propylon.FileWrapper` whose
//! file-like has a descriptor of a regular file, the head goes out with a
//! `FileBody` (the runtime reads the file from `tell()`, with sendfile where
//! it can) over a duplicate descriptor, and the wrapper is closed once the
//! body is done. Any other file-like is iterated like any iterable.
//!
//! What it does not do: read or send the file (the runtime's `FileBody`), or
//! decide how many bytes go out (`proto::wsgi::response`).

use std::fs::File;
use std::os::fd::FromRawFd;
use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use super::iterable::close;
use super::response::{send_head, violation, SharedResponse};
use crate::proto::wsgi::response::FileResponse;
use crate::runtime::pool::Pool;
use crate::runtime::request::response::{FileBody, ResponseBody};
use crate::runtime::transport::sendfile::SendQueue;

/// `propylon.filewrapper.FileWrapper`, the class of `wsgi.file_wrapper`.
pub(crate) fn file_wrapper_class(py: Python<'_>) -> PyResult<&Py<PyType>> {
    static CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    CLASS.get_or_try_init(py, || {
        Ok(py
            .import("propylon.filewrapper")?
            .getattr("FileWrapper")?
            .cast_into::<PyType>()?
            .unbind())
    })
}

/// `wsgi.file_wrapper` over a regular file: send it from Rust. Returns false
/// when the file-like has no usable descriptor (then it is iterated instead).
pub(crate) fn send_file(
    py: Python<'_>,
    wrapper: &Bound<'_, PyAny>,
    response: &SharedResponse,
    pool: &Arc<Pool>,
    zero_copy: Option<Arc<SendQueue>>,
) -> PyResult<bool> {
    let filelike = wrapper.getattr(intern!(py, "filelike"))?;
    let Ok(fd) = filelike
        .call_method0(intern!(py, "fileno"))
        .and_then(|f| f.extract::<i32>())
    else {
        return Ok(false);
    };
    let Ok(position) = filelike
        .call_method0(intern!(py, "tell"))
        .and_then(|p| p.extract::<u64>())
    else {
        return Ok(false);
    };
    // SAFETY: dup() of a descriptor Python says is open; the new descriptor is
    // owned by `file` alone and closed when the body is done.
    let dup = unsafe { libc::dup(fd) };
    if dup < 0 {
        return Ok(false);
    }
    let file = unsafe { File::from_raw_fd(dup) };
    let size = match file.metadata() {
        Ok(meta) if meta.is_file() => meta.len(),
        _ => return Ok(false),
    };
    let available = size.saturating_sub(position);
    let mut response = response.lock().unwrap();
    let (reply, head, len) = match response.state.file(available).map_err(violation)? {
        FileResponse::Iterate => return Ok(false),
        FileResponse::Send { reply, head, len } => (reply, head, len),
    };
    let wrapper = wrapper.clone().unbind();
    let Some(len) = len else {
        send_head(reply, head, ResponseBody::Empty);
        close(py, wrapper.bind(py));
        return Ok(true);
    };
    // PEP 3333: close() once the response is complete (or abandoned), on a
    // pool thread, as for any iterable.
    let pool = pool.clone();
    let on_done = Box::new(move || {
        pool.submit_resumed(Box::new(move || {
            Python::attach(|py| close(py, wrapper.bind(py)))
        }));
    });
    let body = ResponseBody::File(Box::new(FileBody::new(
        Arc::new(file),
        position,
        len,
        zero_copy,
        on_done,
    )));
    send_head(reply, head, body);
    Ok(true)
}
