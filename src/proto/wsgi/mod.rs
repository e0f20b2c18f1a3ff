//! WSGI's rules (PEP 3333, WSGI 1.1), apart from any interpreter.
//!
//! - [`environ`]: the CGI-style environ values of a request head.
//! - [`response`]: the response state machine: `start_response` (with
//!   `exc_info`), `write()`, the body and its `Content-Length`, failures.
//!
//! What it does not do: Python objects (the bridge in `crate::py::wsgi` turns
//! these values and decisions into them), I/O, or HTTP framing (`proto::h1`,
//! the runtime).

// Both are read by the Python bridge, which `--no-default-features` leaves out.
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) mod environ;
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) mod response;
