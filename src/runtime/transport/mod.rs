//! The transport under the HTTP connections: I/O wrappers that change how a
//! connection's bytes are read or written, and TLS.
//!
//! What it owns: telling HTTP/1.1 from HTTP/2 by the first bytes (`detect`),
//! TLS configuration (`tls`), the abuse and stall guard (`guard`), lingering
//! close (`linger`), the PROXY protocol header before everything
//! (`proxy_header`), `sendfile(2)` (`sendfile`), handing buffered bytes back
//! after an h2c upgrade (`rewind`), and `RawSocket`, the question whether a request
//! body can be read from the socket itself.
//!
//! What it does not do: parse or answer HTTP (`conn`, `request`).

use std::os::fd::RawFd;

pub(crate) mod forward;

pub(crate) mod detect;
pub(crate) mod guard;
pub(crate) mod linger;
pub(crate) mod proxy_header;
pub(crate) mod rewind;
pub(crate) mod sendfile;
pub(crate) mod tls;

/// A transport the HTTP/1.x loop (`conn::h1`) can serve, and whether it has
/// a socket a request body can be read from directly. Without one (TLS: the
/// bytes on the socket are records only the connection can decrypt) the
/// connection reads every body itself.
pub(crate) trait RawSocket {
    fn raw_socket(&self) -> Option<RawFd>;
}

impl RawSocket for tokio::net::UnixStream {
    fn raw_socket(&self) -> Option<RawFd> {
        Some(std::os::fd::AsRawFd::as_raw_fd(self))
    }
}

impl RawSocket for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn raw_socket(&self) -> Option<RawFd> {
        None
    }
}
