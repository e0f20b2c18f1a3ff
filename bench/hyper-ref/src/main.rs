//! hyper-ref: the Rust-only reference server of the benchmark.
//!
//! Answers every request on every path with the same 13-byte `Hello, world!`
//! that `bench/apps/wsgi_apps.py:hello` returns, over HTTP/1.1 and h2c (prior
//! knowledge) on one port, like Propylon. One tokio `current_thread` runtime:
//! the bench pins it to one CPU, so more threads would only add switching.
//!
//! What it does not do: read request bodies, time out idle connections, log
//! requests, or anything else a real server must. It is a ceiling, not a peer.
//!
//! Usage: `hyper-ref --bind 127.0.0.1:PORT`; prints
//! `Listening on http://127.0.0.1:PORT` on stderr when ready (the same
//! readiness line as Propylon), exits on SIGINT/SIGTERM.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

const BODY: &[u8] = b"Hello, world!";

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

fn parse_bind() -> SocketAddr {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: hyper-ref --bind HOST:PORT";
    match args.as_slice() {
        [_, flag, addr] if flag == "--bind" => addr.parse().unwrap_or_else(|_| {
            eprintln!("hyper-ref: error: bad address {addr:?}; {usage}");
            std::process::exit(2)
        }),
        _ => {
            eprintln!("hyper-ref: error: {usage}");
            std::process::exit(2)
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = parse_bind();
    let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| {
        eprintln!("hyper-ref: error: cannot listen on {addr}: {e}");
        std::process::exit(1)
    });
    eprintln!("Listening on http://{}", listener.local_addr().unwrap());

    let mut sigterm = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut sigint = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let builder = builder.clone();
                tokio::spawn(async move {
                    // Errors here are the client's (reset, bad request): ignore.
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service_fn(hello))
                        .await;
                });
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
}
