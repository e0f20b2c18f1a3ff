//! The environ dict of a request (PEP 3333 §"environ Variables"), from the
//! values `proto::wsgi::environ` decided.
//!
//! What it does: makes the dict, each value a str whose chars are the
//! request's bytes (latin-1), with `wsgi.input` over the body. What is the
//! same on every request (the `wsgi.*` constants) or on every request of a
//! connection is copied from a per-connection template; the str objects of
//! header values a client repeats and of header keys are kept.
//!
//! What it does not do: decide any value (`proto::wsgi::environ` does), or
//! read the body (`input`).

use std::net::SocketAddr;
use std::sync::Mutex;

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::IntoPyObjectExt;

use super::file::file_wrapper_class;
use super::input::Input;
use crate::proto::wsgi::environ::{self, Environ, HeaderKey, Text};
use crate::runtime::request::body::BodyReader;

/// What the environ of a connection's requests has in common, kept for the
/// connection's next requests: a template dict (the constant `wsgi.*` keys
/// and the values that are the same on every request of a connection:
/// `SERVER_NAME`, `SERVER_PORT`, `REMOTE_ADDR`, `REMOTE_PORT`,
/// `SERVER_PROTOCOL`, `SCRIPT_NAME`, `wsgi.url_scheme`, the TLS variables),
/// and the str objects of the header values a client usually repeats. A
/// request's environ is a copy of the template with the rest set: a
/// keep-alive or HTTP/2 connection does not set those keys again per
/// request (each `set_item` measured about 200 instructions), nor make
/// those strings again. A value that differs from the template's (another
/// `Host`, say) is set in the template, so every environ shows the request's
/// own values (a trusted proxy's client or scheme, say, which may change
/// from one request to the next). About 1 KiB per connection that has
/// made a request.
#[derive(Default)]
pub(crate) struct ConnStrings {
    template: Option<Py<PyDict>>,
    /// The template's SERVER_NAME and SERVER_PORT.
    server_name: Option<Py<PyString>>,
    server_port: Option<Py<PyString>>,
    /// The template's REMOTE_ADDR and REMOTE_PORT: of this client (`None`:
    /// "" for a unix socket's peer); `None` before the template is made.
    remote: Option<Option<SocketAddr>>,
    /// The template's `wsgi.url_scheme` ("" before it is made).
    url_scheme: &'static str,
    protocol: &'static str,
    /// Header values (see `CACHED_HEADERS`).
    headers: [Option<Py<PyString>>; CACHED_HEADERS.len()],
}

/// `HTTP_*` variables whose values a client usually repeats, by their
/// index in `environ::COMMON_KEYS`: Host, User-Agent, Accept,
/// Accept-Encoding, Accept-Language.
const CACHED_HEADERS: [u8; 5] = [0, 18, 1, 2, 3];

/// The cached str, if it has the chars of latin-1 `bytes`.
fn same_text<'py>(
    cached: &Option<Py<PyString>>,
    py: Python<'py>,
    bytes: &[u8],
) -> Option<Bound<'py, PyString>> {
    let cached = cached.as_ref()?.bind(py);
    // Only ASCII strings are cached (their UTF-8 form is their bytes).
    cached
        .to_str()
        .is_ok_and(|s| s.as_bytes() == bytes)
        .then(|| cached.clone())
}

/// The str of latin-1 `bytes` for a cache: the cached one when it has those
/// chars, else a new one, kept when it is ASCII. Whether it is new.
fn cached_text<'py>(
    cached: &mut Option<Py<PyString>>,
    py: Python<'py>,
    bytes: &[u8],
) -> PyResult<(Bound<'py, PyString>, bool)> {
    if let Some(same) = same_text(cached, py, bytes) {
        return Ok((same, false));
    }
    let fresh = latin1_str(py, bytes)?;
    *cached = bytes.is_ascii().then(|| fresh.clone().unbind());
    Ok((fresh, true))
}

impl ConnStrings {
    /// The template for an environ `e`: made on the connection's first
    /// request, with the connection's values changed where `e` differs.
    fn template<'py>(&mut self, py: Python<'py>, e: &Environ) -> PyResult<Bound<'py, PyDict>> {
        let template = match &self.template {
            Some(template) => template.bind(py).clone(),
            None => {
                let template = constant_template(py)?.bind(py).copy()?;
                let empty = intern!(py, "");
                let script_name = match e.script_name.as_bytes() {
                    [] => empty.clone(),
                    bytes => latin1_str(py, bytes)?,
                };
                template.set_item(intern!(py, "SCRIPT_NAME"), script_name)?;
                // TLS variables belong to the connection (its handshake).
                for (key, value) in &e.tls {
                    template.set_item(*key, PyString::new(py, value))?;
                }
                self.template = Some(template.clone().unbind());
                template
            }
        };
        let (name, new_name) = cached_text(&mut self.server_name, py, e.server_name.as_bytes())?;
        if new_name {
            template.set_item(intern!(py, "SERVER_NAME"), name)?;
        }
        let (port, new_port) = cached_text(&mut self.server_port, py, e.server_port.as_bytes())?;
        if new_port {
            template.set_item(intern!(py, "SERVER_PORT"), port)?;
        }
        if self.url_scheme != e.url_scheme {
            let scheme = if e.url_scheme == "https" {
                intern!(py, "https")
            } else {
                intern!(py, "http")
            };
            template.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
            self.url_scheme = e.url_scheme;
        }
        if self.remote != Some(e.remote) {
            let (addr, port) = match e.remote {
                Some(peer) => (
                    PyString::new(py, &environ::remote_addr_text(peer)),
                    PyString::new(py, &environ::remote_port_text(peer)),
                ),
                None => (intern!(py, "").clone(), intern!(py, "").clone()),
            };
            template.set_item(intern!(py, "REMOTE_ADDR"), addr)?;
            template.set_item(intern!(py, "REMOTE_PORT"), port)?;
            self.remote = Some(e.remote);
        }
        if self.protocol != e.server_protocol {
            let protocol = match e.server_protocol {
                "HTTP/1.1" => intern!(py, "HTTP/1.1"),
                "HTTP/2.0" => intern!(py, "HTTP/2.0"),
                _ => intern!(py, "HTTP/1.0"),
            };
            template.set_item(intern!(py, "SERVER_PROTOCOL"), protocol)?;
            self.protocol = e.server_protocol;
        }
        Ok(template)
    }
}

/// A str whose chars are `bytes`, one for one (PEP 3333: bytes as latin-1).
fn latin1_str<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = ffi::Py_ssize_t::try_from(bytes.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("environ value too large"))?;
    // SAFETY: `bytes` is valid for `len` bytes; a new reference or NULL with
    // an exception set, which `from_owned_ptr_or_err` turns into the error.
    unsafe {
        Ok(Bound::from_owned_ptr_or_err(
            py,
            ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null()),
        )?
        .cast_into_unchecked::<PyString>())
    }
}

pub(crate) fn environ_dict<'py>(
    py: Python<'py>,
    e: &Environ,
    body: BodyReader,
    strings: &mut ConnStrings,
) -> PyResult<Bound<'py, PyDict>> {
    // The constant entries and the connection's values are copied from its
    // template (one table copy), the rest set one by one.
    let d = strings.template(py, e)?.copy()?;
    // Values that recur on most requests are interned str objects.
    let method = match &*e.request_method {
        "GET" => intern!(py, "GET").clone(),
        "POST" => intern!(py, "POST").clone(),
        "HEAD" => intern!(py, "HEAD").clone(),
        other => PyString::new(py, other),
    };
    let empty = intern!(py, "");
    let text = |t: &Text| {
        let bytes = t.as_bytes();
        if bytes.is_empty() {
            Ok(empty.clone())
        } else {
            latin1_str(py, bytes)
        }
    };
    d.set_item(intern!(py, "REQUEST_METHOD"), method)?;
    d.set_item(intern!(py, "PATH_INFO"), text(&e.path_info)?)?;
    d.set_item(intern!(py, "QUERY_STRING"), text(&e.query_string)?)?;
    if let Some(ct) = &e.content_type {
        d.set_item(intern!(py, "CONTENT_TYPE"), text(ct)?)?;
    }
    if let Some(n) = e.content_length {
        d.set_item(
            intern!(py, "CONTENT_LENGTH"),
            PyString::new(py, itoa::Buffer::new().format(n)),
        )?;
    }
    for (key, value) in &e.headers {
        let cached = match key {
            HeaderKey::Common(i) => CACHED_HEADERS.iter().position(|k| k == i),
            HeaderKey::Made(_) => None,
        };
        let value = match cached {
            Some(at) => cached_text(&mut strings.headers[at], py, value.as_bytes())?.0,
            None => text(value)?,
        };
        d.set_item(header_key(py, key), value)?;
    }
    d.set_item(intern!(py, "wsgi.input"), wsgi_input(py, body)?)?;
    Ok(d)
}

/// `wsgi.input` for `body`. Every request without a body (most GETs) shares
/// one: reads of it return `b""` and change nothing, so there is nothing of
/// one request's in it for another to see, and no object to make per request.
fn wsgi_input<'py>(py: Python<'py>, body: BodyReader) -> PyResult<Bound<'py, PyAny>> {
    static EMPTY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    if body.remaining() == Some(0) {
        let empty =
            EMPTY.get_or_try_init(py, || Input::new(BodyReader::empty()).into_py_any(py))?;
        return Ok(empty.bind(py).clone());
    }
    Input::new(body).into_bound_py_any(py)
}

/// The constant part of every environ (PEP 3333 `wsgi.*` and WSGI 1.1),
/// made once.
pub(crate) fn constant_template(py: Python<'_>) -> PyResult<&Py<PyDict>> {
    static TEMPLATE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    TEMPLATE.get_or_try_init(py, || Ok(make_constant_template(py)?.unbind()))
}

fn make_constant_template(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let error_stream = py
        .import("propylon._logging")?
        .getattr("ErrorStream")?
        .call0()?;
    let d = PyDict::new(py);
    d.set_item("wsgi.version", PyTuple::new(py, [1, 1])?)?;
    d.set_item("wsgi.errors", error_stream)?;
    d.set_item("wsgi.multithread", true)?;
    d.set_item("wsgi.multiprocess", false)?;
    d.set_item("wsgi.run_once", false)?;
    d.set_item("wsgi.input_terminated", true)?;
    d.set_item("wsgi.file_wrapper", file_wrapper_class(py)?.bind(py))?;
    // The keys every request sets, with placeholder values: the copy then
    // has them (setting them replaces a value, no insertion) and a table
    // sized for them and a few header fields, so a request's environ grows
    // the table once at most instead of two or three times.
    for key in [
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "SERVER_NAME",
        "SERVER_PORT",
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "SERVER_PROTOCOL",
        "wsgi.url_scheme",
        "wsgi.input",
        "propylon.early_hints",
    ] {
        d.set_item(PyString::intern(py, key), py.None())?;
    }
    Ok(d)
}

/// Environ keys for header fields ("HTTP_USER_AGENT"), interned and kept.
/// The common ones (`environ::COMMON_KEYS`) by index, made once; the rest in
/// a map, bounded, so that clients inventing header names cannot grow it,
/// nor (the hash is FNV, not SipHash) make a lookup cost more than a scan of
/// those 512 entries.
fn header_key<'py>(py: Python<'py>, key: &HeaderKey) -> Bound<'py, PyString> {
    const MAX_CACHED: usize = 512;
    static COMMON: PyOnceLock<Vec<Py<PyString>>> = PyOnceLock::new();
    let key = match key {
        HeaderKey::Common(i) => {
            let common = COMMON.get_or_init(py, || {
                environ::COMMON_KEYS
                    .iter()
                    .map(|(_, key)| PyString::intern(py, key).unbind())
                    .collect()
            });
            return common[usize::from(*i)].bind(py).clone();
        }
        HeaderKey::Made(key) => key,
    };
    type Keys = std::collections::HashMap<String, Py<PyString>, fnv::FnvBuildHasher>;
    static CACHE: std::sync::OnceLock<Mutex<Keys>> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap();
    if let Some(k) = cache.get(key.as_str()) {
        return k.bind(py).clone();
    }
    let k = PyString::intern(py, key);
    if cache.len() < MAX_CACHED {
        cache.insert(key.to_owned(), k.clone().unbind());
    }
    k
}
