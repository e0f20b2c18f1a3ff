//! Response bodies handed to the connection (the HTTP/1.x loop `conn::h1`,
//! HTTP/2's `conn::h2`), and the channel that feeds them from the
//! application side.
//!
//! What it does: `ResponseBody` is the one body type the server returns: empty,
//! a complete buffer, a file read in Rust (`pread`, no Python, no GIL), or a
//! stream fed through a bounded `channel()`. The channel's producer never blocks
//! a pool thread on a slow client: `ChunkSink::push` reports `Full` above the high
//! watermark, the producer then `pause`s with a resume callback, and the consumer
//! (the connection polling the body) calls it once the queue drains below the low
//! watermark.
//!
//! What it does not do: enforce Content-Length (the producer does that with
//! `proto::length::ResponseLength`), or know about Python.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use crate::runtime::transport::sendfile::SendQueue;

/// Above this many queued bytes the producer is told to stop (a client that
/// reads slowly costs at most this much memory per response).
const HIGH_WATERMARK: usize = 256 * 1024;
/// The producer is resumed once the queue drains to this many bytes.
const LOW_WATERMARK: usize = 64 * 1024;
/// Block size for file bodies: large reads keep syscalls per MiB low (Granian
/// and nginx's `sendfile_max_chunk` use similar sizes).
const FILE_BLOCK: usize = 256 * 1024;
/// Chunks shorter than this that are queued together go out as one buffer
/// (a copy), up to `COALESCED` bytes: an application that yields rows or
/// lines costs one write (one HTTP/2 DATA frame) per batch, not per chunk.
/// Longer chunks go as they are, without a copy.
const SMALL_CHUNK: usize = 4 * 1024;
const COALESCED: usize = 64 * 1024;

/// The error a body reports to abort the response: the connection closes
/// (HTTP/1.1), or the stream is reset with INTERNAL_ERROR (HTTP/2).
#[derive(Debug)]
pub(crate) struct Aborted(pub &'static str);

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "response aborted: {}", self.0)
    }
}
impl std::error::Error for Aborted {}

/// An endpoint's trailer fields, carried in the response's extensions to
/// the connection that sends them (HTTP/2: a HEADERS frame after the body,
/// RFC 9113 §8.1; HTTP/1.1: the trailer section of a chunked body, RFC 9112
/// §7.1.2).
#[derive(Clone)]
pub(crate) struct Trailers(pub(crate) http::HeaderMap);

pub(crate) enum ResponseBody {
    Empty,
    Full(Option<Bytes>),
    Stream(StreamBody),
    /// Boxed: a response body is held by every connection that sends one
    /// (and moved a few times per request); a file body is the large one.
    File(Box<FileBody>),
}

impl ResponseBody {
    pub(crate) fn full(data: Bytes) -> ResponseBody {
        if data.is_empty() {
            ResponseBody::Empty
        } else {
            ResponseBody::Full(Some(data))
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        match self.get_mut() {
            ResponseBody::Empty => Poll::Ready(None),
            ResponseBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResponseBody::Stream(s) => s.poll_chunk(cx).map(|o| o.map(|r| r.map(Frame::data))),
            ResponseBody::File(f) => f.poll_chunk(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Empty => true,
            ResponseBody::Full(data) => data.is_none(),
            ResponseBody::Stream(_) => false,
            ResponseBody::File(f) => f.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Empty => SizeHint::with_exact(0),
            ResponseBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ResponseBody::Stream(_) => SizeHint::default(),
            ResponseBody::File(f) => SizeHint::with_exact(f.remaining),
        }
    }
}

// ---------------------------------------------------------------------------
// Stream: a bounded channel from a producer (a pool thread) to the connection.

struct ChanState {
    queue: VecDeque<Bytes>,
    queued: usize,
    end: Option<Result<(), &'static str>>,
    consumer: Option<Waker>,
    consumer_gone: bool,
    resume: Option<Box<dyn FnOnce() + Send>>,
}

struct Chan {
    state: Mutex<ChanState>,
    space: Condvar,
}

/// The producer's end.
pub(crate) struct ChunkSink {
    chan: Arc<Chan>,
}

/// The consumer's end, polled by the connection.
pub(crate) struct StreamBody {
    chan: Arc<Chan>,
    flush_first: FlushFirst,
}

/// Reports an abort only on a poll after the one that returned the last data,
/// so the connection gets to send that data first: the client then sees the
/// part of the response that was sent, and then the end (h2 drops the DATA a
/// stream still has queued when the stream is reset).
#[derive(Default)]
struct FlushFirst {
    data_returned: bool,
}

impl FlushFirst {
    fn data(&mut self) {
        self.data_returned = true;
    }

    /// Poll::Pending (waking at once) if data went out on the previous poll.
    fn abort(
        &mut self,
        cx: &mut Context<'_>,
        why: &'static str,
    ) -> Poll<Option<Result<Bytes, Aborted>>> {
        if std::mem::take(&mut self.data_returned) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Some(Err(Aborted(why))))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// Accepted; there is room for more.
    Ready,
    /// Accepted; the queue is above its high watermark: `pause` now.
    Full,
    /// The client is gone: stop producing.
    Closed,
}

pub(crate) fn channel() -> (ChunkSink, StreamBody) {
    let chan = Arc::new(Chan {
        state: Mutex::new(ChanState {
            queue: VecDeque::new(),
            queued: 0,
            end: None,
            consumer: None,
            consumer_gone: false,
            resume: None,
        }),
        space: Condvar::new(),
    });
    (
        ChunkSink { chan: chan.clone() },
        StreamBody {
            chan,
            flush_first: FlushFirst::default(),
        },
    )
}

impl ChunkSink {
    /// Queue a chunk without blocking.
    pub(crate) fn push(&self, chunk: Bytes) -> Push {
        let mut s = self.chan.state.lock().unwrap();
        if s.consumer_gone {
            return Push::Closed;
        }
        if !chunk.is_empty() {
            s.queued += chunk.len();
            s.queue.push_back(chunk);
        }
        let waker = s.consumer.take();
        let full = s.queued > HIGH_WATERMARK;
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        if full {
            Push::Full
        } else {
            Push::Ready
        }
    }

    /// Queue a chunk, waiting (on this thread) while the queue is full. For the
    /// PEP 3333 `write()` callable, which is blocking by definition.
    pub(crate) fn push_blocking(&self, chunk: Bytes) -> Push {
        let mut s = self.chan.state.lock().unwrap();
        if s.queued > HIGH_WATERMARK && !s.consumer_gone {
            s = crate::runtime::pool::blocking(|| {
                while s.queued > HIGH_WATERMARK && !s.consumer_gone {
                    s = self.chan.space.wait(s).unwrap();
                }
                s
            });
        }
        drop(s);
        match self.push(chunk) {
            Push::Full => Push::Ready,
            other => other,
        }
    }

    /// After `Push::Full`: run `resume` once the consumer has drained the queue
    /// (or has gone away). Runs it at once when that already happened.
    pub(crate) fn pause(&self, resume: Box<dyn FnOnce() + Send>) {
        let mut s = self.chan.state.lock().unwrap();
        if s.consumer_gone || s.queued <= LOW_WATERMARK {
            drop(s);
            resume();
        } else {
            s.resume = Some(resume);
        }
    }

    /// The response is complete.
    pub(crate) fn finish(self) {
        self.end(Ok(()));
    }

    /// The response cannot be completed: abort it (connection closed or stream reset).
    pub(crate) fn abort(self, why: &'static str) {
        self.end(Err(why));
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.chan.state.lock().unwrap().consumer_gone
    }

    fn end(&self, result: Result<(), &'static str>) {
        let mut s = self.chan.state.lock().unwrap();
        if s.end.is_none() {
            s.end = Some(result);
        }
        let waker = s.consumer.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Drop for ChunkSink {
    fn drop(&mut self) {
        // A producer that vanished without finishing aborts the response.
        self.end(Err("the response producer stopped"));
    }
}

impl StreamBody {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Aborted>>> {
        let mut s = self.chan.state.lock().unwrap();
        if let Some(mut chunk) = s.queue.pop_front() {
            if chunk.len() < SMALL_CHUNK && s.queue.front().is_some_and(|c| c.len() < SMALL_CHUNK) {
                // Only what is queued already: a chunk never waits for the next.
                let mut batch = BytesMut::with_capacity(COALESCED.min(s.queued));
                batch.extend_from_slice(&chunk);
                while let Some(next) = s.queue.front() {
                    if next.len() >= SMALL_CHUNK || batch.len() + next.len() > COALESCED {
                        break;
                    }
                    batch.extend_from_slice(next);
                    s.queue.pop_front();
                }
                chunk = batch.freeze();
            }
            s.queued -= chunk.len();
            let resume = if s.queued <= LOW_WATERMARK {
                s.resume.take()
            } else {
                None
            };
            drop(s);
            self.chan.space.notify_all();
            if let Some(resume) = resume {
                resume();
            }
            self.flush_first.data();
            return Poll::Ready(Some(Ok(chunk)));
        }
        match s.end {
            Some(Ok(())) => Poll::Ready(None),
            Some(Err(why)) => {
                drop(s);
                self.flush_first.abort(cx, why)
            }
            None => {
                s.consumer = Some(cx.waker().clone());
                let resume = s.resume.take();
                drop(s);
                if let Some(resume) = resume {
                    resume();
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        let mut s = self.chan.state.lock().unwrap();
        s.consumer_gone = true;
        s.queue.clear();
        s.queued = 0;
        let resume = s.resume.take();
        drop(s);
        self.chan.space.notify_all();
        if let Some(resume) = resume {
            resume();
        }
    }
}

// ---------------------------------------------------------------------------
// File: positioned reads on the blocking pool, never touching Python.

pub(crate) struct FileBody {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    pending: Option<tokio::task::JoinHandle<(BytesMut, io::Result<Bytes>)>>,
    /// Where reads land. Each chunk is split off it; once the connection has
    /// dropped the chunks, the next `reserve` takes the same memory back, so a large
    /// file is read into a few warm pages instead of a fresh (zeroed,
    /// page-faulted) allocation per chunk.
    buf: Option<BytesMut>,
    on_done: Option<Box<dyn FnOnce() + Send>>,
    failed: Option<&'static str>,
    flush_first: FlushFirst,
    zero_copy: Option<Arc<SendQueue>>,
}

impl FileBody {
    /// Send `len` bytes of `file` starting at `offset`. If the file turns out to
    /// be shorter, the response is aborted (the declared length cannot be met).
    /// `on_done` runs once the body is finished with, sent or not (the bridge
    /// closes the application's file wrapper then, PEP 3333 `close()`).
    /// With `zero_copy` (HTTP/1.x on plain TCP) the bytes go out with
    /// `sendfile` (see `transport::sendfile`); otherwise they are read with `pread`.
    /// The file may be shared: every read and `sendfile` names its offset,
    /// none moves the file's own position.
    pub(crate) fn new(
        file: Arc<File>,
        offset: u64,
        len: u64,
        zero_copy: Option<Arc<SendQueue>>,
        on_done: Box<dyn FnOnce() + Send>,
    ) -> FileBody {
        FileBody {
            file,
            offset,
            remaining: len,
            pending: None,
            buf: Some(BytesMut::new()),
            on_done: Some(on_done),
            failed: None,
            flush_first: FlushFirst::default(),
            zero_copy,
        }
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Aborted>>> {
        if let Some(why) = self.failed {
            return self.flush_first.abort(cx, why);
        }
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        if let Some(queue) = &self.zero_copy {
            let len = (self.remaining as usize).min(crate::runtime::transport::sendfile::CHUNK);
            let placeholder = queue.push(self.file.clone(), self.offset, len);
            self.offset += len as u64;
            self.remaining -= len as u64;
            return Poll::Ready(Some(Ok(placeholder)));
        }
        let handle = self.pending.get_or_insert_with(|| {
            let file = self.file.clone();
            let offset = self.offset;
            let want = (self.remaining as usize).min(FILE_BLOCK);
            let mut buf = self.buf.take().unwrap_or_default();
            tokio::task::spawn_blocking(move || {
                buf.reserve(want);
                let read = read_at_into(&file, &mut buf, want, offset);
                let chunk = read.map(|_| buf.split().freeze());
                (buf, chunk)
            })
        });
        let result = match Pin::new(handle).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok((buf, chunk))) => {
                self.buf = Some(buf);
                Ok(chunk)
            }
            Poll::Ready(Err(e)) => Err(e),
        };
        self.pending = None;
        match result {
            Ok(Ok(chunk)) if !chunk.is_empty() => {
                self.offset += chunk.len() as u64;
                self.remaining -= chunk.len() as u64;
                self.flush_first.data();
                Poll::Ready(Some(Ok(chunk)))
            }
            Ok(Ok(_)) => {
                log::error!(
                    target: "propylon.error",
                    "file ended {} bytes before the declared Content-Length; closing the connection",
                    self.remaining
                );
                self.failed = Some("file shorter than Content-Length");
                self.poll_chunk(cx)
            }
            Ok(Err(e)) => {
                log::error!(target: "propylon.error", "reading the response file failed: {e}");
                self.failed = Some("file read failed");
                self.poll_chunk(cx)
            }
            Err(_) => {
                self.failed = Some("file read task failed");
                self.poll_chunk(cx)
            }
        }
    }
}

/// `pread` up to `want` bytes at `offset` into `buf`'s spare capacity (not
/// zeroed first: the kernel writes it), retrying on EINTR.
fn read_at_into(file: &File, buf: &mut BytesMut, want: usize, offset: u64) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let want = want.min(buf.capacity() - buf.len());
    let spare = buf.spare_capacity_mut();
    loop {
        // SAFETY: `spare` is valid for writes of `want` bytes; pread writes at
        // most that many and tells how many it did.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                want,
                offset as libc::off_t,
            )
        };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: pread initialised the first `n` bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        if let Some(on_done) = self.on_done.take() {
            on_done();
        }
    }
}

use std::future::Future;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn noop_cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn stream_delivers_in_order_and_ends() {
        let (sink, mut body) = channel();
        assert_eq!(sink.push(Bytes::from_static(b"a")), Push::Ready);
        assert_eq!(sink.push(Bytes::from_static(b"b")), Push::Ready);
        sink.finish();
        let mut cx = noop_cx();
        let mut got = Vec::new();
        while let Poll::Ready(Some(Ok(c))) = body.poll_chunk(&mut cx) {
            got.extend_from_slice(&c);
        }
        assert_eq!(got, b"ab");
        assert!(matches!(body.poll_chunk(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn small_chunks_queued_together_go_out_together() {
        let (sink, mut body) = channel();
        let big = Bytes::from(vec![b'B'; SMALL_CHUNK]);
        for chunk in [&b"a"[..], b"bc", b"d"] {
            sink.push(Bytes::copy_from_slice(chunk));
        }
        sink.push(big.clone());
        sink.push(Bytes::from_static(b"e"));
        sink.push(Bytes::from_static(b"f"));
        let mut cx = noop_cx();
        let mut out = Vec::new();
        while let Poll::Ready(Some(Ok(chunk))) = body.poll_chunk(&mut cx) {
            out.push(chunk);
        }
        // The small ones merged; the large one as it was (the same memory,
        // not a copy); a batch never crosses it.
        assert_eq!(out.len(), 3);
        assert_eq!(&out[0][..], b"abcd");
        assert_eq!(out[1].as_ptr(), big.as_ptr());
        assert_eq!(&out[2][..], b"ef");
        // A batch stops at COALESCED bytes.
        let (sink, mut body) = channel();
        let piece = Bytes::from(vec![b'x'; SMALL_CHUNK - 1]);
        let count = 2 * COALESCED / piece.len() + 1;
        for _ in 0..count {
            sink.push(piece.clone());
        }
        let mut total = 0;
        while let Poll::Ready(Some(Ok(chunk))) = body.poll_chunk(&mut cx) {
            assert!(chunk.len() <= COALESCED);
            total += chunk.len();
        }
        assert_eq!(total, count * piece.len());
    }

    #[test]
    fn full_queue_pauses_until_drained() {
        let (sink, mut body) = channel();
        let big = Bytes::from(vec![0u8; HIGH_WATERMARK + 1]);
        assert_eq!(sink.push(big), Push::Full);
        let resumed = Arc::new(AtomicBool::new(false));
        let r = resumed.clone();
        sink.pause(Box::new(move || r.store(true, Ordering::SeqCst)));
        assert!(!resumed.load(Ordering::SeqCst));
        let mut cx = noop_cx();
        assert!(matches!(body.poll_chunk(&mut cx), Poll::Ready(Some(Ok(_)))));
        assert!(
            resumed.load(Ordering::SeqCst),
            "draining resumes the producer"
        );
    }

    #[test]
    fn dropped_consumer_resumes_and_reports_closed() {
        let (sink, body) = channel();
        assert_eq!(
            sink.push(Bytes::from(vec![0u8; HIGH_WATERMARK + 1])),
            Push::Full
        );
        let resumed = Arc::new(AtomicBool::new(false));
        let r = resumed.clone();
        sink.pause(Box::new(move || r.store(true, Ordering::SeqCst)));
        drop(body);
        assert!(resumed.load(Ordering::SeqCst));
        assert_eq!(sink.push(Bytes::from_static(b"x")), Push::Closed);
    }

    #[test]
    fn dropped_producer_aborts() {
        let (sink, mut body) = channel();
        drop(sink);
        let mut cx = noop_cx();
        assert!(matches!(
            body.poll_chunk(&mut cx),
            Poll::Ready(Some(Err(_)))
        ));
    }
}
