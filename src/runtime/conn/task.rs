//! The task of one connection, from the accepted socket to its close.
//!
//! What it does: runs the TLS handshake where the listener asks for one, tells
//! HTTP/1.1 from HTTP/2 prior knowledge by the first bytes (`detect`), and
//! serves the connection: HTTP/1.1 on the server's own path (`h1`) until a
//! request is not plain, then hyper's HTTP/1.1; HTTP/2 (prior knowledge, ALPN
//! `h2`, or an h2c upgrade) with hyper, its streams polled in this task
//! (`h2streams`). Beside the connection it runs the connection's watchers
//! (shutdown, and the timers of `timers`), behind the abuse guard
//! (`transport::guard`) and, for HTTP/1.1, a lingering close (`linger`).
//!
//! What it does not do: bind or accept (`server`), or handle requests
//! (`request::service`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::context::{ConnContext, SpawnH2c};
use super::h1;
use super::h2c::{PendingUpgrade, UpgradeRequest, UpgradeStream};
use super::h2streams::{ConnectionExecutor, Multiplexed};
use super::with_watchers::{Either, WithWatchers};
use crate::runtime::config::ServerConfig;
use crate::runtime::endpoint::Endpoints;
use crate::runtime::request::body::{DiskBudget, MemoryBudget};
use crate::runtime::request::service::{begin, handle, HttpResponse, RequestBody};
use crate::runtime::timers::{Activity, Expired, Timeouts};
use crate::runtime::transport::detect::{detect, Prefixed, Protocol, INVALID_PREFACE_ANSWER};
use crate::runtime::transport::guard::{Guard, GuardHandle, ENHANCE_YOUR_CALM};
use crate::runtime::transport::linger::Linger;
use crate::runtime::transport::rewind::Rewind;
use crate::runtime::transport::sendfile::{SendQueue, SendfileStream};
use crate::runtime::transport::tls::{TlsInfo, TlsState};
use crate::runtime::transport::RawSocket;

/// Streams a client may reset before the server accepted them, per
/// connection, before it gets GOAWAY(ENHANCE_YOUR_CALM): h2's default since
/// the rapid-reset fix (CVE-2023-44487).
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams the server may reset for protocol errors before it gives up on the
/// connection with GOAWAY(ENHANCE_YOUR_CALM): hyper's default.
const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// Run a connection (hyper's, or the server's own HTTP/1.1 `h1::Connection`)
/// to its end and evaluate to its output (`None` when it was cut short):
/// until it closes, the server shuts down
/// (graceful: in-flight requests finish), it has been idle for the
/// keep-alive timeout, or (HTTP/1.1, `head` true) a request head took longer
/// than the header timeout. A macro because hyper's connection types share
/// `graceful_shutdown` by name only.
macro_rules! drive {
    ($conn:expr, $shutdown:expr, $ctx:expr, head: $head:expr) => {{
        let conn = $conn;
        let mut shutdown = $shutdown;
        let ctx: &ConnContext = $ctx;
        tokio::pin!(conn);
        // The watchers, polled only when one of them woke (`WithWatchers`): not
        // each time the connection is woken by its socket or its responses.
        let watchers = async {
            tokio::select! {
                _ = shutdown.changed() => Watched::Shutdown,
                expired = ctx.activity.watch_timers(
                    timeouts(&ctx.config, $head),
                    |t| ctx.guard.no_data_sent_for(t),
                ) => Watched::Expired(expired),
            }
        };
        tokio::pin!(watchers);
        let result = match WithWatchers::new(conn.as_mut(), watchers.as_mut()).await {
            Either::Main(r) => Some(r),
            Either::Side(Watched::Shutdown) => {
                // In-flight requests finish. Then the closing exchange
                // (HTTP/2: GOAWAY, PING, final GOAWAY) gets CLOSE_GRACE: a
                // client that acknowledges nothing does not hold the shutdown.
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    r = conn.as_mut() => Some(r),
                    _ = async {
                        ctx.activity.drained().await;
                        tokio::time::sleep(CLOSE_GRACE).await
                    } => None,
                }
            }
            Either::Side(Watched::Expired(expired)) => match expired {
                Expired::Idle => {
                    // An idle keep-alive connection: close it (HTTP/1.1 closes
                    // at once; HTTP/2 sends GOAWAY and gets CLOSE_GRACE to finish).
                    conn.as_mut().graceful_shutdown();
                    tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await.ok()
                }
                Expired::SlowHead => {
                    // Slowloris. hyper is in the middle of the head: there is
                    // nothing to finish, and no response to send (hyper's own
                    // header timeout closed the same way).
                    log::info!(target: "propylon.server", "request head not complete within the header timeout: closing the connection");
                    None
                }
                Expired::Stalled => {
                    // The client takes no data: GOAWAY (HTTP/2) and close. If
                    // hyper does not come back to the transport soon, drop it.
                    ctx.guard.trip(ENHANCE_YOUR_CALM, "a response stalled: the client takes no data");
                    tokio::time::timeout(STALL_GRACE, conn.as_mut()).await.ok()
                }
            },
        };
        if let Some(Err(e)) = &result {
            // Malformed requests, resets and timeouts: the client's doing, not
            // an error of the server's. hyper already answered 400/431 where it could.
            log::debug!(target: "propylon.server", "connection ended: {e}");
        }
        result
    }};
}

/// What woke a connection's watchers.
enum Watched {
    Shutdown,
    Expired(Expired),
}

/// The timers of a connection; the head timer only where requests have heads
/// of their own (HTTP/1.1, and before the protocol is known).
fn timeouts(config: &ServerConfig, head: bool) -> Timeouts {
    Timeouts {
        keep_alive: config.keep_alive_timeout,
        head: head.then_some(config.header_timeout),
        send: config.send_timeout,
    }
}

/// How long a connection being closed (idle, or at shutdown once its requests
/// are done) has to complete its closing exchange before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// After tripping the guard of a stalled connection, how long hyper gets to
/// notice before the connection is dropped outright.
const STALL_GRACE: Duration = Duration::from_secs(1);

/// What every connection of a running server shares.
pub(crate) struct Serving {
    http1: http1::Builder,
    /// HTTP/2 connections: prior knowledge, TLS with ALPN `h2`, and h2c upgrades.
    http2: http2::Builder<ConnectionExecutor>,
    config: Arc<ServerConfig>,
    endpoints: Arc<Endpoints>,
    rt: tokio::runtime::Handle,
    tls: Option<Arc<TlsState>>,
    shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
    preread_budget: Arc<MemoryBudget>,
    buffer_budget: Arc<DiskBudget>,
}

impl Serving {
    /// `shutdown` turns true when the server stops; every connection task
    /// holds a clone of `alive` until it ends.
    pub(crate) fn new(
        config: Arc<ServerConfig>,
        endpoints: Arc<Endpoints>,
        rt: tokio::runtime::Handle,
        tls: Option<Arc<TlsState>>,
        shutdown: watch::Receiver<bool>,
        alive: mpsc::Sender<()>,
    ) -> Serving {
        Serving {
            http1: http1_builder(&config),
            http2: http2_builder(&config),
            preread_budget: MemoryBudget::new(config.preread.memory_limit),
            buffer_budget: DiskBudget::new(config.buffer.disk_limit),
            config,
            endpoints,
            rt,
            tls,
            shutdown,
            alive,
        }
    }

    /// Turns true when the server stops accepting.
    pub(crate) fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

fn http1_builder(config: &ServerConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    // No timer: hyper's HTTP/1.1 side would use one only for its header
    // timeout, which is off (below).
    builder
        // hyper's own floor for its read buffer is 8 KiB. hyper also takes
        // this size for its limit on the head (431), so `request::service`
        // applies --max-header-size itself.
        .max_buf_size((config.max_header_size + READ_AHEAD).max(8192))
        // The header timeout is the server's (`timers`): hyper's starts when
        // it waits for the next head, so on a keep-alive connection it closed
        // idle connections at the header timeout instead of the keep-alive
        // timeout, and it armed and dropped a boxed timer per request.
        .header_read_timeout(None)
        // Body buffers reach the transport as they are: `sendfile` needs that.
        .writev(true)
        // A client that shuts its sending side after a request (HTTP/1.0
        // clients, `nc -N`, a request piped in) still gets the response, as
        // on the server's own path and from gunicorn or waitress. hyper's
        // default drops the request at that EOF, answerless; the price is
        // that a client gone while the application runs is noticed at the
        // first write, as on the own path.
        .half_close(true)
        // Not `pipeline_flush(true)`: with it hyper 1.x does not flush its
        // automatic 400/431 for a malformed request before closing.
        .keep_alive(true);
    // hyper parses into an inline array of its default size (100) unless a
    // limit is set; a set limit, even 100, fills a fresh array per request.
    if config.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        builder.max_headers(config.max_headers);
    }
    builder
}

/// Room in hyper's read buffer past the largest head: a request whose head
/// and body fit in it (a 64 KiB upload with its head) is read from the socket
/// at once, and the application's body read finds the whole body
/// there instead of waiting for the I/O thread to read the rest.
const READ_AHEAD: usize = 64 * 1024;

/// hyper's own limit on the header fields of an HTTP/1.1 request (more: 431).
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

macro_rules! http2_settings {
    ($builder:expr, $config:expr) => {{
        let h2 = &$config.http2;
        $builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(h2.max_concurrent_streams)
            .initial_stream_window_size(h2.initial_stream_window_size)
            .initial_connection_window_size(h2.initial_connection_window_size)
            .max_frame_size(h2.max_frame_size)
            .max_header_list_size(h2.max_header_list_size)
            .keep_alive_interval(h2.keep_alive_interval)
            .keep_alive_timeout(h2.keep_alive_timeout)
            // CVE-2023-44487 (rapid reset): streams the client resets before
            // they were even accepted; h2's default, stated here on purpose.
            .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS);
    }};
}

fn http2_builder(config: &ServerConfig) -> http2::Builder<ConnectionExecutor> {
    // Streams run in their connection's task (`h2streams`).
    let mut builder = http2::Builder::new(ConnectionExecutor);
    http2_settings!(builder, config);
    builder
}

/// An accepted socket, with its addresses (TCP: peer, local).
pub(crate) enum Raw {
    Tcp(TcpStream, SocketAddr, Option<SocketAddr>),
    Unix(UnixStream),
}

impl Serving {
    fn context(
        self: &Arc<Self>,
        local: Option<SocketAddr>,
        peer: Option<SocketAddr>,
        tls: Option<Arc<TlsInfo>>,
        zero_copy: Option<Arc<SendQueue>>,
        upgrade: Option<PendingUpgrade>,
    ) -> Arc<ConnContext> {
        Arc::new(ConnContext {
            config: self.config.clone(),
            endpoints: self.endpoints.clone(),
            rt: self.rt.clone(),
            local,
            peer,
            tls,
            activity: Arc::new(Activity::new()),
            zero_copy,
            upgrade,
            h2c: self.clone(),
            guard: GuardHandle::default(),
            slot: Default::default(),
            unread_input: Default::default(),
            preread_budget: self.preread_budget.clone(),
            buffer_budget: self.buffer_budget.clone(),
        })
    }
}

impl SpawnH2c for Serving {
    /// Serve an h2c-upgraded connection: HTTP/2 from the first byte after the
    /// 101, with the upgrade request inserted as stream 1.
    fn spawn_h2c(
        self: Arc<Self>,
        on_upgrade: OnUpgrade,
        frames: Bytes,
        request: UpgradeRequest,
        parent: &ConnContext,
    ) {
        let ctx = self.context(
            parent.local,
            parent.peer,
            None,
            None,
            Some(PendingUpgrade::new(request)),
        );
        let serving = self;
        tokio::spawn(async move {
            let alive = serving.alive.clone();
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = UpgradeStream::new(TokioIo::new(upgraded), frames);
                    let io = Guard::new(io, ctx.guard.clone(), ctx.activity.clone());
                    http2(io, &serving, ctx).await;
                }
                Err(e) => log::debug!(target: "propylon.server", "h2c upgrade failed: {e}"),
            }
            drop(alive);
        });
    }
}

/// The task of one accepted connection. Built here, outside the task, so
/// the task holds only the pointer to it: each kind of connection is one
/// allocation of its own size (a TLS session is large; plain connections
/// should not pay for it), and no larger future wraps it. With thousands of
/// idle keep-alive connections this is most of their memory.
pub(crate) fn connection(
    raw: Raw,
    tls: bool,
    serving: Arc<Serving>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let alive = serving.alive.clone();
    match raw {
        Raw::Unix(stream) => Box::pin(async move {
            let ctx = serving.context(None, None, None, None, None);
            serve(stream, &serving, ctx).await;
            drop(alive);
        }),
        Raw::Tcp(stream, peer, local) if tls => Box::pin(async move {
            tls_connection(stream, peer, local, &serving).await;
            drop(alive);
        }),
        Raw::Tcp(stream, peer, local) => Box::pin(async move {
            let queue = Arc::new(SendQueue::default());
            let ctx = serving.context(local, Some(peer), None, Some(queue.clone()), None);
            serve(SendfileStream::new(stream, queue), &serving, ctx).await;
            drop(alive);
        }),
    }
}

async fn tls_connection(
    stream: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    serving: &Arc<Serving>,
) {
    let Some(state) = &serving.tls else { return };
    let acceptor = TlsAcceptor::from(state.current());
    // The handshake counts against the header timeout (slowloris).
    let stream =
        match tokio::time::timeout(serving.config.header_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                log::info!(target: "propylon.server", "TLS handshake with {peer} failed: {e}");
                return;
            }
            Err(_) => {
                log::info!(target: "propylon.server", "TLS handshake with {peer} timed out");
                return;
            }
        };
    let info = Arc::new(TlsInfo::from_connection(stream.get_ref().1));
    let ctx = serving.context(local, Some(peer), Some(info), None, None);
    serve(stream, serving, ctx).await;
}

type BoxedHandle =
    Pin<Box<dyn Future<Output = Result<HttpResponse, std::convert::Infallible>> + Send>>;

/// Serve one connection (HTTP/1.1 or HTTP/2, detected from its first bytes),
/// behind the HTTP/2 abuse guard.
///
/// HTTP/1.1 starts on the server's own path (`h1`) on every kind of
/// connection, until a request is not plain; on TLS a request with a body is
/// not plain (its records are not read from the socket as they are:
/// `RawSocket`).
async fn serve<I>(io: I, serving: &Serving, ctx: Arc<ConnContext>)
where
    I: AsyncRead + AsyncWrite + RawSocket + Unpin + Send + 'static,
{
    let io = Guard::new(io, ctx.guard.clone(), ctx.activity.clone());
    // Until its first bytes decide the protocol, a connection is idle: the
    // keep-alive timeout and shutdown apply as to a connection between requests.
    let mut shutdown = serving.shutdown.clone();
    let detected = tokio::select! {
        d = detect(io) => d,
        _ = shutdown.changed() => return,
        expired = ctx.activity.watch_timers(timeouts(&ctx.config, true), |_| false) => {
            if expired == Expired::SlowHead {
                log::info!(target: "propylon.server", "request head not complete within the header timeout: closing the connection");
            } else {
                log::debug!(target: "propylon.server", "connection closed: nothing received within the keep-alive timeout");
            }
            return;
        }
    };
    let (protocol, io) = match detected {
        Ok(d) => d,
        Err(e) => {
            log::debug!(target: "propylon.server", "connection ended before a request: {e}");
            return;
        }
    };
    let alpn_h2 = ctx.tls.as_ref().is_some_and(|tls| tls.alpn_h2);
    match protocol {
        Protocol::Http1 if alpn_h2 => refuse_invalid_preface(io, &ctx).await,
        Protocol::Http1 => own_http1(io, serving, ctx).await,
        // Boxed: an HTTP/1.1 connection's future should not be the size of
        // an HTTP/2 one (held for as long as the connection is open).
        Protocol::Http2 => Box::pin(http2(io, serving, ctx)).await,
    }
}

/// A connection whose ALPN chose `h2` is HTTP/2 from its first byte: one that
/// does not start with the client preface gets GOAWAY(PROTOCOL_ERROR) and is
/// closed (RFC 9113 §3.4), not an HTTP/1.1 answer.
async fn refuse_invalid_preface<I>(io: Prefixed<Guard<I>>, ctx: &ConnContext)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::AsyncWriteExt as _;
    log::info!(target: "propylon.server", "ALPN chose h2 but the client did not send the HTTP/2 preface: GOAWAY(PROTOCOL_ERROR)");
    let (io, _) = io.into_parts();
    // The client may still be sending: the close lingers, so that its
    // unread bytes do not turn the close into a reset that loses the GOAWAY.
    ctx.unread_input
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut io = Linger::new(io, ctx.unread_input.clone());
    let answer = async {
        io.write_all(&INVALID_PREFACE_ANSWER).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(ctx.config.send_timeout, answer).await;
}

/// HTTP/2 (hyper and h2) to the connection's end, its streams polled in
/// this task (`Multiplexed`).
async fn http2<I>(io: I, serving: &Serving, ctx: Arc<ConnContext>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let service_ctx = ctx.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        begin(req.map(RequestBody::Hyper), service_ctx.clone())
    });
    let conn = Multiplexed::new(serving.http2.serve_connection(io, service));
    drive!(conn, serving.shutdown.clone(), &ctx, head: false);
}

/// The server's own HTTP/1.1 path, then hyper if a request is not plain.
async fn own_http1<I>(io: Prefixed<Guard<I>>, serving: &Serving, ctx: Arc<ConnContext>)
where
    I: AsyncRead + AsyncWrite + RawSocket + Unpin + Send + 'static,
{
    let (io, prefix) = io.into_parts();
    // Whichever path closes the connection, hyper's or the own, a client
    // still sending gets its response before the close (`linger`).
    let io = Linger::new(io, ctx.unread_input.clone());
    let conn = h1::Connection::new(io, &prefix, ctx.clone());
    if let Some(Ok(h1::Outcome::Hyper(io, buffered))) =
        drive!(conn, serving.shutdown.clone(), &ctx, head: true)
    {
        // Boxed: an idle connection's future should not hold room for a
        // hyper connection it may never need.
        Box::pin(hyper_http1(Rewind::new(io, buffered), serving, ctx)).await;
    }
}

/// hyper's HTTP/1.1, to the connection's end.
async fn hyper_http1<I>(io: I, serving: &Serving, ctx: Arc<ConnContext>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let service_ctx = ctx.clone();
    // hyper keeps the allocation of an HTTP/1.1 connection's request
    // future for the connection's life; boxed, what stays while the
    // connection is idle is a pointer, not the whole future.
    let service = service_fn(move |req: Request<Incoming>| -> BoxedHandle {
        Box::pin(handle(req.map(RequestBody::Hyper), service_ctx.clone()))
    });
    let conn = serving.http1.serve_connection(io, service).with_upgrades();
    drive!(conn, serving.shutdown.clone(), &ctx, head: true);
}
