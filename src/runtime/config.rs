//! The server's settings, as the runtime uses them.
//!
//! Defaults are not defined here: they live in one place, `propylon.config.Config`
//! on the Python side, and arrive complete through the bridge (`crate::py::config`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::proto::body::BodyOptions;
use crate::proto::proxy::trust::TrustedPeers;
use crate::runtime::access_log::sink::AccessLog;
use crate::runtime::transport::tls::TlsSettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindAddr {
    /// Host as given (an IP literal or a name to resolve) and port (0: any).
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
}

/// HTTP/2 settings (RFC 9113 §6.5.2) and keep-alive pings.
#[derive(Debug, Clone)]
pub(crate) struct Http2Config {
    pub(crate) max_concurrent_streams: u32,
    pub(crate) initial_stream_window_size: u32,
    pub(crate) initial_connection_window_size: u32,
    pub(crate) max_frame_size: u32,
    pub(crate) max_header_list_size: u32,
    /// None: no keep-alive pings.
    pub(crate) keep_alive_interval: Option<Duration>,
    pub(crate) keep_alive_timeout: Duration,
    /// `--http2-push`: push a page's preloads that static mounts serve,
    /// where the client allows push (RFC 9113 §8.4).
    pub(crate) push: bool,
}

/// Which request bodies the server reads whole before the call, and the
/// memory they may hold together.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PrereadConfig {
    /// Bodies of at most this many bytes; 0: none.
    pub(crate) max_size: u64,
    /// The memory all bodies being read ahead, or read and not yet dropped,
    /// hold at once.
    pub(crate) memory_limit: u64,
}

/// `--buffer-body`: where the bodies read whole before the call are kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BufferConfig {
    /// The most of one body kept in memory; past it, the body goes to a
    /// temporary file.
    pub(crate) memory_limit: usize,
    /// The disk all those files hold at once.
    pub(crate) disk_limit: u64,
}

/// The minimum average rate of a request body, measured from its first
/// read once `grace` has passed (as Kestrel's `MinRequestBodyDataRate`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MinRate {
    /// 0: no minimum.
    pub(crate) bytes_per_second: u64,
    pub(crate) grace: Duration,
}

/// WebSocket limits and timers (`--websocket-*`).
#[derive(Debug, Clone)]
pub(crate) struct WebSocketConfig {
    /// The largest message received, after decompression (1009 beyond).
    pub(crate) max_message: usize,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) ping_timeout: Duration,
    /// How long the application's close waits for the client's.
    pub(crate) close_timeout: Duration,
    /// Bytes of outgoing messages queued per connection before `send` waits.
    pub(crate) send_queue: usize,
    /// Connections served by blocking handlers at once.
    pub(crate) threads: usize,
    /// permessage-deflate (RFC 7692) when offered.
    pub(crate) compression: bool,
}

/// Trusted proxies (`--forwarded-allow-ips`, `--proxy-headers`,
/// `--proxy-protocol`).
#[derive(Debug, Clone)]
pub(crate) struct ProxyConfig {
    /// The peers believed; Unix-socket peers always are.
    pub(crate) trusted: TrustedPeers,
    /// A trusted peer's `Forwarded` / `X-Forwarded-*` fields are applied.
    pub(crate) headers: bool,
    /// Every TCP connection starts with a PROXY protocol header.
    pub(crate) protocol: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ServerConfig {
    /// With `tls`, these listeners speak TLS; `insecure_binds` never do.
    pub(crate) binds: Vec<BindAddr>,
    pub(crate) insecure_binds: Vec<BindAddr>,
    pub(crate) tls: Option<TlsSettings>,
    pub(crate) http2: Http2Config,
    pub(crate) threads: usize,
    pub(crate) queue_size: usize,
    /// The longest a request waits in the queue for a free application
    /// thread; then it is answered 503. Always more than zero.
    pub(crate) queue_timeout: Duration,
    pub(crate) body: BodyOptions,
    /// Bodies read whole before the call (`request::body::spool`).
    pub(crate) buffer: BufferConfig,
    /// Request bodies read whole before the call (`request::body::preread`).
    pub(crate) preread: PrereadConfig,
    /// The slowest a request body may come (`request::body::preread::MinRate`).
    pub(crate) min_body_rate: MinRate,
    pub(crate) max_header_size: usize,
    pub(crate) max_headers: usize,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    /// A response the client takes no data from for this long closes its connection.
    pub(crate) send_timeout: Duration,
    pub(crate) graceful_timeout: Duration,
    /// One line per response (`--access-log`, `--access-logfile`): the
    /// format and where lines go, the file opened. None: no access log.
    pub(crate) access_log: Option<Arc<AccessLog>>,
    pub(crate) root_path: String,
    /// `--health-path`: answered by the runtime (`observe`).
    pub(crate) health_path: Option<String>,
    /// `--metrics-path`: the metrics on the application's listeners.
    pub(crate) metrics_path: Option<String>,
    /// `--metrics-bind`: a listener of its own for the metrics.
    pub(crate) metrics_bind: Option<BindAddr>,
    /// `--early-hints`: `103 Early Hints` go out (the application's
    /// preloads before its pages, and its own hints); off, none does.
    pub(crate) early_hints: bool,
    /// TCP congestion control of every TCP listener (Linux's
    /// `TCP_CONGESTION`); None: the system's default.
    pub(crate) tcp_congestion: Option<String>,
    /// `--backlog`: the length of each listener's queue of connections
    /// not yet accepted.
    pub(crate) backlog: i32,
    /// `--limit-concurrency`: the most connections served at once; None:
    /// no limit.
    pub(crate) limit_concurrency: Option<usize>,
    /// `--timeout`: an application job running longer is reported; None:
    /// never.
    pub(crate) stuck_timeout: Option<Duration>,
    pub(crate) proxies: ProxyConfig,
    pub(crate) websocket: WebSocketConfig,
}

#[cfg(test)]
impl ServerConfig {
    /// Settings for the runtime's own tests: small limits, no TLS, nothing
    /// read ahead or buffered, every timeout 60 s. Tests change what they test.
    pub(crate) fn for_tests() -> ServerConfig {
        let secs = Duration::from_secs;
        ServerConfig {
            binds: Vec::new(),
            insecure_binds: Vec::new(),
            tls: None,
            http2: Http2Config {
                max_concurrent_streams: 100,
                initial_stream_window_size: 65_535,
                initial_connection_window_size: 65_535,
                max_frame_size: 16_384,
                max_header_list_size: 16_384,
                keep_alive_interval: None,
                keep_alive_timeout: secs(20),
                push: false,
            },
            threads: 1,
            queue_size: 1,
            queue_timeout: secs(30),
            body: BodyOptions {
                decompress: false,
                max_body_size: 1 << 20,
                buffer: false,
            },
            buffer: BufferConfig {
                memory_limit: 0,
                disk_limit: 0,
            },
            preread: PrereadConfig {
                max_size: 0,
                memory_limit: 0,
            },
            min_body_rate: MinRate {
                bytes_per_second: 0,
                grace: secs(5),
            },
            max_header_size: 8192,
            max_headers: 100,
            keep_alive_timeout: secs(60),
            header_timeout: secs(60),
            body_timeout: secs(60),
            send_timeout: secs(60),
            graceful_timeout: secs(5),
            access_log: None,
            root_path: String::new(),
            health_path: None,
            metrics_path: None,
            metrics_bind: None,
            early_hints: true,
            tcp_congestion: None,
            backlog: 128,
            limit_concurrency: None,
            stuck_timeout: None,
            proxies: ProxyConfig {
                trusted: TrustedPeers::Networks(Vec::new()),
                headers: true,
                protocol: false,
            },
            websocket: WebSocketConfig {
                max_message: 1 << 20,
                ping_interval: None,
                ping_timeout: secs(20),
                close_timeout: secs(10),
                send_queue: 1 << 20,
                threads: 4,
                compression: true,
            },
        }
    }
}
