//! The hand-off between the HTTP runtime and an application bridge.
//!
//! What it does: a `Call` is one request, ready for the application: its WSGI
//! environ values (plain Rust strings), its body reader, and a `Reply` through
//! which the bridge sends the response head exactly once. `Application` is what
//! a bridge implements: start a call on the pool, or give it back when full.
//!
//! What it does not do: any Python. The WSGI bridge in `crate::py` implements
//! `Application`; tests in this crate can implement it in plain Rust.

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard};

use http::{HeaderMap, StatusCode};
use tokio::sync::oneshot;

use super::request::body::BodyReader;
use super::request::response::ResponseBody;
use super::transport::sendfile::SendQueue;
use crate::proto::environ::Environ;

pub(crate) struct Call {
    pub(crate) environ: Environ,
    pub(crate) body: BodyReader,
    /// HEAD: the bridge sends the head and skips the body.
    pub(crate) is_head: bool,
    /// Set on plain-TCP HTTP/1.x connections: file bodies may use sendfile.
    pub(crate) zero_copy: Option<Arc<SendQueue>>,
    /// Shared by the calls of one connection (see `ConnectionSlot`).
    pub(crate) connection: Arc<ConnectionSlot>,
    pub(crate) reply: Reply,
}

/// Per-connection state that belongs to the application bridge, carried by
/// the runtime without looking inside: the WSGI bridge keeps there the str
/// objects of environ values that repeat on every request of a connection.
/// Dropped with the connection.
#[derive(Default)]
pub(crate) struct ConnectionSlot(Mutex<Option<Box<dyn Any + Send>>>);

impl ConnectionSlot {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<Box<dyn Any + Send>>> {
        // What a panicking holder left is still a valid cache.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) struct ResponseHead {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: ResponseBody,
}

/// Sends the response head to the connection task. Dropping it unsent answers
/// 500 (the bridge failed before it could say anything).
pub(crate) struct Reply {
    tx: oneshot::Sender<ResponseHead>,
}

impl Reply {
    pub(crate) fn new() -> (Reply, oneshot::Receiver<ResponseHead>) {
        let (tx, rx) = oneshot::channel();
        (Reply { tx }, rx)
    }

    /// False when the connection is already gone.
    pub(crate) fn send(self, head: ResponseHead) -> bool {
        self.tx.send(head).is_ok()
    }
}

/// The worker pool and its queue are full.
#[derive(Debug)]
pub(crate) struct Busy;

pub(crate) trait Application: Send + Sync + 'static {
    /// Start `call` on the worker pool, or refuse it when the pool's queue is
    /// full (the runtime answers 503). Boxed once where it is made: a call is
    /// several hundred bytes, and it is handed on twice more.
    fn dispatch(&self, call: Box<Call>) -> Result<(), Busy>;
}
