//! Listeners and shutdown.
//!
//! What it does: binds every configured address (TCP or unix socket) before
//! serving, so a bad address fails at once with a clear error; accepts
//! connections and starts a task for each (`conn::task`); on SIGINT/SIGTERM
//! stops accepting, lets connections finish their in-flight requests within
//! the graceful timeout, and returns; on SIGHUP reloads the TLS certificate.
//!
//! What it does not do: serve a connection (`conn`), handle requests
//! (`request`), or know about Python.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};

use super::config::{BindAddr, ServerConfig};
use super::conn::task::{connection, Raw, Serving};
use super::endpoint::Endpoints;
use super::scheduling::batch_scheduling;
use super::transport::tls::TlsState;

/// Listen backlog, as gunicorn's default (`--backlog 2048`).
const LISTEN_BACKLOG: i32 = 2048;

pub(crate) struct Listener {
    socket: Socket,
    /// Connections on this listener start with a TLS handshake.
    tls: bool,
    serves: Serves,
}

// observe: the `--metrics-bind` listener (one more kind of listener).
/// What a listener's connections are served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serves {
    Application,
    /// `--metrics-bind`: the metrics only (`Endpoints::scrape_only`).
    Metrics,
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
}

impl Listener {
    pub(crate) fn describe(&self) -> String {
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
pub(crate) enum Stopped {
    /// Every connection finished within the graceful timeout.
    Drained,
    /// The graceful timeout expired with connections still open.
    TimedOut,
}

pub(crate) struct Server {
    rt: tokio::runtime::Runtime,
    listeners: Vec<Listener>,
    config: Arc<ServerConfig>,
    tls: Option<Arc<TlsState>>,
}

impl Server {
    /// Build the runtime, load the TLS configuration and bind every address.
    /// Errors name the address or the file.
    pub(crate) fn bind(config: ServerConfig) -> io::Result<Server> {
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
        // (h2load 16x16: about one writev per 14 requests instead of one each).
        #[cfg(tokio_unstable)]
        builder.disable_lifo_slot();
        let rt = builder
            .worker_threads(
                std::thread::available_parallelism()
                    .map_or(2, |n| n.get())
                    .min(4),
            )
            .thread_name("propylon-io")
            .on_thread_start(batch_scheduling)
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
            listeners.push(Listener {
                socket,
                tls,
                serves: Serves::Application,
            });
        }
        // observe: the metrics listener, plain HTTP.
        if let Some(bind) = &config.metrics_bind {
            let socket = rt.block_on(bind_one(bind, None)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot bind {} (--metrics-bind): {}",
                        describe_bind(bind),
                        e
                    ),
                )
            })?;
            listeners.push(Listener {
                socket,
                tls: false,
                serves: Serves::Metrics,
            });
        }
        Ok(Server {
            rt,
            listeners,
            config: Arc::new(config),
            tls,
        })
    }

    /// Serve until SIGINT or SIGTERM, then drain. SIGHUP reloads the TLS
    /// certificate and key. Blocks the calling thread.
    pub(crate) fn run(self, endpoints: Endpoints) -> io::Result<Stopped> {
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
            // observe: the metrics listener's connections get the metrics only.
            let scraping = Arc::new(Serving::new(
                config.clone(),
                Arc::new(endpoints.scrape_only()),
                handle.clone(),
                None,
                shutdown_rx.clone(),
                alive_tx.clone(),
            ));
            let serving = Arc::new(Serving::new(
                config.clone(),
                Arc::new(endpoints),
                handle,
                tls.clone(),
                shutdown_rx,
                alive_tx,
            ));
            for listener in listeners {
                let serving = match listener.serves {
                    Serves::Application => {
                        log::info!(target: "propylon.server", "Listening on {}", listener.describe());
                        serving.clone()
                    }
                    Serves::Metrics => {
                        log::info!(target: "propylon.server", "Metrics on {}{}", listener.describe(), crate::runtime::observe::SCRAPE_PATH);
                        scraping.clone()
                    }
                };
                tokio::spawn(accept_loop(listener, serving));
            }
            drop(scraping);
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

async fn accept_loop(listener: Listener, serving: Arc<Serving>) {
    let mut shutdown = serving.shutdown();
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
