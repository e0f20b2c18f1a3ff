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
//! Usage: `hyper-ref --bind 127.0.0.1:PORT [--certfile PEM --keyfile PEM]`;
//! prints `Listening on http(s)://127.0.0.1:PORT` on stderr when ready (the
//! same readiness line as Propylon), exits on SIGINT/SIGTERM.

use std::convert::Infallible;
use std::net::SocketAddr;
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
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_rustls::TlsAcceptor;

const BODY: &[u8] = b"Hello, world!";
const USAGE: &str = "usage: hyper-ref --bind HOST:PORT [--certfile PEM --keyfile PEM]";

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

struct Args {
    bind: SocketAddr,
    certfile: Option<String>,
    keyfile: Option<String>,
}

fn parse_args() -> Args {
    let mut bind = None;
    let (mut certfile, mut keyfile) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| fail(format!("{flag} needs a value; {USAGE}")));
        match flag.as_str() {
            "--bind" => {
                bind = Some(value.parse().unwrap_or_else(|_| {
                    fail(format!("bad address {value:?}; {USAGE}"))
                }))
            }
            "--certfile" => certfile = Some(value),
            "--keyfile" => keyfile = Some(value),
            _ => fail(format!("unknown argument {flag:?}; {USAGE}")),
        }
    }
    if certfile.is_some() != keyfile.is_some() {
        fail(format!("--certfile and --keyfile go together; {USAGE}"));
    }
    let bind = bind.unwrap_or_else(|| fail(USAGE.to_string()));
    Args { bind, certfile, keyfile }
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    let tls = match (&args.certfile, &args.keyfile) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)),
        _ => None,
    };
    let listener = TcpListener::bind(args.bind).await.unwrap_or_else(|e| {
        eprintln!("hyper-ref: error: cannot listen on {}: {e}", args.bind);
        std::process::exit(1)
    });
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
