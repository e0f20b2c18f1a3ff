//! Request bodies the own HTTP/1.1 connection reads itself (`h1`).
//!
//! What it does: reads a request body from the connection's buffer and
//! transport, decodes its framing (a `Content-Length`, or chunked:
//! `proto::chunked`), and hands the bytes to the application's thread
//! through a body channel (`request::body::channel`), while the response is
//! written (`Exchange::serve` runs both in the connection's task, so an
//! application may stream its response while it reads the body). With
//! `Expect: 100-continue` it reads nothing until the application first asks
//! for the body, and then writes `100 Continue`, unless the final response
//! has started (RFC 9110 §10.1.1); `103 Early Hints` that come meanwhile
//! are written whole before or after it (`InterimWriter`). After the response, a rest the
//! application left unread is read and discarded within the limits of an
//! unread socket body (`DRAIN_LIMIT`, `DRAIN_TIME`), or the connection
//! closes.
//!
//! Why the connection reads these bodies rather than the application's
//! thread, as it does a `Content-Length` body on cleartext (`socket`): on
//! TLS only the connection can decrypt the records; a chunked body's end is
//! known only by decoding it, and bytes read past it (the next request)
//! belong to the connection's buffer; and `100 Continue` is a write on the
//! connection, ordered with the response's. A bounded channel (two reads)
//! keeps the memory per request small: the connection stops reading when
//! the application does not take what it read. The cost, a copy-free hand
//! over per read and a task wake-up, is measured in the commit that made it.
//!
//! What it does not do: parse heads, limit the body's size or time out a
//! read (the body reader does both on the application's side), or decide
//! whether the connection is kept (`h1`).

use std::io;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::proto::chunked::{Chunk, ChunkedDecoder};
use crate::runtime::request::body::{BodyError, BodyFeed, Message, DRAIN_LIMIT};

/// The interim response (RFC 9110 §15.2.1).
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Room made in the buffer before a read of body bytes. 64 KiB: with 16 KiB
/// reads (a message per 16 KiB chunk) a 64 KiB chunked POST echo served 4%
/// fewer requests/s than hyper's HTTP/1 server, which reads adaptively.
const BODY_READ: usize = 64 * 1024;

/// How the body's end is found.
pub(crate) enum Decoding {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// Where `Expect: 100-continue` stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expectation {
    /// No `Expect`, or the client was answered (`100 Continue`), or the
    /// final response came first.
    Settled,
    /// The client waits for `100 Continue`; the application has not asked
    /// for the body.
    Waiting,
}

/// How far the body was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    Reading,
    /// To its end; the buffer starts with what followed it.
    Whole,
    /// Invalid framing, the client closed, or the transport failed: the
    /// connection cannot go on.
    Broken,
}

/// The transport, shared by the body's reads and the response's writes
/// within the connection's task (each locks it for one poll, never across
/// an await).
pub(crate) struct Shared<'a, I> {
    io: &'a mut I,
    /// The response's first byte was written: no interim response after it.
    response_started: bool,
    /// Interim responses (`100 Continue`, `103 Early Hints`) queued whole
    /// and not yet written: written before anything else.
    interim: BytesMut,
    pub(crate) expectation: Expectation,
}

impl<'a, I: AsyncWrite + Unpin> Shared<'a, I> {
    pub(crate) fn new(io: &'a mut I, expectation: Expectation) -> Mutex<Shared<'a, I>> {
        Mutex::new(Shared {
            io,
            response_started: false,
            interim: BytesMut::new(),
            expectation,
        })
    }

    fn poll_interim(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.interim.is_empty() {
            let n = std::task::ready!(Pin::new(&mut *self.io).poll_write(cx, &self.interim))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.interim.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

fn lock<'m, 'a, I>(shared: &'m Mutex<Shared<'a, I>>) -> std::sync::MutexGuard<'m, Shared<'a, I>> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The response's side of `Shared`: an `AsyncWrite` for `h1::write_response`.
pub(crate) struct ResponseWriter<'m, 'a, I>(pub(crate) &'m Mutex<Shared<'a, I>>);

impl<I: AsyncWrite + Unpin> AsyncWrite for ResponseWriter<'_, '_, I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut shared = lock(self.0);
        shared.response_started = true;
        std::task::ready!(shared.poll_interim(cx))?;
        Pin::new(&mut *shared.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut shared = lock(self.0);
        shared.response_started = true;
        std::task::ready!(shared.poll_interim(cx))?;
        Pin::new(&mut *shared.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        lock(self.0).io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(self.0);
        std::task::ready!(shared.poll_interim(cx))?;
        Pin::new(&mut *shared.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(self.0);
        Pin::new(&mut *shared.io).poll_shutdown(cx)
    }
}

/// The interim responses' side of `Shared`: an `AsyncWrite` that queues
/// each write whole (a `103 Early Hints` is one write), so that the
/// `100 Continue` the body's side may queue comes before or after it,
/// never within; a flush writes the queue. Writes after the response has
/// started are dropped.
pub(crate) struct InterimWriter<'m, 'a, I>(pub(crate) &'m Mutex<Shared<'a, I>>);

impl<I: AsyncWrite + Unpin> AsyncWrite for InterimWriter<'_, '_, I> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut shared = lock(self.0);
        if !shared.response_started {
            shared.interim.extend_from_slice(buf);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(self.0);
        std::task::ready!(shared.poll_interim(cx))?;
        Pin::new(&mut *shared.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// The connection's reading of one request body.
pub(crate) struct BodyPump {
    decoding: Decoding,
    /// The application's side, until the response is over (or it is gone).
    feed: Option<BodyFeed>,
    pub(crate) end: BodyEnd,
}

/// One step of the framing.
enum Step {
    Data(bytes::Bytes),
    NeedMore,
    End,
    Invalid(String),
}

impl BodyPump {
    pub(crate) fn new(decoding: Decoding, feed: BodyFeed) -> BodyPump {
        BodyPump {
            decoding,
            feed: Some(feed),
            end: BodyEnd::Reading,
        }
    }

    /// Whether the application stopped at an error of the body's own (too
    /// large, timed out): the rest is not drained.
    pub(crate) fn given_up(&self) -> bool {
        self.feed.as_ref().is_some_and(BodyFeed::given_up)
    }

    /// The response is over: the application reads no more.
    pub(crate) fn detach(&mut self) {
        self.feed = None;
    }

    fn step(&mut self, buf: &mut BytesMut) -> Step {
        match &mut self.decoding {
            Decoding::Length(0) => Step::End,
            Decoding::Length(_) if buf.is_empty() => Step::NeedMore,
            Decoding::Length(left) => {
                let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                Step::Data(buf.split_to(n).freeze())
            }
            Decoding::Chunked(decoder) => match decoder.decode(buf) {
                Ok(Chunk::Data(data)) => Step::Data(data),
                Ok(Chunk::NeedMore) => Step::NeedMore,
                // Trailers: WSGI has no place for them (RFC 9110 §6.5.2: a
                // recipient may discard them).
                Ok(Chunk::End(_trailers)) => Step::End,
                Err(e) => Step::Invalid(e.to_string()),
            },
        }
    }

    /// Read the body while the application takes it: to its end, an error,
    /// or (never returning) while the application is gone. Cancel-safe: the
    /// framing's state is kept between polls.
    pub(crate) async fn feed<I: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        shared: &Mutex<Shared<'_, I>>,
        buf: &mut BytesMut,
    ) {
        if lock(shared).expectation == Expectation::Waiting {
            let Some(feed) = &self.feed else {
                return std::future::pending().await;
            };
            feed.wanted().await;
            let send = {
                let mut s = lock(shared);
                s.expectation = Expectation::Settled;
                if !s.response_started {
                    s.interim.extend_from_slice(CONTINUE);
                }
                !s.response_started
            };
            if send {
                let sent = std::future::poll_fn(|cx| {
                    let mut s = lock(shared);
                    std::task::ready!(s.poll_interim(cx))?;
                    Pin::new(&mut *s.io).poll_flush(cx)
                })
                .await;
                if let Err(e) = sent {
                    self.fail(BodyError::Disconnected(e.to_string())).await;
                    return;
                }
            }
        }
        while self.end == BodyEnd::Reading {
            // Everything the buffer holds goes in one message.
            let mut pieces = Vec::new();
            let step = loop {
                match self.step(buf) {
                    Step::Data(data) => pieces.push(data),
                    other => break other,
                }
            };
            if !pieces.is_empty() {
                let Some(feed) = &self.feed else {
                    return std::future::pending().await;
                };
                if !feed.send(Message::Data(pieces)).await {
                    // The application dropped the body: the rest waits for
                    // the response's end (`discard`).
                    self.feed = None;
                    return std::future::pending().await;
                }
            }
            match step {
                Step::Data(_) => unreachable!("taken above"),
                Step::NeedMore => {
                    if let Err(e) = read(shared, buf).await {
                        self.fail(e).await;
                    }
                }
                Step::End => {
                    self.end = BodyEnd::Whole;
                    if let Some(feed) = &self.feed {
                        feed.send(Message::End).await;
                    }
                }
                Step::Invalid(why) => {
                    log::info!(target: "propylon.server", "rejected request body: {why}");
                    self.fail(BodyError::Invalid(why)).await;
                }
            }
        }
    }

    async fn fail(&mut self, e: BodyError) {
        self.end = BodyEnd::Broken;
        if let Some(feed) = &self.feed {
            feed.send(Message::Failed(e)).await;
        }
    }

    /// After the response: read and discard the rest, at most `DRAIN_LIMIT`
    /// bytes of it within `wait`. True when the body ended so.
    pub(crate) async fn discard<I: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut I,
        buf: &mut BytesMut,
        wait: Duration,
    ) -> bool {
        self.feed = None;
        let shared = Shared::new(io, Expectation::Settled);
        let drained = async {
            let mut discarded = 0u64;
            while self.end == BodyEnd::Reading {
                match self.step(buf) {
                    Step::Data(data) => {
                        discarded += data.len() as u64;
                        if discarded > DRAIN_LIMIT {
                            return;
                        }
                    }
                    Step::NeedMore => {
                        if read(&shared, buf).await.is_err() {
                            self.end = BodyEnd::Broken;
                        }
                    }
                    Step::End => self.end = BodyEnd::Whole,
                    Step::Invalid(_) => self.end = BodyEnd::Broken,
                }
            }
        };
        let _ = tokio::time::timeout(wait, drained).await;
        self.end == BodyEnd::Whole
    }
}

/// Read more of the body into `buf`; the end of the input is an error.
async fn read<I: AsyncRead + Unpin>(
    shared: &Mutex<Shared<'_, I>>,
    buf: &mut BytesMut,
) -> Result<(), BodyError> {
    if buf.capacity() - buf.len() < BODY_READ / 4 {
        buf.reserve(BODY_READ);
    }
    match std::future::poll_fn(|cx| poll_read_buf(Pin::new(&mut *lock(shared).io), cx, buf)).await {
        Ok(0) => Err(BodyError::Disconnected(
            "the connection closed before the end of the body".into(),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(BodyError::Disconnected(e.to_string())),
    }
}

/// Read what the transport has into the spare capacity of `buf`.
pub(crate) fn poll_read_buf<I: AsyncRead>(
    io: Pin<&mut I>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let spare = buf.spare_capacity_mut();
    let mut read = ReadBuf::uninit(spare);
    std::task::ready!(io.poll_read(cx, &mut read))?;
    let n = read.filled().len();
    // SAFETY: `poll_read` initialised the first `n` bytes of the spare
    // capacity (what `ReadBuf::filled` reports).
    unsafe { buf.advance_mut(n) };
    Poll::Ready(Ok(n))
}
