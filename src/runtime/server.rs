//! Listeners, connections and shutdown.
//!
//! What it does: binds every configured address (TCP or unix socket) before
//! serving, so a bad address fails at once with a clear error; accepts
//! connections and serves each with hyper-util's `auto` builder, which detects
//! HTTP/1.1 or HTTP/2 prior knowledge (the client preface, RFC 9113 §3.4) on the
//! same port; on SIGINT/SIGTERM stops accepting, lets connections finish their
//! in-flight requests (hyper's graceful shutdown) within the graceful timeout,
//! and returns.
//!
//! What it does not do: handle requests (that is `service`), or know about Python.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};

use super::config::{BindAddr, ServerConfig};
use super::exchange::Application;
use super::sendfile::{SendQueue, SendfileStream};
use super::service::{handle, ConnContext};

/// Max concurrent HTTP/2 streams per connection: the value nginx, Go and
/// hyper's own examples use (RFC 9113 §6.5.2 recommends no less than 100).
const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Listen backlog, as gunicorn's default (`--backlog 2048`).
const LISTEN_BACKLOG: i32 = 2048;

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
}

impl Listener {
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(SocketAddr::V6(a)) => format!("http://[{}]:{}", a.ip(), a.port()),
                Ok(a) => format!("http://{a}"),
                Err(_) => "http://?".to_string(),
            },
            Listener::Unix(_, path) => format!("unix:{}", path.display()),
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
}

impl Server {
    /// Build the runtime and bind every address. Errors name the address.
    pub fn bind(config: ServerConfig) -> io::Result<Server> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(
                std::thread::available_parallelism()
                    .map_or(2, |n| n.get())
                    .min(4),
            )
            .thread_name("propylon-io")
            .enable_all()
            .build()?;
        let mut listeners = Vec::new();
        for bind in &config.binds {
            let listener = rt.block_on(bind_one(bind)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot bind {}: {}", describe_bind(bind), e),
                )
            })?;
            listeners.push(listener);
        }
        Ok(Server {
            rt,
            listeners,
            config: Arc::new(config),
        })
    }

    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.handle().clone()
    }

    /// Serve until SIGINT or SIGTERM, then drain. Blocks the calling thread.
    pub fn run(self, app: Arc<dyn Application>) -> io::Result<Stopped> {
        let Server {
            rt,
            listeners,
            config,
        } = self;
        let handle = rt.handle().clone();
        let stopped = rt.block_on(async move {
            let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
            let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let (shutdown_tx, shutdown_rx) = watch::channel(false);
            // Every connection task holds a clone; when all are dropped, recv() is None.
            let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
            let builder = Arc::new(connection_builder(&config));
            for listener in listeners {
                log::info!(target: "propylon.server", "Listening on {}", listener.describe());
                tokio::spawn(accept_loop(
                    listener,
                    builder.clone(),
                    config.clone(),
                    app.clone(),
                    handle.clone(),
                    shutdown_rx.clone(),
                    alive_tx.clone(),
                ));
            }
            drop(alive_tx);
            tokio::select! {
                _ = sigint.recv() => {}
                _ = sigterm.recv() => {}
            }
            log::info!(target: "propylon.server", "Shutting down: draining in-flight requests (up to {:?})", config.graceful_timeout);
            let _ = shutdown_tx.send(true);
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

fn describe_bind(bind: &BindAddr) -> String {
    match bind {
        BindAddr::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
        BindAddr::Tcp { host, port } => format!("{host}:{port}"),
        BindAddr::Unix(path) => format!("unix:{}", path.display()),
    }
}

async fn bind_one(bind: &BindAddr) -> io::Result<Listener> {
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
            socket.bind(&addr.into())?;
            socket.listen(LISTEN_BACKLOG)?;
            Ok(Listener::Tcp(TcpListener::from_std(socket.into())?))
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
            Ok(Listener::Unix(UnixListener::bind(path)?, path.clone()))
        }
    }
}

fn connection_builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's own floor for its read buffer is 8 KiB.
        .max_buf_size(config.max_header_size.max(8192))
        .max_headers(config.max_headers)
        .header_read_timeout(config.header_timeout)
        // Body buffers reach the transport as they are: `sendfile` needs that.
        .writev(true)
        // Not `pipeline_flush(true)`: with it hyper 1.x does not flush its
        // automatic 400/431 for a malformed request before closing.
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(config.max_header_size as u32);
    builder
}

async fn accept_loop(
    listener: Listener,
    builder: Arc<auto::Builder<TokioExecutor>>,
    config: Arc<ServerConfig>,
    app: Arc<dyn Application>,
    rt: tokio::runtime::Handle,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = accept(&listener) => a,
        };
        let (io, local, peer, zero_copy) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                log::error!(target: "propylon.server", "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = Arc::new(ConnContext {
            config: config.clone(),
            app: app.clone(),
            rt: rt.clone(),
            local,
            peer,
            https: false,
            activity: Arc::new(Activity::new()),
            zero_copy,
        });
        tokio::spawn(serve_connection(
            io,
            builder.clone(),
            ctx,
            shutdown.clone(),
            alive.clone(),
        ));
    }
}

enum Stream {
    Tcp(SendfileStream),
    Unix(tokio::net::UnixStream),
}

type Accepted = (
    Stream,
    Option<SocketAddr>,
    Option<SocketAddr>,
    Option<Arc<SendQueue>>,
);

async fn accept(listener: &Listener) -> io::Result<Accepted> {
    match listener {
        Listener::Tcp(l) => {
            let (stream, peer) = l.accept().await?;
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().ok();
            let queue = Arc::new(SendQueue::default());
            let stream = Stream::Tcp(SendfileStream::new(stream, queue.clone()));
            Ok((stream, local, Some(peer), Some(queue)))
        }
        Listener::Unix(l, _) => {
            let (stream, _) = l.accept().await?;
            Ok((Stream::Unix(stream), None, None, None))
        }
    }
}

async fn serve_connection(
    stream: Stream,
    builder: Arc<auto::Builder<TokioExecutor>>,
    ctx: Arc<ConnContext>,
    shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    match stream {
        Stream::Tcp(s) => drive(TokioIo::new(s), &builder, ctx, shutdown).await,
        Stream::Unix(s) => drive(TokioIo::new(s), &builder, ctx, shutdown).await,
    }
    drop(alive);
}

async fn drive<I>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    ctx: Arc<ConnContext>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let activity = ctx.activity.clone();
    let keep_alive = ctx.config.keep_alive_timeout;
    let service = service_fn(move |req| handle(req, ctx.clone()));
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        _ = activity.idle_for(keep_alive) => {
            // An idle keep-alive connection: close it (graceful_shutdown closes
            // at once when no request is in flight).
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Malformed requests, resets and timeouts: the client's doing, not an
        // error of the server's. hyper has already answered 400/431 where it could.
        log::debug!(target: "propylon.server", "connection ended: {e}");
    }
}

/// Requests in flight on one connection, and since when it has been idle: the
/// keep-alive timer. (hyper's own header-read timeout also runs while a
/// connection waits for its next request, so it bounds idle time too; this
/// timer makes the keep-alive limit its own setting, as in gunicorn and uvicorn.)
pub struct Activity {
    state: Mutex<(usize, Instant)>,
    changed: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            state: Mutex::new((0, Instant::now())),
            changed: Notify::new(),
        }
    }

    pub fn begin(&self) {
        self.state.lock().unwrap().0 += 1;
        self.changed.notify_waiters();
    }

    pub fn end(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 = s.0.saturating_sub(1);
        s.1 = Instant::now();
        drop(s);
        self.changed.notify_waiters();
    }

    /// Completes once no request has been in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (active, since) = *self.state.lock().unwrap();
            if active > 0 {
                notified.await;
                continue;
            }
            let deadline = since + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = notified => {}
            }
        }
    }
}
