//! Listeners, connections and shutdown.
//!
//! What it does: binds every configured address (TCP or unix socket) before
//! serving, so a bad address fails at once with a clear error; accepts
//! connections, tells HTTP/1.1 from HTTP/2 prior knowledge by their first bytes
//! (the client preface, RFC 9113 §3.4; `detect`) on the same port, and serves
//! each with hyper's HTTP/1.1 or HTTP/2 connection; on SIGINT/SIGTERM stops accepting, lets connections finish their
//! in-flight requests (hyper's graceful shutdown) within the graceful timeout,
//! and returns.
//!
//! What it does not do: handle requests (that is `service`), or know about Python.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
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
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::activity::{Activity, Expired, Timeouts};
use super::config::{BindAddr, ServerConfig};
use super::detect::{detect, Prefixed, Protocol, INVALID_PREFACE_ANSWER};
use super::exchange::Application;
use super::first::{Either, First};
use super::h1::{self, RawSocket};
use super::h2c::{PendingUpgrade, UpgradeRequest, UpgradeStream};
use super::h2guard::{Guard, GuardHandle, ENHANCE_YOUR_CALM};
use super::h2streams::{ConnectionExecutor, Multiplexed};
use super::linger::Linger;
use super::sendfile::{SendQueue, SendfileStream};
use super::service::{begin, handle, ConnContext, HttpResponse, RequestBody};
use super::tls::{TlsInfo, TlsState};

/// Streams a client may reset before the server accepted them, per
/// connection, before it gets GOAWAY(ENHANCE_YOUR_CALM): h2's default since
/// the rapid-reset fix (CVE-2023-44487).
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams the server may reset for protocol errors before it gives up on the
/// connection with GOAWAY(ENHANCE_YOUR_CALM): hyper's default.
const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Listen backlog, as gunicorn's default (`--backlog 2048`).
const LISTEN_BACKLOG: i32 = 2048;

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
        // The watchers, polled only when one of them woke (`first`): not
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
        let result = match First::new(conn.as_mut(), watchers.as_mut()).await {
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

pub struct Listener {
    socket: Socket,
    /// Connections on this listener start with a TLS handshake.
    tls: bool,
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
}

impl Listener {
    pub fn describe(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        match &self.socket {
            Socket::Tcp(l) => match l.local_addr() {
                Ok(SocketAddr::V6(a)) => format!("{scheme}://[{}]:{}", a.ip(), a.port()),
                Ok(a) => format!("{scheme}://{a}"),
                Err(_) => format!("{scheme}://?"),
            },
            Socket::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }
}

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection finished within the graceful timeout.
    Drained,
    /// The graceful timeout expired with connections still open.
    TimedOut,
}

pub struct Server {
    rt: tokio::runtime::Runtime,
    listeners: Vec<Listener>,
    config: Arc<ServerConfig>,
    tls: Option<Arc<TlsState>>,
}

impl Server {
    /// Build the runtime, load the TLS configuration and bind every address.
    /// Errors name the address or the file.
    pub fn bind(config: ServerConfig) -> io::Result<Server> {
        let tls = match &config.tls {
            Some(settings) => {
                Some(Arc::new(TlsState::new(settings.clone()).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
                })?))
            }
            None => None,
        };
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        // tokio runs the task a task woke next (its "LIFO slot"). On HTTP/2
        // each response is finished by a stream task that then wakes the
        // connection task: that ran at once, and wrote one response per
        // writev. In the queue's order, every stream task that is ready runs
        // first and the connection task writes all their responses at once
        // (h2load 16x16: 0.87 writev per request before, 0.07 after).
        #[cfg(tokio_unstable)]
        builder.disable_lifo_slot();
        let rt = builder
            .worker_threads(
                std::thread::available_parallelism()
                    .map_or(2, |n| n.get())
                    .min(4),
            )
            .thread_name("propylon-io")
            .on_thread_start(super::batch_scheduling)
            .enable_all()
            .build()?;
        let mut listeners = Vec::new();
        let secure = config.binds.iter().map(|b| (b, tls.is_some()));
        let insecure = config.insecure_binds.iter().map(|b| (b, false));
        let congestion = config.tcp_congestion.as_deref();
        for (bind, tls) in secure.chain(insecure) {
            let socket = rt.block_on(bind_one(bind, congestion)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot bind {}: {}", describe_bind(bind), e),
                )
            })?;
            listeners.push(Listener { socket, tls });
        }
        Ok(Server {
            rt,
            listeners,
            config: Arc::new(config),
            tls,
        })
    }

    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// Serve until SIGINT or SIGTERM, then drain. SIGHUP reloads the TLS
    /// certificate and key. Blocks the calling thread.
    pub fn run(self, app: Arc<dyn Application>) -> io::Result<Stopped> {
        let Server {
            rt,
            listeners,
            config,
            tls,
        } = self;
        let handle = rt.handle().clone();
        let stopped = rt.block_on(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut sigint = signal(SignalKind::interrupt())?;
            let mut sigterm = signal(SignalKind::terminate())?;
            let mut sighup = signal(SignalKind::hangup())?;
            let (shutdown_tx, shutdown_rx) = watch::channel(false);
            // Every connection task holds a clone; when all are dropped, recv() is None.
            let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
            let serving = Arc::new(Serving {
                http1: http1_builder(&config),
                http2: http2_builder(&config),
                config: config.clone(),
                app,
                rt: handle,
                tls: tls.clone(),
                shutdown: shutdown_rx,
                alive: alive_tx,
            });
            for listener in listeners {
                log::info!(target: "propylon.server", "Listening on {}", listener.describe());
                tokio::spawn(accept_loop(listener, serving.clone()));
            }
            let shutdown_serving = serving.clone();
            drop(serving);
            loop {
                tokio::select! {
                    _ = sigint.recv() => break,
                    _ = sigterm.recv() => break,
                    _ = sighup.recv() => match &tls {
                        Some(tls) => match tls.reload() {
                            Ok(()) => log::info!(target: "propylon.server", "SIGHUP: reloaded the TLS certificate and key"),
                            Err(e) => log::error!(target: "propylon.server", "SIGHUP: keeping the old TLS configuration: {e}"),
                        },
                        None => log::info!(target: "propylon.server", "SIGHUP: nothing to reload"),
                    },
                }
            }
            log::info!(
                target: "propylon.server",
                "Shutting down: draining in-flight requests (up to {:?})",
                config.graceful_timeout
            );
            let _ = shutdown_tx.send(true);
            drop(shutdown_serving);
            let drained = tokio::select! {
                _ = alive_rx.recv() => true,
                _ = tokio::time::sleep(config.graceful_timeout) => false,
                _ = sigint.recv() => false,
                _ = sigterm.recv() => false,
            };
            Ok::<_, io::Error>(if drained { Stopped::Drained } else { Stopped::TimedOut })
        })?;
        if stopped == Stopped::TimedOut {
            log::warn!(target: "propylon.server", "graceful timeout expired; closing the remaining connections");
        }
        rt.shutdown_timeout(Duration::from_secs(1));
        Ok(stopped)
    }
}

/// What every connection of a running server shares.
pub struct Serving {
    http1: http1::Builder,
    /// HTTP/2 connections: prior knowledge, TLS with ALPN `h2`, and h2c upgrades.
    http2: http2::Builder<ConnectionExecutor>,
    config: Arc<ServerConfig>,
    app: Arc<dyn Application>,
    rt: tokio::runtime::Handle,
    tls: Option<Arc<TlsState>>,
    shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
}

fn describe_bind(bind: &BindAddr) -> String {
    match bind {
        BindAddr::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
        BindAddr::Tcp { host, port } => format!("{host}:{port}"),
        BindAddr::Unix(path) => format!("unix:{}", path.display()),
    }
}

async fn bind_one(bind: &BindAddr, congestion: Option<&str>) -> io::Result<Socket> {
    match bind {
        BindAddr::Tcp { host, port } => {
            let addr = (host.as_str(), *port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "the host name resolved to no address",
                    )
                })?;
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            if addr.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.set_nonblocking(true)?;
            if let Some(name) = congestion {
                set_congestion(&socket, name)?;
            }
            socket.bind(&addr.into())?;
            socket.listen(LISTEN_BACKLOG)?;
            Ok(Socket::Tcp(TcpListener::from_std(socket.into())?))
        }
        BindAddr::Unix(path) => {
            // A stale socket file from a previous run is replaced, as gunicorn does;
            // anything else at that path is an error.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if meta.file_type().is_socket() {
                    std::fs::remove_file(path)?;
                } else {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "the path exists and is not a socket",
                    ));
                }
            }
            Ok(Socket::Unix(UnixListener::bind(path)?, path.clone()))
        }
    }
}

/// `--tcp-congestion`: the listener's TCP congestion control, which every
/// connection it accepts inherits from its first packet. Set on the listener,
/// not on each accepted socket: under a BBR default, a sendfile loop whose
/// accepted sockets were switched to cubic sent 2.1-2.3 GB/s, one whose
/// listener was set 6.2 (Linux turns pacing on in BBR's init and does
/// not turn it off when the algorithm changes).
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
fn set_congestion(socket: &socket2::Socket, name: &str) -> io::Result<()> {
    socket.set_tcp_congestion(name.as_bytes()).map_err(|e| {
        let allowed = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
            .map(|names| format!("; this machine allows: {}", names.trim()))
            .unwrap_or_default();
        io::Error::new(
            e.kind(),
            format!("TCP congestion control {name:?}: {e}{allowed}"),
        )
    })
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn set_congestion(_socket: &socket2::Socket, name: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("TCP congestion control {name:?}: not supported on this system"),
    ))
}

fn http1_builder(config: &ServerConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    // No timer: hyper's HTTP/1.1 side would use one only for its header
    // timeout, which is off (below).
    builder
        // hyper's own floor for its read buffer is 8 KiB. hyper also takes
        // this size for its limit on the head (431), so `service::start`
        // applies --max-header-size itself.
        .max_buf_size((config.max_header_size + READ_AHEAD).max(8192))
        // The header timeout is the server's (`activity`): hyper's starts when
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
/// at once, and the application's `wsgi.input` read finds the whole body
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

async fn accept_loop(listener: Listener, serving: Arc<Serving>) {
    let mut shutdown = serving.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = accept(&listener.socket) => a,
        };
        match accepted {
            Ok(raw) => {
                tokio::spawn(connection(raw, listener.tls, serving.clone()));
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                log::error!(target: "propylon.server", "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

enum Raw {
    Tcp(TcpStream, SocketAddr, Option<SocketAddr>),
    Unix(UnixStream),
}

async fn accept(socket: &Socket) -> io::Result<Raw> {
    match socket {
        Socket::Tcp(l) => {
            let (stream, peer) = l.accept().await?;
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().ok();
            Ok(Raw::Tcp(stream, peer, local))
        }
        Socket::Unix(l, _) => Ok(Raw::Unix(l.accept().await?.0)),
    }
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
            app: self.app.clone(),
            rt: self.rt.clone(),
            local,
            peer,
            tls,
            activity: Arc::new(Activity::new()),
            zero_copy,
            upgrade,
            serving: self.clone(),
            guard: GuardHandle::default(),
            slot: Default::default(),
            unread_input: Default::default(),
        })
    }

    /// Serve an h2c-upgraded connection: HTTP/2 from the first byte after the
    /// 101, with the upgrade request inserted as stream 1.
    pub fn spawn_upgraded(
        self: &Arc<Self>,
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
        let serving = self.clone();
        tokio::spawn(async move {
            let alive = serving.alive.clone();
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = UpgradeStream::new(TokioIo::new(upgraded), frames);
                    let io = Guard::new(io, ctx.guard.clone(), ctx.activity.clone());
                    let io = TokioIo::new(io);
                    let service_ctx = ctx.clone();
                    let service = service_fn(move |req: Request<Incoming>| {
                        begin(req.map(RequestBody::Hyper), service_ctx.clone())
                    });
                    let conn = Multiplexed::new(serving.http2.serve_connection(io, service));
                    drive!(conn, serving.shutdown.clone(), &ctx, head: false);
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
fn connection(
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
/// `h1::RawSocket`).
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
        Protocol::Http2 => {
            Box::pin(async {
                let io = TokioIo::new(io);
                let service_ctx = ctx.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    begin(req.map(RequestBody::Hyper), service_ctx.clone())
                });
                let conn = Multiplexed::new(serving.http2.serve_connection(io, service));
                drive!(conn, serving.shutdown.clone(), &ctx, head: false);
            })
            .await
        }
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
        Box::pin(hyper_http1(h1::Rewind::new(io, buffered), serving, ctx)).await;
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
