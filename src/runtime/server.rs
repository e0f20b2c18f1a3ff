//! Listeners and shutdown.
//!
//! What it does: binds every configured address (TCP or unix socket) before
//! serving, so a bad address fails at once with a clear error, or takes
//! listening sockets bound by a supervisor (`Server::inherit`); accepts
//! connections, at most `--limit-concurrency` at once, and starts a task for
//! each (`conn::task`); on SIGINT/SIGTERM, or when its supervisor goes away
//! (`control`), stops accepting, lets connections finish their in-flight
//! requests within the graceful timeout, and returns; on SIGQUIT returns at
//! once; on SIGHUP reloads the TLS certificate.
//!
//! What it does not do: serve a connection (`conn`), handle requests
//! (`request`), or know about Python.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch, Semaphore};

use super::config::{BindAddr, ServerConfig};
use super::conn::task::{connection, Raw, Serving};
use super::control::{Control, Notice};
use super::endpoint::Endpoints;
use super::scheduling::batch_scheduling;
use super::transport::tls::TlsState;

/// A listening socket, bound and listening, not yet served.
pub(crate) struct BoundListener {
    socket: BoundSocket,
    /// Connections on this listener start with a TLS handshake.
    pub(crate) tls: bool,
    pub(crate) serves: Serves,
}

/// What a listener's connections are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Serves {
    Application,
    /// `--metrics-bind`: the metrics only (`Endpoints::scrape_only`).
    Metrics,
}

enum BoundSocket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl BoundListener {
    /// A listening socket bound by someone else (a supervisor, systemd):
    /// TCP or Unix, told apart by its address.
    ///
    /// # Safety
    /// `fd` must be an open listening stream socket that nothing else in
    /// this process owns.
    pub(crate) unsafe fn from_raw_fd(
        fd: RawFd,
        tls: bool,
        serves: Serves,
    ) -> io::Result<BoundListener> {
        // SAFETY: the caller gives up `fd`.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let socket = socket2::Socket::from(owned);
        let unix = socket.local_addr()?.is_unix();
        socket.set_nonblocking(true)?;
        let socket = match unix {
            true => BoundSocket::Unix(OwnedFd::from(socket).into()),
            false => BoundSocket::Tcp(OwnedFd::from(socket).into()),
        };
        Ok(BoundListener {
            socket,
            tls,
            serves,
        })
    }

    /// Give up the socket to the caller, open.
    pub(crate) fn into_raw_fd(self) -> RawFd {
        use std::os::fd::IntoRawFd;
        match self.socket {
            BoundSocket::Tcp(l) => l.into_raw_fd(),
            BoundSocket::Unix(l) => l.into_raw_fd(),
        }
    }

    /// The address, as `Listening on` says it: `http://127.0.0.1:8000`,
    /// `https://[::1]:8443`, `unix:/run/app.sock`.
    pub(crate) fn describe(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        match &self.socket {
            BoundSocket::Tcp(l) => match l.local_addr() {
                Ok(SocketAddr::V6(a)) => format!("{scheme}://[{}]:{}", a.ip(), a.port()),
                Ok(a) => format!("{scheme}://{a}"),
                Err(_) => format!("{scheme}://?"),
            },
            BoundSocket::Unix(l) => match l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            {
                Some(path) => format!("unix:{path}"),
                None => "unix:?".to_string(),
            },
        }
    }

    fn into_listener(self) -> io::Result<Listener> {
        let socket = match self.socket {
            BoundSocket::Tcp(l) => Socket::Tcp(TcpListener::from_std(l)?),
            BoundSocket::Unix(l) => Socket::Unix(UnixListener::from_std(l)?),
        };
        Ok(Listener {
            socket,
            tls: self.tls,
            serves: self.serves,
        })
    }
}

/// Bind every address of `config`, `--bind` (TLS when configured), then
/// `--insecure-bind`, then `--metrics-bind`, in that order. Errors name the
/// address.
pub(crate) fn bind_all(config: &ServerConfig) -> io::Result<Vec<BoundListener>> {
    let secure = config
        .binds
        .iter()
        .map(|b| (b, config.tls.is_some(), Serves::Application));
    let insecure = config
        .insecure_binds
        .iter()
        .map(|b| (b, false, Serves::Application));
    let metrics = config
        .metrics_bind
        .iter()
        .map(|b| (b, false, Serves::Metrics));
    secure
        .chain(insecure)
        .chain(metrics)
        .map(|(bind, tls, serves)| {
            let congestion = match serves {
                Serves::Application => config.tcp_congestion.as_deref(),
                Serves::Metrics => None,
            };
            let socket = bind_one(bind, congestion, config.backlog).map_err(|e| {
                let option = match serves {
                    Serves::Application => "",
                    Serves::Metrics => " (--metrics-bind)",
                };
                io::Error::new(
                    e.kind(),
                    format!("cannot bind {}{option}: {}", describe_bind(bind), e),
                )
            })?;
            Ok(BoundListener {
                socket,
                tls,
                serves,
            })
        })
        .collect()
}

struct Listener {
    socket: Socket,
    /// Connections on this listener start with a TLS handshake.
    tls: bool,
    serves: Serves,
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// Every connection finished within the graceful timeout.
    Drained,
    /// The graceful timeout expired with connections still open.
    TimedOut,
    /// SIGQUIT: stopped without draining.
    Quit,
}

/// Whether the server runs alone or as one worker of a supervisor.
pub(crate) enum Role {
    /// It bound its own listeners, and says where it listens.
    Alone,
    /// A supervisor bound the listeners and says where they are; the
    /// worker tells it when it serves, and stops when it goes away.
    Worker(Arc<Control>),
}

pub(crate) struct Server {
    rt: tokio::runtime::Runtime,
    bound: Vec<BoundListener>,
    config: Arc<ServerConfig>,
    tls: Option<Arc<TlsState>>,
}

impl Server {
    /// Build the runtime, load the TLS configuration and bind every address.
    /// Errors name the address or the file.
    pub(crate) fn bind(config: ServerConfig) -> io::Result<Server> {
        let bound = bind_all(&config)?;
        Server::inherit(config, bound)
    }

    /// Build the runtime and load the TLS configuration, to serve on
    /// listeners already bound.
    pub(crate) fn inherit(config: ServerConfig, bound: Vec<BoundListener>) -> io::Result<Server> {
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
        Ok(Server {
            rt,
            bound,
            config: Arc::new(config),
            tls,
        })
    }

    /// Serve until SIGINT or SIGTERM (or, as a worker, until the supervisor
    /// is gone), then drain; SIGQUIT stops at once. SIGHUP reloads the TLS
    /// certificate and key. Blocks the calling thread.
    pub(crate) fn run(self, endpoints: Endpoints, role: Role) -> io::Result<Stopped> {
        let Server {
            rt,
            bound,
            config,
            tls,
        } = self;
        let handle = rt.handle().clone();
        let stopped = rt.block_on(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut sigint = signal(SignalKind::interrupt())?;
            let mut sigterm = signal(SignalKind::terminate())?;
            let mut sighup = signal(SignalKind::hangup())?;
            let mut sigquit = signal(SignalKind::quit())?;
            let listeners = bound
                .into_iter()
                .map(|b| {
                    let description = b.describe();
                    b.into_listener().map(|l| (l, description))
                })
                .collect::<io::Result<Vec<_>>>()?;
            let (shutdown_tx, shutdown_rx) = watch::channel(false);
            // Every connection task holds a clone; when all are dropped, recv() is None.
            let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
            // The metrics listener's connections get the metrics only.
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
            let limit = config.limit_concurrency.map(|n| Arc::new(Semaphore::new(n)));
            for (listener, description) in listeners {
                let serving = match listener.serves {
                    Serves::Application => {
                        match &role {
                            Role::Alone => log::info!(target: "propylon.server", "Listening on {description}"),
                            Role::Worker(_) => log::debug!(target: "propylon.server", "Accepting on {description}"),
                        }
                        serving.clone()
                    }
                    Serves::Metrics => {
                        if let Role::Alone = role {
                            log::info!(target: "propylon.server", "Metrics on {description}{}", crate::runtime::observe::SCRAPE_PATH);
                        }
                        scraping.clone()
                    }
                };
                tokio::spawn(accept_loop(listener, serving, limit.clone()));
            }
            drop(scraping);
            let shutdown_serving = serving.clone();
            drop(serving);
            let control = match &role {
                Role::Alone => None,
                Role::Worker(control) => {
                    control.tell(Notice::Ready);
                    Some(control.clone())
                }
            };
            let supervisor_gone = async {
                match &control {
                    Some(control) => {
                        let _ = control.closed().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(supervisor_gone);
            loop {
                tokio::select! {
                    _ = sigint.recv() => break,
                    _ = sigterm.recv() => break,
                    _ = sigquit.recv() => return Ok(Stopped::Quit),
                    _ = &mut supervisor_gone => {
                        log::warn!(target: "propylon.server", "the supervisor is gone: stopping");
                        break;
                    }
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
                _ = sigquit.recv() => return Ok(Stopped::Quit),
            };
            Ok::<_, io::Error>(if drained { Stopped::Drained } else { Stopped::TimedOut })
        })?;
        match stopped {
            Stopped::Drained => rt.shutdown_timeout(Duration::from_secs(1)),
            Stopped::TimedOut => {
                log::warn!(target: "propylon.server", "graceful timeout expired; closing the remaining connections");
                rt.shutdown_background();
            }
            Stopped::Quit => {
                log::info!(target: "propylon.server", "SIGQUIT: stopping without draining");
                rt.shutdown_background();
            }
        }
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

fn bind_one(bind: &BindAddr, congestion: Option<&str>, backlog: i32) -> io::Result<BoundSocket> {
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
            socket.listen(backlog)?;
            Ok(BoundSocket::Tcp(socket.into()))
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
            let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
            socket.set_nonblocking(true)?;
            socket.bind(&socket2::SockAddr::unix(path)?)?;
            socket.listen(backlog)?;
            Ok(BoundSocket::Unix(OwnedFd::from(socket).into()))
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

/// Accept until the server stops. With `limit` (`--limit-concurrency`),
/// each connection holds a permit for its life, and the loop waits for one
/// before it accepts: past the limit, connections wait in the kernel's
/// queue, where another worker may take them.
async fn accept_loop(listener: Listener, serving: Arc<Serving>, limit: Option<Arc<Semaphore>>) {
    let mut shutdown = serving.shutdown();
    let mut failures = AcceptFailures::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = async {
                let permit = match &limit {
                    Some(limit) => Some(limit.clone().acquire_owned().await.expect("never closed")),
                    None => None,
                };
                accept(&listener.socket).await.map(|raw| (raw, permit))
            } => a,
        };
        match accepted {
            Ok((raw, None)) => {
                failures.succeeded();
                tokio::spawn(connection(raw, listener.tls, serving.clone()));
            }
            Ok((raw, Some(permit))) => {
                failures.succeeded();
                let task = connection(raw, listener.tls, serving.clone());
                tokio::spawn(async move {
                    task.await;
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                let pause = failures.failed(&e, Instant::now());
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Failed accepts in a row (EMFILE, ENFILE, ENOBUFS: each one persists
/// until connections close). The first is logged at once; while they go
/// on, one line every `LOG_EVERY` says how many there were, and the pause
/// before the next try doubles from `FIRST_PAUSE` up to `MAX_PAUSE`.
#[derive(Default)]
struct AcceptFailures {
    in_a_row: u32,
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl AcceptFailures {
    const FIRST_PAUSE: Duration = Duration::from_millis(10);
    const MAX_PAUSE: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(10);

    fn failed(&mut self, e: &io::Error, now: Instant) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.unlogged += 1;
        let due = self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= Self::LOG_EVERY);
        if due {
            match self.unlogged {
                1 => log::error!(target: "propylon.server", "accept failed: {e}"),
                n => {
                    log::error!(target: "propylon.server", "accept failed {n} times in the last {}s: {e}", Self::LOG_EVERY.as_secs())
                }
            }
            self.unlogged = 0;
            self.logged_at = Some(now);
        }
        let doublings = (self.in_a_row - 1).min(7);
        (Self::FIRST_PAUSE * 2u32.pow(doublings)).min(Self::MAX_PAUSE)
    }

    fn succeeded(&mut self) {
        self.in_a_row = 0;
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
        Socket::Unix(l) => Ok(Raw::Unix(l.accept().await?.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_are_logged_with_back_off_and_paused_for_longer_each_time() {
        let mut failures = AcceptFailures::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let t0 = Instant::now();
        let pauses: Vec<_> = (0..10).map(|_| failures.failed(&emfile, t0)).collect();
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert_eq!(pauses[1], Duration::from_millis(20));
        assert_eq!(pauses[9], Duration::from_secs(1));
        assert_eq!(failures.unlogged, 9, "only the first was logged");
        failures.failed(&emfile, t0 + Duration::from_secs(10));
        assert_eq!(failures.unlogged, 0, "ten seconds on, the count is logged");
        failures.succeeded();
        assert_eq!(failures.failed(&emfile, t0), Duration::from_millis(10));
    }
}
