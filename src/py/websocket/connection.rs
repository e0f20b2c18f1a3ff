//! `propylon._core.WebSocketConnection`: one WebSocket as the application
//! sees it (docs/spec/websocket.md), the sync variant.
//!
//! What it does: holds the handshake's facts (path, query, fields, offered
//! subprotocols and extensions, client, scheme, HTTP version), answers the
//! handshake (`accept`, `reject`; implicitly accepted by the first
//! `receive`, `send` or `close`), and moves messages over the session's
//! `Link`: `receive` and `send` wait in Rust with the interpreter released
//! (`link::wait`); `receive_nowait`/`send_nowait` never wait, and
//! `receive_or_wait`/`send_or_wait` arm an asyncio future (`aio`) for the
//! async variant (`propylon.websocket_serving.AsyncWebSocket`), which is
//! built on these. Every method may be called from any thread.
//!
//! What it does not do: frames or timers (`runtime::websocket::session`),
//! or run handlers (`super` and `propylon.websocket_serving`).

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::aio::{FutureWaker, LoopBridge};
use super::imported;
use crate::proto::websocket::message::{check_close, is_normal_close, INTERNAL_ERROR};
use crate::runtime::pool;
use crate::runtime::websocket::link::{wait, Closed, Data, Link};
use crate::runtime::websocket::{Answer, Handshake, Opening};

/// Where the handshake is.
enum Answering {
    Pending(Handshake),
    Accepted,
    Rejected,
}

#[pyclass(module = "propylon._core", name = "WebSocketConnection", frozen)]
pub(crate) struct Connection {
    #[pyo3(get)]
    path: Py<PyString>,
    #[pyo3(get)]
    query_string: Py<PyBytes>,
    #[pyo3(get)]
    headers: Py<PyList>,
    #[pyo3(get)]
    subprotocols: Py<PyList>,
    #[pyo3(get)]
    extensions: Py<PyList>,
    #[pyo3(get)]
    client: Option<Py<PyTuple>>,
    #[pyo3(get)]
    scheme: &'static str,
    #[pyo3(get)]
    http_version: &'static str,
    offered: Vec<String>,
    answering: Mutex<Answering>,
    subprotocol: Mutex<Option<String>>,
    link: Link,
    /// The worker's event loop bridge, for the async variant's waits.
    bridge: Option<Arc<LoopBridge>>,
}

impl Connection {
    pub(crate) fn new(
        py: Python<'_>,
        opening: Opening,
        bridge: Option<Arc<LoopBridge>>,
    ) -> PyResult<Connection> {
        let Opening {
            target,
            headers,
            subprotocols,
            extensions,
            http2,
            tls,
            peer,
            handshake,
            link,
        } = opening;
        // Percent-decoded, then UTF-8 with `surrogateescape` (as WSGI's and
        // ASGI's servers decode paths): no byte of the path is lost.
        let raw_path: Vec<u8> = percent_encoding::percent_decode_str(target.path()).collect();
        let path = PyString::from_encoded_object(
            &PyBytes::new(py, &raw_path),
            Some(c"utf-8"),
            Some(c"surrogateescape"),
        )?;
        let fields = PyList::empty(py);
        for (name, value) in &headers {
            let value: String = value.as_bytes().iter().map(|&b| b as char).collect();
            fields.append((name.as_str(), value))?;
        }
        let client = match peer {
            Some(addr) => Some(
                PyTuple::new(
                    py,
                    [
                        addr.ip().to_string().into_pyobject(py)?.into_any(),
                        addr.port().into_pyobject(py)?.into_any(),
                    ],
                )?
                .unbind(),
            ),
            None => None,
        };
        Ok(Connection {
            path: path.unbind(),
            query_string: PyBytes::new(py, target.query().unwrap_or("").as_bytes()).unbind(),
            headers: fields.unbind(),
            subprotocols: PyList::new(py, &subprotocols)?.unbind(),
            extensions: PyList::new(py, &extensions)?.unbind(),
            client,
            scheme: if tls { "wss" } else { "ws" },
            http_version: if http2 { "2" } else { "1.1" },
            offered: subprotocols,
            answering: Mutex::new(Answering::Pending(handshake)),
            subprotocol: Mutex::new(None),
            link,
            bridge,
        })
    }

    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    /// Answer the handshake, unless it is answered; false when it was.
    fn answer(&self, answer: Answer) -> bool {
        let accept = matches!(answer, Answer::Accept { .. });
        let handshake = {
            let mut answering = self.answering.lock().unwrap();
            if !matches!(*answering, Answering::Pending(_)) {
                return false;
            }
            let next = match accept {
                true => Answering::Accepted,
                false => Answering::Rejected,
            };
            match std::mem::replace(&mut *answering, next) {
                Answering::Pending(handshake) => handshake,
                _ => unreachable!("checked above"),
            }
        };
        if !handshake.answer(answer) || !accept {
            // The client is gone, or there is no connection to come.
            self.link.finish(Closed::abnormal());
        }
        true
    }

    /// Accept with no subprotocol if nothing answered the handshake yet;
    /// fails when it was rejected.
    fn implicit_accept(&self) -> PyResult<()> {
        let pending = matches!(*self.answering.lock().unwrap(), Answering::Pending(_));
        if pending {
            self.answer(Answer::Accept {
                subprotocol: None,
                headers: Vec::new(),
            });
        }
        match *self.answering.lock().unwrap() {
            Answering::Rejected => Err(PyRuntimeError::new_err(
                "the WebSocket handshake was rejected",
            )),
            _ => Ok(()),
        }
    }

    fn closed_error(&self, py: Python<'_>, closed: Closed) -> PyErr {
        match imported(py) {
            Ok(i) => match i.closed.bind(py).call1((closed.code, closed.reason)) {
                Ok(value) => PyErr::from_value(value),
                Err(e) => e,
            },
            Err(e) => e,
        }
    }

    fn received(&self, py: Python<'_>, got: Result<Data, Closed>) -> PyResult<Py<PyAny>> {
        match got {
            Ok(Data::Text(text)) => {
                // Checked as it arrived (proto::websocket::message).
                let text = std::str::from_utf8(&text).expect("a text message is UTF-8");
                Ok(PyString::new(py, text).into_any().unbind())
            }
            Ok(Data::Binary(data)) => Ok(PyBytes::new(py, &data).into_any().unbind()),
            Err(closed) => Err(self.closed_error(py, closed)),
        }
    }
}

/// For the loop's drain (`aio::Take`): the next message of the connection
/// `source`, or its close as `WebSocketClosed`; None (with `waker` armed)
/// while neither is here.
fn take_message(source: &Bound<'_, PyAny>, waker: &Waker) -> Option<PyResult<Py<PyAny>>> {
    let connection = match source.cast::<Connection>() {
        Ok(connection) => connection.get(),
        Err(e) => return Some(Err(e.into())),
    };
    match connection
        .link
        .poll_receive(&mut Context::from_waker(waker))
    {
        Poll::Ready(got) => Some(connection.received(source.py(), got)),
        Poll::Pending => None,
    }
}

fn not_on_a_loop() -> PyErr {
    PyRuntimeError::new_err("this WebSocket is not served on an event loop")
}

/// The thread the worker's event loop runs on (`propylon.lifecycle.LOOP_THREAD`).
const LOOP_THREAD: &str = "propylon-loop";

/// A wait of the sync variant would stop the event loop: refused there.
fn refuse_on_loop() -> PyResult<()> {
    match std::thread::current().name() {
        Some(LOOP_THREAD) => Err(PyRuntimeError::new_err(
            "the sync WebSocket connection cannot wait on the event loop's thread; \
             use the async variant there",
        )),
        _ => Ok(()),
    }
}

/// From this size on, a `str` or `bytes` message is sent from the Python
/// object's own buffer (kept alive until written) instead of a copy. Below
/// it, a copy costs less than the reference to release afterwards.
const BORROWED_MESSAGE: usize = 4096;

/// A message to send: `str` as text, any bytes-like object as binary.
fn outgoing(data: &Bound<'_, PyAny>) -> PyResult<Data> {
    if let Ok(text) = data.cast::<PyString>() {
        let utf8 = text.to_str()?.as_bytes();
        if utf8.len() < BORROWED_MESSAGE {
            return Ok(Data::Text(Bytes::copy_from_slice(utf8)));
        }
        let backed = PyBackedStr::try_from(text.clone())?;
        return Ok(Data::Text(Bytes::from_owner(backed)));
    }
    if let Ok(bytes) = data.cast::<PyBytes>() {
        if bytes.as_bytes().len() < BORROWED_MESSAGE {
            return Ok(Data::Binary(Bytes::copy_from_slice(bytes.as_bytes())));
        }
        return Ok(Data::Binary(Bytes::from_owner(PyBackedBytes::from(
            bytes.clone(),
        ))));
    }
    match data.extract::<Vec<u8>>() {
        Ok(bytes) if !data.is_instance_of::<PyList>() => Ok(Data::Binary(Bytes::from(bytes))),
        _ => Err(PyTypeError::new_err(format!(
            "a WebSocket message is str or bytes, not {}",
            data.get_type().name()?
        ))),
    }
}

/// Response fields given to `accept` or `reject`: `(name, value)` pairs.
fn fields(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(HeaderName, HeaderValue)>> {
    let mut out = Vec::new();
    for item in headers.try_iter()? {
        let (name, value): (String, String) = item?.extract()?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| PyValueError::new_err(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| PyValueError::new_err(format!("invalid value for header {name}")))?;
        out.push((name, value));
    }
    Ok(out)
}

#[pymethods]
impl Connection {
    /// The subprotocol accepted, if any.
    #[getter]
    fn subprotocol(&self) -> Option<String> {
        self.subprotocol.lock().unwrap().clone()
    }

    /// Whether the handshake is answered (accepted or rejected).
    #[getter]
    fn answered(&self) -> bool {
        !matches!(*self.answering.lock().unwrap(), Answering::Pending(_))
    }

    /// Whether the handshake was accepted.
    #[getter]
    fn accepted(&self) -> bool {
        matches!(*self.answering.lock().unwrap(), Answering::Accepted)
    }

    /// `(code, reason)` once the connection is closed, else None.
    #[getter]
    fn closed(&self) -> Option<(u16, String)> {
        self.link.closed().map(|c| (c.code, c.reason))
    }

    #[pyo3(signature = (subprotocol=None, headers=None))]
    fn accept(
        &self,
        subprotocol: Option<String>,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if let Some(name) = &subprotocol {
            if !self.offered.iter().any(|offered| offered == name) {
                return Err(PyValueError::new_err(format!(
                    "subprotocol {name:?} was not offered by the client (offered: {:?})",
                    self.offered
                )));
            }
        }
        let headers = match headers {
            Some(h) => fields(h)?,
            None => Vec::new(),
        };
        *self.subprotocol.lock().unwrap() = subprotocol.clone();
        if !self.answer(Answer::Accept {
            subprotocol,
            headers,
        }) {
            return Err(PyRuntimeError::new_err(
                "the WebSocket handshake is already answered",
            ));
        }
        Ok(())
    }

    #[pyo3(signature = (status=403, headers=None, body=None))]
    fn reject(
        &self,
        status: u16,
        headers: Option<&Bound<'_, PyAny>>,
        body: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if !(400..=599).contains(&status) {
            return Err(PyValueError::new_err(format!(
                "a rejected WebSocket handshake is answered 400-599, not {status}"
            )));
        }
        let status = StatusCode::from_u16(status).expect("400-599 is a status");
        let headers = match headers {
            Some(h) => fields(h)?,
            None => Vec::new(),
        };
        let body = match body {
            Some(b) => Bytes::from(b.extract::<Vec<u8>>()?),
            None => Bytes::new(),
        };
        if !self.answer(Answer::Reject {
            status,
            headers,
            body,
        }) {
            return Err(PyRuntimeError::new_err(
                "the WebSocket handshake is already answered",
            ));
        }
        Ok(())
    }

    /// The handler failed: 500 for an unanswered handshake, else a close
    /// with 1011.
    pub(crate) fn fail(&self) {
        let pending = {
            let mut answering = self.answering.lock().unwrap();
            match std::mem::replace(&mut *answering, Answering::Rejected) {
                Answering::Pending(handshake) => Some(handshake),
                other => {
                    *answering = other;
                    None
                }
            }
        };
        match pending {
            Some(handshake) => {
                // Dropped unanswered: the runtime answers 500.
                drop(handshake);
                self.link.finish(Closed::abnormal());
            }
            None => {
                self.link.close(INTERNAL_ERROR, "internal error".to_owned());
            }
        }
    }

    /// The next message; waits (without the GIL).
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        refuse_on_loop()?;
        self.implicit_accept()?;
        let got = self.wait_receive(py);
        self.received(py, got)
    }

    /// The next message if one is here, else None.
    fn receive_nowait(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.implicit_accept()?;
        match self
            .link
            .poll_receive(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(got) => self.received(py, got).map(Some),
            Poll::Pending => Ok(None),
        }
    }

    /// The next message if one is here; else None, and `future` (an asyncio
    /// future of the worker's loop) gets the next message as its result (or
    /// the close, as its exception) when it comes.
    fn receive_or_wait(slf: &Bound<'_, Self>, future: Py<PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let this = slf.get();
        this.implicit_accept()?;
        let bridge = this.bridge.clone().ok_or_else(not_on_a_loop)?;
        let source = slf.clone().into_any();
        let waker = FutureWaker::deliver(bridge, future, source.clone().unbind(), take_message);
        take_message(&source, &waker).transpose()
    }

    /// Send `data`; waits (without the GIL) while the send queue is full.
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        refuse_on_loop()?;
        self.implicit_accept()?;
        let mut data = Some(outgoing(data)?);
        let link = &self.link;
        // Without letting go of the interpreter while there is room.
        let sent = match link.poll_send(&mut Context::from_waker(Waker::noop()), &mut data) {
            Poll::Ready(sent) => sent,
            Poll::Pending => {
                py.detach(|| pool::blocking(|| wait(|cx| link.poll_send(cx, &mut data))))
            }
        };
        sent.map_err(|closed| self.closed_error(py, closed))
    }

    /// Queue `data` if there is room; False when the send queue is full.
    fn send_nowait(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.implicit_accept()?;
        let mut data = Some(outgoing(data)?);
        match self
            .link
            .poll_send(&mut Context::from_waker(Waker::noop()), &mut data)
        {
            Poll::Ready(sent) => sent.map(|()| true).map_err(|c| self.closed_error(py, c)),
            Poll::Pending => Ok(false),
        }
    }

    /// Queue `data` if there is room (True); else False, and `future` gets a
    /// result when there may be.
    fn send_or_wait(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        future: Py<PyAny>,
    ) -> PyResult<bool> {
        self.implicit_accept()?;
        let mut data = Some(outgoing(data)?);
        let waker = self.future_waker(future)?;
        match self
            .link
            .poll_send(&mut Context::from_waker(&waker), &mut data)
        {
            Poll::Ready(sent) => sent.map(|()| true).map_err(|c| self.closed_error(py, c)),
            Poll::Pending => Ok(false),
        }
    }

    /// Start the close handshake; nothing when closed or closing already.
    #[pyo3(signature = (code=1000, reason=""))]
    fn close(&self, code: u16, reason: &str) -> PyResult<()> {
        let reason = reason.to_owned();
        check_close(code, &reason).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let pending = matches!(*self.answering.lock().unwrap(), Answering::Pending(_));
        if pending {
            self.answer(Answer::Accept {
                subprotocol: None,
                headers: Vec::new(),
            });
        }
        self.link.close(code, reason);
        Ok(())
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next message; the iteration ends at a normal close (1000, 1001,
    /// 1005), any other close raises `WebSocketClosed`.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        refuse_on_loop()?;
        self.implicit_accept()?;
        match self.wait_receive(py) {
            Err(closed) if is_normal_close(closed.code) => Ok(None),
            got => self.received(py, got).map(Some),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<WebSocketConnection {} {}>",
            self.scheme,
            self.path.bind(py).to_string_lossy()
        )
    }
}

impl Connection {
    /// The next message or the end, waiting without the interpreter only
    /// when none is here.
    fn wait_receive(&self, py: Python<'_>) -> Result<Data, Closed> {
        let link = &self.link;
        match link.poll_receive(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(got) => got,
            Poll::Pending => py.detach(|| pool::blocking(|| wait(|cx| link.poll_receive(cx)))),
        }
    }

    fn future_waker(&self, future: Py<PyAny>) -> PyResult<Waker> {
        let bridge = self.bridge.clone().ok_or_else(not_on_a_loop)?;
        Ok(FutureWaker::resolve(bridge, future))
    }
}
