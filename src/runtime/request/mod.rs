//! One request, from its head to its response: the checks, the body plan and
//! the dispatch to the endpoint (`service`), request bodies (`body`),
//! response bodies (`response`), and what goes before a response
//! (`interim`: `103 Early Hints`, HTTP/2 pushes).
//!
//! What it does not do: read heads or write responses on the wire (`conn`).

pub(crate) mod body;
pub(crate) mod interim;
pub(crate) mod response;
pub(crate) mod service;
