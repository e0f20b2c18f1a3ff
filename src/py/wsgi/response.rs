//! The bridge's half of a WSGI response: carries out what the state machine
//! (`proto::wsgi::response`) decides, on the runtime's `Reply` and body
//! channel, and turns its refusals into Python exceptions.
//!
//! What it does not do: decide anything (the state machine does), convert the
//! application's objects (`head`, `iterable`, `file`), or call the
//! application (`app`). `start_response`, `write()` and the iterable's driver
//! share one `OutgoingResponse` behind a mutex.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pyo3::exceptions::PyAssertionError;
use pyo3::prelude::*;

use crate::proto::wsgi::response::{
    Admitted, Failed, FailureCause, Finished, Head, Open, ResponseState, Violation,
};
use crate::py::errors::{self, BodyErrorClass};
use crate::runtime::endpoint::{Reply, Response};
use crate::runtime::request::response::{channel, ChunkSink, Push, ResponseBody};
use crate::runtime::request::service::error_response;

/// One application call's response on its way out: its state, with the
/// handles it is sent on.
pub(crate) struct OutgoingResponse {
    pub(crate) state: ResponseState<Reply, ChunkSink>,
}

/// What `start_response`, `write()` and the iterable's driver share.
pub(crate) type SharedResponse = Arc<Mutex<OutgoingResponse>>;

/// The `AssertionError` for something PEP 3333 forbids.
pub(crate) fn violation(v: Violation) -> PyErr {
    PyAssertionError::new_err(v.to_string())
}

/// Sends `head` with `body`; false when the connection is gone.
#[inline]
pub(crate) fn send_head(reply: Reply, head: Head, body: ResponseBody) -> bool {
    reply.send(Response {
        status: head.status,
        headers: head.headers,
        body,
        trailers: None,
    })
}

impl OutgoingResponse {
    pub(crate) fn new(reply: Reply, head_request: bool) -> OutgoingResponse {
        OutgoingResponse {
            state: ResponseState::new(reply, head_request),
        }
    }

    /// Sends the head with a streamed body (or alone, for a response
    /// without content) unless it is out already.
    pub(crate) fn open_stream(&mut self) -> PyResult<()> {
        let open = self.state.open().map_err(violation)?;
        self.send_open(open);
        Ok(())
    }

    /// The iterable ended: the head goes out now if it has not.
    pub(crate) fn open_at_end(&mut self) -> PyResult<()> {
        let open = self.state.open_at_end().map_err(violation)?;
        self.send_open(open);
        Ok(())
    }

    fn send_open(&mut self, open: Open<Reply>) {
        match open {
            Open::Sent => {}
            Open::Bodiless(reply, head) => {
                send_head(reply, head, ResponseBody::Empty);
            }
            Open::Stream(reply, head) => {
                let (sink, body) = channel();
                if send_head(reply, head, ResponseBody::Stream(body)) {
                    self.state.streaming(sink);
                }
            }
        }
    }

    /// Admit `chunk` under Content-Length and queue it. Returns what the channel
    /// said, or `None` when the response is now complete (or has no body).
    pub(crate) fn push(&mut self, chunk: Bytes, blocking: bool, py: Python<'_>) -> Option<Push> {
        let pushed = match self.state.admit(chunk.len()) {
            Admitted::Send { sink, len, last } => {
                let chunk = if len < chunk.len() {
                    chunk.slice(..len)
                } else {
                    chunk
                };
                let pushed = if blocking {
                    py.detach(|| sink.push_blocking(chunk))
                } else {
                    sink.push(chunk)
                };
                (!last).then_some(pushed)
            }
            Admitted::Finish => None,
            Admitted::Discard => {
                self.report_surplus();
                return None;
            }
        };
        self.report_surplus();
        if pushed.is_none() {
            self.finish();
        }
        pushed
    }

    /// The body is over: complete the response, or abort it when it is shorter
    /// than its Content-Length.
    pub(crate) fn finish(&mut self) {
        match self.state.finish() {
            Finished::Complete(sink) => sink.finish(),
            Finished::Short(sink, short) => {
                log::error!(
                    target: "propylon.error",
                    "response body has {} bytes but Content-Length is {}; closing the connection",
                    short.sent,
                    short.declared
                );
                sink.abort("body shorter than Content-Length");
            }
            Finished::Nothing => {}
        }
    }

    /// Logs, once, that the application produced more than its
    /// Content-Length.
    #[inline]
    pub(crate) fn report_surplus(&mut self) {
        if let Some(declared) = self.state.take_surplus_report() {
            log::warn!(
                target: "propylon.error",
                "the application produced more than its Content-Length of {declared} bytes; the surplus was not sent"
            );
        }
    }

    /// Before anything was sent: an error response. After: abort.
    fn fail(&mut self, cause: FailureCause) {
        match self.state.fail(cause) {
            Failed::Answer {
                reply,
                status,
                close,
            } => {
                let reason = status.canonical_reason().unwrap_or("Error");
                let (parts, body) = error_response(status.as_u16(), reason, close).into_parts();
                reply.send(Response {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                    trailers: None,
                });
            }
            Failed::Abort(sink) => sink.abort("application error after the response started"),
            Failed::Nothing => {}
        }
    }
}

/// The application failed with `err`: log it, and answer or abort. A body
/// error it let through answers 413, 408 or 400, anything else 500.
pub(crate) fn fail(py: Python<'_>, response: &SharedResponse, err: &PyErr) {
    let disconnected = errors::is_body_error(py, err, BodyErrorClass::ClientDisconnected);
    if disconnected {
        log::info!(target: "propylon.error", "request ended: {}", err.value(py));
    } else {
        errors::log_error(py, "Error in WSGI application", err);
    }
    let cause = if errors::is_body_error(py, err, BodyErrorClass::RequestBodyTooLarge) {
        FailureCause::RequestBodyTooLarge
    } else if errors::is_body_error(py, err, BodyErrorClass::RequestBodyTooSlow) {
        FailureCause::RequestBodyTooSlow
    } else if disconnected || errors::is_body_error(py, err, BodyErrorClass::InvalidRequestBody) {
        FailureCause::RequestBodyBroken
    } else {
        FailureCause::Application
    };
    response.lock().unwrap().fail(cause);
}
