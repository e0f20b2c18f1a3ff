//! The server's HTTP/1.x connection loop (HTTP/1.0 and HTTP/1.1).
//!
//! What it does: reads request heads into one buffer per connection, and
//! serves each request (`proto::h1::parse_request`) through
//! `request::service::begin`, as HTTP/2 streams are: the same checks,
//! routing, endpoint, pool, access log and timers; a head `parse_request`
//! refuses is answered with its status (400, 414, 417, 431, 501) and the
//! connection closes. It writes the response head as hyper would
//! (`proto::h1::encode_response_head`), in one write with a small body,
//! else followed by the body's own buffers (file bodies are placeholders the
//! transport sends with `sendfile`), and goes on to the next request in the
//! buffer. A request body is read by the application's thread from the
//! socket (`request::body::SocketBody`): what came with the head is handed over from the
//! buffer, the rest goes from the kernel straight into the memory of the
//! read. Every other body (chunked, behind `Expect: 100-continue`, or on
//! TLS, where the socket holds records, not the body) the connection reads
//! and decodes itself while the response is written (`h1_body`), except
//! that on TLS a small body here with its head is handed over whole
//! (`TLS_BUFFERED_BODY`). A chunked response ends with the response's
//! trailer fields (`response::Trailers`); a response with a length drops them.
//! Before the final response of an HTTP/1.1 request, the `103 Early Hints`
//! that come on its interim channel (`request::interim`) are written; an
//! HTTP/1.0 request gets none (RFC 9110 §15.2), nor does any with
//! `--no-early-hints`.
//! An `Upgrade: h2c` request on cleartext (RFC 7540 §3.2) has its body read
//! whole here, is answered `101 Switching Protocols`, and ends the loop with
//! the socket and what is buffered (`Outcome::H2c`), for the connection task
//! to serve as HTTP/2; other `Upgrade` tokens are ignored (the request is
//! served as it is).
//!
//! What it does not do: HTTP/2, timeouts and shutdown (the connection
//! task's `drive!` runs the same timers as for HTTP/2, and calls
//! `graceful_shutdown`), or decide anything HTTP: that is `proto::h1`.

use std::future::Future;
use std::io;
use std::io::IoSlice;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt as _;
use http::{HeaderValue, Method, Request, Version};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::context::ConnContext;
use super::h1_body::{
    poll_read_buf, BodyEnd, BodyPump, Decoding, Expectation, InterimWriter, ResponseWriter, Shared,
};
use super::h2c::{self, UpgradeRequest};
use crate::proto;
use crate::proto::body::Framing as BodyFraming;
use crate::proto::chunked::{ChunkedDecoder, TrailerLimits};
use crate::proto::h1::{
    chunk_head, encode_early_hints, encode_last_chunk, encode_response_head, parse_request,
    Answering, BodyLength, Framing, Limits, Parsed,
};
use crate::proto::request::{HttpVersion, RequestError};
use crate::proto::route::Exchange;
use crate::proto::websocket::handshake::check_http1;
use crate::runtime::request::body::{
    self, BodyClock, BodyError, BodySocket, Lease, DRAIN_LIMIT, DRAIN_TIME,
};
use crate::runtime::request::interim::{self, Interim, InterimReceiver, InterimSender};
use crate::runtime::request::response::Trailers;
use crate::runtime::request::service::{begin, Http1Body, HttpResponse, RequestBody};
use crate::runtime::transport::sendfile;
use crate::runtime::transport::RawSocket;
use crate::runtime::websocket::link::{Closed, Link};
use crate::runtime::websocket::{self, Answered, WebSocketEndpoint};

/// Read size: room for a usual head (nginx reads heads into 1 KiB first,
/// `client_header_buffer_size`; hyper into 8 KiB). What a read takes of a
/// body beyond the head is copied once more, from this buffer into the
/// `bytes` objects the application's body reads return; the rest goes there straight from
/// the socket. 4 KiB against 8 KiB: +2.8% requests/s for a 64 KiB POST
/// echo, hello world the same (3 interleaved rounds). A longer head takes
/// more reads.
const READ_BUFFER: usize = 4 * 1024;

/// A body at most this long goes into the same write as its head.
const SMALL_BODY: usize = 1024;

/// Read size while discarding a body.
const DRAIN_READ: usize = 16 * 1024;

/// On TLS, a request body of at most this many bytes that is here with its
/// head (in the buffer, or decrypted by reads that do not wait) is read
/// into the buffer and handed to the application whole, with no channel in
/// between; a longer one, or one still to come, is read by the connection
/// as the application takes it (`h1_body`). 64 KiB: a JSON or form POST.
pub(crate) const TLS_BUFFERED_BODY: u64 = 64 * 1024;

/// How the loop ended.
pub(crate) enum Outcome<I> {
    /// The connection is over (closed by either side, or shut down).
    Closed,
    /// `101 Switching Protocols` was sent for a WebSocket handshake: the
    /// connection is the WebSocket's from here on.
    WebSocket(Box<Upgraded<I>>),
    /// `101 Switching Protocols` was sent for `Upgrade: h2c`: the connection
    /// is HTTP/2 from here on.
    H2c(Switch<I>),
}

/// A connection switching to HTTP/2 after an `Upgrade: h2c` request.
pub(crate) struct Switch<I> {
    pub(crate) io: I,
    /// What was read after the upgrade request (the client's preface may
    /// have come with it): read before the transport.
    pub(crate) buffered: Bytes,
    /// Stream 1's HEADERS, carrying the upgrade request (`h2c::UpgradeStream`).
    pub(crate) frames: Bytes,
    /// Its body, read here.
    pub(crate) request: UpgradeRequest,
}

/// A connection that a WebSocket handshake opened.
pub(crate) struct Upgraded<I> {
    pub(crate) io: I,
    /// What was read after the handshake: the first frames.
    pub(crate) buffered: Bytes,
    /// The agreed `Sec-WebSocket-Extensions` value.
    pub(crate) agreed: Option<String>,
    pub(crate) link: Link,
}

/// One HTTP/1.x connection. A future of its `Outcome`;
/// `graceful_shutdown` finishes the request in progress, then closes.
pub(crate) struct Connection<I> {
    run: Pin<Box<dyn Future<Output = io::Result<Outcome<I>>> + Send>>,
    stop: Arc<AtomicBool>,
}

impl<I> Connection<I>
where
    I: AsyncRead + AsyncWrite + RawSocket + Unpin + Send + 'static,
{
    /// Serve `io`, whose first bytes (`prefix`) were read already.
    pub(crate) fn new(io: I, prefix: &[u8], ctx: Arc<ConnContext>) -> Connection<I> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut buf = BytesMut::with_capacity(READ_BUFFER);
        buf.extend_from_slice(prefix);
        Connection {
            run: Box::pin(serve(io, buf, ctx, stop.clone())),
            stop,
        }
    }

    pub(crate) fn graceful_shutdown(self: Pin<&mut Self>) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl<I> Future for Connection<I> {
    type Output = io::Result<Outcome<I>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().run.as_mut().poll(cx)
    }
}

async fn serve<I>(
    mut io: I,
    mut buf: BytesMut,
    ctx: Arc<ConnContext>,
    stop: Arc<AtomicBool>,
) -> io::Result<Outcome<I>>
where
    I: AsyncRead + AsyncWrite + RawSocket + Unpin + Send + 'static,
{
    let raw_socket = io.raw_socket();
    let limits = Limits {
        max_headers: ctx.config.max_headers,
        max_head: ctx.config.max_header_size,
    };
    // Made at the first request with a body.
    let mut socket: Option<Arc<BodySocket>> = None;
    let mut out = Vec::new();
    // A connection accepted just before the server began to stop gets its
    // first request served (the drain bounds the wait for it); between
    // requests, a stopping server reads no further.
    let mut first = true;
    loop {
        let request = loop {
            if !buf.is_empty() {
                match parse_request(&mut buf, &limits) {
                    Parsed::Request(request) => break request,
                    Parsed::Refuse(e) => {
                        log::info!(target: "propylon.server", "rejected request: {e}");
                        // Its body, or the rest of its head, is not read:
                        // the close lingers.
                        ctx.unread_input.store(true, Ordering::Relaxed);
                        refuse(&mut io, &e, &mut out).await?;
                        return Ok(Outcome::Closed);
                    }
                    Parsed::Partial => {}
                }
            }
            if buf.capacity() - buf.len() < READ_BUFFER / 4 {
                buf.reserve(READ_BUFFER);
            }
            match read_more(&mut io, &mut buf, &stop, !first).await {
                // The end, between requests or within a head: nothing to
                // answer.
                Some(Ok(0)) => return Ok(Outcome::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(Outcome::Closed),
            }
        };
        first = false;
        if request.upgrade
            && request.version == Version::HTTP_11
            && ctx.tls.is_none()
            && h2c::is_upgrade_request(&request.headers)
        {
            // Boxed: a connection's future should not hold room for an
            // upgrade it may never see.
            return Box::pin(upgrade_to_h2c(io, buf, request, &ctx, &mut out)).await;
        }
        if request.upgrade && Exchange::of_http1(&request.headers) == Exchange::WebSocket {
            // A handshake no WebSocket handler covers goes on as a request,
            // and routing answers it 404.
            if let Some(endpoint) = ctx.endpoints.websocket(request.uri.path()).cloned() {
                return Box::pin(open_websocket(io, buf, request, &*endpoint, &ctx, &mut out))
                    .await;
            }
        }
        // The request's parts are moved into a boxed future here, in a
        // scope of their own: the connection's future keeps no room for
        // them (idle keep-alive connections hold only what they need).
        let (handled, answering, reading) = {
            // Taken apart at once, so nothing of it outlives this scope.
            let proto::h1::Request {
                method,
                uri,
                version,
                headers,
                body: framing,
                expect_continue,
                keep_alive,
                upgrade: _,
            } = request;
            let answering = Answering {
                head: method == Method::HEAD,
                keep_alive,
                version: HttpVersion::of(version),
            };
            let held;
            let (body, reading) = match (framing, raw_socket) {
                (BodyFraming::Empty | BodyFraming::Length(0), _) => (None, Reading::Nothing),
                // A small body here with its head (in the buffer, or read
                // by reads that do not wait) is handed over whole, within
                // the read-ahead memory budget (without room, it takes
                // one of the ways below).
                (BodyFraming::Length(n), _)
                    if !expect_continue
                        && n <= whole_here_limit(&ctx, raw_socket.is_some())
                        && (buf.len() as u64 >= n || read_all_now(&mut io, &mut buf, n))
                        && {
                            held = ctx.preread_budget.reserve(n);
                            held.is_some()
                        } =>
                {
                    let body = buf.split_to(n as usize).freeze();
                    (Some(Http1Body::Memory(body, held)), Reading::Nothing)
                }
                // Cleartext, over `--preread-body-size`: the application's
                // thread reads the socket. A smaller body still to come is
                // the connection's, read whole before the call
                // (`request::body::preread`), as is any body with
                // `--buffer-body` (`request::body::spool`).
                (BodyFraming::Length(n), Some(raw_socket))
                    if !expect_continue
                        && n > ctx.config.preread.max_size
                        && !ctx.config.body.buffer =>
                {
                    let buffered =
                        buf.split_to(buf.len().min(usize::try_from(n).unwrap_or(usize::MAX)));
                    let left = n - buffered.len() as u64;
                    let socket = socket.get_or_insert_with(|| BodySocket::new(raw_socket));
                    let (body, lease) = socket.lend(buffered.freeze(), left, body_clock(&ctx));
                    (Some(Http1Body::Socket(body)), Reading::Socket(lease))
                }
                // The connection reads the rest: chunked bodies, TLS bodies,
                // bodies behind `Expect: 100-continue`, small bodies.
                (framing, _) => {
                    let decoding = match framing {
                        BodyFraming::Length(n) => Decoding::Length(n),
                        _ => Decoding::Chunked(ChunkedDecoder::new(TrailerLimits {
                            max_fields: ctx.config.max_headers,
                            max_bytes: ctx.config.max_header_size,
                        })),
                    };
                    let declared = match framing {
                        BodyFraming::Length(n) => Some(n),
                        _ => None,
                    };
                    let (body, feed) = body::channel(ctx.rt.clone(), body_clock(&ctx), declared);
                    let expectation = match expect_continue {
                        true => Expectation::Waiting,
                        false => Expectation::Settled,
                    };
                    (
                        Some(Http1Body::Channel(body)),
                        Reading::Connection(Box::new(BodyPump::new(decoding, feed)), expectation),
                    )
                }
            };
            let body = RequestBody::Http1 { framing, body };
            let mut req = Request::new(body);
            *req.method_mut() = method;
            *req.uri_mut() = uri;
            *req.version_mut() = version;
            *req.headers_mut() = headers;
            // Interim responses (`103 Early Hints`, unless
            // `--no-early-hints`): never to HTTP/1.0 (RFC 9110 §15.2).
            let hints = ctx.config.early_hints && answering.version == HttpVersion::Http11;
            let (sender, interim) = match hints {
                true => {
                    let (sender, receiver) = interim::channel();
                    (sender, Some(receiver))
                }
                false => (InterimSender::none(), None),
            };
            let handled = Handled {
                response: Box::pin(begin(req, sender, ctx.clone())),
                interim,
            };
            (handled, answering, reading)
        };
        let (written, whole) = match reading {
            Reading::Nothing => (respond(&mut io, handled, answering, &mut out).await, true),
            // The body's reader gives the socket back before the connection
            // reads it again, or closes it.
            Reading::Socket(lease) => {
                let written = respond(&mut io, handled, answering, &mut out).await;
                // Wait for an unread rest only to keep the connection.
                let keep = matches!(written, Ok(false)) && !stop.load(Ordering::Relaxed);
                let wait = keep.then(|| DRAIN_TIME.min(ctx.config.header_timeout));
                let whole = Box::pin(discard_rest(&mut io, &mut buf, lease, wait, &stop)).await;
                if whole && buf.is_empty() {
                    // What was read since the response was body, not the
                    // start of the next head.
                    ctx.activity.not_a_head();
                }
                (written, whole)
            }
            Reading::Connection(mut pump, expectation) => {
                // Boxed, as the rest below: a body the connection reads is
                // rare, and its state would otherwise make every idle
                // connection's future larger (2,560 bytes instead of 1,864).
                let (written, expectation) = Box::pin(exchange(
                    &mut io,
                    &mut buf,
                    &mut pump,
                    expectation,
                    handled,
                    answering,
                    &mut out,
                ))
                .await;
                pump.detach();
                let whole = match pump.end {
                    BodyEnd::Whole => true,
                    BodyEnd::Broken => false,
                    BodyEnd::Reading => {
                        // Not when the client still waits for `100 Continue`:
                        // it may never send the body.
                        let keep = matches!(written, Ok(false))
                            && !stop.load(Ordering::Relaxed)
                            && !pump.given_up()
                            && expectation == Expectation::Settled;
                        let wait = DRAIN_TIME.min(ctx.config.header_timeout);
                        let whole = keep && Box::pin(pump.discard(&mut io, &mut buf, wait)).await;
                        if whole && buf.is_empty() {
                            ctx.activity.not_a_head();
                        }
                        whole
                    }
                };
                (written, whole)
            }
        };
        let close = written?;
        if close || !whole || stop.load(Ordering::Relaxed) {
            if !whole {
                // The client may still be sending the rest: the close lingers.
                ctx.unread_input.store(true, Ordering::Relaxed);
            }
            let _ = io.shutdown().await;
            return Ok(Outcome::Closed);
        }
        if buf.is_empty() && buf.capacity() > 4 * READ_BUFFER {
            // A buffered body made it large: an idle connection keeps a
            // read buffer's worth.
            buf = BytesMut::with_capacity(READ_BUFFER);
        }
    }
}

/// Answer a refused request (`Parsed::Refuse`) with its status, a short
/// plain-text body and `connection: close`, and end the connection.
async fn refuse<I: AsyncWrite + Unpin>(
    io: &mut I,
    e: &proto::request::RequestError,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let status = http::StatusCode::from_u16(e.status).unwrap_or(http::StatusCode::BAD_REQUEST);
    let mut response = http::Response::new(Bytes::from(format!("{} {}\n", e.status, e.reason)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    write_final(io, response, out).await
}

/// `Upgrade: h2c` (RFC 7540 §3.2): read the request's body whole (at most
/// `--max-body-size`, with the waits of any body: `--body-timeout`,
/// `--min-body-rate`; `100 Continue` first when the client expects it),
/// answer `101 Switching Protocols`, and hand the connection over to HTTP/2
/// with the request, to be answered on stream 1. A body that cannot be read
/// is answered (413, 408, 400) in HTTP/1.1, and the connection closes.
async fn upgrade_to_h2c<I>(
    mut io: I,
    mut buf: BytesMut,
    request: proto::h1::Request,
    ctx: &ConnContext,
    out: &mut Vec<u8>,
) -> io::Result<Outcome<I>>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    // The connection is busy: not idle, nor reading a head.
    let in_flight = ctx.activity.begin();
    let framing = request.body;
    let read = match framing {
        BodyFraming::Empty | BodyFraming::Length(0) => Ok(Bytes::new()),
        BodyFraming::Length(n) if n > ctx.config.body.max_body_size => {
            Err(BodyError::TooLarge(ctx.config.body.max_body_size))
        }
        _ => read_whole_body(&mut io, &mut buf, framing, request.expect_continue, ctx).await,
    };
    let body = match read {
        Ok(body) => body,
        Err(e) => {
            log::info!(target: "propylon.server", "h2c upgrade refused: {e}");
            drop(in_flight);
            ctx.unread_input.store(true, Ordering::Relaxed);
            refuse(&mut io, &body_refusal(&e), out).await?;
            return Ok(Outcome::Closed);
        }
    };
    out.clear();
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\ndate: ",
    );
    out.extend_from_slice(&date::now());
    out.extend_from_slice(b"\r\n\r\n");
    write_all(&mut io, &mut [IoSlice::new(out)]).await?;
    io.flush().await?;
    drop(in_flight);
    let target = request.uri.path_and_query().map_or("/", |p| p.as_str());
    let frames = h2c::stream_one_headers(request.method.as_str(), target, &request.headers);
    Ok(Outcome::H2c(Switch {
        io,
        buffered: buf.freeze(),
        frames,
        request: UpgradeRequest { body, framing },
    }))
}

/// A WebSocket handshake (RFC 6455 §4.2) routed to `endpoint`: checked
/// (400, or 426 for a version other than 13), handed to the application,
/// and answered `101 Switching Protocols` with what it accepted, or with its
/// rejection (or 503, 500), after which the connection closes.
async fn open_websocket<I>(
    mut io: I,
    buf: BytesMut,
    request: proto::h1::Request,
    endpoint: &dyn WebSocketEndpoint,
    ctx: &ConnContext,
    out: &mut Vec<u8>,
) -> io::Result<Outcome<I>>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    // The connection is busy: not idle, nor reading a head.
    let in_flight = ctx.activity.begin();
    let checked = match request.body {
        BodyFraming::Empty | BodyFraming::Length(0) => {
            check_http1(&request.method, request.version, &request.headers).map_err(|e| {
                let mut headers = e.response_headers();
                if e.status() == http::StatusCode::UPGRADE_REQUIRED {
                    // RFC 9110 §15.5.22: a 426 names the protocol to use.
                    headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
                }
                (e.status(), headers, e.to_string())
            })
        }
        _ => Err((
            http::StatusCode::BAD_REQUEST,
            http::HeaderMap::new(),
            "a WebSocket handshake has no body".to_owned(),
        )),
    };
    let offer = match checked {
        Ok(offer) => offer,
        Err((status, headers, reason)) => {
            log::info!(target: "propylon.server", "WebSocket handshake refused: {reason}");
            ctx.unread_input.store(true, Ordering::Relaxed);
            let body = Bytes::from(format!("{} {reason}\n", status.as_u16()));
            let mut response = http::Response::new(body);
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            write_final(&mut io, response, out).await?;
            return Ok(Outcome::Closed);
        }
    };
    let (client, secure) = ctx.client(ctx.forwarded(&request.headers).as_ref());
    let answered = websocket::answer(
        endpoint,
        offer,
        request.uri,
        request.headers,
        false,
        secure,
        client,
        &ctx.config.websocket,
    )
    .await;
    drop(in_flight);
    match answered {
        Answered::Open {
            headers,
            agreed,
            link,
        } => {
            out.clear();
            out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
            for (name, value) in &headers {
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"date: ");
            out.extend_from_slice(&date::now());
            out.extend_from_slice(b"\r\n\r\n");
            if let Err(e) = write_all(&mut io, &mut [IoSlice::new(out)]).await {
                link.finish(Closed::abnormal());
                return Err(e);
            }
            Ok(Outcome::WebSocket(Box::new(Upgraded {
                io,
                buffered: buf.freeze(),
                agreed,
                link,
            })))
        }
        Answered::Refused(response) => {
            write_final(&mut io, response, out).await?;
            Ok(Outcome::Closed)
        }
    }
}

/// Write `response` with its length, and close the connection.
async fn write_final<I: AsyncWrite + Unpin>(
    io: &mut I,
    response: http::Response<Bytes>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    out.clear();
    let request = Answering {
        head: false,
        keep_alive: false,
        version: HttpVersion::Http11,
    };
    let length = BodyLength::Known(body.len() as u64);
    encode_response_head(
        parts.status,
        &parts.headers,
        length,
        request,
        &date::now(),
        out,
    );
    out.extend_from_slice(&body);
    write_all(io, &mut [IoSlice::new(out)]).await?;
    io.shutdown().await
}

/// Read a request body whole into memory, as the connection reads any body
/// (`h1_body::BodyPump`), under `--max-body-size`.
async fn read_whole_body<I: AsyncRead + AsyncWrite + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    framing: BodyFraming,
    expect_continue: bool,
    ctx: &ConnContext,
) -> Result<Bytes, BodyError> {
    let max = ctx.config.body.max_body_size;
    let (decoding, declared) = match framing {
        BodyFraming::Length(n) => (Decoding::Length(n), Some(n)),
        _ => (
            Decoding::Chunked(ChunkedDecoder::new(TrailerLimits {
                max_fields: ctx.config.max_headers,
                max_bytes: ctx.config.max_header_size,
            })),
            None,
        ),
    };
    let (mut body, feed) = body::channel(ctx.rt.clone(), body_clock(ctx), declared);
    let mut pump = BodyPump::new(decoding, feed);
    let expectation = match expect_continue {
        true => Expectation::Waiting,
        false => Expectation::Settled,
    };
    let shared = Shared::new(io, expectation);
    let collect = async {
        let mut whole = BytesMut::new();
        while let Some(data) = body.next_chunk_async().await? {
            if (whole.len() + data.len()) as u64 > max {
                return Err(BodyError::TooLarge(max));
            }
            whole.extend_from_slice(&data);
        }
        Ok(whole.freeze())
    };
    let feeding = pump.feed(&shared, buf);
    tokio::pin!(collect, feeding);
    let mut fed = false;
    loop {
        tokio::select! {
            biased;
            collected = &mut collect => return collected,
            () = &mut feeding, if !fed => fed = true,
        }
    }
}

/// The answer to a body that could not be read before the call (as
/// `request::service::body_error_response` answers the others).
fn body_refusal(e: &BodyError) -> RequestError {
    let (status, reason) = match e {
        BodyError::TooLarge(_) => (413, "Content Too Large"),
        // RFC 9110 §15.5.9: the server would not wait any longer.
        BodyError::TooSlow(_) => (408, "Request Timeout"),
        BodyError::Invalid(_) | BodyError::Disconnected(_) => (400, "Bad Request"),
    };
    RequestError { status, reason }
}

/// Read what the socket has now into `buf`, without waiting, until it holds
/// `n` bytes: true if it does. Room is made for a TLS record's worth.
fn read_all_now<I: AsyncRead + Unpin>(io: &mut I, buf: &mut BytesMut, n: u64) -> bool {
    while (buf.len() as u64) < n {
        buf.reserve(16 * 1024);
        match std::future::poll_fn(|cx| poll_read_buf(Pin::new(&mut *io), cx, buf)).now_or_never() {
            Some(Ok(read)) if read > 0 => {}
            _ => return false,
        }
    }
    true
}

/// The longest body handed over whole when it is here with its head: on
/// TLS, `TLS_BUFFERED_BODY` (or `--preread-body-size` if larger); on
/// cleartext `--preread-body-size` (a longer one the application's thread
/// reads from the socket, without a copy).
fn whole_here_limit(ctx: &ConnContext, cleartext: bool) -> u64 {
    let preread = ctx.config.preread.max_size;
    match cleartext {
        true => preread,
        false => preread.max(TLS_BUFFERED_BODY),
    }
}

/// The waits of a body: `--body-timeout` each, `--min-body-rate` together.
fn body_clock(ctx: &ConnContext) -> BodyClock {
    BodyClock::new(ctx.config.body_timeout, ctx.config.min_body_rate)
}

/// How a request's body is read.
enum Reading {
    /// No body, or all of it in memory already.
    Nothing,
    /// By the application's thread, from the socket (`body::socket`).
    Socket(Lease),
    /// By the connection, while the response is written (`h1_body`).
    Connection(Box<BodyPump>, Expectation),
}

/// Serve a request whose body the connection reads: the response is awaited
/// and written while the body is read, in this task. Returns what
/// `write_response` returned, and where `Expect: 100-continue` stood when
/// the response was over.
async fn exchange<I, F>(
    io: &mut I,
    buf: &mut BytesMut,
    pump: &mut BodyPump,
    expectation: Expectation,
    handled: Handled<F>,
    mut answering: Answering,
    out: &mut Vec<u8>,
) -> (io::Result<bool>, Expectation)
where
    I: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = Result<HttpResponse, std::convert::Infallible>>,
{
    let shared = Shared::new(io, expectation);
    let respond = async {
        let response = await_response(handled, &mut InterimWriter(&shared), out).await?;
        // The final response before the application asked for the body:
        // the client may or may not send it now (RFC 9110 §10.1.1), so the
        // connection closes after the response, and says so.
        let waiting =
            shared.lock().unwrap_or_else(|e| e.into_inner()).expectation == Expectation::Waiting;
        answering.keep_alive &= !waiting;
        let written = write_response(&mut ResponseWriter(&shared), response, answering, out).await;
        written.map(|close| close || waiting)
    };
    let feeding = pump.feed(&shared, buf);
    tokio::pin!(respond, feeding);
    let mut fed = false;
    let written = loop {
        tokio::select! {
            biased;
            written = &mut respond => break written,
            () = &mut feeding, if !fed => fed = true,
        }
    };
    let expectation = shared.lock().unwrap_or_else(|e| e.into_inner()).expectation;
    (written, expectation)
}

/// Wait for the response (writing the interim ones before it), then write
/// it; true when the connection must close after it.
async fn respond<I, F>(
    io: &mut I,
    handled: Handled<F>,
    answering: Answering,
    out: &mut Vec<u8>,
) -> io::Result<bool>
where
    I: AsyncWrite + Unpin,
    F: Future<Output = Result<HttpResponse, std::convert::Infallible>>,
{
    let response = await_response(handled, io, out).await?;
    write_response(io, response, answering, out).await
}

/// A request being served: its response to come, and (HTTP/1.1) its
/// interim channel.
struct Handled<F> {
    response: Pin<Box<F>>,
    interim: Option<InterimReceiver>,
}

/// Wait for the response, writing each `103 Early Hints` (RFC 8297) that
/// comes first. A hint sent before the response is written before it (the
/// queue is looked at after the response is found ready); one sent after is
/// dropped with `interim`. What only a hint needs is boxed (the response
/// kept while a hint is written, the write itself): every connection's
/// future holds room for this wait.
async fn await_response<W, F>(
    handled: Handled<F>,
    io: &mut W,
    out: &mut Vec<u8>,
) -> io::Result<HttpResponse>
where
    W: AsyncWrite + Unpin,
    F: Future<Output = Result<HttpResponse, std::convert::Infallible>>,
{
    let Handled {
        response: mut handled,
        interim,
    } = handled;
    let Some(mut interim) = interim else {
        return match handled.await {
            Ok(response) => Ok(response),
            Err(never) => match never {},
        };
    };
    // The response, found ready while a hint was still to be written.
    let mut waiting: Option<Box<HttpResponse>> = None;
    loop {
        // In a block of its own: what the poll gives is dead before the
        // write's await, so the future keeps no room for a response.
        let write = {
            let next = std::future::poll_fn(|cx| {
                if waiting.is_none() {
                    if let Poll::Ready(Ok(response)) = handled.as_mut().poll(cx) {
                        return match interim.poll_recv(cx) {
                            Poll::Ready(message) => {
                                waiting = Some(Box::new(response));
                                Poll::Ready(Err(message))
                            }
                            Poll::Pending => Poll::Ready(Ok(response)),
                        };
                    }
                }
                match interim.poll_recv(cx) {
                    Poll::Ready(message) => Poll::Ready(Err(message)),
                    Poll::Pending => match waiting.take() {
                        Some(response) => Poll::Ready(Ok(*response)),
                        None => Poll::Pending,
                    },
                }
            })
            .await;
            match next {
                Ok(response) => return Ok(response),
                Err(message) => Box::pin(write_interim(io, message, out)),
            }
        };
        write.await?;
    }
}

/// Write an interim message: a `103 Early Hints`. Push is HTTP/2's (RFC
/// 9113 §8.4): nothing to write.
async fn write_interim<W: AsyncWrite + Unpin>(
    io: &mut W,
    message: Interim,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let Interim::EarlyHints(fields) = message else {
        return Ok(());
    };
    out.clear();
    encode_early_hints(&fields, out);
    drop(fields);
    write_all(io, &mut [IoSlice::new(out)]).await?;
    io.flush().await
}

/// Read what the socket has into `buf`. `None`: shutdown was asked for,
/// `stop_when_empty`, and nothing of a next request has come.
async fn read_more<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    stop: &AtomicBool,
    stop_when_empty: bool,
) -> Option<io::Result<usize>> {
    std::future::poll_fn(|cx| {
        if stop_when_empty && buf.is_empty() && stop.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        poll_read_buf(Pin::new(&mut *io), cx, buf).map(Some)
    })
    .await
}

/// After the response: take the socket back from the request body, and
/// discard what the application did not read of it. What has arrived is
/// discarded at once; with `wait`, a rest of at most `DRAIN_LIMIT` bytes
/// still to come is waited for, up to `wait`, and discarded too (gunicorn
/// and uvicorn read an unread body to its end before the next request;
/// nginx discards it). False: the rest is not all here (more than the limit,
/// no `wait`, the time is up, the client closed or failed, or the server
/// stops): the connection closes, with a lingering close.
async fn discard_rest<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    lease: Lease,
    wait: Option<Duration>,
    stop: &AtomicBool,
) -> bool {
    let mut left = lease.end();
    // What is here already, without waiting.
    while left > 0 {
        if buf.capacity() - buf.len() < READ_BUFFER / 4 {
            buf.reserve(READ_BUFFER);
        }
        match std::future::poll_fn(|cx| poll_read_buf(Pin::new(&mut *io), cx, buf)).now_or_never() {
            Some(Ok(n)) if n > 0 => {}
            Some(_) => return false,
            None => break,
        }
        left = skip(buf, left);
    }
    let wait = match wait {
        Some(wait) if left > 0 && left <= DRAIN_LIMIT => wait,
        _ => return left == 0,
    };
    let drained = async {
        while left > 0 {
            if buf.capacity() - buf.len() < DRAIN_READ / 4 {
                buf.reserve(DRAIN_READ);
            }
            match read_more(io, buf, stop, true).await {
                Some(Ok(n)) if n > 0 => left = skip(buf, left),
                // The end, an error, or the server stops.
                _ => return false,
            }
        }
        true
    };
    tokio::time::timeout(wait, drained).await.unwrap_or(false)
}

/// Drop up to `left` bytes of body from the front of `buf`; what is left.
fn skip(buf: &mut BytesMut, left: u64) -> u64 {
    let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
    buf.advance(n);
    left - n as u64
}

/// Write a response; true when the connection must close after it.
async fn write_response<I: AsyncWrite + Unpin>(
    io: &mut I,
    response: HttpResponse,
    request: Answering,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    // The head is encoded and the rest of the response's parts dropped
    // before the first await: the connection's future holds only the body.
    let (mut body, encoded, mut trailers) = {
        let (mut parts, body) = response.into_parts();
        let length = if body.is_end_stream() {
            BodyLength::Empty
        } else {
            match body.size_hint().exact() {
                Some(n) => BodyLength::Known(n),
                None => BodyLength::Unknown,
            }
        };
        out.clear();
        let encoded = encode_response_head(
            parts.status,
            &parts.headers,
            length,
            request,
            &date::now(),
            out,
        );
        let trailers = match encoded.framing {
            Framing::Chunked => parts.extensions.remove::<Trailers>(),
            Framing::Length(_) | Framing::Close => None,
        };
        (body, encoded, trailers)
    };
    let mut close = encoded.close;
    let mut head_sent = false;
    match encoded.framing {
        Framing::Length(mut left) => {
            while left > 0 {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        let Ok(mut data) = frame.into_data() else {
                            continue;
                        };
                        // Never more than the head said (the bridge already
                        // enforces the application's Content-Length).
                        if data.len() as u64 > left {
                            data.truncate(left as usize);
                        }
                        left -= data.len() as u64;
                        send(io, out, &mut head_sent, data).await?;
                    }
                    // Aborted, or shorter than its length: the client must
                    // see the response end early, by the close.
                    Some(Err(_)) | None => {
                        close = true;
                        break;
                    }
                }
            }
        }
        Framing::Chunked => loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    if head_sent {
                        out.clear();
                    }
                    chunk_head(data.len(), out);
                    send_chunk(io, out, &mut head_sent, data).await?;
                }
                Some(Err(_)) => {
                    // No last chunk: the client sees an incomplete body.
                    close = true;
                    break;
                }
                None => {
                    if head_sent {
                        out.clear();
                    }
                    let trailers = trailers.take().map(|t| t.0);
                    encode_last_chunk(trailers.as_ref(), out);
                    write_all(io, &mut [IoSlice::new(out)]).await?;
                    head_sent = true;
                    break;
                }
            }
        },
        Framing::Close => {
            // The close after it ends the body; an aborted body ends it the
            // same way (the close is the only end this framing has).
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if !data.is_empty() {
                    send(io, out, &mut head_sent, data).await?;
                }
            }
        }
    }
    if !head_sent {
        write_all(io, &mut [IoSlice::new(out)]).await?;
    }
    drop(body);
    io.flush().await?;
    Ok(close)
}

/// Send body bytes, after the head if it has not gone yet: a small body is
/// copied behind the head (one write); other buffers go as they are (file
/// placeholders must reach the transport untouched).
async fn send<I: AsyncWrite + Unpin>(
    io: &mut I,
    out: &mut Vec<u8>,
    head_sent: &mut bool,
    data: Bytes,
) -> io::Result<()> {
    if *head_sent {
        return write_all(io, &mut [IoSlice::new(&data)]).await;
    }
    *head_sent = true;
    if data.len() <= SMALL_BODY && !sendfile::is_placeholder(&data) {
        out.extend_from_slice(&data);
        write_all(io, &mut [IoSlice::new(out)]).await
    } else {
        write_all(io, &mut [IoSlice::new(out), IoSlice::new(&data)]).await
    }
}

/// Send one chunk: `out` holds the head (if not sent yet) and the chunk's
/// size line.
async fn send_chunk<I: AsyncWrite + Unpin>(
    io: &mut I,
    out: &mut Vec<u8>,
    head_sent: &mut bool,
    data: Bytes,
) -> io::Result<()> {
    *head_sent = true;
    if data.len() <= SMALL_BODY && !sendfile::is_placeholder(&data) {
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
        write_all(io, &mut [IoSlice::new(out)]).await
    } else {
        write_all(
            io,
            &mut [
                IoSlice::new(out),
                IoSlice::new(&data),
                IoSlice::new(b"\r\n"),
            ],
        )
        .await
    }
}

/// `write_vectored` until every buffer is out.
async fn write_all<I: AsyncWrite + Unpin>(
    io: &mut I,
    mut bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    while !bufs.is_empty() {
        let n = io.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// The `date` header's value, formatted once a second per thread (as
/// hyper's cache does).
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
    }

    pub(crate) fn now() -> [u8; 29] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHE.with_borrow_mut(|(at, text)| {
            if *at != second {
                *at = second;
                *text = crate::proto::h1::http_date(now);
            }
            *text
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use tokio::io::AsyncReadExt;

    /// A lease on a body with `left` bytes still in the socket (the socket
    /// itself is not read: `discard_rest` reads the connection's transport).
    fn lease(left: u64) -> (Lease, std::os::unix::net::UnixStream) {
        let (fd_owner, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let socket = BodySocket::new(fd_owner.as_raw_fd());
        let clock = BodyClock::timeout_only(Duration::from_secs(5));
        let (_body, lease) = socket.lend(Bytes::new(), left, clock);
        (lease, fd_owner)
    }

    #[tokio::test(start_paused = true)]
    async fn a_rest_still_to_come_is_waited_for_then_the_next_head_stays() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let (lease, _fd) = lease(10);
        let stop = AtomicBool::new(false);
        let mut buf = BytesMut::new();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.write_all(b"0123456789GET").await.unwrap();
            client
        });
        let wait = Some(Duration::from_secs(5));
        assert!(discard_rest(&mut server, &mut buf, lease, wait, &stop).await);
        assert_eq!(&buf[..], b"GET", "the bytes after the body stay");
        drop(sender.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_at_its_limit_at_a_stop_and_past_the_size_limit() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let stop = AtomicBool::new(false);
        let mut buf = BytesMut::new();
        let wait = Some(Duration::from_secs(5));
        // Some of it, then nothing: the time is up.
        client.write_all(b"01234").await.unwrap();
        let began = tokio::time::Instant::now();
        let (l, _fd) = lease(10);
        assert!(!discard_rest(&mut server, &mut buf, l, wait, &stop).await);
        assert_eq!(began.elapsed(), Duration::from_secs(5));
        // No wait asked for: what is not here closes the connection.
        let (l, _fd) = lease(10);
        assert!(!discard_rest(&mut server, &mut buf, l, None, &stop).await);
        // More than the limit to come: no waiting.
        let began = tokio::time::Instant::now();
        let (l, _fd) = lease(DRAIN_LIMIT + 1);
        assert!(!discard_rest(&mut server, &mut buf, l, wait, &stop).await);
        assert_eq!(began.elapsed(), Duration::ZERO);
        // The server stops.
        stop.store(true, Ordering::Relaxed);
        let (l, _fd) = lease(10);
        assert!(!discard_rest(&mut server, &mut buf, l, wait, &stop).await);
        assert_eq!(began.elapsed(), Duration::ZERO);
        // All of it here: kept, whatever the rest.
        client.write_all(b"0123456789").await.unwrap();
        let (l, _fd) = lease(10);
        assert!(discard_rest(&mut server, &mut buf, l, None, &stop).await);
    }

    /// What a connection with `ctx` writes for `requests`, to its close.
    async fn served_over(ctx: Arc<ConnContext>, requests: &[u8]) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let conn = tokio::spawn(Connection::new(server, requests, ctx));
        let mut written = Vec::new();
        client.read_to_end(&mut written).await.unwrap();
        assert!(matches!(conn.await.unwrap(), Ok(Outcome::Closed)));
        String::from_utf8(written).unwrap()
    }

    /// A whole connection served by `Connection`, its endpoint answering
    /// every request with "hello" and a trailer field: as a stream (chunked)
    /// for `/stream`, with a length otherwise.
    mod served {
        use super::*;
        use crate::runtime::config::ServerConfig;
        use crate::runtime::endpoint::{self, Busy, Call, Endpoint};
        use crate::runtime::request::response::{self, ResponseBody};
        use http::{HeaderMap, HeaderValue, StatusCode};

        impl RawSocket for tokio::io::DuplexStream {
            fn raw_socket(&self) -> Option<std::os::fd::RawFd> {
                None
            }
        }

        struct WithTrailers;

        impl Endpoint for WithTrailers {
            fn dispatch(&self, call: Box<Call>) -> Result<(), Busy> {
                let body = if call.request.head.target.path() == "/stream" {
                    let (sink, stream) = response::channel();
                    sink.push(Bytes::from_static(b"hello"));
                    sink.finish();
                    ResponseBody::Stream(stream)
                } else {
                    ResponseBody::full(Bytes::from_static(b"hello"))
                };
                let mut trailers = HeaderMap::new();
                trailers.insert("x-checksum", HeaderValue::from_static("abc"));
                // Framing fields are never trailers (RFC 9110 §6.5.1).
                trailers.insert("content-length", HeaderValue::from_static("9"));
                call.reply.send(endpoint::Response {
                    status: StatusCode::OK,
                    headers: HeaderMap::new(),
                    body,
                    trailers: Some(trailers),
                });
                Ok(())
            }
        }

        fn context() -> Arc<ConnContext> {
            let timeout = Duration::from_secs(5);
            let mut config = ServerConfig::for_tests();
            config.keep_alive_timeout = timeout;
            config.header_timeout = timeout;
            config.body_timeout = timeout;
            config.send_timeout = timeout;
            ConnContext::for_tests(config, Arc::new(WithTrailers))
        }

        /// What the connection writes for `requests`, to its close.
        async fn serve(requests: &[u8]) -> String {
            served_over(context(), requests).await
        }

        #[tokio::test]
        async fn a_chunked_response_ends_with_its_trailers_a_length_drops_them() {
            let written = serve(
                b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n\
                  GET /length HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            )
            .await;
            let (chunked, length) =
                written.split_at(written.find("HTTP/1.1 200 OK\r\ncon").unwrap());
            assert!(
                chunked.contains("transfer-encoding: chunked\r\n"),
                "{written}"
            );
            assert!(
                chunked.ends_with("\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n"),
                "{written}"
            );
            assert!(length.contains("content-length: 5\r\n"), "{written}");
            assert!(length.ends_with("\r\n\r\nhello"), "{written}");
            assert!(!length.contains("x-checksum"), "{written}");
        }

        #[tokio::test]
        async fn http10_gets_no_chunked_coding_and_no_trailers() {
            // RFC 9112 §6.3 item 8: the close ends a body of unknown length.
            let written = serve(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await;
            assert!(
                written.starts_with("HTTP/1.1 200 OK\r\nconnection: close\r\n"),
                "{written}"
            );
            assert!(!written.contains("transfer-encoding"), "{written}");
            assert!(written.ends_with("\r\n\r\nhello"), "{written}");
        }
    }

    /// Interim responses on HTTP/1.x: `103 Early Hints` from the endpoint
    /// (`Call::interim`) and from the application's preloads.
    mod early_hints {
        use super::served_over;
        use super::*;
        use crate::proto::route::{RouteTable, Target};
        use crate::runtime::config::ServerConfig;
        use crate::runtime::endpoint::{self, Busy, Call, Endpoint, Endpoints};
        use crate::runtime::request::response::ResponseBody;
        use http::header::LINK;
        use http::{HeaderMap, HeaderValue, StatusCode};

        /// Sends a hint (`link: </hint.css>...`) on `/hint`, reads the body
        /// (on a blocking thread, as an application does), then answers
        /// "done".
        struct Hinting;

        impl Endpoint for Hinting {
            fn dispatch(&self, call: Box<Call>) -> Result<(), Busy> {
                tokio::task::spawn_blocking(move || {
                    let Call {
                        mut request,
                        reply,
                        interim,
                        ..
                    } = *call;
                    if request.head.target.path() == "/hint" {
                        let mut fields = HeaderMap::new();
                        fields.insert(
                            LINK,
                            HeaderValue::from_static("</hint.css>; rel=preload; as=style"),
                        );
                        let _ = interim.early_hints(fields);
                    }
                    let body = request.body.read_to_end().unwrap();
                    reply.send(endpoint::Response {
                        status: StatusCode::OK,
                        headers: HeaderMap::new(),
                        body: ResponseBody::full(Bytes::from(format!("done {}", body.len()))),
                        trailers: None,
                    });
                });
                Ok(())
            }
        }

        fn endpoints() -> Endpoints {
            let routes = RouteTable::new([("", Target::Wsgi)]).unwrap();
            Endpoints::new(routes, Some(Arc::new(Hinting)), Vec::new()).with_preload(vec![
                HeaderValue::from_static("</app.css>; rel=preload; as=style"),
                HeaderValue::from_static("</app.js>; rel=preload; as=script"),
            ])
        }

        async fn serve(config: ServerConfig, requests: &[u8]) -> String {
            served_over(ConnContext::for_tests_with(config, endpoints()), requests).await
        }

        const PRELOAD: &str = "HTTP/1.1 103 Early Hints\r\n\
            link: </app.css>; rel=preload; as=style\r\n\
            link: </app.js>; rel=preload; as=script\r\n\r\n";

        #[tokio::test]
        async fn an_endpoints_hint_goes_before_its_response_never_to_http10() {
            let written = serve(
                ServerConfig::for_tests(),
                b"GET /hint HTTP/1.1\r\nHost: t\r\n\r\n\
                  GET /hint HTTP/1.0\r\n\r\n",
            )
            .await;
            let hint = "HTTP/1.1 103 Early Hints\r\n\
                        link: </hint.css>; rel=preload; as=style\r\n\r\n\
                        HTTP/1.1 200 OK\r\n";
            assert!(written.starts_with(hint), "{written}");
            assert_eq!(written.matches("103 Early Hints").count(), 1, "{written}");
            assert!(written.ends_with("done 0"), "{written}");
        }

        #[tokio::test]
        async fn preloads_go_before_pages_only() {
            let written = serve(
                ServerConfig::for_tests(),
                b"GET / HTTP/1.1\r\nHost: t\r\nAccept: text/html,*/*;q=0.8\r\n\r\n\
                  GET / HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n\
                  GET / HTTP/1.1\r\nHost: t\r\nSec-Fetch-Dest: document\r\n\r\n\
                  POST / HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\nContent-Length: 0\r\n\r\n\
                  GET / HTTP/1.0\r\nAccept: text/html\r\n\r\n",
            )
            .await;
            let responses: Vec<&str> = written.split("HTTP/1.1 200 OK").collect();
            assert_eq!(responses.len(), 6, "{written}");
            assert_eq!(responses[0], PRELOAD, "{written}");
            // `*/*` is not a page; `Sec-Fetch-Dest: document` is.
            assert!(responses[1].ends_with("done 0"), "{written}");
            assert!(
                responses[2].ends_with(&format!("done 0{PRELOAD}")),
                "{written}"
            );
            assert!(responses[3].ends_with("done 0"), "{written}");
            assert!(!responses[4].contains("103"), "{written}");
            assert!(!responses[5].contains("103"), "{written}");
        }

        #[tokio::test]
        async fn early_hints_off_sends_no_103_at_all() {
            let mut config = ServerConfig::for_tests();
            config.early_hints = false;
            let written = serve(
                config,
                b"GET / HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\n\r\n\
                  GET /hint HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
            )
            .await;
            assert!(!written.contains("103"), "{written}");
            assert_eq!(written.matches("200 OK").count(), 2, "{written}");
        }

        #[tokio::test]
        async fn hints_and_100_continue_each_go_whole_before_the_response() {
            let written = serve(
                ServerConfig::for_tests(),
                b"POST /hint HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\
                  Content-Length: 5\r\nConnection: close\r\n\r\nhello",
            )
            .await;
            // The hint is queued before the body is asked for.
            let expected = "HTTP/1.1 103 Early Hints\r\n\
                            link: </hint.css>; rel=preload; as=style\r\n\r\n\
                            HTTP/1.1 100 Continue\r\n\r\n\
                            HTTP/1.1 200 OK\r\n";
            assert!(written.starts_with(expected), "{written}");
            assert!(written.ends_with("done 5"), "{written}");
        }
    }
}
