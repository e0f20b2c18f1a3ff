//! What the requests of one connection share, and what the connection task
//! offers them.
//!
//! What it owns: `ConnContext`, built once per connection by the connection
//! task and read by every request on it (`request::service`).
//!
//! What it does not do: serve connections (`task`) or requests
//! (`request::service`); it is their meeting point, so that neither imports
//! the other's internals.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use http::HeaderMap;
use tokio::sync::watch;

use super::h2c::PendingUpgrade;
use crate::proto::proxy::forwarded::{self, Forwarded, Scheme};
use crate::runtime::config::ServerConfig;
use crate::runtime::endpoint::{ConnectionSlot, Endpoints};
use crate::runtime::request::body::{DiskBudget, MemoryBudget};
use crate::runtime::timers::Activity;
use crate::runtime::transport::guard::GuardHandle;
use crate::runtime::transport::sendfile::SendQueue;
use crate::runtime::transport::tls::TlsInfo;

/// What every request on a connection shares.
pub(crate) struct ConnContext {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) endpoints: Arc<Endpoints>,
    pub(crate) rt: tokio::runtime::Handle,
    /// The address the client connected to (a PROXY header's destination);
    /// `None` on unix sockets.
    pub(crate) local: Option<SocketAddr>,
    /// The client (a PROXY header's source); `None` on unix sockets.
    pub(crate) peer: Option<SocketAddr>,
    /// The peer is a trusted proxy and `--proxy-headers` is on: its
    /// forwarding fields are applied to each request (`forwarded`).
    pub(crate) applies_forwarding: bool,
    /// TLS connections: what the handshake established.
    pub(crate) tls: Option<Arc<TlsInfo>>,
    pub(crate) activity: Arc<Activity>,
    /// Plain TCP connections: the queue `sendfile` works from.
    pub(crate) zero_copy: Option<Arc<SendQueue>>,
    /// An h2c-upgraded connection: the upgrade request, for stream 1.
    pub(crate) upgrade: Option<PendingUpgrade>,
    /// Closes the connection (GOAWAY on HTTP/2) when a response stalls.
    pub(crate) guard: GuardHandle,
    /// The endpoints' per-connection state.
    pub(crate) slot: Arc<ConnectionSlot>,
    /// Set when a request's body was left unread, or refused before it was
    /// read: if the connection closes, its close lingers (`linger`).
    pub(crate) unread_input: Arc<AtomicBool>,
    /// The server's memory budget for bodies read before the call.
    pub(crate) preread_budget: Arc<MemoryBudget>,
    /// The server's disk budget for bodies spooled before the call.
    pub(crate) buffer_budget: Arc<DiskBudget>,
    /// Turns true when the server stops (WebSockets over HTTP/2 close
    /// with 1001 at the end of the drain period).
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl ConnContext {
    /// Whether the forwarding fields of `peer`'s requests are applied: it is
    /// a trusted proxy (`--forwarded-allow-ips`; a Unix-socket peer, which
    /// only a local process can be, is unless the list is empty) and
    /// `--proxy-headers` is on.
    pub(crate) fn applies_forwarding(config: &ServerConfig, peer: Option<SocketAddr>) -> bool {
        let trusted = &config.proxies.trusted;
        config.proxies.headers
            && match peer {
                Some(peer) => trusted.trusts(peer.ip()),
                None => !trusted.is_empty(),
            }
    }

    /// What a trusted proxy's forwarding fields change about a request with
    /// `headers` (`proto::proxy::forwarded`); `None` when nothing, as for
    /// every request whose peer is not trusted.
    pub(crate) fn forwarded(&self, headers: &HeaderMap) -> Option<Forwarded> {
        match self.applies_forwarding {
            true => forwarded::resolve(headers, &self.config.proxies.trusted),
            false => None,
        }
    }

    /// The client and whether it used a secure scheme, as the application
    /// is told: a trusted proxy's `forwarded` facts over the connection's.
    pub(crate) fn client(&self, forwarded: Option<&Forwarded>) -> (Option<SocketAddr>, bool) {
        let tls = self.tls.is_some();
        match forwarded {
            None => (self.peer, tls),
            Some(f) => (
                f.client.or(self.peer),
                f.scheme.map_or(tls, |s| s == Scheme::Https),
            ),
        }
    }
}

#[cfg(test)]
impl ConnContext {
    /// A cleartext TCP-less connection's context for the runtime's own
    /// tests, every request going to `endpoint`.
    pub(crate) fn for_tests(
        config: ServerConfig,
        endpoint: Arc<dyn crate::runtime::endpoint::Endpoint>,
    ) -> Arc<ConnContext> {
        ConnContext::for_tests_with(config, Endpoints::wsgi_only(endpoint))
    }

    /// As `for_tests`, the requests routed among `endpoints`.
    pub(crate) fn for_tests_with(config: ServerConfig, endpoints: Endpoints) -> Arc<ConnContext> {
        Arc::new(ConnContext {
            config: Arc::new(config),
            endpoints: Arc::new(endpoints),
            rt: tokio::runtime::Handle::current(),
            local: None,
            peer: None,
            applies_forwarding: false,
            tls: None,
            activity: Arc::new(Activity::new()),
            zero_copy: None,
            upgrade: None,
            guard: GuardHandle::default(),
            slot: Default::default(),
            unread_input: Default::default(),
            preread_budget: MemoryBudget::new(0),
            buffer_budget: DiskBudget::new(0),
            shutdown: watch::channel(false).1,
        })
    }
}
