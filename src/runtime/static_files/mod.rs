//! Static files served by the runtime, without Python.
//!
//! - [`mount`]: a `StaticMount` (a directory under a URL prefix, checked
//!   once) and the lookup of a request's file in it, never outside the
//!   directory, remembered for a second.
//! - [`endpoint`]: the `StaticEndpoint` that answers a request from the
//!   mount (the rules are `proto::static_files`), and the multipart body of
//!   a multi-range answer.
//!
//! What it does not do: use the worker pool or the GIL. A static request
//! never waits for a Python thread.

pub(crate) mod endpoint;
pub(crate) mod mount;
