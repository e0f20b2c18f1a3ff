//! HTTP/2 connections, served with the `h2` crate.
//!
//! What it owns: the server side of an HTTP/2 connection above the framing
//! `h2` does. `Settings` is the handshake every connection starts with (the
//! SETTINGS the server announces, its limits against abuse, the keep-alive
//! PINGs). `Connection` is one connection's future: it accepts streams, runs
//! each stream's exchange in the connection's own task (no task per stream:
//! a stream woken by its response is polled, and the connection writes that
//! response, in one wake of one task), sends keep-alive PINGs, and shuts
//! down gracefully on request (GOAWAY, the streams in flight finish). A
//! stream's exchange hands the request to `request::service` with its body
//! (`RequestBody::H2`: h2's `RecvStream`, whose window refills only as the
//! application reads) and its stream id, then sends the response head, the
//! body under flow control, and the endpoint's trailers. Before the
//! response head, what comes on the request's interim channel
//! (`request::interim`) goes out: `103 Early Hints` as informational
//! HEADERS, and pushes (RFC 9113 §8.4) as PUSH_PROMISE frames, each promised
//! response served through `request::service` as any request is, in a task
//! of its own (pushes are rare: off unless `--http2-push`). A client's
//! RST_STREAM drops the exchange (the application's next body read fails);
//! a response body that fails resets the stream with INTERNAL_ERROR.
//!
//! What it does not do: parse frames, apply HTTP/2's stream and flow-control
//! rules, or answer PINGs and SETTINGS (`h2` does); check a request's head
//! or call endpoints (`request::service`); watch the connection's timers
//! and shutdown (`task`, around `Connection`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use ::h2::server::{Builder, Handshake, SendPushedResponse, SendResponse};
use ::h2::{Ping, PingPong, Reason, RecvStream, SendStream};
use bytes::Bytes;
use futures_util::future::FutureExt as _;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, DATE, HOST, TE,
    TRANSFER_ENCODING, UPGRADE,
};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

use super::context::ConnContext;
use crate::proto::route;
use crate::proto::websocket::handshake::check_h2;
use crate::runtime::access_log::tracked::Tracked;
use crate::runtime::config::Http2Config;
use crate::runtime::request::interim::{self, Interim, InterimReceiver, InterimSender};
use crate::runtime::request::response::{ResponseBody, Trailers};
use crate::runtime::request::service::{begin, HttpResponse, RequestBody};
use crate::runtime::websocket::h2_stream::H2Stream;
use crate::runtime::websocket::link::Closed;
use crate::runtime::websocket::{self, Answered, WebSocketEndpoint};

/// Streams a client may reset before the server accepted them, per
/// connection, before it gets GOAWAY(ENHANCE_YOUR_CALM): h2's default since
/// the rapid-reset fix (CVE-2023-44487), stated here on purpose.
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams the server may reset for protocol errors before it gives up on the
/// connection with GOAWAY(ENHANCE_YOUR_CALM).
const MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// The most response data h2 buffers per stream beyond what the client's
/// window lets out: a body is asked for more only below it.
const MAX_SEND_BUFFER: usize = 400 * 1024;

/// How every HTTP/2 connection of a server starts.
#[derive(Clone)]
pub(crate) struct Settings {
    builder: Builder,
    keep_alive: Option<KeepAliveSettings>,
}

#[derive(Clone, Copy)]
struct KeepAliveSettings {
    interval: Duration,
    timeout: Duration,
}

impl Settings {
    /// `websockets`: offer extended CONNECT (RFC 8441 §3), for the
    /// application's WebSocket handlers.
    pub(crate) fn new(config: &Http2Config, websockets: bool) -> Settings {
        let mut builder = Builder::new();
        builder
            .max_concurrent_streams(config.max_concurrent_streams)
            .initial_window_size(config.initial_stream_window_size)
            .initial_connection_window_size(config.initial_connection_window_size)
            .max_frame_size(config.max_frame_size)
            .max_header_list_size(config.max_header_list_size)
            .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
            .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
            .max_send_buffer_size(MAX_SEND_BUFFER);
        if websockets {
            builder.enable_connect_protocol();
        }
        Settings {
            builder,
            keep_alive: config
                .keep_alive_interval
                .map(|interval| KeepAliveSettings {
                    interval,
                    timeout: config.keep_alive_timeout,
                }),
        }
    }
}

/// What a connection error says of an attack `h2` stopped, if it was
/// one: the GOAWAY(ENHANCE_YOUR_CALM) it sent, named by that GOAWAY's
/// debug data (`debug_data`: the error itself no longer carries it).
pub(crate) fn abuse(e: &::h2::Error, debug_data: &[u8]) -> Option<&'static str> {
    if !(e.is_go_away() && e.is_library() && e.reason() == Some(Reason::ENHANCE_YOUR_CALM)) {
        return None;
    }
    let text = String::from_utf8_lossy(debug_data);
    let what = [
        (
            "too_many_resets",
            "rapid reset (streams reset before they were accepted: CVE-2023-44487)",
        ),
        ("too_many_continuations", "CONTINUATION flood"),
        (
            "header_list_way_too_large",
            "header block past the abuse limit (HPACK bomb)",
        ),
        (
            "too_many_internal_resets",
            "too many streams reset for protocol errors",
        ),
        ("too_many_data_frames", "flood of empty DATA frames"),
    ]
    .iter()
    .find(|(data, _)| text.contains(data))
    .map_or("a limit against abuse", |(_, what)| what);
    Some(what)
}

type Exchange = Pin<Box<dyn Future<Output = ()> + Send>>;

enum State<I> {
    Handshaking(Handshake<I, Bytes>),
    Serving(::h2::server::Connection<I, Bytes>),
}

/// One HTTP/2 connection to its end (see the module).
pub(crate) struct Connection<I> {
    state: State<I>,
    /// The streams' exchanges, each polled when its own waker fires.
    exchanges: FuturesUnordered<Exchange>,
    ctx: Arc<ConnContext>,
    keep_alive: Option<KeepAlive>,
    /// `graceful_shutdown` came during the handshake.
    shutdown_pending: bool,
}

impl<I> Connection<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub(crate) fn new(io: I, settings: &Settings, ctx: Arc<ConnContext>) -> Connection<I> {
        Connection {
            state: State::Handshaking(settings.builder.handshake(io)),
            exchanges: FuturesUnordered::new(),
            ctx,
            keep_alive: settings.keep_alive.map(KeepAlive::new),
            shutdown_pending: false,
        }
    }

    /// GOAWAY: no new streams; the ones in flight finish, then the
    /// connection closes (RFC 9113 §6.8).
    pub(crate) fn graceful_shutdown(self: Pin<&mut Self>) {
        let this = self.get_mut();
        match &mut this.state {
            State::Handshaking(_) => this.shutdown_pending = true,
            State::Serving(conn) => conn.graceful_shutdown(),
        }
    }
}

/// Start a stream's exchange among the connection's.
fn start(
    exchanges: &FuturesUnordered<Exchange>,
    ctx: &Arc<ConnContext>,
    request: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let exchange = exchange(request, respond, ctx.clone());
    // A stream that panics ends alone, as its own task would have.
    let alone = std::panic::AssertUnwindSafe(exchange).catch_unwind();
    exchanges.push(Box::pin(alone.map(|_| ())));
}

/// When the connection has ended, exchanges still running move to a task of
/// their own, so that they end as they would have (a call's reply still
/// finds its request waiting; the access log gets its line).
fn finish_alone(exchanges: &mut FuturesUnordered<Exchange>) {
    if !exchanges.is_empty() {
        let rest = std::mem::take(exchanges);
        tokio::spawn(rest.for_each(|()| async {}));
    }
}

/// Polls the exchanges until none is ready.
fn poll_exchanges(exchanges: &mut FuturesUnordered<Exchange>, cx: &mut Context<'_>) {
    while let Poll::Ready(Some(())) = exchanges.poll_next_unpin(cx) {}
}

impl<I> Future for Connection<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = Result<(), ::h2::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let State::Handshaking(handshake) = &mut this.state {
            let mut conn = ready!(Pin::new(handshake).poll(cx))?;
            if let Some(keep_alive) = &mut this.keep_alive {
                keep_alive.ping_pong = conn.ping_pong();
            }
            if this.shutdown_pending {
                conn.graceful_shutdown();
            }
            this.state = State::Serving(conn);
        }
        let State::Serving(conn) = &mut this.state else {
            unreachable!("the handshake is over")
        };
        // Exchanges first: what they send, the connection's poll writes.
        poll_exchanges(&mut this.exchanges, cx);
        if let Some(keep_alive) = &mut this.keep_alive {
            if keep_alive.poll(cx).is_ready() {
                log::debug!(target: "propylon.server", "HTTP/2 keep-alive PING unanswered: closing the connection");
                conn.abrupt_shutdown(Reason::NO_ERROR);
            }
        }
        let mut started = false;
        loop {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    start(&this.exchanges, &this.ctx, request, respond);
                    started = true;
                }
                Poll::Ready(Some(Err(e))) => {
                    finish_alone(&mut this.exchanges);
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(None) => {
                    finish_alone(&mut this.exchanges);
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => break,
            }
        }
        if started {
            // New streams run at once. What they send (an early answer: an
            // error, or 503) wakes this task, and the next poll writes it.
            poll_exchanges(&mut this.exchanges, cx);
        }
        Poll::Pending
    }
}

/// Keep-alive PINGs (RFC 9113 §6.7): one every `interval`; a PING the
/// client has not answered within `timeout` closes the connection.
struct KeepAlive {
    settings: KeepAliveSettings,
    /// None until the handshake is done, and once the PINGs have stopped.
    ping_pong: Option<PingPong>,
    timer: Pin<Box<Sleep>>,
    awaiting_pong: bool,
}

impl KeepAlive {
    fn new(settings: KeepAliveSettings) -> KeepAlive {
        KeepAlive {
            settings,
            ping_pong: None,
            timer: Box::pin(tokio::time::sleep(settings.interval)),
            awaiting_pong: false,
        }
    }

    /// Ready (once) when a PING went unanswered for the timeout.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(ping_pong) = &mut self.ping_pong else {
            return Poll::Pending;
        };
        loop {
            if self.awaiting_pong {
                match ping_pong.poll_pong(cx) {
                    Poll::Ready(Ok(_)) => {
                        self.awaiting_pong = false;
                        let next = Instant::now() + self.settings.interval;
                        self.timer.as_mut().reset(next);
                    }
                    Poll::Ready(Err(_)) => {
                        // The connection is closing; h2 reports why.
                        self.ping_pong = None;
                        return Poll::Pending;
                    }
                    Poll::Pending => {}
                }
            }
            ready!(self.timer.as_mut().poll(cx));
            if self.awaiting_pong || ping_pong.send_ping(Ping::opaque()).is_err() {
                self.ping_pong = None;
                return match self.awaiting_pong {
                    true => Poll::Ready(()),
                    false => Poll::Pending,
                };
            }
            self.awaiting_pong = true;
            let deadline = Instant::now() + self.settings.timeout;
            self.timer.as_mut().reset(deadline);
        }
    }
}

/// The sending side of a stream: a client's request's (`SendResponse`),
/// or a pushed one's (`SendPushedResponse`), which has no interim responses
/// and cannot push (RFC 9113 §8.4: only a client's stream can).
trait Respond: Send + 'static {
    fn stream_id(&self) -> u32;
    fn send_head(
        &mut self,
        head: http::Response<()>,
        end: bool,
    ) -> Result<SendStream<Bytes>, ::h2::Error>;
    fn send_reset(&mut self, reason: Reason);
    fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reason, ::h2::Error>>;
    /// Send what came on the request's interim channel.
    fn interim(&mut self, message: Interim, ctx: &Arc<ConnContext>);
}

impl Respond for SendResponse<Bytes> {
    fn stream_id(&self) -> u32 {
        SendResponse::stream_id(self).as_u32()
    }

    fn send_head(
        &mut self,
        head: http::Response<()>,
        end: bool,
    ) -> Result<SendStream<Bytes>, ::h2::Error> {
        self.send_response(head, end)
    }

    fn send_reset(&mut self, reason: Reason) {
        SendResponse::send_reset(self, reason)
    }

    fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reason, ::h2::Error>> {
        SendResponse::poll_reset(self, cx)
    }

    fn interim(&mut self, message: Interim, ctx: &Arc<ConnContext>) {
        match message {
            Interim::EarlyHints(_) if !ctx.config.early_hints => {}
            Interim::EarlyHints(mut fields) => {
                strip_connection_fields(&mut fields);
                // RFC 9110 §8.6: no Content-Length in a 1xx response.
                fields.remove(CONTENT_LENGTH);
                let mut hints = http::Response::new(());
                *hints.status_mut() = http::StatusCode::EARLY_HINTS;
                *hints.headers_mut() = fields;
                if let Err(e) = self.send_informational(hints) {
                    log::debug!(target: "propylon.server", "HTTP/2 103 Early Hints not sent: {e}");
                }
            }
            Interim::Push(requests) => {
                for request in requests {
                    match self.push_request(request.clone()) {
                        Ok(pushed) => {
                            let request = request.map(|()| RequestBody::Promised {
                                stream_id: pushed.stream_id().as_u32(),
                            });
                            let none = InterimSender::none();
                            tokio::spawn(answer(request, none, pushed, None, ctx.clone()));
                        }
                        // SETTINGS_ENABLE_PUSH 0 (RFC 9113 §6.5.2), or no
                        // stream id left: no more pushes here.
                        Err(e) => {
                            log::debug!(target: "propylon.server", "HTTP/2 push not sent: {e}");
                            break;
                        }
                    }
                }
            }
        }
    }
}

impl Respond for SendPushedResponse<Bytes> {
    fn stream_id(&self) -> u32 {
        SendPushedResponse::stream_id(self).as_u32()
    }

    fn send_head(
        &mut self,
        head: http::Response<()>,
        end: bool,
    ) -> Result<SendStream<Bytes>, ::h2::Error> {
        self.send_response(head, end)
    }

    fn send_reset(&mut self, reason: Reason) {
        SendPushedResponse::send_reset(self, reason)
    }

    fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reason, ::h2::Error>> {
        SendPushedResponse::poll_reset(self, cx)
    }

    fn interim(&mut self, _: Interim, _: &Arc<ConnContext>) {}
}

/// One stream: the request to `request::service`, its response back to the
/// client. A client's RST_STREAM before the response ends it (the request's
/// future, and with it the call's reply, is dropped).
async fn exchange(
    request: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    ctx: Arc<ConnContext>,
) {
    if let Some(protocol) = request.extensions().get::<::h2::ext::Protocol>() {
        let websocket =
            route::Exchange::of_h2_protocol(Some(protocol.as_str())) == route::Exchange::WebSocket;
        // A handshake no WebSocket handler covers goes on as a request,
        // and routing answers it 404.
        if let Some(endpoint) = websocket
            .then(|| ctx.endpoints.websocket(request.uri().path()).cloned())
            .flatten()
        {
            return Box::pin(open_websocket(request, respond, &*endpoint, ctx)).await;
        }
    }
    let stream_id = respond.stream_id().as_u32();
    let request = request.map(|body| RequestBody::H2 { body, stream_id });
    let (sender, receiver) = interim::channel();
    answer(request, sender, respond, Some(receiver), ctx).await
}

/// A WebSocket handshake (RFC 8441 §5) routed to `endpoint`: checked (400,
/// or 426 for a version other than 13), handed to the application and
/// answered 200 with what it accepted, after which the stream carries the
/// WebSocket (`websocket::h2_stream`); or answered with the application's
/// rejection (or 503, 500).
async fn open_websocket(
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    endpoint: &dyn WebSocketEndpoint,
    ctx: Arc<ConnContext>,
) {
    // The stream is in flight until the WebSocket closes: the connection
    // is not idle, and a shutdown waits for it (the session closes it with
    // 1001 at the end of the drain period).
    let _in_flight = ctx.activity.begin();
    let (mut parts, body) = request.into_parts();
    // The application sees the same fields as over HTTP/1.1: `:authority`
    // as `host` (RFC 9113 §8.3.1).
    if !parts.headers.contains_key(HOST) {
        if let Some(host) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(HOST, host);
        }
    }
    let offer = match check_h2(&parts.method, &parts.headers) {
        Ok(offer) => offer,
        Err(e) => {
            log::info!(target: "propylon.server", "WebSocket handshake refused: {e}");
            let mut response =
                http::Response::new(Bytes::from(format!("{} {e}\n", e.status().as_u16())));
            *response.status_mut() = e.status();
            *response.headers_mut() = e.response_headers();
            send_whole(&mut respond, response);
            return;
        }
    };
    let (client, secure) = ctx.client(ctx.forwarded(&parts.headers).as_ref());
    let answered = websocket::answer(
        endpoint,
        offer,
        parts.uri,
        parts.headers,
        true,
        secure,
        client,
        &ctx.config.websocket,
    )
    .await;
    match answered {
        Answered::Open {
            headers,
            agreed,
            link,
        } => {
            let mut head = http::Response::new(());
            *head.headers_mut() = headers;
            match respond.send_response(head, false) {
                Ok(send) => {
                    let io = H2Stream::new(body, send);
                    let _open = ctx
                        .endpoints
                        .observe()
                        .recorder()
                        .map(|r| r.websocket_opened());
                    websocket::session::serve(
                        io,
                        agreed.as_deref(),
                        link,
                        &ctx.config.websocket,
                        ctx.shutdown.clone(),
                        ctx.config.graceful_timeout,
                    )
                    .await;
                }
                Err(e) => {
                    log::debug!(target: "propylon.server", "WebSocket over HTTP/2 not opened: {e}");
                    link.finish(Closed::abnormal());
                }
            }
        }
        Answered::Refused(response) => send_whole(&mut respond, response),
    }
}

/// Send a response whose body is all here.
fn send_whole(respond: &mut SendResponse<Bytes>, response: http::Response<Bytes>) {
    let (parts, body) = response.into_parts();
    let end = body.is_empty();
    match respond.send_response(http::Response::from_parts(parts, ()), end) {
        Ok(mut send) if !end => {
            let _ = send.send_data(body, true);
        }
        Ok(_) => {}
        Err(e) => log::debug!(target: "propylon.server", "response not sent: {e}"),
    }
}

/// A request's response, and before it what comes on its interim channel:
/// a message sent before the response goes before it; the channel is
/// dropped when the response is ready, and later messages with it.
async fn answer<R: Respond>(
    request: http::Request<RequestBody>,
    sender: InterimSender,
    mut respond: R,
    mut interim: Option<InterimReceiver>,
    ctx: Arc<ConnContext>,
) {
    let stream_id = respond.stream_id();
    let mut response = std::pin::pin!(begin(request, sender, ctx.clone()));
    let answered = std::future::poll_fn(|cx| {
        // The response first: a message sent before it is queued by the
        // time it is ready, and goes out before it.
        let polled = response.as_mut().poll(cx);
        if let Some(receiver) = &mut interim {
            while let Poll::Ready(message) = receiver.poll_recv(cx) {
                respond.interim(message, &ctx);
            }
        }
        if let Poll::Ready(response) = polled {
            return Poll::Ready(Some(response));
        }
        match respond.poll_reset(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    drop(interim);
    match answered {
        Some(Ok(response)) => send_response(response, respond).await,
        Some(Err(never)) => match never {},
        None => {
            log::debug!(target: "propylon.server", "HTTP/2 stream {stream_id} reset by the client before its response")
        }
    }
}

/// Send the head, then the body and the trailers (`SendBody`).
async fn send_response<R: Respond>(response: HttpResponse, mut respond: R) {
    let (mut parts, body) = response.into_parts();
    let trailers = parts.extensions.remove::<Trailers>().map(|t| t.0);
    strip_connection_fields(&mut parts.headers);
    parts.headers.entry(DATE).or_insert_with(date::now);
    let body_ended = body.is_end_stream();
    if !body_ended {
        if let Some(len) = body.size_hint().exact() {
            parts
                .headers
                .entry(CONTENT_LENGTH)
                .or_insert_with(|| HeaderValue::from(len));
        }
    }
    let end = body_ended && trailers.is_none();
    let stream = match respond.send_head(http::Response::from_parts(parts, ()), end) {
        Ok(stream) => stream,
        Err(e) => {
            log::debug!(target: "propylon.server", "HTTP/2 response head not sent: {e}");
            respond.send_reset(Reason::INTERNAL_ERROR);
            return;
        }
    };
    if !end {
        SendBody {
            body: Some(body),
            stream,
            pending: None,
            trailers,
        }
        .await;
    }
}

/// A response body to its stream: each chunk once the stream has window for
/// it (h2 holds at most `MAX_SEND_BUFFER` beyond the window), then the
/// trailers or an empty END_STREAM. The body is asked for more only as the
/// client takes it, so a client that reads nothing stalls the body (the
/// connection's send timer sees it).
struct SendBody {
    /// Dropped as soon as it has ended: the request ends then.
    body: Option<Tracked<ResponseBody>>,
    stream: SendStream<Bytes>,
    /// A chunk waiting for window, and whether it ends the stream.
    pending: Option<(Bytes, bool)>,
    trailers: Option<HeaderMap>,
}

impl SendBody {
    /// Wait for window for the pending chunk and hand it to h2; `Ready(true)`
    /// when the stream is over (ended, reset or failed).
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let Some((data, end)) = self.pending.take() else {
            return Poll::Ready(false);
        };
        while self.stream.capacity() == 0 {
            match self.stream.poll_capacity(cx) {
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(true),
                Poll::Pending => {
                    self.pending = Some((data, end));
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(self.stream.send_data(data, end).is_err() || end)
    }

    /// The end after the last chunk: the trailers, or an empty END_STREAM.
    fn finish(&mut self) {
        let sent = match self.trailers.take() {
            Some(trailers) => {
                self.stream.reserve_capacity(0);
                self.stream.send_trailers(trailers)
            }
            None => self.stream.send_data(Bytes::new(), true),
        };
        if let Err(e) = sent {
            log::debug!(target: "propylon.server", "HTTP/2 response end not sent: {e}");
        }
    }
}

impl Future for SendBody {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            // A reset while it waits for window ends `poll_capacity` (and
            // a reset before, `send_data`).
            if ready!(this.poll_pending(cx)) {
                return Poll::Ready(());
            }
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(());
            };
            let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) else {
                // Waiting for the application: a client's RST_STREAM ends
                // the response now (the body, dropped, tells its producer).
                if let Poll::Ready(reason) = this.stream.poll_reset(cx) {
                    log::debug!(target: "propylon.server", "HTTP/2 response stream reset: {reason:?}");
                    return Poll::Ready(());
                }
                return Poll::Pending;
            };
            match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // response bodies carry no trailers frames
                    };
                    let end = this.trailers.is_none() && body.is_end_stream();
                    if end {
                        this.body = None;
                    }
                    if data.is_empty() {
                        if end {
                            this.finish();
                            return Poll::Ready(());
                        }
                        continue;
                    }
                    // A claim on the window, not the chunk's length: h2
                    // raises it to what is buffered in `send_data` (hyper's
                    // way, so a waiting stream does not hold window other
                    // streams could use).
                    this.stream.reserve_capacity(1);
                    this.pending = Some((data, end));
                }
                Some(Err(e)) => {
                    log::debug!(target: "propylon.server", "HTTP/2 response body failed: {e}; resetting the stream");
                    this.stream.send_reset(Reason::INTERNAL_ERROR);
                    return Poll::Ready(());
                }
                None => {
                    this.body = None;
                    this.finish();
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// Fields that are about an HTTP/1.1 connection, not a message: HTTP/2
/// forbids them (RFC 9113 §8.2.2), and h2 refuses a head that has them.
/// Removed, with the fields `Connection` names.
fn strip_connection_fields(headers: &mut HeaderMap) {
    if let Some(connection) = headers.remove(CONNECTION) {
        if let Ok(names) = connection.to_str() {
            for name in names.split(',') {
                if let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) {
                    headers.remove(name);
                }
            }
        }
    }
    for name in CONNECTION_FIELDS {
        headers.remove(name);
    }
}

/// The fields `strip_connection_fields` removes besides `Connection`.
const CONNECTION_FIELDS: [HeaderName; 5] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TRANSFER_ENCODING,
    UPGRADE,
    TE,
];

/// The `date` field's value, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    use http::HeaderValue;

    thread_local! {
        static CACHE: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
    }

    pub(super) fn now() -> HeaderValue {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHE.with_borrow_mut(|cache| match cache {
            Some((at, value)) if *at == second => value.clone(),
            _ => {
                let text = crate::proto::h1::http_date(now);
                let value =
                    HeaderValue::from_bytes(&text).expect("an IMF-fixdate is a valid value");
                *cache = Some((second, value.clone()));
                value
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::ServerConfig;
    use crate::runtime::endpoint::{Busy, Call, Endpoint, Response};
    use crate::runtime::request::body::BodyError;
    use crate::runtime::request::response::channel;
    use http::StatusCode;

    const WAIT: Duration = Duration::from_secs(10);

    fn config(stream_window: u32) -> ServerConfig {
        let mut config = ServerConfig::for_tests();
        config.http2.initial_stream_window_size = stream_window;
        config.http2.initial_connection_window_size = stream_window;
        config.body.max_body_size = 1 << 30;
        config.buffer.memory_limit = 1 << 20;
        config
    }

    /// Answers every call with the request's stream id in `x-stream-id`,
    /// the length of its body (read on a blocking thread, as an application
    /// reads) as the body, and a trailer `x-checksum`; reports each body's
    /// read to `reads`. On `/abort`, sends a chunk and then fails its body.
    struct Echo {
        reads: tokio::sync::mpsc::UnboundedSender<Result<usize, BodyError>>,
    }

    impl Endpoint for Echo {
        fn dispatch(&self, call: Box<Call>) -> Result<(), Busy> {
            let reads = self.reads.clone();
            tokio::task::spawn_blocking(move || {
                let Call {
                    mut request, reply, ..
                } = *call;
                let mut headers = HeaderMap::new();
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
                if request.head.target.path() == "/abort" {
                    let (sink, body) = channel();
                    sink.push(Bytes::from_static(b"part"));
                    reply.send(Response {
                        status: StatusCode::OK,
                        headers,
                        body: ResponseBody::Stream(body),
                        trailers: None,
                    });
                    sink.abort("the application failed");
                    return;
                }
                let stream_id = request.connection.stream_id;
                let len = request.body.read_to_end().map(|b| b.len());
                let _ = reads.send(len.clone());
                headers.insert("x-stream-id", HeaderValue::from(stream_id.unwrap_or(0)));
                let mut trailers = HeaderMap::new();
                trailers.insert("x-checksum", HeaderValue::from_static("abc"));
                reply.send(Response {
                    status: StatusCode::OK,
                    headers,
                    body: ResponseBody::full(Bytes::from(format!("{len:?}"))),
                    trailers: Some(trailers),
                });
            });
            Ok(())
        }
    }

    type Reads = tokio::sync::mpsc::UnboundedReceiver<Result<usize, BodyError>>;

    /// A client's `SendRequest` on a served connection, and the endpoint's
    /// reports of its body reads.
    async fn serve(stream_window: u32) -> (::h2::client::SendRequest<Bytes>, Reads) {
        let (reads, reports) = tokio::sync::mpsc::unbounded_channel();
        let ctx = ConnContext::for_tests(config(stream_window), Arc::new(Echo { reads }));
        let config = ctx.config.clone();
        let (client, server) = tokio::io::duplex(256 * 1024);
        let settings = Settings::new(&config.http2, false);
        tokio::spawn(Connection::new(server, &settings, ctx));
        let (send, conn) = ::h2::client::handshake(client).await.unwrap();
        tokio::spawn(conn);
        (send, reports)
    }

    /// The response to `body` sent as a POST, with its body and trailers.
    async fn post(
        send: &mut ::h2::client::SendRequest<Bytes>,
        body: Bytes,
    ) -> (http::response::Parts, Bytes, Option<HeaderMap>) {
        let request = http::Request::post("http://localhost/").body(()).unwrap();
        let (response, mut stream) = send.send_request(request, body.is_empty()).unwrap();
        if !body.is_empty() {
            // The client's own flow control: as much as the server's window allows.
            let mut rest = body;
            while !rest.is_empty() {
                stream.reserve_capacity(rest.len());
                let room = std::future::poll_fn(|cx| stream.poll_capacity(cx))
                    .await
                    .unwrap()
                    .unwrap();
                let chunk = rest.split_to(room.min(rest.len()));
                stream.send_data(chunk, rest.is_empty()).unwrap();
            }
        }
        let (parts, mut body) = response.await.unwrap().into_parts();
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            data.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.unwrap();
        (parts, Bytes::from(data), trailers)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_request_knows_its_stream_and_trailers_follow_the_body() {
        let (mut send, _) = serve(65_535).await;
        for expected_id in ["1", "3", "5"] {
            let (parts, body, trailers) = tokio::time::timeout(WAIT, post(&mut send, Bytes::new()))
                .await
                .unwrap();
            assert_eq!(parts.status, 200);
            assert_eq!(parts.headers["x-stream-id"], expected_id);
            // An HTTP/1.1 connection field does not reach HTTP/2.
            assert!(!parts.headers.contains_key(CONNECTION));
            assert!(parts.headers.contains_key(DATE));
            assert_eq!(&body[..], b"Ok(0)");
            let trailers = trailers.expect("the endpoint's trailers");
            assert_eq!(trailers["x-checksum"], "abc");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_larger_than_the_window_arrives_as_the_application_reads() {
        // Four windows' worth: the client can send the rest only if reading
        // gives the window back.
        let (mut send, _) = serve(65_535).await;
        let body = Bytes::from(vec![b'x'; 4 * 65_535]);
        let (parts, body, _) = tokio::time::timeout(WAIT, post(&mut send, body))
            .await
            .unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(&body[..], b"Ok(262140)");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_reset_fails_the_applications_body_read() {
        let (mut send, mut reads) = serve(65_535).await;
        let request = http::Request::post("http://localhost/").body(()).unwrap();
        let (response, mut stream) = send.send_request(request, false).unwrap();
        stream
            .send_data(Bytes::from_static(b"start"), false)
            .unwrap();
        stream.send_reset(Reason::CANCEL);
        let read = tokio::time::timeout(WAIT, reads.recv()).await.unwrap();
        assert!(
            matches!(read, Some(Err(BodyError::Disconnected(_)))),
            "{read:?}"
        );
        drop(response);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_response_body_resets_its_stream_with_internal_error() {
        let (mut send, _) = serve(65_535).await;
        let request = http::Request::get("http://localhost/abort")
            .body(())
            .unwrap();
        let (response, _) = send.send_request(request, true).unwrap();
        let outcome = tokio::time::timeout(WAIT, async {
            // The reset may come before the client has read the head.
            let mut body = match response.await {
                Ok(response) => response.into_body(),
                Err(e) => return e.reason(),
            };
            loop {
                match body.data().await {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return e.reason(),
                    None => return None,
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(outcome, Some(Reason::INTERNAL_ERROR));
    }

    /// Interim responses and pushes on HTTP/2: a page at `/` (the WSGI
    /// target, `Page`), static files under `/static` (`StaticFiles`).
    mod early_hints {
        use super::*;
        use crate::proto::route::{RouteTable, Target};
        use crate::runtime::endpoint::Endpoints;
        use http::header::LINK;

        /// Answers "page", after a hint of its own on `/hint`.
        struct Page;

        impl Endpoint for Page {
            fn dispatch(&self, call: Box<Call>) -> Result<(), Busy> {
                if call.request.head.target.path() == "/hint" {
                    let mut fields = HeaderMap::new();
                    fields.insert(LINK, HeaderValue::from_static("</own.css>; rel=preload"));
                    let _ = call.interim.early_hints(fields);
                }
                answer(call, "page".into());
                Ok(())
            }
        }

        /// Answers "static <path> <accept-encoding>".
        struct StaticFiles;

        impl Endpoint for StaticFiles {
            fn dispatch(&self, call: Box<Call>) -> Result<(), Busy> {
                let head = &call.request.head;
                let encoding = head.headers.get("accept-encoding").cloned();
                let text = format!("static {} {encoding:?}", head.target.path());
                answer(call, text);
                Ok(())
            }
        }

        fn answer(call: Box<Call>, text: String) {
            call.reply.send(Response {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: ResponseBody::full(Bytes::from(text)),
                trailers: None,
            });
        }

        const LINKS: [&str; 3] = [
            "</static/app.css>; rel=preload; as=style",
            "</page.js>; rel=preload; as=script",
            "<https://cdn.example/x.js>; rel=preload; as=script",
        ];

        /// A served connection (push allowed by the server with `push`)
        /// and a client (that allows push with `client_push`).
        async fn serve(push: bool, client_push: bool) -> ::h2::client::SendRequest<Bytes> {
            serve_with(config(65_535), push, client_push).await
        }

        async fn serve_with(
            mut config: ServerConfig,
            push: bool,
            client_push: bool,
        ) -> ::h2::client::SendRequest<Bytes> {
            config.http2.push = push;
            let routes =
                RouteTable::new([("", Target::Wsgi), ("/static", Target::Static(0))]).unwrap();
            let endpoints = Endpoints::new(
                routes,
                Some(Arc::new(Page)),
                vec![Arc::new(StaticFiles) as Arc<dyn Endpoint>],
            )
            .with_preload(LINKS.iter().map(|l| HeaderValue::from_static(l)).collect());
            let ctx = ConnContext::for_tests_with(config, endpoints);
            let (client, server) = tokio::io::duplex(256 * 1024);
            let settings = Settings::new(&ctx.config.http2, false);
            tokio::spawn(Connection::new(server, &settings, ctx));
            let (send, conn) = ::h2::client::Builder::new()
                .enable_push(client_push)
                .handshake(client)
                .await
                .unwrap();
            tokio::spawn(conn);
            send
        }

        /// A GET of `path` with `accept`: the interim responses' `link`
        /// fields, the body, and each push's path and body.
        async fn get(
            send: &mut ::h2::client::SendRequest<Bytes>,
            path: &str,
            accept: &str,
        ) -> (Vec<Vec<String>>, String, Vec<(String, String)>) {
            let request = http::Request::get(format!("http://localhost{path}"))
                .header("accept", accept)
                .header("accept-encoding", "br")
                .body(())
                .unwrap();
            let (mut response, _) = send.send_request(request, true).unwrap();
            let mut pushes = response.push_promises();
            let mut hints = Vec::new();
            while let Some(hint) = std::future::poll_fn(|cx| response.poll_informational(cx)).await
            {
                let hint = hint.unwrap();
                assert_eq!(hint.status(), http::StatusCode::EARLY_HINTS);
                let links = hint.headers().get_all(LINK).iter();
                hints.push(links.map(|v| v.to_str().unwrap().to_owned()).collect());
            }
            let body = read_body(response.await.unwrap().into_body()).await;
            let mut pushed = Vec::new();
            while let Some(Some(promise)) = pushes.push_promise().now_or_never() {
                let (request, response) = promise.unwrap().into_parts();
                let body = read_body(response.await.unwrap().into_body()).await;
                pushed.push((request.uri().path().to_owned(), body));
            }
            (hints, body, pushed)
        }

        async fn read_body(mut body: RecvStream) -> String {
            let mut data = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                body.flow_control().release_capacity(chunk.len()).unwrap();
                data.extend_from_slice(&chunk);
            }
            String::from_utf8(data).unwrap()
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_page_gets_the_preloads_as_103_and_pushes_only_with_the_option() {
            let mut send = serve(false, true).await;
            let (hints, body, pushed) =
                tokio::time::timeout(WAIT, get(&mut send, "/", "text/html"))
                    .await
                    .unwrap();
            assert_eq!(hints, vec![LINKS.map(String::from).to_vec()]);
            assert_eq!(body, "page");
            assert!(pushed.is_empty(), "{pushed:?}");
            // Not a page: nothing before the response.
            let (hints, body, _) = tokio::time::timeout(WAIT, get(&mut send, "/", "*/*"))
                .await
                .unwrap();
            assert!(hints.is_empty(), "{hints:?}");
            assert_eq!(body, "page");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn with_push_the_preloads_a_static_mount_serves_are_pushed() {
            let mut send = serve(true, true).await;
            let (hints, body, pushed) =
                tokio::time::timeout(WAIT, get(&mut send, "/", "text/html"))
                    .await
                    .unwrap();
            assert_eq!(hints.len(), 1);
            assert_eq!(body, "page");
            // Only the one on this origin under /static, with the page's
            // Accept-Encoding.
            let expected = (
                "/static/app.css".to_owned(),
                "static /static/app.css Some(\"br\")".to_owned(),
            );
            assert_eq!(pushed, vec![expected]);
            // A static file itself is not a page.
            let (hints, _, pushed) =
                tokio::time::timeout(WAIT, get(&mut send, "/static/app.css", "text/html"))
                    .await
                    .unwrap();
            assert!(
                hints.is_empty() && pushed.is_empty(),
                "{hints:?} {pushed:?}"
            );
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_client_that_disabled_push_gets_none() {
            let mut send = serve(true, false).await;
            let (hints, body, pushed) =
                tokio::time::timeout(WAIT, get(&mut send, "/", "text/html"))
                    .await
                    .unwrap();
            assert_eq!(hints.len(), 1);
            assert_eq!(body, "page");
            assert!(pushed.is_empty(), "{pushed:?}");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn with_early_hints_off_no_103_goes_but_pushes_do() {
            let mut config = config(65_535);
            config.early_hints = false;
            let mut send = serve_with(config, true, true).await;
            for path in ["/", "/hint"] {
                let (hints, body, pushed) =
                    tokio::time::timeout(WAIT, get(&mut send, path, "text/html"))
                        .await
                        .unwrap();
                assert!(hints.is_empty(), "{hints:?}");
                assert_eq!(body, "page");
                assert_eq!(pushed.len(), 1, "{pushed:?}");
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_endpoints_own_hint_goes_before_its_response() {
            let mut send = serve(false, true).await;
            let (hints, body, _) = tokio::time::timeout(WAIT, get(&mut send, "/hint", "*/*"))
                .await
                .unwrap();
            assert_eq!(hints, vec![vec!["</own.css>; rel=preload".to_owned()]]);
            assert_eq!(body, "page");
        }
    }
}
