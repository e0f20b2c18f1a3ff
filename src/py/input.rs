//! `wsgi.input`: a terminated, blocking byte stream over the request body
//! (WSGI 1.1: `b""` at the end, never blocking past it, errors are errors).
//!
//! Every read releases the GIL while it waits for bytes.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::types;
use crate::runtime::body::{BodyError, BodyReader};

#[pyclass(module = "propylon._core", name = "Input")]
pub struct Input {
    reader: Mutex<BodyReader>,
}

impl Input {
    pub fn new(reader: BodyReader) -> Input {
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
            .map_err(|e| types::body_error(py, &e))
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
            Some(n) => self.with_reader(py, |r| r.read(n))?,
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
