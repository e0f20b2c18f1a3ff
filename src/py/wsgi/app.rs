//! Calling a WSGI application (PEP 3333, WSGI 1.1) on the worker pool.
//!
//! Theory of operation. The runtime hands us a `Call` with a protocol-neutral
//! request; we build its environ values (`proto::wsgi::environ`) at once, on
//! the I/O thread, then on a pool thread the environ dict, call
//! `app(environ, start_response)` and look at the result:
//!
//! - a `propylon.FileWrapper` over a regular file: sent from Rust (`file`);
//! - an exact `list` or `tuple`: one buffer (`iterable::send_sequence`);
//! - any other iterable: driven a chunk at a time, the thread freed while
//!   the client is slow (`iterable::Driver`).
//!
//! The head goes out when the first non-empty chunk is ready, at the end of
//! the iterable, or at the first `write()` (PEP 3333 "Buffering and
//! Streaming"); Content-Length is enforced on every path. Those rules are
//! `proto::wsgi::response`'s; `response` carries them out.
//!
//! What it does not do: HTTP framing or I/O (the runtime's), or any rule.

use std::sync::{Arc, Mutex};

use http::Method;
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::early_hints::EarlyHints;
use super::environ::{environ_dict, ConnStrings};
use super::file::{file_wrapper_class, send_file};
use super::iterable::{close, send_sequence, Driver};
use super::response::{fail, OutgoingResponse, SharedResponse};
use super::start_response::StartResponse;
use crate::proto::request::HttpVersion;
use crate::proto::wsgi::environ::{self, Environ, EnvironInput};
use crate::runtime::endpoint::{Busy, Call, Endpoint, Request};
use crate::runtime::pool::{Pool, Task};
use crate::runtime::transport::sendfile::SendQueue;

/// A WSGI application, called on `pool`.
pub(crate) struct WsgiApp {
    app: Arc<Py<PyAny>>,
    pool: Arc<Pool>,
    /// `--root-path`: the SCRIPT_NAME every request's path starts with.
    root_path: String,
}

impl WsgiApp {
    pub(crate) fn new(app: Py<PyAny>, pool: Arc<Pool>, root_path: String) -> WsgiApp {
        WsgiApp {
            app: Arc::new(app),
            pool,
            root_path,
        }
    }
}

impl Endpoint for WsgiApp {
    fn dispatch(&self, mut call: Box<Call>) -> Result<(), Busy> {
        // The environ values are made here, on the I/O thread, and the
        // request's head (its header map, its target) is freed here too: the
        // pool thread, which holds the GIL, only turns the values into the
        // dict.
        let environ = environ_values(&call.request, &self.root_path);
        let head = &mut call.request.head;
        let is_head = head.method == Method::HEAD;
        drop(std::mem::take(&mut head.headers));
        drop(std::mem::take(&mut head.target));
        let queued = call.queued.clone();
        // One allocation for the pool's job and everything it needs: the
        // pool thread runs it in place (`Task::run` takes the box).
        let job = Box::new(WsgiCall {
            app: self.app.clone(),
            pool: self.pool.clone(),
            call,
            environ,
            is_head,
        });
        self.pool.try_submit_queued(job, queued).map_err(|_| Busy)
    }
}

/// What the pool thread needs of a call: the application, the call (its
/// head already freed) and the environ values.
struct WsgiCall {
    app: Arc<Py<PyAny>>,
    pool: Arc<Pool>,
    call: Box<Call>,
    environ: Environ,
    is_head: bool,
}

impl Task for WsgiCall {
    fn run(self: Box<Self>) {
        Python::attach(|py| run(py, self))
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
        forwarded: connection.forwarded.as_deref(),
    });
    if let Some(tls) = &connection.tls {
        environ.tls =
            environ::tls_variables(&tls.protocol, &tls.cipher, tls.client_cert_pem.as_deref());
    }
    environ
}

fn run(py: Python<'_>, call: Box<WsgiCall>) {
    // Fields moved out one by one; the environ values are read in place.
    let WsgiCall {
        app,
        pool,
        call,
        ref environ,
        is_head,
    } = *call;
    let body = call.request.body;
    let zero_copy = call.zero_copy;
    let connection = call.slot;
    let reply = call.reply;
    let interim = call.interim;
    let response: SharedResponse = Arc::new(Mutex::new(OutgoingResponse::new(reply, is_head)));
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
        let hints = EarlyHints::new(interim, response.clone());
        environ.set_item(intern!(py, "propylon.early_hints"), Py::new(py, hints)?)?;
        let start_response = Py::new(py, StartResponse::new(response.clone()))?;
        app.bind(py).call1((environ, start_response))
    })();
    match result {
        Err(err) => fail(py, &response, &err),
        Ok(result) => respond(py, result, response, pool, zero_copy),
    }
}

fn respond(
    py: Python<'_>,
    result: Bound<'_, PyAny>,
    response: SharedResponse,
    pool: Arc<Pool>,
    zero_copy: Option<Arc<SendQueue>>,
) {
    if let Ok(class) = file_wrapper_class(py) {
        if result.is_instance(class.bind(py)).unwrap_or(false) {
            match send_file(py, &result, &response, &pool, zero_copy) {
                Ok(true) => return, // closed by the body when it is done
                Ok(false) => {}     // not a regular file: iterate it below
                Err(err) => {
                    fail(py, &response, &err);
                    close(py, &result);
                    return;
                }
            }
        }
    }
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        let sent = send_sequence(py, &result, &response);
        if let Err(err) = sent {
            fail(py, &response, &err);
        }
        return;
    }
    match result.try_iter() {
        Ok(iter) => Driver::new(result.clone().unbind(), iter.unbind(), response, pool).pump(py),
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
            fail(py, &response, &err);
            close(py, &result);
        }
    }
}
