//! WebSockets: the opening handshake's answer, then the session.
//!
//! What it does: a handshake request that routing gave a WebSocket handler
//! (`proto::route::Target::WebSocket`) is checked (`proto::websocket::
//! handshake`: RFC 6455 §4.2.1 on HTTP/1.1, RFC 8441 §4 on HTTP/2) and
//! handed to the application's endpoint as an `Opening`: the request's
//! facts, a `Handshake` to answer through (accept, with a subprotocol and
//! fields; or reject, with a response) and the `Link` the session will
//! carry messages over. `answer` waits for that answer and turns it into
//! the response: 101 (HTTP/1.1) or 200 (HTTP/2) with the agreed subprotocol
//! and permessage-deflate parameters (`proto::websocket::deflate`), or the
//! application's rejection; a bad handshake gets its 400 or 426, a full
//! server 503, an endpoint that dropped the handshake unanswered 500. The
//! connection code (`conn::h1`, `conn::h2`) writes that response and, on
//! acceptance, runs the `session` over the connection (or, on HTTP/2, over
//! the stream: `h2_stream`).
//!
//! What it does not do: frames (`session`, with `yawc`), or run anything of
//! the application: an endpoint (the Python bridge's) starts its handler.

pub(crate) mod h2_stream;
pub(crate) mod link;
pub(crate) mod session;

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, StatusCode, Uri};
use tokio::sync::oneshot;

use self::link::Link;
use crate::proto::websocket::deflate::negotiate;
use crate::proto::websocket::handshake::{response_headers, Offer};
use crate::runtime::config::WebSocketConfig;

/// What serves WebSocket handshakes routed to one handler.
pub(crate) trait WebSocketEndpoint: Send + Sync + 'static {
    /// Start the application's handler for `opening`, which answers its
    /// `Handshake`; or refuse it at once when no thread can take it (the
    /// runtime answers 503).
    fn open(&self, opening: Opening) -> Result<(), NoThread>;
}

/// No thread can take a handshake now (the pool's queue is full, or every
/// thread for blocking handlers is taken).
#[derive(Debug)]
pub(crate) struct NoThread;

/// A WebSocket handshake, for the application to answer.
pub(crate) struct Opening {
    pub(crate) target: Uri,
    /// The request's fields (on HTTP/2, without pseudo-fields).
    pub(crate) headers: HeaderMap,
    /// Offered, in order (`Sec-WebSocket-Protocol`).
    pub(crate) subprotocols: Vec<String>,
    /// Names of the extensions offered (`Sec-WebSocket-Extensions`).
    pub(crate) extensions: Vec<String>,
    pub(crate) http2: bool,
    /// TLS, or `https` by a trusted proxy's word (the scheme is `wss`).
    pub(crate) tls: bool,
    /// The client: the socket's peer, or a trusted proxy's word.
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) handshake: Handshake,
    pub(crate) link: Link,
}

/// The application's answer to a handshake: given once.
pub(crate) struct Handshake {
    tx: oneshot::Sender<Answer>,
}

pub(crate) enum Answer {
    /// Open the connection, with a subprotocol among those offered (the
    /// endpoint checks that) and extra response fields.
    Accept {
        subprotocol: Option<String>,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// Answer with this response instead (status 400-599).
    Reject {
        status: StatusCode,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    },
}

impl Handshake {
    /// False when the client is already gone.
    pub(crate) fn answer(self, answer: Answer) -> bool {
        self.tx.send(answer).is_ok()
    }
}

/// How a handshake was answered.
pub(crate) enum Answered {
    /// Write this response (101 or 200) and run the session; `agreed` is
    /// the `Sec-WebSocket-Extensions` value in it.
    Open {
        headers: HeaderMap,
        agreed: Option<String>,
        link: Link,
    },
    /// Write this response; no session.
    Refused(http::Response<Bytes>),
}

/// Hand the checked handshake (`offer`) to `endpoint` and wait for the
/// application's answer.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn answer(
    endpoint: &dyn WebSocketEndpoint,
    offer: Offer,
    target: Uri,
    headers: HeaderMap,
    http2: bool,
    tls: bool,
    peer: Option<SocketAddr>,
    config: &WebSocketConfig,
) -> Answered {
    let (tx, rx) = oneshot::channel();
    let link = Link::new(config.send_queue);
    let opening = Opening {
        target,
        headers,
        subprotocols: offer.subprotocols.clone(),
        extensions: offer.extensions.clone(),
        http2,
        tls,
        peer,
        handshake: Handshake { tx },
        link: link.clone(),
    };
    if endpoint.open(opening).is_err() {
        return Answered::Refused(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no thread is free for this WebSocket\n",
        ));
    }
    match rx.await {
        Ok(Answer::Accept {
            subprotocol,
            headers: extra,
        }) => {
            let deflate = match config.compression {
                true => offer.deflate.as_ref().and_then(negotiate),
                false => None,
            };
            let mut headers = response_headers(&offer, subprotocol.as_deref(), deflate.as_ref());
            for (name, value) in extra {
                headers.append(name, value);
            }
            let agreed = deflate.map(|d| {
                d.header_value()
                    .to_str()
                    .expect("an agreement's field value is ASCII")
                    .to_owned()
            });
            Answered::Open {
                headers,
                agreed,
                link,
            }
        }
        Ok(Answer::Reject {
            status,
            headers,
            body,
        }) => {
            let typed = headers.iter().any(|(name, _)| name == CONTENT_TYPE);
            let mut response = http::Response::new(body);
            *response.status_mut() = status;
            for (name, value) in headers {
                response.headers_mut().append(name, value);
            }
            if !typed && !response.body().is_empty() {
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
            }
            let length = HeaderValue::from(response.body().len());
            response.headers_mut().insert(CONTENT_LENGTH, length);
            Answered::Refused(response)
        }
        // The handler ended (or failed) without answering; the endpoint
        // logged why.
        Err(_) => Answered::Refused(plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the WebSocket handler failed\n",
        )),
    }
}

/// A short plain-text response.
pub(crate) fn plain(status: StatusCode, text: &'static str) -> http::Response<Bytes> {
    let mut response = http::Response::new(Bytes::from_static(text.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    response
}
