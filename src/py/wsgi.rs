//! Calling a WSGI application (PEP 3333, WSGI 1.1) and driving its response.
//!
//! Theory of operation. The runtime hands us a `Call` with a protocol-neutral
//! request; we build its environ values (`proto::environ`) at once, then on a
//! pool thread the environ dict, call `app(environ, start_response)` and look at the result:
//!
//! - a `propylon.FileWrapper` over a regular file: the head goes out with a
//!   `FileBody` (Rust reads the file from `tell()`, at most Content-Length bytes)
//!   and the wrapper is closed at once (the body owns a duplicate descriptor);
//! - an exact `list` or `tuple`: every chunk is known, so the body goes out as
//!   one buffer (hyper then sets Content-Length when the app did not);
//! - any other iterable: a `Driver` calls `next()` and queues each chunk on a
//!   bounded channel. When the channel is full (a slow client) the driver stops
//!   and the thread is free; the channel resumes it as a new pool job once the
//!   client has drained it. So a slow reader never holds a Python thread.
//!
//! The head is sent when the first non-empty chunk is ready, or at the end of
//! the iterable, or at the first `write()` (PEP 3333 "Buffering and
//! Streaming"). Content-Length is enforced on every path (`proto::length`):
//! surplus bytes are dropped and iteration stops; a short body aborts the
//! response. `close()` on the result is called exactly once on every path.
//!
//! What it does not do: HTTP framing or I/O (the runtime's), or validation rules
//! (`proto::response`): here they are only applied.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::FromRawFd;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH};
use http::{Method, StatusCode};
use pyo3::exceptions::{PyAssertionError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyIterator, PyList, PyString, PyTuple};
use pyo3::Borrowed;
use pyo3::{intern, IntoPyObjectExt};

use super::input::Input;
use super::types;
use crate::proto::environ::{self, Environ, EnvironInput, HeaderKey, Text};
use crate::proto::length::{Admit, ResponseLength};
use crate::proto::request::HttpVersion;
use crate::proto::response::{
    check_header_name, check_header_value, parse_content_length, parse_status,
};
use crate::runtime::endpoint::{Busy, Call, Endpoint, Reply, Request, Response};
use crate::runtime::pool::Pool;
use crate::runtime::request::body::BodyReader;
use crate::runtime::request::response::{channel, ChunkSink, FileBody, Push, ResponseBody};
use crate::runtime::request::service::error_response;
use crate::runtime::transport::sendfile::SendQueue;

pub struct WsgiApp {
    app: Arc<Py<PyAny>>,
    pool: Arc<Pool>,
    /// `--root-path`: the SCRIPT_NAME every request's path starts with.
    root_path: String,
}

impl WsgiApp {
    pub fn new(app: Py<PyAny>, pool: Arc<Pool>, root_path: String) -> WsgiApp {
        WsgiApp {
            app: Arc::new(app),
            pool,
            root_path,
        }
    }
}

impl Endpoint for WsgiApp {
    fn dispatch(&self, call: Box<Call>) -> Result<(), Busy> {
        // The environ values are made here, on the I/O thread: the pool
        // thread, which holds the GIL, only turns them into the dict. The
        // call stays in its box (moving it out costs more than it saves).
        let environ = environ_values(&call.request, &self.root_path);
        let app = self.app.clone();
        let pool = self.pool.clone();
        let job = Box::new(move || Python::attach(|py| run(py, &app, environ, call, pool)));
        self.pool.try_submit(job).map_err(|_| Busy)
    }
}

/// A request's environ values (PEP 3333, WSGI 1.1) as plain Rust strings.
fn environ_values(request: &Request, root_path: &str) -> Environ {
    let head = &request.head;
    let connection = &request.connection;
    let mut environ = environ::build(&EnvironInput {
        method: head.method.as_str(),
        target: head.target.path_and_query(),
        version: HttpVersion::of(head.version),
        headers: &head.headers,
        authority: head.target.authority(),
        https: connection.tls.is_some(),
        local_addr: connection.local,
        peer_addr: connection.peer,
        root_path,
        content_length: request.content_length,
        strip_content_encoding: request.body_decoded,
    });
    if let Some(tls) = &connection.tls {
        environ.tls =
            environ::tls_variables(&tls.protocol, &tls.cipher, tls.client_cert_pem.as_deref());
    }
    environ
}

// ---------------------------------------------------------------------------
// The exchange: what start_response, write() and the driver share.

struct Head {
    status: StatusCode,
    headers: HeaderMap,
    content_length: Option<u64>,
}

enum Sending {
    /// Nothing sent yet; the head (if start_response was called) is pending.
    NotYet(Reply),
    /// The head went out with a streamed body.
    Streaming(ChunkSink),
    /// The response is complete, aborted, or needs no body (HEAD).
    Done,
}

struct Exchange {
    head: Option<Head>,
    sending: Sending,
    length: ResponseLength,
    /// The request is HEAD.
    is_head: bool,
    /// The response has no body: HEAD, or a 204 or 304 status (RFC 9110
    /// §6.4.1). What the application yields is not sent, and its
    /// Content-Length not enforced. HTTP/1.1 drops such a body when it
    /// writes the response; HTTP/2 (hyper) would send it in DATA frames.
    bodiless: bool,
    surplus_logged: bool,
    zero_copy: Option<Arc<SendQueue>>,
}

type Shared = Arc<Mutex<Exchange>>;

impl Exchange {
    fn sent(&self) -> bool {
        !matches!(self.sending, Sending::NotYet(_))
    }

    /// Send the pending head with a streamed body (or no body for HEAD).
    fn open_stream(&mut self) -> PyResult<()> {
        if self.sent() {
            return Ok(());
        }
        let head = self.head.take().ok_or_else(|| {
            PyAssertionError::new_err(
                "the application produced a body before calling start_response (PEP 3333)",
            )
        })?;
        let Sending::NotYet(reply) = std::mem::replace(&mut self.sending, Sending::Done) else {
            unreachable!()
        };
        if self.bodiless {
            reply.send(Response {
                status: head.status,
                headers: head.headers,
                body: ResponseBody::Empty,
                trailers: None,
            });
            return Ok(());
        }
        let (sink, body) = channel();
        if reply.send(Response {
            status: head.status,
            headers: head.headers,
            body: ResponseBody::Stream(body),
            trailers: None,
        }) {
            self.sending = Sending::Streaming(sink);
        }
        Ok(())
    }

    /// Send a complete response whose body is known now.
    fn send_full(&mut self, body: Bytes) -> PyResult<()> {
        let head = self.head.take().ok_or_else(|| {
            PyAssertionError::new_err(
                "the application returned without calling start_response (PEP 3333)",
            )
        })?;
        let Sending::NotYet(reply) = std::mem::replace(&mut self.sending, Sending::Done) else {
            return Err(PyRuntimeError::new_err("response already started"));
        };
        let body = if self.bodiless {
            ResponseBody::Empty
        } else {
            ResponseBody::full(body)
        };
        reply.send(Response {
            status: head.status,
            headers: head.headers,
            body,
            trailers: None,
        });
        Ok(())
    }

    /// Admit `chunk` under Content-Length and queue it. Returns what the channel
    /// said, or `None` when the response is now complete (or has no body).
    fn push(&mut self, chunk: Bytes, blocking: bool, py: Python<'_>) -> Option<Push> {
        let chunk = match self.length.admit(chunk.len()) {
            Admit::All => chunk,
            Admit::Truncate(n) => {
                self.log_surplus();
                chunk.slice(..n)
            }
            Admit::Complete => {
                // Nothing more may go out (Content-Length: 0 and a first
                // chunk that is all surplus): the response is complete. A
                // stream left open would be dropped, and HTTP/2 would reset
                // it (INTERNAL_ERROR) instead of ending it.
                self.log_surplus();
                self.finish();
                return None;
            }
        };
        let Sending::Streaming(sink) = &self.sending else {
            return None;
        };
        let pushed = if blocking {
            py.detach(|| sink.push_blocking(chunk))
        } else {
            sink.push(chunk)
        };
        if self.length.is_complete() {
            self.finish();
            return None;
        }
        Some(pushed)
    }

    /// The body is over: complete the response, or abort it when it is shorter
    /// than its Content-Length.
    fn finish(&mut self) {
        match std::mem::replace(&mut self.sending, Sending::Done) {
            Sending::Streaming(sink) => match self.length.finish() {
                Ok(()) => sink.finish(),
                Err(short) => {
                    log::error!(
                        target: "propylon.error",
                        "response body has {} bytes but Content-Length is {}; closing the connection",
                        short.sent,
                        short.declared
                    );
                    sink.abort("body shorter than Content-Length");
                }
            },
            other => self.sending = other,
        }
    }

    /// The application failed. Before anything was sent: an error response
    /// (413/400 for body errors it let through, else 500). After: abort.
    fn fail(&mut self, py: Python<'_>, err: &PyErr) {
        let status = types::get(py).map_or(500, |t| {
            if err.is_instance(py, t.too_large.bind(py)) {
                413
            } else if err.is_instance(py, t.invalid_body.bind(py))
                || err.is_instance(py, t.client_disconnected.bind(py))
            {
                400
            } else {
                500
            }
        });
        match std::mem::replace(&mut self.sending, Sending::Done) {
            Sending::NotYet(reply) => {
                let reason = StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Error");
                let (parts, body) = error_response(status, reason, status != 500).into_parts();
                reply.send(Response {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                    trailers: None,
                });
            }
            Sending::Streaming(sink) => sink.abort("application error after the response started"),
            Sending::Done => {}
        }
    }
}

impl Exchange {
    fn log_surplus(&mut self) {
        if std::mem::replace(&mut self.surplus_logged, true) {
            return;
        }
        log::warn!(
            target: "propylon.error",
            "the application produced more than its Content-Length of {} bytes; the surplus was not sent",
            self.length.declared().unwrap_or(0)
        );
    }
}

/// A status whose response has no content (RFC 9110 §15.3.5, §15.4.5).
fn no_content(status: StatusCode) -> bool {
    matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

// ---------------------------------------------------------------------------
// start_response and write (PEP 3333).

#[pyclass(module = "propylon._core", name = "StartResponse")]
pub struct StartResponse {
    exchange: Shared,
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
        let mut ex = self.exchange.lock().unwrap();
        match exc_info.filter(|e| !e.is_none()) {
            // PEP 3333: with exc_info after the headers were sent, re-raise.
            Some(info) if ex.sent() => return Err(PyErr::from_value(info.get_item(1)?)),
            Some(_) => {}
            None if ex.head.is_some() || ex.sent() => {
                return Err(PyAssertionError::new_err(
                    "start_response() called a second time without exc_info (PEP 3333)",
                ));
            }
            None => {}
        }
        let mut head = parse_head(py, status, headers)?;
        if head.status == StatusCode::NO_CONTENT {
            // RFC 9110 §8.6: never a Content-Length on a 204. HTTP/1.1 drops
            // it as it writes the head; hyper's HTTP/2 would send it.
            head.headers.remove(CONTENT_LENGTH);
            head.content_length = None;
        }
        ex.length = ResponseLength::new(head.content_length);
        ex.bodiless = ex.is_head || no_content(head.status);
        ex.head = Some(head);
        Ok(Write {
            exchange: self.exchange.clone(),
        })
    }
}

/// The `write()` callable returned by start_response: sends its argument at once
/// (after the head), waiting while the client is slow.
#[pyclass(module = "propylon._core", name = "Write")]
pub struct Write {
    exchange: Shared,
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
        let mut ex = self.exchange.lock().unwrap();
        ex.open_stream()?;
        if !data.as_bytes().is_empty() {
            ex.push(Bytes::copy_from_slice(data.as_bytes()), true, py);
        }
        Ok(())
    }
}

fn parse_head(
    py: Python<'_>,
    status: &Bound<'_, PyAny>,
    headers: &Bound<'_, PyAny>,
) -> PyResult<Head> {
    // Any other iterable runs Python code as it is iterated: collected
    // first, outside the caches' borrow (which that code could reach).
    let collected: Vec<Bound<'_, PyAny>>;
    let headers =
        if headers.is_exact_instance_of::<PyList>() || headers.is_exact_instance_of::<PyTuple>() {
            headers
        } else {
            collected = headers.try_iter()?.collect::<PyResult<_>>()?;
            &PyList::new(py, &collected)?.into_any()
        };
    let count = headers.len()?;
    // One look at the thread's caches for the whole head.
    CONVERTED.with_borrow_mut(|caches| {
        let status = caches.status(status)?;
        // Sized for the application's headers plus the two hyper's HTTP/2
        // server may add (`date`, `content-length`): a full map re-hashes
        // and reallocates as it grows (callgrind, HTTP/2 hello world: two
        // grows per response, ~1,750 instructions of ~39,000).
        let mut map = HeaderMap::with_capacity(count + 2);
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
            let header_name = caches.name(&name_obj)?;
            if header_name == CONTENT_LENGTH {
                let (n, value) = caches.length(&value_obj, &name_obj)?;
                if content_length.is_some_and(|m| m != n) {
                    return Err(PyValueError::new_err("conflicting Content-Length headers"));
                }
                content_length = Some(n);
                map.insert(CONTENT_LENGTH, value);
            } else {
                map.append(header_name, caches.value(&value_obj, &name_obj)?);
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
        Ok(Head {
            status,
            headers: map,
            content_length,
        })
    })
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
    /// A checked response status (`"200 OK"`), final (not 1xx).
    fn status(&mut self, status: &Bound<'_, PyAny>) -> PyResult<StatusCode> {
        let status: &Bound<'_, PyString> = status.cast().map_err(|_| {
            PyTypeError::new_err("status must be a str such as \"200 OK\" (PEP 3333)")
        })?;
        if let Some(code) = self.statuses.get(status) {
            return Ok(code);
        }
        let code =
            parse_status(&status.to_cow()?).map_err(|e| PyValueError::new_err(e.to_string()))?;
        if code < 200 {
            // 1xx are interim responses (RFC 9110 §15.2); a WSGI response is final.
            return Err(PyValueError::new_err(format!(
                "status {code} is informational (1xx) and cannot be a WSGI response"
            )));
        }
        let code = StatusCode::from_u16(code).map_err(|e| PyValueError::new_err(e.to_string()))?;
        self.statuses.put(status, code);
        Ok(code)
    }

    /// A checked response header name (a token, not hop-by-hop).
    fn name(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<HeaderName> {
        if let Ok(text) = obj.cast::<PyString>() {
            if let Some(name) = self.names.get(text) {
                return Ok(name);
            }
        }
        let name = header_text(obj)?;
        check_header_name(name).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let converted = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let Ok(text) = obj.cast::<PyString>() {
            self.names.put(text, converted.clone());
        }
        Ok(converted)
    }

    /// A checked Content-Length value: the number, and its wire form.
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
        check_header_value(header_text(name_obj)?, value)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let n = parse_content_length(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let converted = (n, HeaderValue::from(n));
        if let Ok(text) = obj.cast::<PyString>() {
            self.lengths.put(text, converted.clone());
        }
        Ok(converted)
    }

    /// A checked response header value (latin-1 without CTL), in its wire form.
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
        check_header_value(header_text(name_obj)?, value)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
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
// Running a call.

fn run(py: Python<'_>, app: &Py<PyAny>, environ: Environ, call: Box<Call>, pool: Arc<Pool>) {
    let Call {
        request,
        zero_copy,
        slot: connection,
        reply,
    } = *call;
    let Request { head, body, .. } = request;
    let is_head = head.method == Method::HEAD;
    let exchange: Shared = Arc::new(Mutex::new(Exchange {
        head: None,
        sending: Sending::NotYet(reply),
        length: ResponseLength::new(None),
        is_head,
        bodiless: is_head,
        surplus_logged: false,
        zero_copy,
    }));
    let result = (|| -> PyResult<Bound<'_, PyAny>> {
        // Taken out of the slot while in use, not used under its lock: Python
        // may switch threads inside (a garbage collection running finalizers),
        // and another call of this connection must not wait for the lock
        // while holding the GIL. That call then builds its own strings.
        let taken = connection.lock().take();
        let mut strings: Box<ConnStrings> =
            taken.and_then(|b| b.downcast().ok()).unwrap_or_default();
        let environ = environ_dict(py, environ, body, &mut strings);
        let replaced = connection.lock().replace(strings);
        drop(replaced);
        let environ = environ?;
        let start_response = Py::new(
            py,
            StartResponse {
                exchange: exchange.clone(),
            },
        )?;
        app.bind(py).call1((environ, start_response))
    })();
    match result {
        Err(err) => fail(py, &exchange, &err),
        Ok(result) => respond(py, result, exchange, pool),
    }
}

fn fail(py: Python<'_>, exchange: &Shared, err: &PyErr) {
    let disconnected =
        types::get(py).is_ok_and(|t| err.is_instance(py, t.client_disconnected.bind(py)));
    if disconnected {
        log::info!(target: "propylon.error", "request ended: {}", err.value(py));
    } else {
        types::log_error(py, "Error in WSGI application", err);
    }
    exchange.lock().unwrap().fail(py, err);
}

fn close(py: Python<'_>, result: &Bound<'_, PyAny>) {
    if let Ok(true) = result.hasattr(intern!(py, "close")) {
        if let Err(err) = result.call_method0(intern!(py, "close")) {
            types::log_error(py, "Error in the close() method of a WSGI response", &err);
        }
    }
}

fn respond(py: Python<'_>, result: Bound<'_, PyAny>, exchange: Shared, pool: Arc<Pool>) {
    if let Ok(t) = types::get(py) {
        if result.is_instance(t.file_wrapper.bind(py)).unwrap_or(false) {
            match send_file(py, &result, &exchange, &pool) {
                Ok(true) => return, // closed by the body when it is done
                Ok(false) => {}     // not a regular file: iterate it below
                Err(err) => {
                    fail(py, &exchange, &err);
                    close(py, &result);
                    return;
                }
            }
        }
    }
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        let sent = send_sequence(py, &result, &exchange);
        if let Err(err) = sent {
            fail(py, &exchange, &err);
        }
        return;
    }
    match result.try_iter() {
        Ok(iter) => Driver {
            result: result.clone().unbind(),
            iter: iter.unbind(),
            exchange,
            pool,
        }
        .pump(py),
        Err(err) => {
            let err = PyTypeError::new_err(format!(
                "the WSGI application returned a non-iterable {} ({})",
                result
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                err.value(py)
            ));
            fail(py, &exchange, &err);
            close(py, &result);
        }
    }
}

/// A list or tuple: all chunks are here, send them as one buffer.
fn send_sequence(py: Python<'_>, result: &Bound<'_, PyAny>, exchange: &Shared) -> PyResult<()> {
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
    let mut ex = exchange.lock().unwrap();
    if ex.sent() {
        // write() was used: the rest goes the streaming way.
        for c in chunks {
            ex.push(py_bytes(&c), true, py);
        }
        ex.finish();
        return Ok(());
    }
    // One chunk (the usual `[body]`): send the bytes object itself, no copy.
    let body = if chunks.len() == 1 {
        py_bytes(&chunks[0])
    } else {
        let mut body = Vec::with_capacity(total);
        for c in &chunks {
            body.extend_from_slice(c.as_bytes());
        }
        Bytes::from(body)
    };
    let declared = ex.length.declared();
    match declared {
        Some(n) if (n as usize) < body.len() => {
            ex.log_surplus();
            ex.send_full(body.slice(..n as usize))
        }
        Some(n) if (n as usize) > body.len() && !ex.bodiless => {
            // Too short: send what there is, then abort the response.
            ex.open_stream()?;
            ex.push(body, false, py);
            ex.finish();
            Ok(())
        }
        _ => ex.send_full(body),
    }
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

/// `wsgi.file_wrapper` over a regular file: send it from Rust. Returns false
/// when the file-like has no usable descriptor (then it is iterated instead).
fn send_file(
    py: Python<'_>,
    wrapper: &Bound<'_, PyAny>,
    exchange: &Shared,
    pool: &Arc<Pool>,
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
    let mut ex = exchange.lock().unwrap();
    if ex.sent() {
        return Ok(false);
    }
    let head = ex.head.as_mut().ok_or_else(|| {
        PyAssertionError::new_err(
            "the application returned a file_wrapper without calling start_response (PEP 3333)",
        )
    })?;
    // At most Content-Length bytes; a file shorter than that aborts the
    // response when it runs out (FileBody logs it). Without a Content-Length,
    // it is the rest of the file.
    let len = match head.content_length {
        Some(declared) => declared,
        // A 204 or 304 has no body, and no length is made up for it.
        None if no_content(head.status) => 0,
        None => {
            head.headers
                .insert(CONTENT_LENGTH, HeaderValue::from(available));
            available
        }
    };
    let head = ex.head.take().unwrap();
    let Sending::NotYet(reply) = std::mem::replace(&mut ex.sending, Sending::Done) else {
        unreachable!()
    };
    let wrapper = wrapper.clone().unbind();
    if ex.bodiless {
        reply.send(Response {
            status: head.status,
            headers: head.headers,
            body: ResponseBody::Empty,
            trailers: None,
        });
        close(py, wrapper.bind(py));
        return Ok(true);
    }
    // PEP 3333: close() once the response is complete (or abandoned), on a
    // pool thread, as for any iterable.
    let pool = pool.clone();
    let on_done = Box::new(move || {
        pool.submit_resumed(Box::new(move || {
            Python::attach(|py| close(py, wrapper.bind(py)))
        }));
    });
    let body = ResponseBody::File(Box::new(FileBody::new(
        file,
        position,
        len,
        ex.zero_copy.clone(),
        on_done,
    )));
    reply.send(Response {
        status: head.status,
        headers: head.headers,
        body,
        trailers: None,
    });
    Ok(true)
}

/// Iterates a response iterable, a chunk per `next()`, pausing while the client
/// is slow. Owns the iterable until it is closed.
struct Driver {
    result: Py<PyAny>,
    iter: Py<PyIterator>,
    exchange: Shared,
    pool: Arc<Pool>,
}

enum Step {
    Continue,
    Pause,
    Stop,
}

impl Driver {
    fn pump(self, py: Python<'_>) {
        loop {
            match self.step(py) {
                Ok(Step::Continue) => continue,
                Ok(Step::Pause) => return self.pause(),
                Ok(Step::Stop) => break,
                Err(err) => {
                    fail(py, &self.exchange, &err);
                    break;
                }
            }
        }
        close(py, self.result.bind(py));
    }

    fn step(&self, py: Python<'_>) -> PyResult<Step> {
        {
            let ex = self.exchange.lock().unwrap();
            if let Sending::Streaming(sink) = &ex.sending {
                if sink.is_closed() {
                    log::debug!(target: "propylon.server", "client went away; closing the response iterable");
                    return Ok(Step::Stop);
                }
            }
            if matches!(ex.sending, Sending::Done) && ex.head.is_none() {
                return Ok(Step::Stop);
            }
        }
        let next = self.iter.bind(py).clone().next();
        let mut ex = self.exchange.lock().unwrap();
        match next {
            None => {
                if !ex.sent() {
                    if ex.head.is_none() {
                        return Err(PyAssertionError::new_err(
                            "the WSGI response iterable ended without start_response being called (PEP 3333)",
                        ));
                    }
                    ex.open_stream()?;
                }
                ex.finish();
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
                ex.open_stream()?;
                if ex.bodiless {
                    return Ok(Step::Stop);
                }
                match ex.push(py_bytes(&bytes), false, py) {
                    Some(Push::Ready) => Ok(Step::Continue),
                    Some(Push::Full) => Ok(Step::Pause),
                    Some(Push::Closed) => Ok(Step::Stop),
                    None if ex.length.is_complete() && !ex.surplus_logged => {
                        // Content-Length is met: stop, but look once more so
                        // that an application producing more gets a log line.
                        drop(ex);
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
                self.exchange.lock().unwrap().log_surplus();
            }
        }
    }

    /// Free this thread; continue as a new pool job once the client drained.
    fn pause(self) {
        let exchange = self.exchange.clone();
        let ex = exchange.lock().unwrap();
        let Sending::Streaming(sink) = &ex.sending else {
            unreachable!("paused without a stream")
        };
        let pool = self.pool.clone();
        sink.pause(Box::new(move || {
            pool.submit_resumed(Box::new(move || Python::attach(|py| self.pump(py))));
        }));
    }
}

// ---------------------------------------------------------------------------
// The environ dict.

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
/// own values. About 1 KiB per connection that has made a request.
#[derive(Default)]
pub(crate) struct ConnStrings {
    template: Option<Py<PyDict>>,
    /// The template's SERVER_NAME and SERVER_PORT, and its peer.
    server_name: Option<Py<PyString>>,
    server_port: Option<Py<PyString>>,
    peer: Option<SocketAddr>,
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
    fn template<'py>(
        &mut self,
        py: Python<'py>,
        t: &types::Types,
        e: &Environ,
    ) -> PyResult<Bound<'py, PyDict>> {
        let template = match &self.template {
            Some(template) => template.bind(py).clone(),
            None => {
                let template = t.environ_template.bind(py).copy()?;
                let empty = intern!(py, "");
                let script_name = match e.script_name.as_bytes() {
                    [] => empty.clone(),
                    bytes => latin1_str(py, bytes)?,
                };
                template.set_item(intern!(py, "SCRIPT_NAME"), script_name)?;
                let scheme = if e.url_scheme == "https" {
                    intern!(py, "https")
                } else {
                    intern!(py, "http")
                };
                template.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
                // TLS variables belong to the connection (its handshake).
                for (key, value) in &e.tls {
                    template.set_item(*key, PyString::new(py, value))?;
                }
                if e.remote.is_none() {
                    template.set_item(intern!(py, "REMOTE_ADDR"), empty)?;
                    template.set_item(intern!(py, "REMOTE_PORT"), empty)?;
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
        if let Some(peer) = e.remote.filter(|p| self.peer != Some(*p)) {
            let addr = PyString::new(py, &environ::remote_addr_text(peer));
            let port = PyString::new(py, &environ::remote_port_text(peer));
            template.set_item(intern!(py, "REMOTE_ADDR"), addr)?;
            template.set_item(intern!(py, "REMOTE_PORT"), port)?;
            self.peer = Some(peer);
        }
        if self.protocol != e.server_protocol {
            let protocol = match e.server_protocol {
                "HTTP/1.1" => intern!(py, "HTTP/1.1"),
                "HTTP/2" => intern!(py, "HTTP/2"),
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

fn environ_dict<'py>(
    py: Python<'py>,
    e: Environ,
    body: BodyReader,
    strings: &mut ConnStrings,
) -> PyResult<Bound<'py, PyDict>> {
    let t = types::get(py)?;
    // The constant entries and the connection's values are copied from its
    // template (one table copy), the rest set one by one.
    let d = strings.template(py, t, &e)?.copy()?;
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

/// The constant part of every environ (PEP 3333 `wsgi.*` and WSGI 1.1).
pub fn environ_template<'py>(
    py: Python<'py>,
    t: &types::Constants,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("wsgi.version", t.wsgi_version.bind(py))?;
    d.set_item("wsgi.errors", t.error_stream.bind(py))?;
    d.set_item("wsgi.multithread", true)?;
    d.set_item("wsgi.multiprocess", false)?;
    d.set_item("wsgi.run_once", false)?;
    d.set_item("wsgi.input_terminated", true)?;
    d.set_item("wsgi.file_wrapper", t.file_wrapper.bind(py))?;
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
