//! The body wrapper that reports the end of a response: `Tracked` counts
//! the bytes sent and settles `OnEnd` when the response ends (or is
//! dropped: a client that went away still gets a line, with the bytes
//! actually sent). The connection uses the same progress for its idle
//! and send timers.
//!
//! What it does not do: format lines (`record`) or count series
//! (`metrics::recorder`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::record::AccessRecord;
use crate::runtime::metrics::recorder::Recorder;
use crate::runtime::timers::{InFlight, Progress};

/// What a response's end settles: its access-log line (when logging), its
/// count in the metrics (when counting), and the end of its request on the
/// connection (`Activity`).
pub(crate) struct OnEnd {
    pub(crate) record: Option<Box<AccessRecord>>,
    pub(crate) counted: Option<Counted>,
    /// Held, never read: dropped with this, it ends the request.
    #[allow(dead_code)]
    pub(crate) in_flight: InFlight,
}

/// A request being counted in the metrics: counted when its response ends.
pub(crate) struct Counted {
    recorder: Arc<Recorder>,
    version: http::Version,
    status: u16,
    started: Instant,
}

impl Counted {
    pub(crate) fn start(recorder: Arc<Recorder>, version: http::Version) -> Counted {
        Counted {
            recorder,
            version,
            status: 0,
            started: Instant::now(),
        }
    }

    pub(crate) fn with_status(mut self, status: u16) -> Counted {
        self.status = status;
        self
    }
}

pub(crate) struct Tracked<B> {
    inner: B,
    on_end: OnEnd,
    sent: u64,
    progress: Arc<Progress>,
}

impl<B> Tracked<B> {
    pub(crate) fn new(inner: B, progress: Arc<Progress>, on_end: OnEnd) -> Tracked<B> {
        Tracked {
            inner,
            on_end,
            sent: 0,
            progress,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                    this.progress.gave_data();
                }
            }
            _ => this.progress.waiting(),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        // The request ends when `on_end.in_flight` drops, just after this.
        if let Some(c) = &self.on_end.counted {
            c.recorder.request(c.version, c.status, c.started.elapsed());
        }
        if let Some(record) = &self.on_end.record {
            record.write(self.sent);
        }
    }
}
