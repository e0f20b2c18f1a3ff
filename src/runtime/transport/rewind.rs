//! A transport that gives back bytes already read from it before reading on.
//!
//! What it does not do: write anything of its own (writes pass through).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, ReadBuf};

/// The transport of a connection upgraded to HTTP/2 by `Upgrade: h2c`
/// (`conn::task`): the bytes the HTTP/1.x loop (`conn::h1`) read past the
/// upgrade request, then the transport itself.
pub(crate) struct Rewind<I> {
    inner: I,
    buffered: Bytes,
}

impl<I> Rewind<I> {
    pub(crate) fn new(inner: I, buffered: Bytes) -> Rewind<I> {
        Rewind { inner, buffered }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buffered.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.buffered.len().min(buf.remaining());
        buf.put_slice(&this.buffered[..n]);
        this.buffered.advance(n);
        Poll::Ready(Ok(()))
    }
}

super::forward::forward_async_write!(Rewind);
