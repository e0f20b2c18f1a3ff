//! The PROXY protocol header at the start of a TCP connection
//! (`--proxy-protocol`), read before TLS or HTTP.
//!
//! What it does: refuses peers that are not trusted proxies
//! (`--forwarded-allow-ips`), then reads the header (`proto::proxy::
//! protocol`) within the header timeout, never a byte past it: it peeks at
//! what has arrived, consumes only bytes the parser says are header, and
//! reads the last part exactly. A missing, bad or unfinished header closes
//! the connection without an answer (there is no protocol to answer in
//! yet).
//!
//! What it does not do: serve the connection (`conn::task` does, with the
//! addresses returned here).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::proto::proxy::protocol::{parse, Addresses, Parsed};
use crate::runtime::config::ServerConfig;

/// Whether a peer outside `--forwarded-allow-ips` was refused before: the
/// first is a warning (a load balancer missing from the list), the rest
/// are debug lines (anyone may connect; the log is not theirs to fill).
static REFUSED_BEFORE: AtomicBool = AtomicBool::new(false);

/// The connection's addresses, its client's (`peer`) and the one it
/// connected to (`local`), as its PROXY header says; `None`: close it.
pub(crate) async fn read(
    stream: &mut TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    config: &ServerConfig,
) -> Option<(SocketAddr, Option<SocketAddr>)> {
    if !config.proxies.trusted.trusts(peer.ip()) {
        if !REFUSED_BEFORE.swap(true, Ordering::Relaxed) {
            log::warn!(target: "propylon.server", "connection from {peer}, which is not in --forwarded-allow-ips, closed: with --proxy-protocol only trusted proxies may connect (further ones are logged at debug level)");
        } else {
            log::debug!(target: "propylon.server", "connection from {peer}, which is not in --forwarded-allow-ips, closed (--proxy-protocol)");
        }
        return None;
    }
    match tokio::time::timeout(config.header_timeout, header(stream)).await {
        Ok(Ok(Addresses::Proxied {
            source,
            destination,
        })) => Some((source, Some(destination))),
        Ok(Ok(Addresses::Own)) => Some((peer, local)),
        Ok(Err(e)) => {
            log::info!(target: "propylon.server", "connection from {peer} closed: {e}");
            None
        }
        Err(_) => {
            log::info!(target: "propylon.server", "connection from {peer} closed: no complete PROXY protocol header within the header timeout");
            None
        }
    }
}

/// How many bytes are looked at in one peek: a whole version 1 header, or
/// a version 2 header with its addresses and a few TLVs.
const PEEK: usize = 512;

async fn header(stream: &mut TcpStream) -> io::Result<Addresses> {
    let mut header = Vec::new();
    let mut seen = vec![0u8; PEEK];
    loop {
        let n = stream.peek(&mut seen).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection ended before its PROXY protocol header did",
            ));
        }
        let so_far = header.len();
        header.extend_from_slice(&seen[..n]);
        match parse(&header) {
            // All of it is header: consume it; the next peek waits for more.
            Ok(Parsed::Partial) => {
                stream.read_exact(&mut seen[..n]).await?;
            }
            Ok(Parsed::Complete { len, addresses }) => {
                stream.read_exact(&mut seen[..len - so_far]).await?;
                return Ok(addresses);
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
    }
}
