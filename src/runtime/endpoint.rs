//! The hand-off between the runtime and the endpoints that serve requests.
//!
//! What it does: a `Call` is one request, ready for an endpoint: the
//! protocol-neutral `Request` (head, body reader, connection facts), the
//! bridge's per-connection slot, and a `Reply` through which the endpoint
//! sends its `Response` exactly once. `Endpoint` is what an endpoint
//! implements: start a call (on the pool), or give it back when full.
//! `Endpoints` holds the application's endpoints, its route table
//! (`proto::route`), its preloads (`request::interim::Preload`) and the
//! runtime's own paths, asked first (`observe`). A
//! call's `pool::Queued` tells the runtime that the pool gave up on a call
//! that waited `--queue-timeout` for a thread (it answers 503).
//!
//! What it does not do: any Python, or any application protocol: how a
//! request becomes a call of a Python application (WSGI's environ, say) is
//! the endpoint's own business (`crate::py`). Tests in this crate can
//! implement `Endpoint` in plain Rust.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use http::header::HeaderValue;
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use tokio::sync::oneshot;

use super::pool::Queued;
use super::request::body::BodyReader;
use super::request::interim::{InterimSender, Preload};
use super::request::response::ResponseBody;
use super::transport::sendfile::SendQueue;
use super::transport::tls::TlsInfo;
use crate::proto::early_hints::{gets_preload, preload_path};
use crate::proto::proxy::forwarded::Forwarded;
use crate::proto::request::HttpVersion;
use crate::proto::route::{Decision, Exchange, RouteTable, Target};
use crate::runtime::observe::Observe;
use crate::runtime::websocket::WebSocketEndpoint;

/// One request handed to an endpoint, with what it needs to answer.
pub(crate) struct Call {
    pub(crate) request: Request,
    /// Set on plain-TCP HTTP/1.x connections: file bodies may use sendfile.
    pub(crate) zero_copy: Option<Arc<SendQueue>>,
    /// Shared by the calls of one connection (see `ConnectionSlot`).
    pub(crate) slot: Arc<ConnectionSlot>,
    pub(crate) reply: Reply,
    /// Interim responses before the reply (`103 Early Hints`); dropped
    /// once the reply is sent.
    pub(crate) interim: InterimSender,
    /// The endpoint hands it to the pool with the call's job
    /// (`Pool::try_submit_queued`).
    pub(crate) queued: Queued,
}

/// A request as every endpoint receives it, whichever protocol brought it.
pub(crate) struct Request {
    pub(crate) head: RequestHead,
    pub(crate) body: BodyReader,
    /// How many bytes `body` gives, when that is exactly the declared
    /// `Content-Length` (not when the body is decoded or streamed:
    /// `proto::body::plan`; after buffering, the buffered length).
    pub(crate) content_length: Option<u64>,
    /// The runtime removes the request's `Content-Encoding`: `body` gives the
    /// decoded content, and the field no longer describes it.
    pub(crate) body_decoded: bool,
    pub(crate) connection: ConnectionInfo,
}

/// The head of a request, checked (`proto::request`, `proto::h1`).
pub(crate) struct RequestHead {
    pub(crate) method: Method,
    /// The request target: origin form, absolute form (with its authority),
    /// HTTP/2's `:path` and `:authority`.
    pub(crate) target: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
}

/// What the runtime knows of the connection a request came on.
pub(crate) struct ConnectionInfo {
    /// `None` on unix sockets.
    pub(crate) local: Option<SocketAddr>,
    /// `None` on unix sockets.
    pub(crate) peer: Option<SocketAddr>,
    /// TLS connections: what the handshake established.
    pub(crate) tls: Option<Arc<TlsInfo>>,
    /// The HTTP/2 stream of the request (1 for the request of an h2c
    /// upgrade); `None` on HTTP/1.x. No endpoint reads it yet: WSGI's
    /// environ has no place for it.
    #[allow(dead_code)]
    pub(crate) stream_id: Option<u32>,
    /// What a trusted proxy's forwarding fields say about the client, the
    /// scheme and the host (`proto::proxy::forwarded`); the endpoint shows
    /// them over `peer`, `tls` and the request's own host.
    pub(crate) forwarded: Option<Box<Forwarded>>,
}

/// Per-connection state that belongs to the endpoint, carried by the runtime
/// without looking inside: an endpoint keeps there what it reuses across the
/// requests of a connection. Dropped with the connection.
#[derive(Default)]
pub(crate) struct ConnectionSlot(Mutex<Option<Box<dyn Any + Send>>>);

impl ConnectionSlot {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<Box<dyn Any + Send>>> {
        // What a panicking holder left is still a valid cache.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An endpoint's response.
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: ResponseBody,
    /// Trailer fields to send after the body: HTTP/2 sends them (RFC 9113
    /// §8.1); HTTP/1.1 sends them after a chunked body and drops them after
    /// one with a length (`conn::h1`).
    pub(crate) trailers: Option<HeaderMap>,
}

/// Sends the response to the connection task. Dropping it unsent answers
/// 500 (the endpoint failed before it could say anything).
pub(crate) struct Reply {
    tx: oneshot::Sender<Response>,
}

impl Reply {
    pub(crate) fn new() -> (Reply, oneshot::Receiver<Response>) {
        let (tx, rx) = oneshot::channel();
        (Reply { tx }, rx)
    }

    /// False when the connection is already gone.
    pub(crate) fn send(self, response: Response) -> bool {
        self.tx.send(response).is_ok()
    }
}

/// The worker pool and its queue are full.
#[derive(Debug)]
pub(crate) struct Busy;

pub(crate) trait Endpoint: Send + Sync + 'static {
    /// Start `call` (on the worker pool, for an endpoint that calls Python),
    /// or refuse it when the pool's queue is full (the runtime answers 503). Boxed once where it is made: a call is
    /// several hundred bytes, and it is handed on twice more.
    fn dispatch(&self, call: Box<Call>) -> Result<(), Busy>;

    /// Whether the endpoint reads request bodies. One that answers from the
    /// head alone (static files) says no: the runtime then neither reads
    /// its requests' bodies ahead nor buffers them (`--buffer-body`).
    fn reads_body(&self) -> bool {
        true
    }
}

/// The endpoints of a running server and the route table that chooses
/// between them (`proto::route`).
pub(crate) struct Endpoints {
    routes: RouteTable,
    wsgi: Option<Arc<dyn Endpoint>>,
    /// One per static mount, by the index `Target::Static` names.
    statics: Vec<Arc<dyn Endpoint>>,
    /// One per WebSocket handler, by the index `Target::WebSocket` names.
    websockets: Vec<Arc<dyn WebSocketEndpoint>>,
    /// None when the application declared none.
    preload: Option<Preload>,
    /// The runtime's own paths (health, metrics), asked before the routes.
    observe: Observe,
}

impl Endpoints {
    pub(crate) fn new(
        routes: RouteTable,
        wsgi: Option<Arc<dyn Endpoint>>,
        statics: Vec<Arc<dyn Endpoint>>,
    ) -> Endpoints {
        Endpoints {
            routes,
            wsgi,
            statics,
            websockets: Vec::new(),
            preload: None,
            observe: Observe::default(),
        }
    }

    /// The runtime's own paths, answered before any route, and the
    /// worker's metrics.
    pub(crate) fn with_observe(mut self, observe: Observe) -> Endpoints {
        self.observe = observe;
        self
    }

    pub(crate) fn observe(&self) -> &Observe {
        &self.observe
    }

    /// The endpoints of the `--metrics-bind` listener: its metrics, and no
    /// route (`Observe::scrape_only`).
    pub(crate) fn scrape_only(&self) -> Endpoints {
        let routes = RouteTable::new([]).expect("an empty table");
        Endpoints::new(routes, None, Vec::new()).with_observe(self.observe.scrape_only())
    }

    /// The WebSocket handlers, by the index `Target::WebSocket` names.
    pub(crate) fn with_websockets(
        mut self,
        websockets: Vec<Arc<dyn WebSocketEndpoint>>,
    ) -> Endpoints {
        self.websockets = websockets;
        self
    }

    /// Whether any WebSocket handler is declared: HTTP/2 connections then
    /// offer extended CONNECT (RFC 8441 §3).
    pub(crate) fn has_websockets(&self) -> bool {
        !self.websockets.is_empty()
    }

    /// The WebSocket endpoint serving a handshake to `path`, if one does.
    pub(crate) fn websocket(&self, path: &str) -> Option<&Arc<dyn WebSocketEndpoint>> {
        match self.routes.route(Exchange::WebSocket, path) {
            Decision::Serve(Target::WebSocket(i)) => self.websockets.get(i),
            _ => None,
        }
    }

    /// The application's preloads, complete `Link` field values: announced
    /// before its pages; those naming a path a static mount serves may be
    /// pushed (`proto::early_hints`).
    pub(crate) fn with_preload(mut self, links: Vec<HeaderValue>) -> Endpoints {
        if links.is_empty() {
            return self;
        }
        let push = links
            .iter()
            .filter_map(|link| preload_path(link.to_str().ok()?))
            .filter(|path| {
                matches!(
                    self.routes.route(Exchange::Plain, path.path()),
                    Decision::Serve(Target::Static(_))
                )
            })
            .collect();
        self.preload = Some(Preload::new(links, push));
        self
    }

    /// The preloads a request is announced before its response, if any
    /// (`proto::early_hints::gets_preload`).
    pub(crate) fn preload_for(
        &self,
        exchange: Exchange,
        method: &Method,
        version: Version,
        target: &Uri,
        headers: &HeaderMap,
    ) -> Option<&Preload> {
        let preload = self.preload.as_ref()?;
        let Decision::Serve(routed) = self.routes.route(exchange, target.path()) else {
            return None;
        };
        gets_preload(method, HttpVersion::of(version), headers, routed).then_some(preload)
    }

    /// One WSGI endpoint serving every path (a plain WSGI application).
    #[cfg(test)]
    pub(crate) fn wsgi_only(wsgi: Arc<dyn Endpoint>) -> Endpoints {
        let routes = RouteTable::new([("", Target::Wsgi)]).expect("the root prefix");
        Endpoints::new(routes, Some(wsgi), Vec::new())
    }

    /// The endpoint that serves a request, or why none does. A target the
    /// table names but this server has no endpoint for is not found.
    pub(crate) fn route(
        &self,
        exchange: Exchange,
        path: &str,
    ) -> Result<&Arc<dyn Endpoint>, Decision> {
        let target = match self.routes.route(exchange, path) {
            Decision::Serve(target) => target,
            refused => return Err(refused),
        };
        let endpoint = match target {
            Target::Static(i) => self.statics.get(i),
            Target::Wsgi => self.wsgi.as_ref(),
            // A handshake is served by `websocket`, before requests are.
            Target::WebSocket(_) | Target::Stream => None,
        };
        endpoint.ok_or(match exchange {
            Exchange::WebSocket => Decision::NoWebSocket,
            Exchange::Plain => Decision::NotFound,
        })
    }
}
