//! The arguments of `start_response` into a checked response head.
//!
//! What it does: turns the application's status str and its list of
//! `(name, value)` str pairs into a `Head` (`http` types), and the fields of
//! an early hint into a `HeaderMap`, checked by the
//! rules of `proto::response` (status form, header tokens, latin-1 values
//! without CTL, no hop-by-hop headers, one Content-Length). Each pool thread
//! keeps the strs it converted last, so an application sending the same
//! literals again pays a pointer comparison.
//!
//! What it does not do: decide whether `start_response` may be called (the
//! state machine in `proto::wsgi::response`), or send anything.

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH};
use http::StatusCode;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use pyo3::Borrowed;

use crate::proto::response::{
    add_content_length, check_header_name, check_header_value, parse_content_length,
    parse_final_status, ResponseError,
};
use crate::proto::wsgi::response::Head;

fn value_error(e: ResponseError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The head `start_response(status, headers)` describes.
#[inline]
pub(crate) fn parse_head(
    py: Python<'_>,
    status: &Bound<'_, PyAny>,
    headers: &Bound<'_, PyAny>,
) -> PyResult<Head> {
    let headers = sequence(py, headers)?;
    // One look at the thread's caches for the whole head.
    CONVERTED.with_borrow_mut(|caches| {
        let status = caches.status(status)?;
        let (headers, content_length) = caches.fields(&headers)?;
        Ok(Head {
            status,
            headers,
            content_length,
        })
    })
}

/// A list of `(name, value)` str pairs, checked as `start_response`'s
/// headers are (`environ["propylon.early_hints"]`'s argument).
pub(crate) fn parse_fields(py: Python<'_>, headers: &Bound<'_, PyAny>) -> PyResult<HeaderMap> {
    let headers = sequence(py, headers)?;
    CONVERTED.with_borrow_mut(|caches| Ok(caches.fields(&headers)?.0))
}

/// `headers` as a list or tuple. Any other iterable runs Python code as it
/// is iterated: collected first, outside the caches' borrow (which that
/// code could reach).
#[inline]
fn sequence<'py>(py: Python<'py>, headers: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if headers.is_exact_instance_of::<PyList>() || headers.is_exact_instance_of::<PyTuple>() {
        return Ok(headers.clone());
    }
    let collected = headers.try_iter()?.collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, &collected)?.into_any())
}

/// Response statuses, header names and header values that an application
/// sends again and again are usually the same str objects (literals in its
/// code or its framework's), so each pool thread keeps the last few it
/// checked and converted, found by the object's identity. An entry holds a
/// reference to its str, so the address cannot be taken by another object
/// while it is cached; str objects are immutable. A miss costs a few pointer
/// comparisons.
struct Converted<T> {
    entries: Vec<(Py<PyString>, T)>,
    next: usize,
}

/// Entries per thread and kind (replaced round-robin when full).
const CACHED_PER_KIND: usize = 32;
/// Longer header values are converted anew each time (at most 32 × 256
/// bytes of them are kept per thread).
const MAX_CONVERTED_VALUE: usize = 256;

impl<T: Clone> Converted<T> {
    const fn new() -> Converted<T> {
        Converted {
            entries: Vec::new(),
            next: 0,
        }
    }

    #[inline]
    fn get(&self, text: &Bound<'_, PyString>) -> Option<T> {
        self.entries
            .iter()
            .find(|(s, _)| s.as_ptr() == text.as_ptr())
            .map(|(_, t)| t.clone())
    }

    fn put(&mut self, text: &Bound<'_, PyString>, converted: T) {
        let entry = (text.clone().unbind(), converted);
        if self.entries.len() < CACHED_PER_KIND {
            self.entries.push(entry);
        } else {
            self.entries[self.next] = entry;
            self.next = (self.next + 1) % CACHED_PER_KIND;
        }
    }
}

/// The thread's caches of converted response heads, one per kind.
struct Caches {
    statuses: Converted<StatusCode>,
    names: Converted<HeaderName>,
    values: Converted<HeaderValue>,
    lengths: Converted<(u64, HeaderValue)>,
}

thread_local! {
    /// One thread-local for all four: in a module Python loads with dlopen,
    /// each thread-local access is a call (`__tls_get_addr`).
    static CONVERTED: std::cell::RefCell<Caches> = const {
        std::cell::RefCell::new(Caches {
            statuses: Converted::new(),
            names: Converted::new(),
            values: Converted::new(),
            lengths: Converted::new(),
        })
    };
}

impl Caches {
    /// Checked response fields from a list or tuple of `(name, value)`
    /// pairs, and the value of their Content-Length.
    #[inline]
    fn fields(&mut self, headers: &Bound<'_, PyAny>) -> PyResult<(HeaderMap, Option<u64>)> {
        // Sized for the application's headers plus the two the HTTP/2
        // connection may add (`date`, `content-length`): a full map re-hashes
        // and reallocates as it grows (callgrind, HTTP/2 hello world: two
        // grows per response, ~1,750 instructions of ~39,000).
        let mut map = HeaderMap::with_capacity(headers.len()? + 2);
        let mut content_length = None;
        let mut add = |item: Borrowed<'_, '_, PyAny>| -> PyResult<()> {
            let pair = item
                .cast::<PyTuple>()
                .ok()
                .filter(|p| p.len() == 2)
                .ok_or_else(|| {
                    PyTypeError::new_err(
                        "each response header must be a (name, value) tuple of str (PEP 3333)",
                    )
                })?;
            let name_obj = pair.get_borrowed_item(0)?;
            let value_obj = pair.get_borrowed_item(1)?;
            let header_name = self.name(&name_obj)?;
            if header_name == CONTENT_LENGTH {
                let (n, value) = self.length(&value_obj, &name_obj)?;
                content_length = Some(add_content_length(content_length, n).map_err(value_error)?);
                map.insert(CONTENT_LENGTH, value);
            } else {
                map.append(header_name, self.value(&value_obj, &name_obj)?);
            }
            Ok(())
        };
        // A list or tuple (the usual `headers`) is read by index: no
        // iterator object, and no Python code runs.
        if let Ok(list) = headers.cast_exact::<PyList>() {
            for item in list.iter() {
                add(item.as_borrowed())?;
            }
        } else if let Ok(tuple) = headers.cast_exact::<PyTuple>() {
            for item in tuple.iter_borrowed() {
                add(item)?;
            }
        }
        Ok((map, content_length))
    }

    /// A checked response status (`"200 OK"`), final (not 1xx).
    #[inline]
    fn status(&mut self, status: &Bound<'_, PyAny>) -> PyResult<StatusCode> {
        let status: &Bound<'_, PyString> = status.cast().map_err(|_| {
            PyTypeError::new_err("status must be a str such as \"200 OK\" (PEP 3333)")
        })?;
        if let Some(code) = self.statuses.get(status) {
            return Ok(code);
        }
        let code = parse_final_status(&status.to_cow()?).map_err(value_error)?;
        self.statuses.put(status, code);
        Ok(code)
    }

    /// A checked response header name (a token, not hop-by-hop).
    #[inline]
    fn name(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<HeaderName> {
        if let Ok(text) = obj.cast::<PyString>() {
            if let Some(name) = self.names.get(text) {
                return Ok(name);
            }
        }
        let name = header_text(obj)?;
        check_header_name(name).map_err(value_error)?;
        let converted = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let Ok(text) = obj.cast::<PyString>() {
            self.names.put(text, converted.clone());
        }
        Ok(converted)
    }

    /// A checked Content-Length value: the number, and its wire form.
    #[inline]
    fn length(
        &mut self,
        obj: &Bound<'_, PyAny>,
        name_obj: &Bound<'_, PyAny>,
    ) -> PyResult<(u64, HeaderValue)> {
        if let Ok(text) = obj.cast::<PyString>() {
            if let Some(cached) = self.lengths.get(text) {
                return Ok(cached);
            }
        }
        let value = header_text(obj)?;
        check_header_value(header_text(name_obj)?, value).map_err(value_error)?;
        let n = parse_content_length(value).map_err(value_error)?;
        let converted = (n, HeaderValue::from(n));
        if let Ok(text) = obj.cast::<PyString>() {
            self.lengths.put(text, converted.clone());
        }
        Ok(converted)
    }

    /// A checked response header value (latin-1 without CTL), in its wire form.
    #[inline]
    fn value(
        &mut self,
        obj: &Bound<'_, PyAny>,
        name_obj: &Bound<'_, PyAny>,
    ) -> PyResult<HeaderValue> {
        if let Ok(text) = obj.cast::<PyString>() {
            if let Some(value) = self.values.get(text) {
                return Ok(value);
            }
        }
        let value = header_text(obj)?;
        // The name as the application spelled it, for the message.
        check_header_value(header_text(name_obj)?, value).map_err(value_error)?;
        // Latin-1: ASCII (the usual case) is already the wire form, other chars
        // are one byte each.
        let converted = if value.is_ascii() {
            HeaderValue::from_str(value)
        } else {
            let bytes: Vec<u8> = value.chars().map(|c| c as u32 as u8).collect();
            HeaderValue::from_bytes(&bytes)
        }
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
        // A long value stays out: the cache must not keep large strings alive.
        if let Some(text) = obj
            .cast::<PyString>()
            .ok()
            .filter(|_| value.len() <= MAX_CONVERTED_VALUE)
        {
            self.values.put(text, converted.clone());
        }
        Ok(converted)
    }
}

/// A response header name or value, borrowed from its str.
fn header_text<'a>(o: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    let s = o.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err("response header names and values must be str (PEP 3333)")
    })?;
    // A str with no UTF-8 form (a lone surrogate) is not latin-1 text either.
    s.to_str()
        .map_err(|_| PyValueError::new_err("response header names and values must be latin-1 text"))
}

// ---------------------------------------------------------------------------
