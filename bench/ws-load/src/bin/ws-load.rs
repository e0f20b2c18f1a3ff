//! ws-load: the bench's WebSocket load generator. It owns opening the
//! connections, the echo loop (send a message, wait for its echo, K at a time
//! per connection), checking every echo byte for byte, the latency histogram
//! and its own CPU time; and, with `--idle N`, holding N open connections
//! for a memory measurement. It does not start servers, pin CPUs or judge
//! results: bench/bench.py does.
//!
//! ```text
//! ws-load --url ws://127.0.0.1:PORT/echo --connections N --size BYTES --duration SECS
//!         [--warmup SECS] [--text|--binary] [--pipeline K] [--threads W] [--sources S] [--read-buffer BYTES]
//! ws-load --url ws://127.0.0.1:PORT/echo --idle N [--deadline SECS] [--in-flight M] [--sources S]
//! ```
//!
//! Echo mode prints one JSON line when the measured window ends:
//! `{"mode":"echo","messages":..,"seconds":..,"messages_per_s":..,"errors":..,
//! "latency_p50_ms":..,"latency_p99_ms":..,"cpu_seconds":..,"cpu_share":..,...}`.
//! Only echoes that arrive inside the window count (not the warm-up's);
//! `cpu_seconds` is this process's user + system time over the same window
//! (getrusage), `cpu_share` that over the window's wall time, so that a
//! saturated generator shows itself (its worker threads are the `--threads`).
//!
//! Idle mode follows bench/idle_client.py's protocol: once every handshake
//! is done (or `--deadline` passed) it prints
//! `{"event":"ready","target":N,"opened":n,"failed":f,"seconds":s}`, then
//! reads lines on stdin: `check` prints `{"event":"held","held":n}` (the
//! connections the server has not closed); `close`, end of input or SIGTERM
//! closes them all (code 1000, for at most two seconds) and exits. Held
//! connections answer the server's pings (tungstenite does on every read)
//! and send nothing else.
//!
//! Connections use no extension (no permessage-deflate): tokio-tungstenite
//! offers none. tungstenite zero-fills its whole read buffer before every
//! read(2), the ones that find nothing included, so the buffer is sized to
//! the message (`--read-buffer`, default the message and its frame header
//! rounded up to a power of two, at least 4 KiB): with its default of
//! 128 KiB, half of this generator's CPU time went to that memset. `--sources S` binds the connections round-robin to
//! 127.0.0.1 .. 127.0.0.S, for when one source address runs out of ports.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

const USAGE: &str =
    "usage: ws-load --url ws://HOST:PORT/PATH (--connections N --size BYTES --duration SECS \
[--warmup SECS] [--text|--binary] [--pipeline K] | --idle N [--deadline SECS] [--in-flight M]) \
[--threads W] [--sources S] [--read-buffer BYTES]";

struct Options {
    url: String,
    addr: SocketAddr,
    connections: usize,
    size: usize,
    duration: f64,
    warmup: f64,
    text: bool,
    pipeline: usize,
    threads: usize,
    idle: Option<usize>,
    deadline: f64,
    in_flight: usize,
    sources: u8,
    read_buffer: Option<usize>,
}

fn parse_options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let mut options = Options {
        url: String::new(),
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        connections: 16,
        size: 32,
        duration: 10.0,
        warmup: 0.0,
        text: false,
        pipeline: 1,
        threads: 1,
        idle: None,
        deadline: 30.0,
        in_flight: 64,
        sources: 1,
        read_buffer: None,
    };
    fn value<T: std::str::FromStr>(name: &str, text: Option<String>) -> Result<T, String> {
        let text = text.ok_or_else(|| format!("{name} needs a value"))?;
        text.parse()
            .map_err(|_| format!("{name}: not a valid value: {text:?}"))
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => url = Some(value::<String>(&arg, args.next())?),
            "--connections" => options.connections = value(&arg, args.next())?,
            "--size" => options.size = value(&arg, args.next())?,
            "--duration" => options.duration = value(&arg, args.next())?,
            "--warmup" => options.warmup = value(&arg, args.next())?,
            "--text" => options.text = true,
            "--binary" => options.text = false,
            "--pipeline" => options.pipeline = value(&arg, args.next())?,
            "--threads" => options.threads = value(&arg, args.next())?,
            "--idle" => options.idle = Some(value(&arg, args.next())?),
            "--deadline" => options.deadline = value(&arg, args.next())?,
            "--in-flight" => options.in_flight = value(&arg, args.next())?,
            "--sources" => options.sources = value(&arg, args.next())?,
            "--read-buffer" => options.read_buffer = Some(value(&arg, args.next())?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    options.url = url.ok_or_else(|| format!("--url is required\n{USAGE}"))?;
    let rest = options
        .url
        .strip_prefix("ws://")
        .ok_or("--url must start with ws:// (no TLS here)")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    options.addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("--url: cannot resolve {authority:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--url: {authority:?} has no address"))?;
    if options.connections == 0
        || options.pipeline == 0
        || options.threads == 0
        || options.in_flight == 0
    {
        return Err(
            "--connections, --pipeline, --threads and --in-flight must be at least 1".into(),
        );
    }
    if options.size == 0
        || options.sources == 0
        || options.duration <= 0.0
        || options.read_buffer == Some(0)
    {
        return Err("--size, --sources, --duration and --read-buffer must be positive".into());
    }
    Ok(options)
}

impl Options {
    /// tungstenite's read buffer per connection: `--read-buffer`, else 4 KiB
    /// for idle connections, else the echoed message with its frame header
    /// (at most 14 bytes, RFC 6455 §5.2), rounded up to a power of two.
    fn read_buffer_size(&self) -> usize {
        match (self.read_buffer, self.idle) {
            (Some(bytes), _) => bytes,
            (None, Some(_)) => 4096,
            (None, None) => (self.size + 14).next_power_of_two().max(4096),
        }
    }
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("ws-load: {message}");
            std::process::exit(2);
        }
    };
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        let options = Arc::new(options);
        match options.idle {
            Some(count) => idle(options.clone(), count).await,
            None => echo(options.clone()).await,
        }
    });
    // Idle connections are not closed one by one: the server sees them drop.
    std::process::exit(code);
}

fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// User + system CPU seconds of this process so far (all threads).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// One connection: TCP (from source address `index % sources`), then the handshake.
async fn connect(options: &Options, index: usize) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    if options.sources > 1 {
        let source = Ipv4Addr::new(127, 0, 0, 1 + (index % options.sources as usize) as u8);
        socket
            .bind(SocketAddr::from((source, 0)))
            .map_err(|e| format!("bind {source}: {e}"))?;
    }
    let stream = socket
        .connect(options.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    let config = WebSocketConfig::default().read_buffer_size(options.read_buffer_size());
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(options.url.as_str(), stream, Some(config))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

/// Opens `count` connections, at most `in_flight` handshakes at a time, until `deadline`.
/// Returns the open ones and the first errors.
async fn open_all(
    options: &Arc<Options>,
    count: usize,
    deadline: Instant,
) -> (Vec<Ws>, usize, Vec<String>) {
    let gate = Arc::new(Semaphore::new(options.in_flight));
    let mut tasks = Vec::with_capacity(count);
    for index in 0..count {
        let (options, gate) = (options.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            match tokio::time::timeout_at(deadline.into(), connect(&options, index)).await {
                Ok(result) => result,
                Err(_) => Err("deadline passed before the handshake completed".to_string()),
            }
        }));
    }
    let (mut open, mut failed, mut errors) = (Vec::with_capacity(count), 0, Vec::new());
    for task in tasks {
        match task.await.expect("connect task") {
            Ok(ws) => open.push(ws),
            Err(error) => {
                failed += 1;
                if errors.len() < 3 {
                    errors.push(error);
                }
            }
        }
    }
    (open, failed, errors)
}

// ---------------------------------------------------------------------------
// Echo mode
// ---------------------------------------------------------------------------

const WARMUP: u8 = 0;
const MEASURING: u8 = 1;
const DONE: u8 = 2;

/// The first bytes of every message name its connection and sequence number,
/// so that an echo of another message (or of this one, altered) is an error.
fn header(connection: usize, seq: u64) -> [u8; 16] {
    let mut out = [b' '; 16];
    let text = format!("{:06x}:{:08x}", connection & 0xff_ffff, seq & 0xffff_ffff);
    out[..15].copy_from_slice(text.as_bytes());
    out
}

struct Payload {
    base: Vec<u8>,
    text: bool,
}

impl Payload {
    fn new(size: usize, text: bool) -> Payload {
        // Printable ASCII: valid UTF-8 for text messages, the same bytes for binary ones.
        let base = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        Payload { base, text }
    }

    fn message(&self, connection: usize, seq: u64) -> Message {
        let mut bytes = self.base.clone();
        let head = header(connection, seq);
        let n = head.len().min(bytes.len());
        bytes[..n].copy_from_slice(&head[..n]);
        if self.text {
            Message::Text(Utf8Bytes::from(String::from_utf8(bytes).expect("ASCII")))
        } else {
            Message::Binary(Bytes::from(bytes))
        }
    }

    /// The echo of message (connection, seq): same kind, same bytes.
    fn matches(&self, message: &Message, connection: usize, seq: u64) -> bool {
        let data: &[u8] = match message {
            Message::Text(text) if self.text => text.as_bytes(),
            Message::Binary(data) if !self.text => data,
            _ => return false,
        };
        let head = header(connection, seq);
        let n = head.len().min(self.base.len());
        data.len() == self.base.len() && data[..n] == head[..n] && data[n..] == self.base[n..]
    }
}

/// Latency histogram in microseconds: exact below 128 µs, then 64 buckets per
/// power of two (under 1.6 % error).
struct Histogram {
    counts: Vec<u64>,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; 64 * 66],
        }
    }

    fn index(micros: u64) -> usize {
        if micros < 128 {
            return micros as usize;
        }
        let shift = 63 - micros.leading_zeros() as usize - 6;
        shift * 64 + (micros >> shift) as usize
    }

    fn value(index: usize) -> f64 {
        if index < 128 {
            return index as f64;
        }
        let shift = index / 64 - 1;
        let low = ((index % 64 + 64) as u64) << shift;
        low as f64 + (1u64 << shift) as f64 / 2.0
    }

    fn record(&mut self, elapsed: Duration) {
        self.counts[Self::index(elapsed.as_micros() as u64)] += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// The value at quantile q (0..1), in milliseconds; NaN when empty.
    fn quantile_ms(&self, q: f64) -> f64 {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return f64::NAN;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value(index) / 1000.0;
            }
        }
        f64::NAN
    }
}

struct Stats {
    messages: u64,
    mismatches: u64,
    unexpected: u64,
    /// Why the connection ended before the measurement did, if it did.
    ended: Option<String>,
    histogram: Histogram,
}

async fn echo_loop(
    ws: &mut Ws,
    stats: &mut Stats,
    payload: &Payload,
    connection: usize,
    pipeline: usize,
    phase: &AtomicU8,
) {
    let mut pending: VecDeque<(u64, Instant)> = VecDeque::with_capacity(pipeline);
    let mut seq = 0u64;
    for _ in 0..pipeline {
        if let Err(e) = ws.feed(payload.message(connection, seq)).await {
            stats.ended = Some(format!("send: {e}"));
            return;
        }
        pending.push_back((seq, Instant::now()));
        seq += 1;
    }
    if let Err(e) = ws.flush().await {
        stats.ended = Some(format!("send: {e}"));
        return;
    }
    loop {
        let message = match ws.next().await {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                stats.ended = Some(format!("receive: {e}"));
                return;
            }
            None => {
                stats.ended = Some("closed by the server".into());
                return;
            }
        };
        match message {
            Message::Text(_) | Message::Binary(_) => {}
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Close(frame) => {
                stats.ended = Some(format!("close frame from the server: {frame:?}"));
                return;
            }
        }
        let Some((expected, sent)) = pending.pop_front() else {
            stats.unexpected += 1;
            continue;
        };
        if !payload.matches(&message, connection, expected) {
            stats.mismatches += 1;
        }
        match phase.load(Ordering::Relaxed) {
            MEASURING => {
                stats.messages += 1;
                stats.histogram.record(sent.elapsed());
            }
            DONE => return,
            _ => {}
        }
        if let Err(e) = ws.send(payload.message(connection, seq)).await {
            stats.ended = Some(format!("send: {e}"));
            return;
        }
        pending.push_back((seq, Instant::now()));
        seq += 1;
    }
}

async fn echo(options: Arc<Options>) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (connections, failed, connect_errors) =
        open_all(&options, options.connections, deadline).await;
    if connections.is_empty() {
        println!(
            "{{\"mode\":\"echo\",\"connections\":0,\"connect_errors\":{failed},\"why\":{}}}",
            json_string(&connect_errors.join("; "))
        );
        return 1;
    }
    let payload = Arc::new(Payload::new(options.size, options.text));
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let (done_tx, done_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(connections.len());
    for (index, mut ws) in connections.into_iter().enumerate() {
        let (payload, phase, mut done_rx) = (payload.clone(), phase.clone(), done_rx.clone());
        let pipeline = options.pipeline;
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats {
                messages: 0,
                mismatches: 0,
                unexpected: 0,
                ended: None,
                histogram: Histogram::new(),
            };
            let finished = {
                let run = echo_loop(&mut ws, &mut stats, &payload, index, pipeline, &phase);
                tokio::select! {
                    _ = run => false,
                    _ = done_rx.wait_for(|done| *done) => true,
                }
            };
            // A connection that ended before the window closed was lost (stats.ended says why).
            if finished || phase.load(Ordering::Relaxed) == DONE {
                stats.ended = None;
                // A normal close (1000), so that servers log no error; the
                // server's close frame (and echoes still in flight) are read
                // until it drops the connection, for at most a second.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    if ws.close(None).await.is_ok() {
                        while let Some(Ok(_)) = ws.next().await {}
                    }
                })
                .await;
            }
            stats
        }));
    }
    drop(done_rx);
    tokio::time::sleep(Duration::from_secs_f64(options.warmup)).await;
    let (cpu_start, start) = (cpu_seconds(), Instant::now());
    phase.store(MEASURING, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(options.duration)).await;
    phase.store(DONE, Ordering::Relaxed);
    let (cpu_end, seconds) = (cpu_seconds(), start.elapsed().as_secs_f64());
    let _ = done_tx.send(true); // then every connection closes (1000)

    let mut histogram = Histogram::new();
    let (mut messages, mut mismatches, mut unexpected, mut lost) = (0u64, 0u64, 0u64, 0u64);
    let mut lost_reasons = Vec::new();
    for task in tasks {
        let stats = task.await.expect("echo task");
        messages += stats.messages;
        mismatches += stats.mismatches;
        unexpected += stats.unexpected;
        histogram.merge(&stats.histogram);
        if let Some(reason) = stats.ended {
            lost += 1;
            if lost_reasons.len() < 3 {
                lost_reasons.push(reason);
            }
        }
    }
    let errors = mismatches + unexpected + lost + failed as u64;
    let cpu = cpu_end - cpu_start;
    lost_reasons.extend(connect_errors.iter().map(|e| format!("connect: {e}")));
    println!(
        "{{\"mode\":\"echo\",\"connections\":{},\"size\":{},\"kind\":\"{}\",\"pipeline\":{},\"threads\":{},\
\"messages\":{messages},\"seconds\":{seconds:.4},\"messages_per_s\":{:.1},\"errors\":{errors},\
\"mismatches\":{mismatches},\"unexpected\":{unexpected},\"connections_lost\":{lost},\"connect_errors\":{failed},\
\"latency_p50_ms\":{},\"latency_p99_ms\":{},\"cpu_seconds\":{cpu:.4},\"cpu_share\":{:.4},\"why\":{}}}",
        options.connections,
        options.size,
        if options.text { "text" } else { "binary" },
        options.pipeline,
        options.threads,
        messages as f64 / seconds,
        json_number(histogram.quantile_ms(0.50)),
        json_number(histogram.quantile_ms(0.99)),
        cpu / seconds,
        json_string(&lost_reasons.join("; ")),
    );
    0
}

fn json_number(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "null".into()
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------
// Idle mode
// ---------------------------------------------------------------------------

async fn idle(options: Arc<Options>, count: usize) -> i32 {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(options.deadline);
    let (connections, failed, errors) = open_all(&options, count, deadline).await;
    let open = Arc::new(AtomicUsize::new(connections.len()));
    let opened = connections.len();
    let (close_tx, close_rx) = watch::channel(false);
    for mut ws in connections {
        let (open, mut close_rx) = (open.clone(), close_rx.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    // Reading answers the server's pings; anything that ends the stream is a close.
                    message = ws.next() => match message {
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                        Some(Ok(_)) => {}
                    },
                    // A normal close (1000) at the end, not 10,000 dropped connections.
                    _ = close_rx.changed() => {
                        let _ = ws.close(None).await;
                        break;
                    }
                }
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(close_rx);
    println!(
        "{{\"event\":\"ready\",\"target\":{count},\"opened\":{opened},\"failed\":{failed},\"seconds\":{:.3},\"errors\":{}}}",
        started.elapsed().as_secs_f64(),
        json_string(&errors.join("; "))
    );
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) if line.trim() == "check" => {
                    println!("{{\"event\":\"held\",\"held\":{}}}", open.load(Ordering::Relaxed));
                }
                Ok(Some(line)) if line.trim() != "close" => {}
                _ => break,
            },
            _ = terminate.recv() => break,
        }
    }
    // Every connection sends its close frame, for at most two seconds in all.
    let _ = close_tx.send(true);
    let until = Instant::now() + Duration::from_secs(2);
    while open.load(Ordering::Relaxed) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    0
}
