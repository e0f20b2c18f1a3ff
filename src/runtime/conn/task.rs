//! The task of one connection, from the accepted socket to its close.
//!
//! What it does: reads the PROXY protocol header first with
//! `--proxy-protocol` (`transport::proxy_header`), runs the TLS handshake
//! where the listener asks for one, tells HTTP/1.x from HTTP/2 prior
//! knowledge by the first bytes (`detect`), and serves the connection: HTTP/1.0 and HTTP/1.1 with the server's own engine
//! (`h1`); HTTP/2 (prior knowledge, ALPN `h2`, or an h2c upgrade, which `h1`
//! answers with `101` before it hands the connection back) with the `h2`
//! crate, its streams polled in this task (`h2`). Beside the connection it
//! runs the connection's watchers
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

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::context::ConnContext;
use super::h1;
use super::h2;
use super::h2c::{PendingUpgrade, UpgradeStream};
use super::with_watchers::{Either, WithWatchers};
use crate::runtime::config::ServerConfig;
use crate::runtime::endpoint::Endpoints;
use crate::runtime::request::body::{DiskBudget, MemoryBudget};
use crate::runtime::timers::{Activity, Expired, Timeouts};
use crate::runtime::transport::detect::{detect, Prefixed, Protocol, INVALID_PREFACE_ANSWER};
use crate::runtime::transport::guard::{Guard, GuardHandle, ENHANCE_YOUR_CALM};
use crate::runtime::transport::linger::Linger;
use crate::runtime::transport::proxy_header;
use crate::runtime::transport::rewind::Rewind;
use crate::runtime::transport::sendfile::{SendQueue, SendfileStream};
use crate::runtime::transport::tls::{TlsInfo, TlsState};
use crate::runtime::transport::RawSocket;
use crate::runtime::websocket;

/// Run a connection (HTTP/2's `h2::Connection`, or HTTP/1.x's `h1::Connection`)
/// to its end and evaluate to its output (`None` when it was cut short):
/// until it closes, the server shuts down
/// (graceful: in-flight requests finish), it has been idle for the
/// keep-alive timeout, or (HTTP/1.x, `head` true) a request head took longer
/// than the header timeout. A macro because the two connection types share
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
                        // A request that starts within the grace (the
                        // first on a connection just accepted) is waited
                        // for too.
                        loop {
                            ctx.activity.drained().await;
                            tokio::time::sleep(CLOSE_GRACE).await;
                            if ctx.activity.is_idle() {
                                break;
                            }
                        }
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
                    // Slowloris. The connection is in the middle of a head:
                    // there is nothing to finish, and no response to send.
                    log::info!(target: "propylon.server", "request head not complete within the header timeout: closing the connection");
                    None
                }
                Expired::Stalled => {
                    // The client takes no data: GOAWAY (HTTP/2) and close. If
                    // the connection does not come back to the transport soon,
                    // drop it.
                    ctx.guard.trip(ENHANCE_YOUR_CALM, "a response stalled: the client takes no data");
                    tokio::time::timeout(STALL_GRACE, conn.as_mut()).await.ok()
                }
            },
        };
        if let Some(Err(e)) = &result {
            // Malformed requests, resets and timeouts: the client's doing, not
            // an error of the server's (answered 400/431 where they could be).
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

/// After tripping the guard of a stalled connection, how long the connection
/// gets to notice before it is dropped outright.
const STALL_GRACE: Duration = Duration::from_secs(1);

/// What every connection of a running server shares.
pub(crate) struct Serving {
    /// HTTP/2 connections: prior knowledge, TLS with ALPN `h2`, and h2c upgrades.
    http2: h2::Settings,
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
            http2: h2::Settings::new(&config.http2, endpoints.has_websockets()),
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

/// An accepted socket, with its addresses (TCP: peer, local).
pub(crate) enum Raw {
    Tcp(TcpStream, SocketAddr, Option<SocketAddr>),
    Unix(UnixStream),
}

impl Serving {
    fn context(
        &self,
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
            applies_forwarding: ConnContext::applies_forwarding(&self.config, peer),
            tls,
            activity: Arc::new(Activity::new()),
            zero_copy,
            upgrade,
            guard: GuardHandle::default(),
            slot: Default::default(),
            unread_input: Default::default(),
            preread_budget: self.preread_budget.clone(),
            buffer_budget: self.buffer_budget.clone(),
            shutdown: self.shutdown.clone(),
        })
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
    // Counted open until the task ends (in `alive`'s place: dropped with it).
    let open = serving
        .endpoints
        .observe()
        .recorder()
        .map(|r| r.connection_opened());
    let alive = (alive, open);
    match raw {
        Raw::Unix(stream) => Box::pin(async move {
            let ctx = serving.context(None, None, None, None, None);
            serve(stream, &serving, ctx).await;
            drop(alive);
        }),
        // The header's source is the client from here on.
        Raw::Tcp(mut stream, peer, local) if serving.config.proxies.protocol => {
            Box::pin(async move {
                // Bounded by the header timeout; a stopping server does not
                // wait for it.
                let mut shutdown = serving.shutdown.clone();
                let read = tokio::select! {
                    read = proxy_header::read(&mut stream, peer, local, &serving.config) => read,
                    _ = shutdown.changed() => None,
                };
                if let Some((peer, local)) = read {
                    match tls {
                        true => tls_connection(stream, peer, local, &serving).await,
                        false => plain_connection(stream, peer, local, &serving).await,
                    }
                }
                drop(alive);
            })
        }
        Raw::Tcp(stream, peer, local) if tls => Box::pin(async move {
            tls_connection(stream, peer, local, &serving).await;
            drop(alive);
        }),
        Raw::Tcp(stream, peer, local) => Box::pin(async move {
            plain_connection(stream, peer, local, &serving).await;
            drop(alive);
        }),
    }
}

async fn plain_connection(
    stream: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    serving: &Arc<Serving>,
) {
    let queue = Arc::new(SendQueue::default());
    let ctx = serving.context(local, Some(peer), None, Some(queue.clone()), None);
    serve(SendfileStream::new(stream, queue), serving, ctx).await;
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

/// Serve one connection (HTTP/1.x or HTTP/2, detected from its first bytes),
/// behind the abuse guard.
async fn serve<I>(io: I, serving: &Serving, ctx: Arc<ConnContext>)
where
    I: AsyncRead + AsyncWrite + RawSocket + Unpin + Send + 'static,
{
    let io = Guard::new(io, ctx.guard.clone(), ctx.activity.clone());
    // Until its first bytes decide the protocol, a connection is idle: the
    // keep-alive timeout and shutdown apply as to a connection between requests.
    let mut shutdown = serving.shutdown.clone();
    let detecting = detect(io);
    tokio::pin!(detecting);
    let detected = tokio::select! {
        biased;
        d = &mut detecting => d,
        // Accepted just before the server began to stop: its first bytes
        // get the close grace to come.
        _ = shutdown.changed() => match tokio::time::timeout(CLOSE_GRACE, detecting).await {
            Ok(d) => d,
            Err(_) => return,
        },
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
        Protocol::Http1 => http1(io, serving, ctx).await,
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

/// HTTP/2 (`h2::Connection`) to the connection's end.
async fn http2<I>(io: I, serving: &Serving, ctx: Arc<ConnContext>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = h2::Connection::new(io, &serving.http2, ctx.clone());
    let ended = drive!(conn, serving.shutdown.clone(), &ctx, head: false);
    // Once per connection: what the guard or h2 stopped.
    let abuse = match &ended {
        Some(Err(e)) => h2::abuse(e, &ctx.guard.goaway_data()),
        _ => None,
    };
    if let Some(why) = ctx.guard.tripped().or(abuse) {
        log::warn!(target: "propylon.server", "HTTP/2 connection from {} closed with GOAWAY(ENHANCE_YOUR_CALM): {why}", peer(&ctx));
    }
}

/// The client's address as the log names it.
fn peer(ctx: &ConnContext) -> String {
    ctx.peer
        .map_or_else(|| "a unix socket client".to_string(), |p| p.to_string())
}

/// HTTP/1.x (`h1`) to the connection's end, or to an h2c upgrade, after
/// which the connection is HTTP/2: the upgrade request arrives on stream 1
/// (`UpgradeStream`), its body beside it (`PendingUpgrade`).
async fn http1<I>(io: Prefixed<Guard<I>>, serving: &Serving, ctx: Arc<ConnContext>)
where
    I: AsyncRead + AsyncWrite + RawSocket + Unpin + Send + 'static,
{
    let (io, prefix) = io.into_parts();
    // A client still sending when the connection closes gets its response
    // before the close (`linger`); on an upgraded connection too.
    let io = Linger::new(io, ctx.unread_input.clone());
    let conn = h1::Connection::new(io, &prefix, ctx.clone());
    let outcome = drive!(conn, serving.shutdown.clone(), &ctx, head: true);
    if let Some(why) = ctx.guard.tripped() {
        log::warn!(target: "propylon.server", "connection from {} closed: {why}", peer(&ctx));
    }
    if let Some(Ok(h1::Outcome::WebSocket(upgraded))) = outcome {
        // The WebSocket's own timers (pings, the close handshake) and
        // shutdown (1001 at the end of the drain period) apply from here;
        // the HTTP ones do not.
        let h1::Upgraded {
            io,
            buffered,
            agreed,
            link,
        } = *upgraded;
        let io = Rewind::new(io, buffered);
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
            serving.shutdown.clone(),
            ctx.config.graceful_timeout,
        )
        .await;
        return;
    }
    if let Some(Ok(h1::Outcome::H2c(switch))) = outcome {
        let h1::Switch {
            io,
            buffered,
            frames,
            request,
        } = switch;
        // The same connection (its slot and linger flag go on), with timers
        // and an abuse guard of its own: the guard must see HTTP/2 from its
        // first byte, the preface (the one below the HTTP/1.x loop saw a
        // request head, and passes everything through).
        let upgraded = Arc::new(ConnContext {
            config: ctx.config.clone(),
            endpoints: ctx.endpoints.clone(),
            rt: ctx.rt.clone(),
            local: ctx.local,
            peer: ctx.peer,
            applies_forwarding: ctx.applies_forwarding,
            tls: ctx.tls.clone(),
            activity: Arc::new(Activity::new()),
            zero_copy: None,
            upgrade: Some(PendingUpgrade::new(request)),
            guard: GuardHandle::default(),
            slot: ctx.slot.clone(),
            unread_input: ctx.unread_input.clone(),
            preread_budget: ctx.preread_budget.clone(),
            buffer_budget: ctx.buffer_budget.clone(),
            shutdown: ctx.shutdown.clone(),
        });
        let io = UpgradeStream::new(Rewind::new(io, buffered), frames);
        let io = Guard::new(io, upgraded.guard.clone(), upgraded.activity.clone());
        // Boxed: an HTTP/1.x connection's future should not be the size of
        // an HTTP/2 one.
        Box::pin(http2(io, serving, upgraded)).await;
    }
}
