//! Protocol rules: the parts of HTTP and WSGI that are decisions, not I/O.
//!
//! Everything here is a pure function or a small state machine over plain Rust
//! types: no sockets, no tokio, no pyo3. The runtime (`src/runtime`) feeds it
//! what it read (HTTP/1.x heads parsed by [`h1`], HTTP/2's by h2) and acts
//! on the answer; the Python bridge (`src/py`) turns the answers into Python
//! objects. That is why every rule in this
//! folder can be tested with a table of cases and nothing else.
//!
//! - [`request`]: request framing rules, for every protocol version (400s).
//! - [`body`]: what the request body looks like to the application (413,
//!   request decompression, what `CONTENT_LENGTH` shows).
//! - [`chunked`]: decoding chunked HTTP/1.1 request bodies (400s).
//! - [`h1`]: HTTP/1.x request heads (parsed, or refused with their status)
//!   and response heads.
//! - [`response`]: validating `start_response` arguments (status, headers).
//! - [`length`]: response `Content-Length` enforcement while the body is sent.
//! - [`wsgi`]: WSGI's rules: the environ of a request, the response state
//!   machine (`start_response`, `write()`, `exc_info`).
//! - [`route`]: the route table, which kind of endpoint serves a request.
//! - [`early_hints`]: which requests are announced the application's
//!   preloads (`103 Early Hints`), and which preloads may be pushed.
//! - [`static_files`]: what a request to a static mount gets (paths,
//!   validators and preconditions, ranges, precompressed siblings, types).
//! - [`websocket`]: the WebSocket handshake, permessage-deflate
//!   negotiation, messages from frames, close codes.
//! - [`prometheus`]: the Prometheus text exposition format (the metrics
//!   families as text).
//! - [`proxy`]: trusted proxies: which peers are, what their `Forwarded`
//!   and `X-Forwarded-*` fields say, the PROXY protocol header.
//!
//! Callers name items by their module (`proto::wsgi::environ::build`,
//! `proto::length::ResponseLength`); there are deliberately no re-exports, so
//! each name is found in one place.

pub(crate) mod body;
pub(crate) mod chunked;
pub(crate) mod early_hints;
pub(crate) mod h1;
pub(crate) mod prometheus;
// Read by the Python bridge, which `--no-default-features` leaves out.
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) mod length;
pub(crate) mod proxy;
pub(crate) mod request;
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) mod response;
pub(crate) mod route;
pub(crate) mod static_files;
mod syntax;
pub(crate) mod websocket;
pub(crate) mod wsgi;
