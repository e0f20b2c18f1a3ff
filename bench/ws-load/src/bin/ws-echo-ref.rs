//! ws-echo-ref: the ceiling of the bench's WebSocket scenarios. A bare
//! tokio-tungstenite echo server: it accepts every WebSocket handshake on any
//! path, sends each text or binary message back as it came, and does nothing
//! else (no routing, no application, no compression). No Python server can
//! echo faster on the same pinned CPU. It also serves `ws-load --idle`, so the
//! memory of 10,000 idle connections has a Rust-only floor too.
//!
//! ```text
//! ws-echo-ref --bind 127.0.0.1:PORT [--threads W] [--read-buffer BYTES]
//! ```
//! One thread (tokio's current_thread runtime) unless `--threads` says more.
//! `--read-buffer` is tungstenite's read buffer per connection (default
//! 4 KiB here, 128 KiB in tungstenite): allocated for every connection, idle
//! or not, it is most of an idle connection's memory.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

const USAGE: &str =
    "usage: ws-echo-ref --bind HOST:PORT [--threads W] [--read-buffer BYTES] (W, BYTES >= 1)";

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut bind, mut threads, mut read_buffer) = (None, 1usize, 4096usize);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--bind", Some(value)) => bind = Some(value),
            ("--threads", Some(value)) => threads = value.parse().unwrap_or(0),
            ("--read-buffer", Some(value)) => read_buffer = value.parse().unwrap_or(0),
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let Some(bind) = bind.filter(|_| threads > 0 && read_buffer > 0) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let config = WebSocketConfig::default().read_buffer_size(read_buffer);
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = match TcpListener::bind(&bind).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("ws-echo-ref: cannot bind {bind}: {e}");
                std::process::exit(1);
            }
        };
        eprintln!("ws-echo-ref: listening on {bind}");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream, config));
                }
                // EMFILE and the like: go on with the connections already open.
                Err(e) => {
                    eprintln!("ws-echo-ref: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
}

async fn serve(stream: TcpStream, config: WebSocketConfig) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    // Pings are answered and close frames echoed by tungstenite itself.
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(_) | Message::Binary(_) = message {
            if ws.send(message).await.is_err() {
                return;
            }
        }
    }
}
