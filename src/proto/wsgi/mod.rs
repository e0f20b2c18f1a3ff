//! WSGI's rules (PEP 3333, WSGI 1.1), apart from any interpreter.
//!
//! - [`environ`]: the CGI-style environ values of a request head.
//!
//! What it does not do: Python objects (the bridge in `crate::py::wsgi` turns
//! these values and decisions into them), I/O, or HTTP framing (`proto::h1`,
//! the runtime).

// Read by the Python bridge, which `--no-default-features` leaves out.
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub mod environ;
