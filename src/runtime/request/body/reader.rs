//! Request bodies as a blocking, terminated byte stream: what an endpoint's
//! application reads.
//!
//! What it does: `BodyReader` gives `read(n)`, `read_to_end()` and
//! `read_line(limit)` over a request body, on a pool thread (the caller releases
//! the GIL). Bytes come from an HTTP/2 stream (`H2Body`, over h2's
//! `RecvStream`: each read waits on the tokio runtime with a timeout, and
//! each chunk read gives its bytes back to the stream's and the
//! connection's windows, so a client sends no faster than the application
//! reads), or on the server's own HTTP/1.1 path from the socket
//! (`socket`, read straight into the caller's memory by `read_into`) or
//! from what the connection read (`channel`),
//! are decoded when the body has a `Content-Encoding` the server
//! was asked to decode, and are counted against the maximum body size before and
//! after decoding (a zip bomb ends with `TooLarge`). After the end every read
//! returns empty at once; after an error every read repeats the error.
//!
//! A body spooled before the call (`spool`, for `--buffer-body`) is read
//! back from memory or from its temporary file.
//!
//! What it does not do: decide *whether* to decode or what length the endpoint is told
//! (that is `proto::body::plan`), or raise Python exceptions (the bridge maps
//! `BodyError` to `propylon.errors`).

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use h2::RecvStream;

use super::budget::Reservation;
use super::channel::ChannelBody;
use super::deadline::{BodyClock, Deadline};
use super::socket::SocketBody;
use super::BodyError;
use crate::proto::body::Coding;

/// Decoded bytes produced per step: bounds the memory one read can allocate
/// whatever the compression ratio.
const DECODE_STEP: usize = 64 * 1024;

/// Watches an HTTP/2 body for its end. Dropped before it (the application
/// left the rest unread, or reading stopped at an error: too large,
/// undecodable), it sets its connection's `unread_input` flag, so that the
/// close lingers. Nothing is drained: h2 resets a stream whose body is
/// dropped unread (NO_ERROR once the response is complete, RFC 9113
/// §8.1), which ends the upload.
pub(crate) struct UnreadWatch {
    flag: Arc<AtomicBool>,
    ended: bool,
}

impl UnreadWatch {
    pub(crate) fn new(flag: Arc<AtomicBool>) -> UnreadWatch {
        UnreadWatch { flag, ended: false }
    }
}

impl Drop for UnreadWatch {
    fn drop(&mut self) {
        if !self.ended {
            self.flag.store(true, Ordering::Relaxed);
        }
    }
}

/// An HTTP/2 request body (`conn::h2`), with its watch: what `Source::H2`
/// reads.
pub(crate) struct H2Body {
    /// Dropped first (fields drop in order): the flag is set before h2
    /// resets the stream.
    watch: UnreadWatch,
    stream: RecvStream,
}

impl H2Body {
    pub(crate) fn new(stream: RecvStream, watch: UnreadWatch) -> H2Body {
        H2Body { watch, stream }
    }
}

/// Where raw body bytes come from.
pub(crate) enum Source {
    Empty,
    /// `declared`: the Content-Length, checked at the end of the stream (an
    /// RST_STREAM(NO_ERROR) ends a stream without an error, RFC 9113 §8.1;
    /// for a request body it means the client gave up).
    H2 {
        body: H2Body,
        rt: tokio::runtime::Handle,
        clock: BodyClock,
        declared: Option<u64>,
        received: u64,
    },
    Memory(Bytes),
    /// A body read whole before the call (`preread`), holding its part of
    /// the memory budget until it is dropped.
    Held {
        bytes: Bytes,
        _reservation: Reservation,
    },
    /// The start of a body read ahead (`preread`) that went past the limit,
    /// then the rest of it, streamed.
    Prefixed {
        first: Bytes,
        rest: Box<Source>,
    },
    /// A body spooled to an unlinked temporary file (`spool`): `left`
    /// bytes still to read, and its part of the disk budget, held while
    /// the file is open.
    File {
        file: File,
        left: u64,
        _space: Reservation,
    },
    /// The server's own HTTP/1.1 path: the bytes that came with the head,
    /// then the socket (`socket`).
    Socket(SocketBody),
    /// The server's own HTTP/1.1 path: what the connection read and decoded
    /// (`channel`).
    Channel(ChannelBody),
}

impl Source {
    /// Reading stopped at an error of the body's own (too large): the rest
    /// is not drained to keep the connection.
    pub(super) fn give_up(&mut self) {
        match self {
            Source::Channel(body) => body.give_up(),
            Source::Prefixed { rest, .. } => rest.give_up(),
            _ => {}
        }
    }

    fn next_chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        match self {
            Source::Empty => Ok(None),
            Source::Socket(body) => body.next_chunk(),
            Source::Channel(body) => body.next_chunk(),
            Source::Memory(b) | Source::Held { bytes: b, .. } => Ok(if b.is_empty() {
                None
            } else {
                Some(std::mem::take(b))
            }),
            Source::Prefixed { first, .. } if !first.is_empty() => Ok(Some(std::mem::take(first))),
            Source::Prefixed { rest, .. } => rest.next_chunk(),
            Source::File { file, left, .. } => {
                let mut buf =
                    vec![0u8; DECODE_STEP.min(usize::try_from(*left).unwrap_or(DECODE_STEP))];
                let n = match file.read(&mut buf) {
                    Ok(n) => n,
                    // Not the client's: the application sees an error, not a short body.
                    Err(e) => {
                        return Err(BodyError::Invalid(format!(
                            "cannot read the spooled body back: {e}"
                        )))
                    }
                };
                if n == 0 && *left > 0 {
                    return Err(BodyError::Invalid(format!(
                        "the spooled body ended {left} bytes short"
                    )));
                }
                *left -= n as u64;
                buf.truncate(n);
                Ok(if n == 0 { None } else { Some(Bytes::from(buf)) })
            }
            Source::H2 { rt, .. } => {
                let rt = rt.clone();
                crate::runtime::pool::blocking(|| rt.block_on(self.next_h2()))
            }
        }
    }

    /// The next bytes, waited for in the calling task, with no thread:
    /// an HTTP/2 stream and the connection's channel asynchronously (each
    /// wait as `next_h2`'s); bodies in memory are at hand. A body only a
    /// thread reads (`Socket`: the socket, lent to the application's
    /// thread; `File`) is an error here: the callers never pass one.
    pub(super) async fn next_chunk_async(&mut self) -> Result<Option<Bytes>, BodyError> {
        let mut source = self;
        loop {
            return match source {
                Source::H2 { .. } => source.next_h2().await,
                Source::Channel(body) => body.next_chunk_async().await,
                Source::Prefixed { first, .. } if !first.is_empty() => {
                    Ok(Some(std::mem::take(first)))
                }
                Source::Prefixed { rest, .. } => {
                    source = rest;
                    continue;
                }
                Source::Empty | Source::Memory(_) | Source::Held { .. } => source.next_chunk(),
                Source::Socket(_) | Source::File { .. } => Err(BodyError::Invalid(
                    "this body is read by a thread, not by the connection".into(),
                )),
            };
        }
    }

    /// The next data of an HTTP/2 body; each wait ends at the body timeout,
    /// or when the body falls below the minimum rate (`BodyClock`).
    pub(super) async fn next_h2(&mut self) -> Result<Option<Bytes>, BodyError> {
        let Source::H2 {
            body,
            clock,
            declared,
            received,
            ..
        } = self
        else {
            return Ok(None);
        };
        let deadline = clock.deadline();
        let next = body.next_data(*declared, received, &deadline).await;
        clock.waited(&deadline);
        if let Ok(Some(data)) = &next {
            clock.received(data.len() as u64);
        }
        next
    }

    /// The bytes left, when known without reading.
    fn remaining(&self) -> Option<u64> {
        match self {
            Source::Empty => Some(0),
            Source::Memory(b) | Source::Held { bytes: b, .. } => Some(b.len() as u64),
            Source::Prefixed { first, rest } => Some(first.len() as u64 + rest.remaining()?),
            Source::H2 {
                declared: Some(n),
                received,
                ..
            } => Some(n.saturating_sub(*received)),
            Source::Socket(body) => Some(body.remaining()),
            Source::Channel(body) => body.remaining(),
            Source::File { left, .. } => Some(*left),
            Source::H2 { declared: None, .. } => None,
        }
    }
}

impl H2Body {
    /// The next data of the stream (trailers are not passed on), `None` at
    /// its end, within `deadline`. `received` counts the bytes, checked
    /// against `declared` at the end. Each chunk's bytes go back to the
    /// flow-control windows as the chunk is handed on (RFC 9113 §5.2): the
    /// client gets room for as much as the application has read.
    pub(super) async fn next_data(
        &mut self,
        declared: Option<u64>,
        received: &mut u64,
        deadline: &Deadline,
    ) -> Result<Option<Bytes>, BodyError> {
        let stream = &mut self.stream;
        loop {
            let next = deadline
                .wait(std::future::poll_fn(|cx| stream.poll_data(cx)))
                .await;
            match next {
                Err(e) => return Err(e),
                Ok(Some(Ok(data))) => {
                    let _ = stream.flow_control().release_capacity(data.len());
                    if !data.is_empty() {
                        *received += data.len() as u64;
                        return Ok(Some(data));
                    }
                }
                // RST_STREAM(NO_ERROR) ends a body early without failing it
                // (RFC 9113 §8.1); the declared length says whether it was
                // all there.
                Ok(None) => break,
                Ok(Some(Err(e))) if e.reason() == Some(h2::Reason::NO_ERROR) => break,
                Ok(Some(Err(e))) => return Err(BodyError::Disconnected(e.to_string())),
            }
        }
        // Trailers: not passed on to endpoints.
        self.watch.ended = true;
        match declared {
            Some(n) if *received < n => Err(BodyError::Disconnected(format!(
                "the stream ended after {received} of {n} bytes"
            ))),
            _ => Ok(None),
        }
    }
}

/// `Source` as `std::io::Read`, counting raw bytes against the limit, so the
/// decoders of flate2, brotli and zstd can pull from it.
struct RawReader {
    source: Source,
    current: Bytes,
    raw_total: u64,
    max: u64,
}

impl RawReader {
    fn next(&mut self) -> Result<Option<Bytes>, BodyError> {
        if !self.current.is_empty() {
            return Ok(Some(std::mem::take(&mut self.current)));
        }
        let chunk = self.source.next_chunk()?;
        if let Some(c) = &chunk {
            self.raw_total += c.len() as u64;
            if self.raw_total > self.max {
                self.source.give_up();
                return Err(BodyError::TooLarge(self.max));
            }
        }
        Ok(chunk)
    }
}

impl Read for RawReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.current.is_empty() {
            match self.next() {
                Ok(Some(c)) => self.current = c,
                Ok(None) => return Ok(0),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

enum Stage {
    Raw(RawReader),
    Undecided {
        raw: RawReader,
        coding: Coding,
        max: u64,
    },
    Decoded {
        decoder: Box<dyn Read + Send>,
        decoded_total: u64,
        max: u64,
    },
    Taken,
}

fn decoder(raw: RawReader, coding: Coding) -> Result<Box<dyn Read + Send>, BodyError> {
    Ok(match coding {
        Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Coding::Deflate => Box::new(DeflateAuto {
            inner: None,
            raw: Some(raw),
        }),
        Coding::Brotli => Box::new(BrotliToTheEnd(Some(brotli::Decompressor::new(
            raw,
            16 * 1024,
        )))),
        Coding::Zstd => Box::new(zstd::stream::read::Decoder::new(raw).map_err(decode_error)?),
    })
}

impl Stage {
    fn next(&mut self) -> Result<Option<Bytes>, BodyError> {
        if matches!(self, Stage::Undecided { .. }) {
            let Stage::Undecided { raw, coding, max } = std::mem::replace(self, Stage::Taken)
            else {
                unreachable!()
            };
            *self = Stage::Decoded {
                decoder: decoder(raw, coding)?,
                decoded_total: 0,
                max,
            };
        }
        match self {
            Stage::Taken | Stage::Undecided { .. } => Ok(None),
            Stage::Raw(raw) => raw.next(),
            Stage::Decoded {
                decoder,
                decoded_total,
                max,
            } => {
                let mut buf = vec![0u8; DECODE_STEP];
                let n = loop {
                    match decoder.read(&mut buf) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(decode_error(e)),
                    }
                };
                if n == 0 {
                    return Ok(None);
                }
                *decoded_total += n as u64;
                if *decoded_total > *max {
                    return Err(BodyError::TooLarge(*max));
                }
                buf.truncate(n);
                Ok(Some(Bytes::from(buf)))
            }
        }
    }
}

fn decode_error(e: io::Error) -> BodyError {
    // Our own errors travel through the decoders wrapped in io::Error.
    if e.get_ref()
        .and_then(|inner| inner.downcast_ref::<BodyError>())
        .is_some()
    {
        let inner = e.into_inner().unwrap();
        return *inner.downcast::<BodyError>().unwrap();
    }
    BodyError::Invalid(format!("cannot decode the Content-Encoding: {e}"))
}

/// Bytes after the end of the compressed data: the body is malformed, as
/// a truncated one is (gzip and zstd decoders find these themselves: they
/// read on for a next member or frame).
fn data_after_the_end() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "data after the end of the compressed body",
    )
}

type Sniffed = io::BufReader<io::Chain<io::Cursor<Vec<u8>>, RawReader>>;

enum Flate {
    Zlib(flate2::bufread::ZlibDecoder<Sniffed>),
    Raw(flate2::bufread::DeflateDecoder<Sniffed>),
}

/// Sniffs whether a `deflate` body is zlib-wrapped (RFC 9110 §8.4.1.2 says it
/// is) or raw DEFLATE (which some clients send anyway), as browsers do; at
/// the end of the stream, nothing may follow it.
struct DeflateAuto {
    inner: Option<Flate>,
    raw: Option<RawReader>,
}

impl Read for DeflateAuto {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inner.is_none() {
            let mut raw = self.raw.take().expect("raw reader present until sniffed");
            let mut head = [0u8; 2];
            let mut got = 0;
            while got < 2 {
                let n = raw.read(&mut head[got..])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            let zlib = got == 2
                && head[0] & 0x0f == 8
                && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
            let prefix = io::Cursor::new(head[..got].to_vec());
            let chained = io::BufReader::new(Read::chain(prefix, raw));
            self.inner = Some(if zlib {
                Flate::Zlib(flate2::bufread::ZlibDecoder::new(chained))
            } else {
                Flate::Raw(flate2::bufread::DeflateDecoder::new(chained))
            });
        }
        let inner = self.inner.as_mut().unwrap();
        let n = match inner {
            Flate::Zlib(d) => d.read(buf)?,
            Flate::Raw(d) => d.read(buf)?,
        };
        if n == 0 && !buf.is_empty() {
            // The decoder consumed exactly its stream from the buffer: what
            // is left there, or still in the body, follows the end.
            let rest = match inner {
                Flate::Zlib(d) => d.get_mut().fill_buf()?,
                Flate::Raw(d) => d.get_mut().fill_buf()?,
            };
            if !rest.is_empty() {
                return Err(data_after_the_end());
            }
        }
        Ok(n)
    }
}

/// brotli's reader, which notices bytes after the end of the stream only
/// in its own buffer, and only when read again: asked once more at the
/// end, and the rest of the body checked too.
struct BrotliToTheEnd(Option<brotli::Decompressor<RawReader>>);

impl Read for BrotliToTheEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(inner) = self.0.as_mut() else {
            return Ok(0);
        };
        let n = inner.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let mut probe = [0u8; 1];
        if inner.read(&mut probe)? > 0 {
            return Err(data_after_the_end());
        }
        let mut raw = self.0.take().unwrap().into_inner();
        if raw.read(&mut probe)? > 0 {
            return Err(data_after_the_end());
        }
        Ok(0)
    }
}

pub(crate) struct BodyReader {
    stage: Stage,
    pending: BytesMut,
    state: ReadState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadState {
    Open,
    Done,
    Failed(BodyError),
}

impl BodyReader {
    pub(crate) fn new(source: Source, decode: Option<Coding>, max_body_size: u64) -> BodyReader {
        let raw = RawReader {
            source,
            current: Bytes::new(),
            raw_total: 0,
            max: max_body_size,
        };
        let stage = match decode {
            None => Stage::Raw(raw),
            // Decoders read their header when built, so they are built on the
            // first read (on a pool thread), never here (on an I/O thread).
            Some(coding) => Stage::Undecided {
                raw,
                coding,
                max: max_body_size,
            },
        };
        BodyReader {
            stage,
            pending: BytesMut::new(),
            state: ReadState::Open,
        }
    }

    pub(crate) fn empty() -> BodyReader {
        BodyReader::new(Source::Empty, None, 0)
    }

    /// Pull one more chunk into `pending`. Ok(false) at the end of the body.
    fn fill(&mut self) -> Result<bool, BodyError> {
        match self.next_chunk()? {
            Some(chunk) => {
                self.pending.extend_from_slice(&chunk);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The next chunk from the stage (None at the end), keeping the end or
    /// the error in `state` so that later reads see it again.
    pub(super) fn next_chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        match &self.state {
            ReadState::Done => return Ok(None),
            ReadState::Failed(e) => return Err(e.clone()),
            ReadState::Open => {}
        }
        match self.stage.next() {
            Ok(Some(chunk)) => Ok(Some(chunk)),
            Ok(None) => {
                self.state = ReadState::Done;
                Ok(None)
            }
            Err(e) => {
                self.state = ReadState::Failed(e.clone());
                Err(e)
            }
        }
    }

    /// Up to `n` bytes; fewer only at the end of the body. Empty at the end.
    pub(crate) fn read(&mut self, n: usize) -> Result<Bytes, BodyError> {
        while self.pending.len() < n {
            if !self.fill()? {
                break;
            }
        }
        let take = n.min(self.pending.len());
        Ok(self.pending.split_to(take).freeze())
    }

    /// Fill `buf` (fewer bytes only at the end of the body): `read(buf.len())`
    /// into the caller's memory, each chunk copied once, straight from the
    /// transport's buffer. What a chunk has past `buf` stays for the next read.
    pub(crate) fn read_into(&mut self, buf: &mut [u8]) -> Result<usize, BodyError> {
        let mut filled = self.pending.len().min(buf.len());
        buf[..filled].copy_from_slice(&self.pending[..filled]);
        self.pending.advance(filled);
        while filled < buf.len() {
            if let Some(n) = self.read_direct(&mut buf[filled..])? {
                if n == 0 {
                    break;
                }
                filled += n;
                continue;
            }
            let Some(chunk) = self.next_chunk()? else {
                break;
            };
            let n = chunk.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&chunk[..n]);
            filled += n;
            if n < chunk.len() {
                self.pending.extend_from_slice(&chunk[n..]);
            }
        }
        Ok(filled)
    }

    /// Read from a socket body straight into `dst` (no chunk in between);
    /// `None` when the body is not one, or has a chunk in hand already.
    fn read_direct(&mut self, dst: &mut [u8]) -> Result<Option<usize>, BodyError> {
        match &self.state {
            ReadState::Done => return Ok(Some(0)),
            ReadState::Failed(e) => return Err(e.clone()),
            ReadState::Open => {}
        }
        let Stage::Raw(raw) = &mut self.stage else {
            return Ok(None);
        };
        if !raw.current.is_empty() {
            return Ok(None);
        }
        let Source::Socket(body) = &mut raw.source else {
            return Ok(None);
        };
        match body.read_into(dst) {
            Ok(0) => {
                self.state = ReadState::Done;
                Ok(Some(0))
            }
            Ok(n) => {
                raw.raw_total += n as u64;
                if raw.raw_total > raw.max {
                    let e = BodyError::TooLarge(raw.max);
                    self.state = ReadState::Failed(e.clone());
                    return Err(e);
                }
                Ok(Some(n))
            }
            Err(e) => {
                self.state = ReadState::Failed(e.clone());
                Err(e)
            }
        }
    }

    /// The bytes left to read, when known without reading: a body read as it
    /// came (not decoded) whose length was declared, or one held in memory
    /// or spooled.
    pub(crate) fn remaining(&self) -> Option<u64> {
        if !matches!(self.state, ReadState::Open) {
            return matches!(self.state, ReadState::Done).then_some(self.pending.len() as u64);
        }
        let Stage::Raw(raw) = &self.stage else {
            return None;
        };
        let source = raw.source.remaining()?;
        Some(source + raw.current.len() as u64 + self.pending.len() as u64)
    }

    pub(crate) fn read_to_end(&mut self) -> Result<Bytes, BodyError> {
        while self.fill()? {}
        Ok(std::mem::take(&mut self.pending).freeze())
    }

    /// One line including its `\n`, at most `limit` bytes (None: no limit).
    pub(crate) fn read_line(&mut self, limit: Option<usize>) -> Result<Bytes, BodyError> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.pending[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos + 1;
                let take = limit.map_or(end, |l| l.min(end));
                return Ok(self.pending.split_to(take).freeze());
            }
            scanned = self.pending.len();
            if let Some(l) = limit {
                if scanned >= l {
                    return Ok(self.pending.split_to(l).freeze());
                }
            }
            if !self.fill()? {
                let take = limit.map_or(self.pending.len(), |l| l.min(self.pending.len()));
                return Ok(self.pending.split_to(take).freeze());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn memory(data: &[u8], decode: Option<Coding>, max: u64) -> BodyReader {
        BodyReader::new(Source::Memory(Bytes::copy_from_slice(data)), decode, max)
    }

    #[test]
    fn terminated_reads() {
        let mut r = memory(b"line one\nline two\nrest", None, 1000);
        assert_eq!(&r.read_line(None).unwrap()[..], b"line one\n");
        assert_eq!(&r.read_line(Some(4)).unwrap()[..], b"line");
        assert_eq!(&r.read_line(None).unwrap()[..], b" two\n");
        assert_eq!(&r.read(2).unwrap()[..], b"re");
        assert_eq!(&r.read_to_end().unwrap()[..], b"st");
        assert!(r.read(10).unwrap().is_empty());
        assert!(r.read_line(None).unwrap().is_empty());
    }

    #[test]
    fn read_into_fills_and_keeps_the_rest() {
        let mut r = memory(b"0123456789", None, 1000);
        assert_eq!(r.remaining(), Some(10));
        assert_eq!(
            &r.read_line(Some(2)).unwrap()[..],
            b"01",
            "leaves 8 bytes pending"
        );
        assert_eq!(r.remaining(), Some(8));
        let mut buf = [0u8; 5];
        assert_eq!(r.read_into(&mut buf).unwrap(), 5);
        assert_eq!(&buf, b"23456");
        assert_eq!(r.remaining(), Some(3));
        assert_eq!(r.read_into(&mut buf).unwrap(), 3, "short only at the end");
        assert_eq!(&buf[..3], b"789");
        assert_eq!(r.read_into(&mut buf).unwrap(), 0);
        assert_eq!(r.remaining(), Some(0));
    }

    #[test]
    fn read_into_repeats_errors_and_decoded_lengths_are_unknown() {
        let mut r = memory(&[1u8; 100], None, 99);
        let mut buf = [0u8; 200];
        assert_eq!(r.read_into(&mut buf), Err(BodyError::TooLarge(99)));
        assert_eq!(r.read_into(&mut buf), Err(BodyError::TooLarge(99)));
        let r = memory(&gzip(b"hello"), Some(Coding::Gzip), 1000);
        assert_eq!(r.remaining(), None);
    }

    #[test]
    fn raw_limit() {
        let mut r = memory(&[1u8; 100], None, 99);
        assert_eq!(r.read_to_end(), Err(BodyError::TooLarge(99)));
        assert_eq!(r.read(1), Err(BodyError::TooLarge(99)), "errors are sticky");
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// `data` in each coding --decompress reads (raw DEFLATE too).
    fn every_coding(data: &[u8]) -> [(Coding, Vec<u8>); 5] {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(data).unwrap();
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(data).unwrap();
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        [
            (Coding::Gzip, gzip(data)),
            (Coding::Deflate, z.finish().unwrap()),
            (Coding::Deflate, d.finish().unwrap()),
            (Coding::Brotli, br),
            (Coding::Zstd, zstd::encode_all(data, 3).unwrap()),
        ]
    }

    #[test]
    fn decodes_gzip_deflate_brotli_zstd() {
        let data = b"hello hello hello hello".repeat(100);
        for (coding, encoded) in every_coding(&data) {
            let mut r = memory(&encoded, Some(coding), 1 << 20);
            assert_eq!(r.read_to_end().unwrap(), data, "{coding:?}");
        }
    }

    #[test]
    fn nothing_may_follow_the_compressed_data() {
        let data = b"hello hello hello hello".repeat(100);
        for (coding, encoded) in every_coding(&data) {
            // Garbage right behind the end, and far behind it (past what a
            // decoder reads ahead).
            for tail in [&b"x"[..], &[b'y'; 100_000][..]] {
                let mut body = encoded.clone();
                body.extend_from_slice(tail);
                let mut r = memory(&body, Some(coding), 1 << 20);
                assert!(
                    matches!(r.read_to_end(), Err(BodyError::Invalid(_))),
                    "{coding:?} with {} bytes after the end",
                    tail.len()
                );
            }
            let mut r = memory(&encoded, Some(coding), 1 << 20);
            assert_eq!(r.read_to_end().unwrap(), data, "{coding:?} without them");
        }
    }

    #[test]
    fn zip_bomb_is_bounded() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        let mut r = memory(&bomb, Some(Coding::Gzip), 1 << 20);
        assert_eq!(r.read_to_end(), Err(BodyError::TooLarge(1 << 20)));
    }

    #[test]
    fn invalid_gzip() {
        let mut r = memory(b"not gzip at all", Some(Coding::Gzip), 1 << 20);
        assert!(matches!(r.read_to_end(), Err(BodyError::Invalid(_))));
    }
}
