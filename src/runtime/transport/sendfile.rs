//! `sendfile(2)` for HTTP/1.1 file responses, underneath the HTTP/1.x loop.
//!
//! The connection (`conn::h1`) writes response bodies from `Bytes`; it has no
//! notion of a file. To send a file without copying it through user space, a
//! file body (`FileBody` with a `SendQueue`) does not read the file: it records
//! "send `len` bytes of this file from this offset" in the connection's
//! `SendQueue` and gives the connection a placeholder `Bytes` of that length pointing into
//! `PLACEHOLDER`, a static region nothing else uses. The connection's stream,
//! `SendfileStream`, recognises writes that point into that region and performs
//! them with `sendfile` from the queued file instead; the connection sees the
//! same byte counts it expects and frames the response as usual.
//!
//! This relies on the connection passing body buffers to the transport as they
//! are (it never copies a placeholder behind the head: `is_placeholder`), and on the
//! body having a known length (identity transfer coding: the server always sets
//! Content-Length on file responses). A placeholder write that does not match
//! the front of the queue is a bookkeeping error: the connection fails rather
//! than send wrong bytes.
//!
//! What it does not do: HTTP/2 or TLS (frames and records need the bytes in
//! user space; file bodies there are read with `pread`), or decide what to
//! send (the bridge and `FileBody` do).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The most one placeholder covers: one `sendfile` call's worth (nginx's
/// `sendfile_max_chunk` defaults to 2 MiB; 1 MiB keeps one slow client from
/// monopolising a worker thread's time slice).
pub(crate) const CHUNK: usize = 1 << 20;

static PLACEHOLDER: [u8; CHUNK] = [0; CHUNK];

struct Pending {
    file: Arc<File>,
    offset: u64,
    len: usize,
    sent: usize,
}

/// Files waiting to be sent on one connection, in the order the connection
/// will write their placeholders.
#[derive(Default)]
pub(crate) struct SendQueue {
    entries: Mutex<VecDeque<Pending>>,
}

impl SendQueue {
    /// Queue `len` (<= CHUNK) bytes of `file` at `offset`; returns the
    /// placeholder to hand to the connection.
    pub(crate) fn push(&self, file: Arc<File>, offset: u64, len: usize) -> Bytes {
        assert!(len <= CHUNK && len > 0);
        self.entries.lock().unwrap().push_back(Pending {
            file,
            offset,
            len,
            sent: 0,
        });
        Bytes::from_static(&PLACEHOLDER[..len])
    }
}

/// Whether `buf` is (part of) a placeholder: bytes that must reach this
/// stream as they are, never copied into another buffer.
pub(crate) fn is_placeholder(buf: &[u8]) -> bool {
    placeholder_offset(buf).is_some()
}

fn placeholder_offset(buf: &[u8]) -> Option<usize> {
    let base = PLACEHOLDER.as_ptr() as usize;
    let p = buf.as_ptr() as usize;
    (!buf.is_empty() && p >= base && p < base + CHUNK).then(|| p - base)
}

/// A TCP stream whose writes of placeholders become `sendfile` calls.
pub(crate) struct SendfileStream {
    inner: TcpStream,
    queue: Arc<SendQueue>,
}

impl SendfileStream {
    pub(crate) fn new(inner: TcpStream, queue: Arc<SendQueue>) -> SendfileStream {
        SendfileStream { inner, queue }
    }

    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        at: usize,
    ) -> Poll<io::Result<usize>> {
        let mut entries = self.queue.entries.lock().unwrap();
        let Some(entry) = entries.front_mut() else {
            return Poll::Ready(Err(mismatch()));
        };
        if entry.sent != at || buf.len() > entry.len - entry.sent {
            return Poll::Ready(Err(mismatch()));
        }
        let socket = self.inner.as_raw_fd();
        let file = entry.file.as_raw_fd();
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let mut offset = (entry.offset + entry.sent as u64) as libc::off_t;
            let count = buf.len();
            let result = self.inner.try_io(Interest::WRITABLE, || {
                // SAFETY: both descriptors are open for the duration of the call
                // (the file is held by the queue entry, the socket by `inner`).
                let n = unsafe { libc::sendfile(socket, file, &mut offset, count) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(0) => {
                    log::error!(
                        target: "propylon.error",
                        "file ended {} bytes before the declared Content-Length; closing the connection",
                        entry.len - entry.sent
                    );
                    entries.pop_front();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than Content-Length",
                    )));
                }
                Ok(n) => {
                    entry.sent += n;
                    if entry.sent == entry.len {
                        entries.pop_front();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

fn mismatch() -> io::Error {
    log::error!(target: "propylon.error", "zero-copy send out of step with the response; closing the connection");
    io::Error::other("zero-copy bookkeeping mismatch")
}

impl super::RawSocket for SendfileStream {
    fn raw_socket(&self) -> Option<std::os::fd::RawFd> {
        Some(self.inner.as_raw_fd())
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match placeholder_offset(buf) {
            Some(at) => this.poll_sendfile(cx, buf, at),
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Plain slices up to the first placeholder go out in one writev; a
        // placeholder at the front goes out with sendfile.
        let first = bufs.iter().position(|b| placeholder_offset(b).is_some());
        match first {
            Some(0) => {
                let at = placeholder_offset(&bufs[0]).unwrap();
                this.poll_sendfile(cx, &bufs[0], at)
            }
            Some(i) => Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs[..i]),
            None => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    super::forward::forward_flush_and_shutdown!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn placeholders_become_file_bytes_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.unwrap();
            out
        });
        let (server, _) = listener.accept().await.unwrap();
        let mut tmp = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        tmp.write_all(&content).unwrap();
        let file = Arc::new(tmp);
        let queue = Arc::new(SendQueue::default());
        let mut stream = SendfileStream::new(server, queue.clone());
        let a = queue.push(file.clone(), 10, CHUNK);
        let b = queue.push(file.clone(), 10 + CHUNK as u64, 5);
        stream.write_all(b"head:").await.unwrap();
        stream.write_all(&a).await.unwrap();
        stream.write_all(&b).await.unwrap();
        stream.write_all(b":tail").await.unwrap();
        stream.shutdown().await.unwrap();
        drop(stream);
        let out = client.await.unwrap();
        let mut expected = b"head:".to_vec();
        expected.extend_from_slice(&content[10..10 + CHUNK + 5]);
        expected.extend_from_slice(b":tail");
        assert_eq!(out.len(), expected.len());
        assert!(out == expected);
    }

    #[tokio::test]
    async fn a_placeholder_without_a_queue_entry_fails() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut stream = SendfileStream::new(server, Arc::new(SendQueue::default()));
        let stray = Bytes::from_static(&PLACEHOLDER[..4]);
        assert!(stream.write_all(&stray).await.is_err());
    }
}
