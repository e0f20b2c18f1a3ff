//! One request, from its head to its response: the checks, the body plan and
//! the dispatch to the endpoint (`service`), request bodies (`body`) and
//! response bodies (`response`).
//!
//! What it does not do: read heads or write responses on the wire (`conn`).

pub(crate) mod body;
pub(crate) mod response;
pub(crate) mod service;
