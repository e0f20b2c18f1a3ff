//! Lingering close for HTTP/1.1 connections (nginx's `lingering_close`).
//!
//! When the server closes a connection while the client is still sending
//! (a request body the application did not read, a `413` for a body that is
//! too large, a `431` for a head that is), closing the socket at once would make the kernel answer
//! the client's next bytes, or those already received and unread, with a
//! reset. A reset makes the client's TCP stack throw away what it has not
//! yet handed to the client: often the very response that explains the
//! close. `curl` reports "Connection reset by peer", and a client that sends
//! its whole body before reading (Python's `http.client`) gets `BrokenPipe`
//! and never sees the status.
//!
//! So a connection the server shut down for writing (the FIN after the
//! response) while the client may still be sending is not closed when its
//! task ends: a task of its own reads and discards what still comes, until
//! the client closes its side too (end of input), nothing has come for
//! `IDLE`, or `TOTAL` has passed. "May still be sending" is the
//! connection's `unread_input` flag (`conn::context::ConnContext`), set when:
//!
//! - the HTTP/1.x loop (`conn::h1`) closes with the rest of a request body
//!   to come (left unread, or refused while being read: `413`);
//! - a request is refused before its body is read (`413`, `400`), or its
//!   head is refused (`400`, `414`, `417`, `431`, `501`).
//!
//! Any other close is at once: a `Connection: close` answer to a `GET`,
//! HTTP/1.0, errors, resets, idle keep-alive connections. Lingering on every
//! close the server starts would cost about 15% of `Connection: close`
//! connections per second.

use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::RawSocket;

/// Longest wait for the client's next bytes (nginx's `lingering_timeout`: 5 s).
pub(crate) const IDLE: Duration = Duration::from_secs(5);
/// Longest linger in all (nginx's `lingering_time` is 30 s; shorter here so
/// that lingering connections never hold up a shutdown's last sockets long).
pub(crate) const TOTAL: Duration = Duration::from_secs(10);
/// Bytes read and discarded at a time: part of the lingering task's own
/// allocation (no buffer of its own; most lingering ends at the first read,
/// with the client's end of input).
const SCRATCH: usize = 16 * 1024;

/// A transport that lingers after the server's shutdown (see the module).
pub(crate) struct Linger<I: AsyncRead + Unpin + Send + 'static> {
    /// Always `Some` until dropped.
    inner: Option<I>,
    /// The server shut its sending side (`poll_shutdown` completed).
    shut: bool,
    /// A read returned the end of input: the client sends nothing more.
    ended: bool,
    /// Set by the connection: it closes with request bytes still to come.
    unread: Arc<AtomicBool>,
}

impl<I: AsyncRead + Unpin + Send + 'static> Linger<I> {
    /// `unread`: the connection's flag for request bytes left unread (see
    /// the module); set, the close lingers whether or not bytes are waiting.
    pub(crate) fn new(inner: I, unread: Arc<AtomicBool>) -> Linger<I> {
        Linger {
            inner: Some(inner),
            shut: false,
            ended: false,
            unread,
        }
    }

    fn io(&mut self) -> Pin<&mut I> {
        Pin::new(self.inner.as_mut().expect("Linger used after drop"))
    }
}

impl<I: AsyncRead + Unpin + Send + 'static> Drop for Linger<I> {
    fn drop(&mut self) {
        let Some(io) = self.inner.take() else {
            return;
        };
        if !self.shut || self.ended {
            return;
        }
        if !self.unread.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(discard_until_closed(io, IDLE, TOTAL));
        }
    }
}

/// Read and drop what comes on `io` until its end, an error, `idle` without
/// anything, or `total`; then drop `io` (which closes it).
pub(crate) async fn discard_until_closed<I: AsyncRead + Unpin>(
    mut io: I,
    idle: Duration,
    total: Duration,
) {
    let deadline = Instant::now() + total;
    let mut scratch = [0; SCRATCH];
    loop {
        let until = (Instant::now() + idle).min(deadline);
        match tokio::time::timeout_at(until, io.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

impl<I: AsyncRead + Unpin + Send + 'static> AsyncRead for Linger<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let room = buf.remaining() > 0;
        let polled = this.io().poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.ended |= room && buf.filled().len() == before;
        }
        polled
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Linger<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = this.io().poll_shutdown(cx);
        if let Poll::Ready(Ok(())) = polled {
            this.shut = true;
        }
        polled
    }
}

impl<I: AsyncRead + RawSocket + Unpin + Send + 'static> RawSocket for Linger<I> {
    fn raw_socket(&self) -> Option<RawFd> {
        self.inner.as_ref().and_then(|io| io.raw_socket())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test]
    async fn a_connection_shut_with_input_unread_is_read_until_the_client_closes() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut linger = Linger::new(server, Arc::new(AtomicBool::new(true)));
        client.write_all(b"the rest of a body").await.unwrap();
        linger.shutdown().await.unwrap();
        drop(linger);
        // The server's side is still open: what the client sends is taken
        // (more than the pipe holds), and the response's end is there.
        client.write_all(&[7; 64 * 1024]).await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        client.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn the_flag_set_after_the_shutdown_still_counts() {
        let (server, mut client) = tokio::io::duplex(1024);
        let unread = Arc::new(AtomicBool::new(false));
        let mut linger = Linger::new(server, unread.clone());
        linger.shutdown().await.unwrap();
        unread.store(true, Ordering::Relaxed);
        drop(linger);
        client.write_all(&[7; 64 * 1024]).await.unwrap();
        client.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_connection_shut_without_the_flag_closes_at_once() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut linger = Linger::new(server, Arc::default());
        client.write_all(b"more than was read").await.unwrap();
        linger.shutdown().await.unwrap();
        drop(linger);
        assert!(client.write_all(b"more").await.is_err());
    }

    #[tokio::test]
    async fn a_connection_that_was_not_shut_closes_at_once() {
        let (server, mut client) = tokio::io::duplex(1024);
        drop(Linger::new(server, Arc::default()));
        assert!(client.write_all(b"more").await.is_err());
    }

    #[tokio::test]
    async fn a_client_that_had_ended_costs_no_linger() {
        let (server, mut client) = tokio::io::duplex(1024);
        client.shutdown().await.unwrap();
        let mut linger = Linger::new(server, Arc::new(AtomicBool::new(true)));
        let mut buf = [0; 8];
        assert_eq!(linger.read(&mut buf).await.unwrap(), 0);
        linger.shutdown().await.unwrap();
        assert!(linger.ended && linger.shut);
        drop(linger);
        // Closed at once: the client's writes fail without any wait.
        assert!(client.write_all(b"more").await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_linger_ends_after_idle_time_without_data() {
        let (server, mut client) = tokio::io::duplex(1024);
        let started = Instant::now();
        let linger = tokio::spawn(discard_until_closed(server, IDLE, TOTAL));
        client.write_all(b"some").await.unwrap();
        linger.await.unwrap();
        assert_eq!(started.elapsed(), IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_keeps_sending_is_cut_off_at_the_total() {
        let (server, mut client) = tokio::io::duplex(1024);
        let started = Instant::now();
        let linger = tokio::spawn(discard_until_closed(server, IDLE, TOTAL));
        let sender = tokio::spawn(async move {
            // A byte each second: never idle for IDLE.
            while client.write_all(b"x").await.is_ok() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        linger.await.unwrap();
        assert_eq!(started.elapsed(), TOTAL);
        sender.await.unwrap();
    }
}
