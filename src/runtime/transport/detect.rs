//! HTTP/1.1 or HTTP/2 with prior knowledge, told apart by a connection's first bytes.
//!
//! What it does: `detect` reads until the bytes either stop matching the
//! HTTP/2 client preface (RFC 9113 §3.4) or match all 24 of them, and hands
//! back the connection as a `Prefixed` transport that gives those bytes out
//! again before anything else. The caller then serves it with the HTTP/1.x
//! loop (`conn::h1`) or the HTTP/2 connection (`conn::h2`).
//!
//! `Prefixed` returns the bytes *and* whatever the transport has ready in the
//! same read, so a request head that arrived in one segment is read in one
//! read. (hyper-util's `auto` builder, which also tells the two apart, gives
//! the bytes back on a read of their own: the first read of every
//! connection returns just those, at most 24, bytes.)
//!
//! What it does not do: any I/O past the preface, or TLS (ALPN is the TLS
//! layer's; a TLS connection is detected the same way, on its plaintext,
//! and where ALPN chose `h2` the caller answers anything but the preface
//! with `INVALID_PREFACE_ANSWER`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a server sends on a connection that must be HTTP/2 (ALPN chose
/// `h2`) and does not start with the client preface, before it closes: its
/// own preface, an empty SETTINGS frame, "the first frame the server sends"
/// (RFC 9113 §3.4), then GOAWAY with last-stream-id 0 and PROTOCOL_ERROR, as
/// for any connection error (§5.4.1): "Clients and servers MUST treat an
/// invalid connection preface as a connection error of type PROTOCOL_ERROR"
/// (§3.4).
#[rustfmt::skip]
pub(crate) const INVALID_PREFACE_ANSWER: [u8; 26] = [
    // SETTINGS: length 0, type 0x4, no flags, stream 0.
    0, 0, 0, 0x4, 0, 0, 0, 0, 0,
    // GOAWAY: length 8, type 0x7, no flags, stream 0.
    0, 0, 8, 0x7, 0, 0, 0, 0, 0,
    // Last-Stream-ID 0, error code PROTOCOL_ERROR (0x1, RFC 9113 §7).
    0, 0, 0, 0, 0, 0, 0, 0x1,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    Http2,
}

/// Which protocol `seen` (the first bytes, all of them so far) starts, if
/// that is decided yet. A connection that ends before deciding is HTTP/1.1:
/// the HTTP/1.x loop then answers (or closes) as for any incomplete request.
pub(crate) fn decide(seen: &[u8]) -> Option<Protocol> {
    let n = seen.len().min(PREFACE.len());
    if seen[..n] != PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// Read the first bytes of `io` until the protocol is decided.
pub(crate) async fn detect<I: AsyncRead + Unpin>(mut io: I) -> io::Result<(Protocol, Prefixed<I>)> {
    let mut prefix = [0u8; PREFACE.len()];
    let mut len = 0;
    let protocol = loop {
        if let Some(protocol) = decide(&prefix[..len]) {
            break protocol;
        }
        let n = io.read(&mut prefix[len..]).await?;
        if n == 0 {
            break Protocol::Http1;
        }
        len += n;
    };
    Ok((
        protocol,
        Prefixed {
            inner: io,
            prefix,
            start: 0,
            end: len as u8,
        },
    ))
}

/// A transport whose first bytes, already read, are read again first.
pub(crate) struct Prefixed<I> {
    inner: I,
    prefix: [u8; PREFACE.len()],
    start: u8,
    end: u8,
}

impl<I> Prefixed<I> {
    /// The transport, and the bytes read from it that were not read again.
    pub(crate) fn into_parts(self) -> (I, Vec<u8>) {
        let rest = self.prefix[usize::from(self.start)..usize::from(self.end)].to_vec();
        (self.inner, rest)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start == this.end {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let pending = &this.prefix[usize::from(this.start)..usize::from(this.end)];
        let n = pending.len().min(buf.remaining());
        buf.put_slice(&pending[..n]);
        this.start += n as u8;
        if this.start == this.end && buf.remaining() > 0 {
            // Whatever else is ready goes in the same read. Not ready, or an
            // error: the bytes above are this read's; the transport is asked
            // again next time (a waker registered here only wakes us early).
            let _ = Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        Poll::Ready(Ok(()))
    }
}

super::forward::forward_async_write!(Prefixed);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn decides_on_the_first_byte_that_differs() {
        assert_eq!(decide(b""), None);
        assert_eq!(decide(b"P"), None);
        assert_eq!(decide(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(decide(b"POST / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(decide(b"GET"), Some(Protocol::Http1));
        assert_eq!(decide(b"PRI * HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(decide(PREFACE), Some(Protocol::Http2));
        let mut more = PREFACE.to_vec();
        more.extend_from_slice(b"\x00\x00\x00\x04");
        assert_eq!(decide(&more), Some(Protocol::Http2));
    }

    async fn detect_from(chunks: &[&[u8]]) -> (Protocol, Vec<u8>, Vec<usize>) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let writer = tokio::spawn(async move {
            let mut client = client;
            for chunk in chunks {
                client.write_all(&chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
            client.shutdown().await.unwrap();
        });
        let (protocol, mut io) = detect(server).await.unwrap();
        writer.await.unwrap();
        let mut all = Vec::new();
        let mut reads = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            let n = io.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            reads.push(n);
            all.extend_from_slice(&buf[..n]);
        }
        (protocol, all, reads)
    }

    #[tokio::test]
    async fn every_byte_comes_back_in_order() {
        let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let (protocol, all, _) = detect_from(&[request]).await;
        assert_eq!(protocol, Protocol::Http1);
        assert_eq!(all, request);
        let mut h2 = PREFACE.to_vec();
        h2.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        let (protocol, all, _) = detect_from(&[&h2[..3], &h2[3..20], &h2[20..]]).await;
        assert_eq!(protocol, Protocol::Http2);
        assert_eq!(all, h2);
    }

    #[tokio::test]
    async fn a_head_that_arrived_at_once_is_read_at_once() {
        // The point of Prefixed: the detected bytes and the rest of the
        // segment come back in one read.
        let request = b"GET /a/longer/path HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n";
        let (_, all, reads) = detect_from(&[request]).await;
        assert_eq!(all, request);
        assert_eq!(reads, vec![request.len()]);
    }

    #[tokio::test]
    async fn a_connection_that_ends_early_is_http1() {
        let (protocol, all, _) = detect_from(&[b"PRI * H"]).await;
        assert_eq!(protocol, Protocol::Http1);
        assert_eq!(all, b"PRI * H");
        let (protocol, all, _) = detect_from(&[]).await;
        assert_eq!(protocol, Protocol::Http1);
        assert!(all.is_empty());
    }
}
