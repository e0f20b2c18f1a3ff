//! HTTP/2 by upgrade from HTTP/1.1 (`Upgrade: h2c`, RFC 7540 §3.2).
//!
//! The upgrade request is answered on stream 1 of the new HTTP/2 connection.
//! h2 cannot start a server connection with a stream already open, so after the `101 Switching Protocols` this module makes the request
//! arrive as if the client had sent it on stream 1: `UpgradeStream` passes the
//! client's connection preface and first SETTINGS frame through, then inserts a
//! HEADERS frame (stream 1, END_STREAM) carrying the request head, HPACK-encoded
//! as literals that do not touch the decoder's dynamic table. The request body,
//! already read in HTTP/1.1 before the switch, travels beside the connection
//! (`UpgradeRequest`) and is handed to the first request the connection serves.
//!
//! What it does not do: apply the `HTTP2-Settings` header (the client repeats
//! its settings in the SETTINGS frame of its preface, which the server applies
//! before it answers stream 1), or upgrade over TLS (h2c is cleartext only;
//! TLS uses ALPN).

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, CONNECTION, CONTENT_LENGTH, HOST, TE, TRANSFER_ENCODING, UPGRADE};
use tokio::io::{AsyncRead, ReadBuf};

use crate::proto::body::Framing;

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE's initial value (RFC 9113 §6.5.2): the largest frame
/// the server accepts before its own settings are acknowledged.
const MAX_FRAME: usize = 16_384;

/// Whether `headers` ask for an h2c upgrade (RFC 7540 §3.2: `Upgrade: h2c`,
/// exactly one `HTTP2-Settings`, both named in `Connection`).
pub(crate) fn is_upgrade_request(headers: &HeaderMap) -> bool {
    let has_token = |name: http::header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    has_token(UPGRADE, "h2c")
        && has_token(CONNECTION, "upgrade")
        && has_token(CONNECTION, "http2-settings")
        && headers.get_all("http2-settings").iter().count() == 1
}

/// The upgraded request's body and framing, waiting for stream 1.
pub(crate) struct UpgradeRequest {
    pub(crate) body: Bytes,
    pub(crate) framing: Framing,
}

/// Hands the upgrade request to the first request the new connection serves.
#[derive(Default)]
pub(crate) struct PendingUpgrade(Mutex<Option<UpgradeRequest>>);

impl PendingUpgrade {
    pub(crate) fn new(request: UpgradeRequest) -> PendingUpgrade {
        PendingUpgrade(Mutex::new(Some(request)))
    }

    pub(crate) fn take(&self) -> Option<UpgradeRequest> {
        self.0.lock().unwrap().take()
    }
}

/// The HEADERS (and CONTINUATION) frames for stream 1 carrying this request.
pub(crate) fn stream_one_headers(method: &str, path_and_query: &str, headers: &HeaderMap) -> Bytes {
    let mut block = BytesMut::new();
    let authority = headers.get(HOST).map(|h| h.as_bytes()).unwrap_or_default();
    for (name, value) in [
        (&b":method"[..], method.as_bytes()),
        (b":scheme", b"http"),
        (b":path", path_and_query.as_bytes()),
        (b":authority", authority),
    ] {
        literal(&mut block, name, value);
    }
    for (name, value) in headers {
        // Connection-specific fields are not carried into HTTP/2 (RFC 9113
        // §8.2.2); the body travels beside the connection, so its framing
        // fields go too.
        let skip = [
            CONNECTION,
            UPGRADE,
            HOST,
            TRANSFER_ENCODING,
            CONTENT_LENGTH,
            TE,
        ]
        .contains(name)
            || ["http2-settings", "keep-alive", "proxy-connection"].contains(&name.as_str());
        if !skip {
            literal(&mut block, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    let mut out = BytesMut::new();
    let mut chunks = block.chunks(MAX_FRAME).peekable();
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let (kind, mut flags) = if first { (0x1u8, 0x1u8) } else { (0x9, 0x0) }; // HEADERS+END_STREAM / CONTINUATION
        if last {
            flags |= 0x4; // END_HEADERS
        }
        let len = chunk.len() as u32;
        out.extend_from_slice(&[
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ]);
        out.extend_from_slice(chunk);
        first = false;
    }
    if block.is_empty() {
        out.extend_from_slice(&[0, 0, 0, 0x1, 0x5, 0, 0, 0, 1]);
    }
    out.freeze()
}

/// HPACK "Literal Header Field without Indexing -- New Name" (RFC 7541 §6.2.2).
fn literal(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(&[0x00]);
    string(out, name);
    string(out, value);
}

fn string(out: &mut BytesMut, s: &[u8]) {
    integer(out, s.len(), 7, 0x00); // H = 0: no Huffman coding
    out.extend_from_slice(s);
}

/// RFC 7541 §5.1 integer with an N-bit prefix.
fn integer(out: &mut BytesMut, mut value: usize, prefix_bits: u8, first_byte_flags: u8) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.extend_from_slice(&[first_byte_flags | value as u8]);
        return;
    }
    out.extend_from_slice(&[first_byte_flags | max as u8]);
    value -= max;
    while value >= 128 {
        out.extend_from_slice(&[(value % 128 + 128) as u8]);
        value /= 128;
    }
    out.extend_from_slice(&[value as u8]);
}

/// The upgraded connection, with stream 1's HEADERS inserted after the client's
/// preface and first frame.
pub(crate) struct UpgradeStream<I> {
    inner: I,
    state: Inject,
}

enum Inject {
    /// Collecting the preface and the first frame; then `frames` go after them.
    Collecting {
        seen: BytesMut,
        frames: Bytes,
    },
    /// Handing out what was collected plus the inserted frames.
    Draining(Bytes),
    Passthrough,
}

impl<I> UpgradeStream<I> {
    pub(crate) fn new(inner: I, frames: Bytes) -> UpgradeStream<I> {
        UpgradeStream {
            inner,
            state: Inject::Collecting {
                seen: BytesMut::new(),
                frames,
            },
        }
    }
}

fn first_frame_end(seen: &[u8]) -> Option<usize> {
    let header = seen.get(PREFACE_LEN..PREFACE_LEN + FRAME_HEADER_LEN)?;
    let len =
        (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
    let end = PREFACE_LEN + FRAME_HEADER_LEN + len;
    (seen.len() >= end).then_some(end)
}

impl<I: AsyncRead + Unpin> AsyncRead for UpgradeStream<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                Inject::Passthrough => return Pin::new(&mut this.inner).poll_read(cx, buf),
                Inject::Draining(pending) => {
                    let n = pending.len().min(buf.remaining());
                    buf.put_slice(&pending[..n]);
                    pending.advance(n);
                    if pending.is_empty() {
                        this.state = Inject::Passthrough;
                    }
                    return Poll::Ready(Ok(()));
                }
                Inject::Collecting { seen, frames } => {
                    if let Some(end) = first_frame_end(seen) {
                        let mut out = BytesMut::with_capacity(seen.len() + frames.len());
                        out.extend_from_slice(&seen[..end]);
                        out.extend_from_slice(frames);
                        out.extend_from_slice(&seen[end..]);
                        this.state = Inject::Draining(out.freeze());
                        continue;
                    }
                    let mut tmp = [0u8; 4096];
                    let mut read = ReadBuf::new(&mut tmp);
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
                    if read.filled().is_empty() {
                        // EOF before the preface was complete: pass on what we have.
                        let rest = std::mem::take(seen).freeze();
                        this.state = Inject::Draining(rest);
                        if let Inject::Draining(r) = &this.state {
                            if r.is_empty() {
                                this.state = Inject::Passthrough;
                            }
                        }
                        continue;
                    }
                    seen.extend_from_slice(read.filled());
                }
            }
        }
    }
}

crate::runtime::transport::forward::forward_async_write!(UpgradeStream);

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn recognises_upgrade_requests() {
        let good = headers(&[
            ("upgrade", "h2c"),
            ("connection", "Upgrade, HTTP2-Settings"),
            ("http2-settings", "AAMAAABkAAQAAP__"),
        ]);
        assert!(is_upgrade_request(&good));
        let no_settings = headers(&[
            ("upgrade", "h2c"),
            ("connection", "Upgrade, HTTP2-Settings"),
        ]);
        assert!(!is_upgrade_request(&no_settings));
        let websocket = headers(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("http2-settings", ""),
        ]);
        assert!(!is_upgrade_request(&websocket));
    }

    #[test]
    fn hpack_integers() {
        let mut out = BytesMut::new();
        integer(&mut out, 10, 5, 0);
        assert_eq!(&out[..], &[10]);
        let mut out = BytesMut::new();
        integer(&mut out, 1337, 5, 0); // RFC 7541 §C.1.2
        assert_eq!(&out[..], &[31, 154, 10]);
    }

    #[test]
    fn large_header_blocks_use_continuation() {
        let big = "x".repeat(40_000);
        let frames = stream_one_headers("GET", "/", &headers(&[("host", "h"), ("x-big", &big)]));
        // HEADERS (no END_HEADERS), CONTINUATION, CONTINUATION (END_HEADERS)
        assert_eq!(frames[3], 0x1);
        assert_eq!(frames[4], 0x1);
        let second = FRAME_HEADER_LEN + MAX_FRAME;
        assert_eq!(frames[second + 3], 0x9);
    }

    #[tokio::test]
    async fn inserts_after_preface_and_settings() {
        use tokio::io::AsyncReadExt;
        let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        client.extend_from_slice(&[0, 0, 6, 0x4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]); // SETTINGS
        client.extend_from_slice(b"NEXT");
        let mut stream = UpgradeStream::new(&client[..], Bytes::from_static(b"INSERTED"));
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        let split = PREFACE_LEN + FRAME_HEADER_LEN + 6;
        assert_eq!(&out[..split], &client[..split]);
        assert_eq!(&out[split..split + 8], b"INSERTED");
        assert_eq!(&out[split + 8..], b"NEXT");
    }
}
