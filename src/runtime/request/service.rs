//! One request, from an `http::Request` to an `http::Response`.
//!
//! What it does: reads what a trusted proxy's forwarding fields say
//! (`ConnContext::forwarded`; the endpoint and the access log apply it),
//! applies the framing rules (`proto::request`), plans the body
//! (`proto::body`: 413 before the application is called, decoding, the
//! length the endpoint is told), optionally reads the whole body first
//! (`--buffer-body`, `body::spool`; not for an endpoint that reads no body,
//! such as static files), asks the route table (`proto::route`)
//! which endpoint serves the request, hands it the protocol-neutral request
//! (`endpoint::Request`; 503 when its pool is full), and turns its reply into
//! a response. Before the call, a page request is announced the
//! application's preloads (`103 Early Hints`, and HTTP/2 pushes with
//! `--http2-push`), through the request's interim channel (`interim`).
//!
//! What it does not do: parse HTTP (`conn::h1` and `conn::h2` do), know what an
//! endpoint does with a request (WSGI's environ is the WSGI endpoint's), or
//! decide on connection lifetimes (the connection task, `conn::task`, does).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use h2::RecvStream;
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use tokio::sync::oneshot;

use super::body::{
    preread, spool, BodyClock, BodyError, BodyReader, ChannelBody, H2Body, Reservation, SocketBody,
    Source, SpoolError, SpoolLimits, UnreadWatch,
};
use super::interim::InterimSender;
use super::response::{ResponseBody, Trailers};
use crate::proto::body::{plan, Coding, Framing};
use crate::proto::proxy::forwarded::Forwarded;
use crate::proto::request::{check_authority, check_framing, check_target, HttpVersion};
use crate::proto::route::Exchange;
use crate::runtime::access_log::record::AccessRecord;
use crate::runtime::access_log::tracked::{Counted, OnEnd, Tracked};
use crate::runtime::conn::context::ConnContext;
use crate::runtime::endpoint::{self, Call, ConnectionInfo, Reply, RequestHead};
use crate::runtime::pool::Queued;
use crate::runtime::timers::InFlight;

pub(crate) type HttpResponse = Response<Tracked<ResponseBody>>;

/// Where a request's body comes from: an HTTP/2 stream (`conn::h2`), or
/// the server's HTTP/1.x engine (`conn::h1`).
pub(crate) enum RequestBody {
    /// An HTTP/2 stream's body, and the stream's id.
    H2 { body: RecvStream, stream_id: u32 },
    /// A request the server pushed on HTTP/2 (RFC 9113 §8.4): no body, and
    /// the promised stream's id.
    Promised { stream_id: u32 },
    /// An HTTP/1.x request, whose head `proto::h1::parse_request` has
    /// checked (size, framing, target, Host): its framing, and its body when
    /// it has one.
    Http1 {
        framing: Framing,
        body: Option<Http1Body>,
    },
}

/// The body of an HTTP/1.x request.
pub(crate) enum Http1Body {
    /// Read from the socket by the application's thread.
    Socket(SocketBody),
    /// All of it, read with the head (TLS, where the application's thread
    /// cannot read the socket: `conn::h1::TLS_BUFFERED_BODY`), with its
    /// part of the read-ahead memory budget (`None`: counted in none).
    Memory(Bytes, Option<Reservation>),
    /// Read (and decoded) by the connection: chunked bodies, bodies on TLS,
    /// bodies behind `Expect: 100-continue`.
    Channel(ChannelBody),
}

/// Serve one request, eagerly: the checks, the routing and the dispatch to
/// the pool happen now, and the future only waits for the response. It is
/// small (112 bytes; a future holding the request until its first poll
/// took 704): an HTTP/2 stream is a task of its own, moved and copied with
/// its future, and the HTTP/1.x engine boxes it per request.
pub(crate) fn begin(
    req: Request<RequestBody>,
    interim: InterimSender,
    ctx: Arc<ConnContext>,
) -> impl std::future::Future<Output = Result<HttpResponse, std::convert::Infallible>> + Send {
    // Dropped with the response body, or with this future if the request is
    // abandoned first (a reset HTTP/2 stream): either way the request ends.
    let in_flight = ctx.activity.begin();
    // A trusted proxy's word on the client (one pass over the field names
    // when it sends no forwarding field; nothing for other peers).
    let forwarded = ctx.forwarded(req.headers()).map(Box::new);
    let record = ctx.config.access_log.as_ref().map(|log| {
        let (client, _) = ctx.client(forwarded.as_deref());
        Box::new(AccessRecord::start(&req, client, log.clone()))
    });
    let counted = ctx
        .endpoints
        .observe()
        .recorder()
        .map(|recorder| Counted::start(recorder.clone(), req.version()));
    let next = start(req, interim, &ctx, forwarded);
    finish(next, in_flight, record, counted, ctx)
}

async fn finish(
    next: Next,
    in_flight: InFlight,
    record: Option<Box<AccessRecord>>,
    counted: Option<Counted>,
    ctx: Arc<ConnContext>,
) -> Result<HttpResponse, std::convert::Infallible> {
    let response = match next {
        Next::Respond(response) => *response,
        Next::Await(awaiting) => await_head(awaiting).await,
        Next::Buffer(pending) => Box::pin(buffer_then_call(*pending, &ctx)).await,
        Next::ReadAhead(ahead) => Box::pin(read_ahead_then_call(*ahead, &ctx)).await,
    };
    let (parts, body) = response.into_parts();
    let record = record.map(|mut r| {
        r.set_response(&parts);
        r
    });
    let counted = counted.map(|c| c.with_status(parts.status.as_u16()));
    let progress = ctx.activity.watch();
    let on_end = OnEnd {
        record,
        counted,
        in_flight,
    };
    Ok(Response::from_parts(
        parts,
        Tracked::new(body, progress, on_end),
    ))
}

/// What the head of a request leads to, decided without waiting. Small: the
/// rare cases are boxed.
enum Next {
    /// Answer now (an error found in the head, or the pool is full).
    Respond(Box<Response<ResponseBody>>),
    /// The call is on the pool: wait for its response head.
    Await(Awaiting),
    /// `--buffer-body`: read the whole body first.
    Buffer(Box<Pending>),
    /// A small body: read it first, asynchronously (`body::preread`).
    ReadAhead(Box<Ahead>),
}

/// A call on the pool's queue, as its request waits for it.
struct Awaiting {
    head: oneshot::Receiver<endpoint::Response>,
    queued: Queued,
    /// Answered 503 with the request's body perhaps unread: the HTTP/1.1
    /// connection closes after it.
    has_body: bool,
}

/// A request whose body must be buffered before the call is made.
struct Pending {
    source: Source,
    /// The raw length, when declared.
    declared: Option<u64>,
    decode: Option<Coding>,
    prepare: Box<dyn FnOnce(BodyReader, Option<u64>) -> Next + Send>,
}

/// A request whose small body is read before the call is made.
struct Ahead {
    source: Source,
    /// `--preread-body-size`.
    limit: u64,
    reservation: Reservation,
    decode: Option<Coding>,
    content_length: Option<u64>,
    prepare: Box<dyn FnOnce(BodyReader, Option<u64>) -> Next + Send>,
}

async fn await_head(awaiting: Awaiting) -> Response<ResponseBody> {
    let Awaiting {
        head,
        queued,
        has_body,
    } = awaiting;
    let received = head.await;
    // The pool gave up on the call after `--queue-timeout` and dropped it
    // unrun (`Queued`).
    if received.is_err() && queued.is_abandoned() {
        log::warn!(target: "propylon.server", "request waited --queue-timeout for a worker thread; answering 503");
        return error_response(503, "Service Unavailable", has_body);
    }
    head_response(received)
}

fn head_response(
    received: Result<endpoint::Response, oneshot::error::RecvError>,
) -> Response<ResponseBody> {
    match received {
        Ok(head) => {
            let mut response = Response::new(head.body);
            *response.status_mut() = head.status;
            *response.headers_mut() = head.headers;
            if let Some(trailers) = head.trailers {
                response.extensions_mut().insert(Trailers(trailers));
            }
            response
        }
        // The endpoint dropped the reply without answering: it has logged why.
        Err(_) => error_response(500, "Internal Server Error", false),
    }
}

/// Read the whole body in this task (`body::spool`: no thread waits for
/// the client), then make the call with its exact length. A body that
/// fails (400, 408, 413), or finds no room on disk, is answered here
/// without calling the application: `413` if it needs more than the whole
/// `--buffer-disk-limit` (as nginx answers a body over its
/// `client_max_body_size`: it can never be taken), `503` if other bodies
/// hold the room now (it may be taken later), `500` if the temporary file
/// cannot be written (as nginx).
async fn buffer_then_call(pending: Pending, ctx: &ConnContext) -> Response<ResponseBody> {
    let Pending {
        source,
        declared,
        decode,
        prepare,
    } = pending;
    let limits = SpoolLimits {
        memory: ctx.config.buffer.memory_limit,
        memory_budget: ctx.preread_budget.clone(),
        disk: ctx.buffer_budget.clone(),
        max_body_size: ctx.config.body.max_body_size,
    };
    match spool(source, declared, decode, &limits).await {
        Ok((len, body)) => match prepare(body, Some(len)) {
            Next::Respond(response) => *response,
            Next::Await(awaiting) => await_head(awaiting).await,
            Next::Buffer(_) | Next::ReadAhead(_) => {
                error_response(500, "Internal Server Error", true)
            }
        },
        Err(e) => {
            ctx.unread_input.store(true, Ordering::Relaxed);
            match e {
                SpoolError::Body(e) => {
                    log::info!(target: "propylon.server", "request ended before the call: {e}");
                    body_error_response(&e)
                }
                SpoolError::LargerThanDisk(_) => {
                    log::info!(target: "propylon.server", "rejected request: {e}; answering 413");
                    error_response(413, "Content Too Large", true)
                }
                SpoolError::DiskFull(_) => {
                    log::warn!(target: "propylon.server", "{e}; answering 503");
                    error_response(503, "Service Unavailable", true)
                }
                SpoolError::File(_) => {
                    log::error!(target: "propylon.server", "{e}; answering 500");
                    error_response(500, "Internal Server Error", true)
                }
            }
        }
    }
}

/// Read a small body in this task (no thread waits for the client), then
/// make the call with it in memory; a body past the limit is streamed, its
/// start read already. A body that stops, or comes slower than the minimum
/// rate, or grows past the maximum body size, is answered here (400, 408,
/// 413) without calling the application.
async fn read_ahead_then_call(ahead: Ahead, ctx: &ConnContext) -> Response<ResponseBody> {
    let Ahead {
        source,
        limit,
        reservation,
        decode,
        content_length,
        prepare,
    } = ahead;
    let config = &ctx.config;
    let max_body_size = config.body.max_body_size;
    match preread(source, limit, max_body_size, reservation).await {
        Ok(source) => {
            let body = BodyReader::new(source, decode, max_body_size);
            match prepare(body, content_length) {
                Next::Respond(response) => *response,
                Next::Await(awaiting) => await_head(awaiting).await,
                Next::Buffer(_) | Next::ReadAhead(_) => {
                    error_response(500, "Internal Server Error", true)
                }
            }
        }
        Err(e) => {
            log::info!(target: "propylon.server", "request ended before the call: {e}");
            ctx.unread_input.store(true, Ordering::Relaxed);
            body_error_response(&e)
        }
    }
}

/// The part of the memory budget a body is read ahead under, when it is
/// read ahead: one HTTP/2 or the HTTP/1.x connection reads (HTTP/1.x socket
/// bodies over the limit stay with the application's thread: no copy),
/// not behind `Expect: 100-continue` (the application decides whether it
/// wants the body, RFC 9110 §10.1.1), declared at most `--preread-body-size`
/// bytes long, or of no declared length (read up to the limit: the limit is
/// reserved).
fn read_ahead(
    ctx: &ConnContext,
    framing: Framing,
    headers: &http::HeaderMap,
    source: &Source,
) -> Option<Reservation> {
    let limit = ctx.config.preread.max_size;
    // The cheap tests first: most requests have no body to read.
    let size = match framing {
        Framing::Length(n) if n <= limit => n,
        Framing::Streamed if limit > 0 => limit,
        _ => return None,
    };
    if ctx.config.body.buffer
        || !matches!(source, Source::H2 { .. } | Source::Channel(_))
        || headers.contains_key(http::header::EXPECT)
    {
        return None;
    }
    ctx.preread_budget.reserve(size)
}

/// Everything about a request that needs no waiting: framing rules, the body
/// plan, the route, and the dispatch to the endpoint.
fn start(
    req: Request<RequestBody>,
    interim: InterimSender,
    ctx: &ConnContext,
    forwarded: Option<Box<Forwarded>>,
) -> Next {
    let version = HttpVersion::of(req.version());
    // An HTTP/1.x head was checked as it was parsed (`proto::h1`); an
    // HTTP/2 one is checked here.
    if let RequestBody::H2 { .. } = req.body() {
        let uri = req.uri();
        let checked = check_authority(req.headers(), uri.authority().map(|a| a.as_str()))
            .and(check_target(req.method(), uri))
            .and(check_framing(version, req.headers()));
        if let Err(e) = checked {
            log::info!(target: "propylon.server", "rejected request: {e}");
            ctx.unread_input.store(true, Ordering::Relaxed);
            return Next::Respond(Box::new(error_response(e.status, e.reason, true)));
        }
    }
    let (parts, incoming) = req.into_parts();
    // The request an h2c upgrade carried arrives as stream 1, its body read.
    let upgraded = ctx.upgrade.as_ref().and_then(|u| u.take());
    let stream_id = match &incoming {
        RequestBody::H2 { stream_id, .. } | RequestBody::Promised { stream_id } => Some(*stream_id),
        RequestBody::Http1 { .. } => upgraded.is_some().then_some(1),
    };
    let exchange = match &incoming {
        RequestBody::H2 { .. } => Exchange::of_h2_protocol(
            parts
                .extensions
                .get::<h2::ext::Protocol>()
                .map(|p| p.as_str()),
        ),
        RequestBody::Http1 { .. } => Exchange::of_http1(&parts.headers),
        RequestBody::Promised { .. } => Exchange::Plain,
    };
    // A body nobody reads: the connection closes after the answer
    // (lingering), as after any other refusal before the call.
    let has_body = || match (&upgraded, &incoming) {
        (Some(u), _) => !u.body.is_empty(),
        (None, RequestBody::H2 { body, .. }) => !body.is_end_stream(),
        (None, RequestBody::Http1 { framing, .. }) => {
            !matches!(framing, Framing::Empty | Framing::Length(0))
        }
        (None, RequestBody::Promised { .. }) => false,
    };
    // The runtime's own paths (health, metrics) come before every route.
    let draining = || *ctx.shutdown.borrow();
    if let Some(mut response) =
        ctx.endpoints
            .observe()
            .answer(&parts.method, parts.uri.path(), draining)
    {
        if has_body() {
            ctx.unread_input.store(true, Ordering::Relaxed);
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        return Next::Respond(Box::new(response));
    }
    let endpoint = match ctx.endpoints.route(exchange, parts.uri.path()) {
        Ok(endpoint) => endpoint.clone(),
        Err(refusal) => {
            log::debug!(
                target: "propylon.server",
                "no endpoint for {} {}: {refusal:?}",
                parts.method,
                parts.uri.path()
            );
            let has_body = has_body();
            if has_body {
                ctx.unread_input.store(true, Ordering::Relaxed);
            }
            return Next::Respond(Box::new(error_response(404, "Not Found", has_body)));
        }
    };
    let framing = match (&upgraded, &incoming) {
        (Some(u), _) => u.framing,
        (None, RequestBody::H2 { body, .. }) => h2_framing(&parts.headers, body),
        // "Content-Length: 0" stays Length(0): the endpoint is told "0".
        (None, RequestBody::Http1 { framing, .. }) => *framing,
        (None, RequestBody::Promised { .. }) => Framing::Empty,
    };
    let config = &ctx.config;
    let body_plan = match plan(&parts.headers, framing, &config.body) {
        Ok(p) => p,
        Err(e) => {
            log::info!(target: "propylon.server", "rejected request: {e}");
            ctx.unread_input.store(true, Ordering::Relaxed);
            return Next::Respond(Box::new(error_response(e.status, e.reason, true)));
        }
    };
    // Before the body is read and the call made: the client fetches while
    // the application works.
    announce(ctx, exchange, &parts, &interim);
    let source = match (framing, incoming) {
        _ if upgraded.is_some() => Source::Memory(upgraded.map(|u| u.body).unwrap_or_default()),
        (
            _,
            RequestBody::Http1 {
                body: Some(Http1Body::Socket(body)),
                ..
            },
        ) => Source::Socket(body),
        (
            _,
            RequestBody::Http1 {
                body: Some(Http1Body::Memory(bytes, reservation)),
                ..
            },
        ) => match reservation {
            Some(reservation) => Source::Held {
                bytes,
                _reservation: reservation,
            },
            None => Source::Memory(bytes),
        },
        (
            _,
            RequestBody::Http1 {
                body: Some(Http1Body::Channel(body)),
                ..
            },
        ) => Source::Channel(body),
        (Framing::Empty | Framing::Length(0), _)
        | (_, RequestBody::Http1 { body: None, .. } | RequestBody::Promised { .. }) => {
            Source::Empty
        }
        (Framing::Length(_) | Framing::Streamed, RequestBody::H2 { body, .. }) => Source::H2 {
            body: H2Body::new(body, UnreadWatch::new(ctx.unread_input.clone())),
            rt: ctx.rt.clone(),
            clock: BodyClock::new(config.body_timeout, config.min_body_rate),
            declared: match framing {
                Framing::Length(n) => Some(n),
                Framing::Empty | Framing::Streamed => None,
            },
            received: 0,
        },
    };
    // An endpoint that answers from the head alone gets the body as it
    // comes: nothing is read ahead or buffered for it.
    let reads_body = endpoint.reads_body();
    let reservation = match reads_body {
        true => read_ahead(ctx, framing, &parts.headers, &source),
        false => None,
    };
    let decode = body_plan.decode;
    let max_body_size = config.body.max_body_size;
    let connection = ConnectionInfo {
        local: ctx.local,
        peer: ctx.peer,
        tls: ctx.tls.clone(),
        stream_id,
        forwarded,
    };
    let slot = ctx.slot.clone();
    let zero_copy = match version {
        HttpVersion::Http2 => None,
        HttpVersion::Http10 | HttpVersion::Http11 => ctx.zero_copy.clone(),
    };
    let body_decoded = body_plan.decode.is_some();
    let call = move |body: BodyReader, content_length: Option<u64>| -> Next {
        let (reply, head) = Reply::new();
        let queued = Queued::new();
        let call = Box::new(Call {
            request: endpoint::Request {
                head: RequestHead {
                    method: parts.method,
                    target: parts.uri,
                    version: parts.version,
                    headers: parts.headers,
                },
                body,
                content_length,
                body_decoded,
                connection,
            },
            zero_copy,
            slot,
            reply,
            interim,
            queued: queued.clone(),
        });
        if endpoint.dispatch(call).is_err() {
            log::warn!(target: "propylon.server", "worker pool and queue are full; answering 503");
            return Next::Respond(Box::new(error_response(503, "Service Unavailable", false)));
        }
        Next::Await(Awaiting {
            head,
            queued,
            has_body: !matches!(framing, Framing::Empty | Framing::Length(0)),
        })
    };
    if let Some(reservation) = reservation {
        return Next::ReadAhead(Box::new(Ahead {
            source,
            limit: config.preread.max_size,
            reservation,
            decode,
            content_length: body_plan.content_length,
            prepare: Box::new(call),
        }));
    }
    match framing {
        // Nothing to buffer; the exact length is known ("0", or no body).
        Framing::Empty | Framing::Length(0) if config.body.buffer => call(
            BodyReader::new(source, decode, max_body_size),
            (framing == Framing::Length(0)).then_some(0),
        ),
        _ if config.body.buffer && reads_body => Next::Buffer(Box::new(Pending {
            source,
            declared: match framing {
                Framing::Length(n) => Some(n),
                _ => None,
            },
            decode,
            prepare: Box::new(call),
        })),
        _ => call(
            BodyReader::new(source, decode, max_body_size),
            body_plan.content_length,
        ),
    }
}

/// Announce the application's preloads before a page's response
/// (`proto::early_hints`): a `103 Early Hints` with their `Link` fields,
/// unless `--no-early-hints`; with `--http2-push`, on HTTP/2, pushes of
/// those a static mount serves (the client may have disabled push: the
/// connection then sends none).
fn announce(
    ctx: &ConnContext,
    exchange: Exchange,
    parts: &http::request::Parts,
    interim: &InterimSender,
) {
    let config = &ctx.config;
    if !config.early_hints && !config.http2.push {
        return;
    }
    let Some(preload) = ctx.endpoints.preload_for(
        exchange,
        &parts.method,
        parts.version,
        &parts.uri,
        &parts.headers,
    ) else {
        return;
    };
    if config.early_hints {
        // A new channel has room: this cannot be refused.
        let _ = interim.early_hints(preload.hint().clone());
    }
    if config.http2.push && parts.version == http::Version::HTTP_2 && !preload.push().is_empty() {
        let _ = interim.push(push_requests(parts, preload.push()));
    }
}

/// The GET requests a page's pushes answer (RFC 9113 §8.4.1: safe, no
/// content), on the page's origin, with the page's `Accept-Encoding` (a
/// precompressed file may be chosen by it) and `User-Agent`.
fn push_requests(
    page: &http::request::Parts,
    paths: &[http::uri::PathAndQuery],
) -> Vec<Request<()>> {
    let scheme = page
        .uri
        .scheme()
        .cloned()
        .unwrap_or(http::uri::Scheme::HTTP);
    let Some(authority) = page.uri.authority() else {
        return Vec::new();
    };
    paths
        .iter()
        .filter_map(|path| {
            let uri = http::Uri::builder()
                .scheme(scheme.clone())
                .authority(authority.clone())
                .path_and_query(path.clone())
                .build()
                .ok()?;
            let mut request = Request::get(uri).version(http::Version::HTTP_2);
            for name in [http::header::ACCEPT_ENCODING, http::header::USER_AGENT] {
                for value in page.headers.get_all(&name) {
                    request = request.header(&name, value);
                }
            }
            request.body(()).ok()
        })
        .collect()
}

/// The response for a body error that ends a request before the application ran
/// (or that the application let propagate).
pub(crate) fn body_error_response(e: &BodyError) -> Response<ResponseBody> {
    match e {
        BodyError::TooLarge(_) => error_response(413, "Content Too Large", true),
        BodyError::Invalid(_) => error_response(400, "Bad Request", true),
        BodyError::Disconnected(_) => error_response(400, "Bad Request", true),
        // RFC 9110 §15.5.9: the server would not wait any longer.
        BodyError::TooSlow(_) => error_response(408, "Request Timeout", true),
    }
}

/// A small plain-text error response. `close`: the rest of the request may be
/// unread, so an HTTP/1.1 connection must not be reused.
pub(crate) fn error_response(status: u16, reason: &str, close: bool) -> Response<ResponseBody> {
    let body = Bytes::from(format!("{status} {reason}\n"));
    let mut response = Response::new(ResponseBody::Empty);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    *response.body_mut() = ResponseBody::full(body);
    response
}

/// An HTTP/2 request's framing: its Content-Length (checked already:
/// `check_framing`), else none when the HEADERS ended the stream, else a
/// stream of DATA (RFC 9113 §8.1). A declared "Content-Length: 0" stays
/// Length(0), so the endpoint is told 0.
fn h2_framing(headers: &http::HeaderMap, body: &RecvStream) -> Framing {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    match declared {
        Some(n) => Framing::Length(n),
        None if body.is_end_stream() => Framing::Empty,
        None => Framing::Streamed,
    }
}
