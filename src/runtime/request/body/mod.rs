//! Request bodies: what the application reads (`reader`), and where the own
//! HTTP/1.1 path's bodies come from (`socket`: read by the application's
//! thread; `channel`: read by the connection), small bodies read whole
//! before the call (`preread`), every body read whole before the call with
//! `--buffer-body` (`spool`, into memory or a temporary file: `spill`), and
//! the budgets of what those hold (`budget`).
//!
//! What it owns, shared by both: `BodyError`, and how much of a body left
//! unread is drained to keep a connection open.
//!
//! What it does not do: decide how a body is framed or decoded
//! (`proto::body::plan`), or read heads (`conn`).

use std::time::Duration;

mod budget;
mod channel;
mod deadline;
mod preread;
mod reader;
mod socket;
mod spill;
mod spool;

pub(crate) use budget::{DiskBudget, MemoryBudget, Reservation};
pub(crate) use channel::{channel, BodyFeed, ChannelBody, Message};
pub(crate) use deadline::BodyClock;
pub(crate) use preread::preread;
pub(crate) use reader::{BodyReader, H2Body, Source, UnreadWatch};
pub(crate) use socket::{BodySocket, Lease, SocketBody};
pub(crate) use spool::{spool, SpoolError, SpoolLimits};

/// The most of a request body the application left unread, and that is
/// still to come when its response is complete, that the connection waits
/// for (and discards) to stay open; with more, it closes. 1 MiB: the JSON
/// and form posts an application refuses without reading, not uploads.
pub(crate) const DRAIN_LIMIT: u64 = 1024 * 1024;

/// How long the connection waits for that rest (at most the header timeout:
/// the bytes it reads start that timer, as a head's would).
pub(crate) const DRAIN_TIME: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// The client went away (or stopped sending) before the body was complete.
    Disconnected(String),
    /// The body, raw or decoded, is larger than the configured maximum.
    TooLarge(u64),
    /// Bad chunked framing or an undecodable Content-Encoding.
    Invalid(String),
    /// The client sent the body slower, on average, than this many bytes
    /// a second once the grace period had passed (`preread::MinRate`).
    TooSlow(u64),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Disconnected(why) => write!(
                f,
                "client disconnected before the request body was complete ({why})"
            ),
            BodyError::TooLarge(max) => {
                write!(f, "request body is larger than the maximum of {max} bytes")
            }
            BodyError::Invalid(why) => write!(f, "invalid request body: {why}"),
            BodyError::TooSlow(rate) => write!(
                f,
                "the client sent the request body slower than the minimum of {rate} bytes/s"
            ),
        }
    }
}
impl std::error::Error for BodyError {}
