//! `wsgi.input`: a terminated, blocking byte stream over the request body
//! (WSGI 1.1: `b""` at the end, never blocking past it, errors are errors).
//!
//! Every read releases the GIL while it waits for bytes. A body error is
//! raised as its `propylon.errors` exception (`py::errors`).
//!
//! What it does not do: read the socket, decode or limit the body (the
//! runtime's `BodyReader` does), or decide which requests have a body.

use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::py::errors;
use crate::runtime::request::body::{BodyError, BodyReader};

#[pyclass(module = "propylon._core", name = "Input")]
pub(crate) struct Input {
    reader: Mutex<BodyReader>,
}

impl Input {
    pub(crate) fn new(reader: BodyReader) -> Input {
        Input {
            reader: Mutex::new(reader),
        }
    }

    fn with_reader<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut BodyReader) -> Result<T, BodyError> + Send,
    ) -> PyResult<T> {
        py.detach(|| f(&mut self.reader.lock().unwrap()))
            .map_err(|e| errors::body_error(py, &e))
    }
}

/// A `read(n)` of at least this many bytes is read straight into the `bytes`
/// object it returns (one copy from the transport's buffer, instead of two).
const DIRECT_READ_MIN: usize = 16 * 1024;

/// The most such a read allocates up front when the body's length is unknown
/// (chunked or decoded): larger reads take the buffered way.
const DIRECT_READ_UNKNOWN_MAX: usize = 1024 * 1024;

impl Input {
    /// The size of the `bytes` object to allocate for `read(n)`, when it is
    /// worth reading into directly: `n`, or what is left of a body of known
    /// length if that is less. (Never more than the body's declared length,
    /// which the maximum body size has already bounded.)
    fn direct_size(&self, n: usize) -> Option<usize> {
        // Another thread in a read holds the lock: no waiting with the GIL.
        let remaining = self.reader.try_lock().ok()?.remaining();
        let size = match remaining {
            Some(left) => n.min(usize::try_from(left).unwrap_or(usize::MAX)),
            None if n <= DIRECT_READ_UNKNOWN_MAX => n,
            None => return None,
        };
        (size >= DIRECT_READ_MIN).then_some(size)
    }

    /// `read(size)` into a new `bytes` object, filled with the GIL released
    /// (nothing else can see the object yet), as CPython's `socket.recv` does.
    /// A read cut short by the end of the body returns a copy of what came.
    fn read_direct<'py>(&self, py: Python<'py>, size: usize) -> PyResult<Bound<'py, PyBytes>> {
        let len = ffi::Py_ssize_t::try_from(size)
            .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("read size too large"))?;
        // SAFETY: a new reference (or NULL with an exception set), to a bytes
        // object of `len` uninitialised bytes.
        let object = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), len))?
                .cast_into_unchecked::<PyBytes>()
        };
        // SAFETY: the object's buffer, `size` bytes long, alive as long as `object`.
        let buffer = unsafe { ffi::PyBytes_AsString(object.as_ptr()) } as usize;
        let filled = self.with_reader(py, move |r| {
            // SAFETY: see above; only this thread touches the buffer until the
            // object is returned, and `object` outlives this call.
            let buf = unsafe { std::slice::from_raw_parts_mut(buffer as *mut u8, size) };
            r.read_into(buf)
        })?;
        if filled == size {
            Ok(object)
        } else {
            // SAFETY: the first `filled` bytes of the buffer were written.
            let data = unsafe { std::slice::from_raw_parts(buffer as *const u8, filled) };
            Ok(PyBytes::new(py, data))
        }
    }
}

/// Python's convention: None or a negative size means "no limit".
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl Input {
    /// Read up to `size` bytes (all remaining bytes when omitted or negative).
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = match limit(size) {
            None => self.with_reader(py, |r| r.read_to_end())?,
            Some(n) => match self.direct_size(n) {
                Some(size) => return self.read_direct(py, size),
                None => self.with_reader(py, |r| r.read(n))?,
            },
        };
        Ok(PyBytes::new(py, &data))
    }

    /// Read one line, including its newline, of at most `size` bytes.
    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.with_reader(py, |r| r.read_line(limit(size)))?;
        Ok(PyBytes::new(py, &data))
    }

    /// Read lines until the end, or until `hint` bytes have been read.
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.with_reader(py, |r| r.read_line(None))?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.with_reader(py, |r| r.read_line(None))?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }
}
