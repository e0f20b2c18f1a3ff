//! An HTTP/2 stream as a byte stream, for a WebSocket bootstrapped with
//! extended CONNECT (RFC 8441 §5: after the 200 response, the stream's DATA
//! frames carry the WebSocket's bytes both ways).
//!
//! What it does: reads the request's DATA (`RecvStream`), giving the
//! client's flow-control window back as the bytes are taken (so a session
//! that stops reading holds the client back); writes through `SendStream`
//! within the window the client grants, never buffering more than what is
//! written; shutting down ends the stream (END_STREAM, RFC 8441 §5.1's
//! orderly close).
//!
//! What it does not do: WebSocket framing (`session`).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes written as one DATA frame's worth of capacity request.
const WRITE_CHUNK: usize = 64 * 1024;

pub(crate) struct H2Stream {
    recv: RecvStream,
    send: SendStream<Bytes>,
    /// DATA received and not yet read.
    pending: Bytes,
    ended: bool,
}

impl H2Stream {
    pub(crate) fn new(recv: RecvStream, send: SendStream<Bytes>) -> H2Stream {
        H2Stream {
            recv,
            send,
            pending: Bytes::new(),
            ended: false,
        }
    }
}

fn h2_error(e: h2::Error) -> io::Error {
    match e.get_io() {
        Some(_) => e
            .into_io()
            .unwrap_or_else(|| io::Error::other("HTTP/2 stream error")),
        None => io::Error::new(io::ErrorKind::ConnectionReset, e),
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.pending.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => this.pending = data,
                Some(Err(e)) => return Poll::Ready(Err(h2_error(e))),
                // END_STREAM: the client's end of the connection.
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        let _ = this.recv.flow_control().release_capacity(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = &mut *self;
        this.send.reserve_capacity(buf.len().min(WRITE_CHUNK));
        let granted = loop {
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(0)) => continue,
                Some(Ok(n)) => break n,
                Some(Err(e)) => return Poll::Ready(Err(h2_error(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        };
        let n = granted.min(buf.len());
        this.send
            .send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(h2_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // h2 writes what it holds as the connection is polled.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.ended {
            this.ended = true;
            this.send.reserve_capacity(0);
            let _ = this.send.send_data(Bytes::new(), true);
        }
        Poll::Ready(Ok(()))
    }
}
