//! The hand-off between the HTTP runtime and an application bridge.
//!
//! What it does: a `Call` is one request, ready for the application: its WSGI
//! environ values (plain Rust strings), its body reader, and a `Reply` through
//! which the bridge sends the response head exactly once. `Application` is what
//! a bridge implements: start a call on the pool, or give it back when full.
//! `Queued` is how long a call may wait there: the runtime abandons a call no
//! pool thread has started within `--queue-timeout` (and answers 503), the
//! bridge drops an abandoned call unrun.
//!
//! What it does not do: any Python. The WSGI bridge in `crate::py` implements
//! `Application`; tests in this crate can implement it in plain Rust.

use std::any::Any;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use http::{HeaderMap, StatusCode};
use tokio::sync::oneshot;

use super::body::BodyReader;
use super::response::ResponseBody;
use super::sendfile::SendQueue;
use crate::proto::wsgi::environ::Environ;

pub struct Call {
    pub environ: Environ,
    pub body: BodyReader,
    /// HEAD: the bridge sends the head and skips the body.
    pub is_head: bool,
    /// Set on plain-TCP HTTP/1.x connections: file bodies may use sendfile.
    pub zero_copy: Option<Arc<SendQueue>>,
    /// Shared by the calls of one connection (see `ConnectionSlot`).
    pub connection: Arc<ConnectionSlot>,
    pub reply: Reply,
    /// The bridge calls `Queued::start` on the pool thread before anything
    /// else, and drops the call unrun when it says no.
    pub queued: Queued,
}

/// Where a call stands in the pool's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum QueueState {
    Waiting,
    /// A pool thread took it: the application runs.
    Started,
    /// It waited `--queue-timeout` (`ServerConfig::queue_timeout`): the
    /// runtime answered 503; the application never sees it.
    Abandoned,
}

/// A call's place in the queue, shared by the bridge, which starts it, and
/// the runtime, which abandons it when it has waited too long. Whichever
/// comes first decides: an abandoned call never reaches the application,
/// and a started one is never answered 503.
#[derive(Clone)]
pub struct Queued(Arc<AtomicU8>);

impl Queued {
    pub(crate) fn new() -> Queued {
        Queued(Arc::new(AtomicU8::new(QueueState::Waiting as u8)))
    }

    /// On the pool thread that took the call: true if the application may
    /// run it; false if the runtime has abandoned it (already answered).
    pub fn start(&self) -> bool {
        self.leave(QueueState::Started)
    }

    /// The call waited too long: true if it had not started (the runtime
    /// answers 503), false if a pool thread took it first.
    pub(crate) fn abandon(&self) -> bool {
        self.leave(QueueState::Abandoned)
    }

    fn leave(&self, to: QueueState) -> bool {
        self.0
            .compare_exchange(
                QueueState::Waiting as u8,
                to as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }
}

/// Per-connection state that belongs to the application bridge, carried by
/// the runtime without looking inside: the WSGI bridge keeps there the str
/// objects of environ values that repeat on every request of a connection.
/// Dropped with the connection.
#[derive(Default)]
pub struct ConnectionSlot(Mutex<Option<Box<dyn Any + Send>>>);

impl ConnectionSlot {
    pub fn lock(&self) -> MutexGuard<'_, Option<Box<dyn Any + Send>>> {
        // What a panicking holder left is still a valid cache.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ResponseBody,
}

/// Sends the response head to the connection task. Dropping it unsent answers
/// 500 (the bridge failed before it could say anything).
pub struct Reply {
    tx: oneshot::Sender<ResponseHead>,
}

impl Reply {
    pub(crate) fn new() -> (Reply, oneshot::Receiver<ResponseHead>) {
        let (tx, rx) = oneshot::channel();
        (Reply { tx }, rx)
    }

    /// False when the connection is already gone.
    pub fn send(self, head: ResponseHead) -> bool {
        self.tx.send(head).is_ok()
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The worker pool and its queue are full.
#[derive(Debug)]
pub struct Busy;

pub trait Application: Send + Sync + 'static {
    /// Start `call` on the worker pool, or refuse it when the pool's queue is
    /// full (the runtime answers 503). Boxed once where it is made: a call is
    /// several hundred bytes, and it is handed on twice more.
    fn dispatch(&self, call: Box<Call>) -> Result<(), Busy>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_call_is_either_started_or_abandoned() {
        let q = Queued::new();
        assert!(q.clone().start());
        assert!(!q.abandon(), "started first: not abandoned");
        let q = Queued::new();
        assert!(q.abandon());
        assert!(!q.start(), "abandoned first: never started");
        assert!(!q.abandon());
    }
}
