//! hyper-ref: the Rust-only reference server of the benchmark.
//!
//! Answers every request on every path with the same 13-byte `Hello, world!`
//! that `bench/apps/wsgi_apps.py:hello` returns, over HTTP/1.1 and h2c (prior
//! knowledge) on one port, like Propylon. One tokio `current_thread` runtime:
//! the bench pins it to one CPU, so more threads would only add switching.
//!
//! With `--certfile` and `--keyfile` it speaks TLS instead (rustls with the
//! ring provider, TLS 1.3 and 1.2, ALPN `h2` and `http/1.1`: Propylon's TLS
//! configuration), for the bench's `tls-*` scenarios.
//!
//! What it does not do: read request bodies, time out idle connections, log
//! requests, or anything else a real server must. It is a ceiling, not a peer.
//!
//! With `--app file` it is the ceiling of the bench's `file*` and `static1m`
//! scenarios instead: every request on a connection is answered with the file
//! named by `--file` (default `$BENCH_FILE`, the file
//! `bench/apps/wsgi_apps.py:file` serves), sent with `sendfile(2)`, one
//! blocking thread per connection. No hyper there: hyper writes bodies from
//! memory, and the point is what the kernel alone can send on this machine,
//! whatever server sits on top.
//!
//! With `--app memory` it is the ceiling of the `static4k` scenario: no HTTP
//! library either, a tokio `current_thread` loop that reads each request head
//! up to its blank line and answers with one write of a prebuilt response,
//! its head and the bytes of `--file` read once at startup. One read and one
//! write per request, no file system call: for a small file, the least work
//! any HTTP/1.1 static file server can do. The `sendfile(2)` loop, a blocking
//! thread per connection, is no ceiling there: with the bench's 64
//! connections on one CPU it answers a fifth as many 4 KiB requests.
//!
//! `--tcp-congestion NAME` sets the listener's TCP congestion control, which
//! the connections it accepts inherit (Propylon's option of the same name).
//!
//! Usage: `hyper-ref --bind 127.0.0.1:PORT [--app hello|file|memory] [--file PATH]
//! [--certfile PEM --keyfile PEM] [--tcp-congestion NAME]`; prints `Listening on http(s)://127.0.0.1:PORT` on stderr
//! when ready (the same readiness line as Propylon), exits on SIGINT/SIGTERM.

use std::convert::Infallible;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio_rustls::TlsAcceptor;

const BODY: &[u8] = b"Hello, world!";
const USAGE: &str = "usage: hyper-ref --bind HOST:PORT [--app hello|file|memory] \
     [--file PATH] [--certfile PEM --keyfile PEM] [--tcp-congestion NAME]";

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

fn fail(message: String) -> ! {
    eprintln!("hyper-ref: error: {message}");
    std::process::exit(2)
}

#[derive(Clone, Copy, PartialEq)]
enum App {
    Hello,
    File,
    Memory,
}

struct Args {
    bind: SocketAddr,
    app: App,
    file: Option<String>,
    certfile: Option<String>,
    keyfile: Option<String>,
    tcp_congestion: Option<String>,
}

fn parse_args() -> Args {
    let mut bind = None;
    let mut app = App::Hello;
    let mut file = None;
    let (mut certfile, mut keyfile) = (None, None);
    let mut tcp_congestion = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| fail(format!("{flag} needs a value; {USAGE}")));
        match flag.as_str() {
            "--bind" => {
                bind = Some(
                    value
                        .parse()
                        .unwrap_or_else(|_| fail(format!("bad address {value:?}; {USAGE}"))),
                )
            }
            "--app" => {
                app = match value.as_str() {
                    "file" => App::File,
                    "memory" => App::Memory,
                    // Every other bench application answers like hello here.
                    _ => App::Hello,
                }
            }
            "--file" => file = Some(value),
            "--certfile" => certfile = Some(value),
            "--keyfile" => keyfile = Some(value),
            "--tcp-congestion" => tcp_congestion = Some(value),
            _ => fail(format!("unknown argument {flag:?}; {USAGE}")),
        }
    }
    if certfile.is_some() != keyfile.is_some() {
        fail(format!("--certfile and --keyfile go together; {USAGE}"));
    }
    let bind = bind.unwrap_or_else(|| fail(USAGE.to_string()));
    if app != App::Hello && certfile.is_some() {
        fail(format!(
            "--app file and --app memory speak cleartext only; {USAGE}"
        ));
    }
    Args {
        bind,
        app,
        file,
        certfile,
        keyfile,
        tcp_congestion,
    }
}

/// `--tcp-congestion`: set on the listener before any connection arrives, so
/// that accepted connections have it from their first packet.
fn set_congestion(listener: &impl AsRawFd, name: Option<&str>) {
    let Some(name) = name else { return };
    // SAFETY: a valid socket and a buffer of the given length.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        eprintln!("hyper-ref: error: TCP congestion control {name:?}: {e}");
        std::process::exit(1)
    }
}

/// `--app file`: answers every request with the whole file, one thread per
/// connection. Reads the request head up to its blank line and ignores it
/// (the bench sends bodiless GETs); stops at EOF or any error.
fn serve_file(listener: std::net::TcpListener, path: String) -> ! {
    let size = std::fs::metadata(&path)
        .unwrap_or_else(|e| fail(format!("cannot read $BENCH_FILE ({path}): {e}")))
        .len();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {size}\r\nX-Bench-File: sendfile\r\n\r\n"
    );
    loop {
        let Ok((stream, _peer)) = listener.accept() else {
            continue;
        };
        let (path, head) = (path.clone(), head.clone());
        std::thread::spawn(move || {
            let _ = file_connection(stream, &path, head.as_bytes(), size);
        });
    }
}

fn file_connection(
    mut stream: std::net::TcpStream,
    path: &str,
    head: &[u8],
    size: u64,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let file = File::open(path)?;
    let mut buf = [0u8; 4096];
    let mut filled = 0;
    loop {
        // One request head: up to the blank line (pipelined bytes after it
        // are kept for the next round).
        let end = loop {
            if let Some(i) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if filled == buf.len() {
                return Ok(()); // a head this size is not the bench's
            }
            match stream.read(&mut buf[filled..])? {
                0 => return Ok(()),
                n => filled += n,
            }
        };
        buf.copy_within(end..filled, 0);
        filled -= end;
        stream.write_all(head)?;
        let mut offset: libc::off_t = 0;
        while (offset as u64) < size {
            let left = (size - offset as u64) as usize;
            // SAFETY: both descriptors are open for the call (owned by
            // `file` and `stream`), and `offset` is a valid off_t the kernel
            // advances.
            let sent =
                unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut offset, left) };
            match sent {
                -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                -1 => return Err(io::Error::last_os_error()),
                0 => return Ok(()), // the file shrank: close rather than lie about its length
                _ => {}
            }
        }
    }
}

fn tls_acceptor(certfile: &str, keyfile: &str) -> TlsAcceptor {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certfile)
        .and_then(|certs| certs.collect())
        .unwrap_or_else(|e| fail(format!("cannot read the certificates in {certfile}: {e}")));
    let key = PrivateKeyDer::from_pem_file(keyfile)
        .unwrap_or_else(|e| fail(format!("cannot read the key in {keyfile}: {e}")));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap_or_else(|e| fail(format!("TLS setup failed: {e}")))
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap_or_else(|e| fail(format!("the key does not match the certificate: {e}")));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// The file `--app file` and `--app memory` serve: `--file`, else `$BENCH_FILE`.
fn file_path(args: &Args) -> String {
    args.file
        .clone()
        .or_else(|| std::env::var("BENCH_FILE").ok())
        .unwrap_or_else(|| fail(format!("this --app needs --file or $BENCH_FILE; {USAGE}")))
}

fn main() {
    let args = parse_args();
    if args.app == App::File {
        let path = file_path(&args);
        let listener = std::net::TcpListener::bind(args.bind).unwrap_or_else(|e| {
            eprintln!("hyper-ref: error: cannot listen on {}: {e}", args.bind);
            std::process::exit(1)
        });
        set_congestion(&listener, args.tcp_congestion.as_deref());
        eprintln!("Listening on http://{}", listener.local_addr().unwrap());
        // SIGTERM's and SIGINT's default action ends the process: nothing
        // to clean up here.
        serve_file(listener, path)
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if args.app == App::Memory {
        runtime.block_on(serve_memory(args))
    } else {
        runtime.block_on(serve_hello(args))
    }
}

/// `--app memory`: one prebuilt response, head and file, for every request.
async fn serve_memory(args: Args) {
    let path = file_path(&args);
    let body =
        std::fs::read(&path).unwrap_or_else(|e| fail(format!("cannot read --file ({path}): {e}")));
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    let response: Arc<[u8]> = response.into();
    let listener = TcpListener::bind(args.bind).await.unwrap_or_else(|e| {
        eprintln!("hyper-ref: error: cannot listen on {}: {e}", args.bind);
        std::process::exit(1)
    });
    set_congestion(&listener, args.tcp_congestion.as_deref());
    eprintln!("Listening on http://{}", listener.local_addr().unwrap());
    let mut sigterm = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut sigint = signal(SignalKind::interrupt()).expect("SIGINT handler");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let response = response.clone();
                // Errors here are the client's (reset): ignore.
                tokio::spawn(async move { memory_connection(stream, &response).await });
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
}

/// Answers each request head with `response`, one write each; reads heads up
/// to their blank line and ignores them (the bench sends bodiless GETs);
/// stops at EOF or any error.
async fn memory_connection(stream: TcpStream, response: &[u8]) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    let mut filled = 0;
    loop {
        // Every complete head read so far (pipelined ones too).
        while let Some(i) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            buf.copy_within(i + 4..filled, 0);
            filled -= i + 4;
            write_all(&stream, response).await?;
        }
        if filled == buf.len() {
            return Ok(()); // a head this size is not the bench's
        }
        stream.readable().await?;
        match stream.try_read(&mut buf[filled..]) {
            Ok(0) => return Ok(()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn serve_hello(args: Args) {
    let tls = match (&args.certfile, &args.keyfile) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)),
        _ => None,
    };
    let listener = TcpListener::bind(args.bind).await.unwrap_or_else(|e| {
        eprintln!("hyper-ref: error: cannot listen on {}: {e}", args.bind);
        std::process::exit(1)
    });
    set_congestion(&listener, args.tcp_congestion.as_deref());
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("Listening on {scheme}://{}", listener.local_addr().unwrap());

    let mut sigterm = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut sigint = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let builder = builder.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    // Errors here are the client's (reset, bad request, failed
                    // handshake): ignore.
                    let service = service_fn(hello);
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else { return };
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
}
