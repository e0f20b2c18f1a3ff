//! `propylon.config.Config` into `ServerConfig`: the one crossing of settings.
//!
//! Every field is read by attribute name; none has a default here (each option
//! is declared once, with its default, in `propylon/config.py`). A missing
//! attribute is a bug in the caller and surfaces as Python's own AttributeError.
//! Enumerated values become Rust enums here, once: a value outside the set is a
//! `ValueError`, never a silent fallback. Seconds become `Duration`s here, and a
//! number of seconds no `Duration` can hold is a `ValueError`, not a panic.
//!
//! It does not check what `Config` already checked (ranges, TLS file pairs).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::proto::body::BodyOptions;
use crate::proto::proxy::trust::TrustedPeers;
use crate::runtime::access_log::format::AccessFormat;
use crate::runtime::access_log::sink::{AccessLog, Destination};
use crate::runtime::config::{
    BindAddr, BufferConfig, Http2Config, MinRate, PrereadConfig, ProxyConfig, ServerConfig,
    WebSocketConfig,
};
use crate::runtime::transport::tls::{ClientCert, TlsSettings};

#[derive(FromPyObject)]
struct PyBind {
    host: Option<String>,
    port: Option<u16>,
    path: Option<String>,
}

#[derive(FromPyObject)]
struct PyConfig {
    binds: Vec<PyBind>,
    insecure_binds: Vec<PyBind>,
    certfile: Option<String>,
    keyfile: Option<String>,
    keyfile_password: Option<String>,
    ca_certs: Option<String>,
    client_cert: String,
    h2_max_concurrent_streams: u32,
    h2_initial_stream_window_size: u32,
    h2_initial_connection_window_size: u32,
    h2_max_frame_size: u32,
    h2_max_header_list_size: u32,
    h2_keep_alive_interval: f64,
    h2_keep_alive_timeout: f64,
    http2_push: bool,
    threads: usize,
    queue_size: usize,
    queue_timeout: f64,
    max_body_size: u64,
    decompress: bool,
    buffer_body: bool,
    buffer_memory_limit: usize,
    buffer_disk_limit: u64,
    preread_body_size: u64,
    preread_memory_limit: u64,
    min_body_rate: u64,
    min_body_rate_grace: f64,
    max_header_size: usize,
    max_headers: usize,
    keep_alive_timeout: f64,
    header_timeout: f64,
    body_timeout: f64,
    send_timeout: f64,
    graceful_timeout: f64,
    access_log: bool,
    access_log_format: String,
    access_log_json: bool,
    access_logfile: Option<String>,
    root_path: String,
    health_path: Option<String>,
    metrics_path: Option<String>,
    metrics_bind: Option<PyBind>,
    early_hints: bool,
    tcp_congestion: Option<String>,
    backlog: i32,
    limit_concurrency: usize,
    timeout: f64,
    forwarded_allow_ips: String,
    proxy_headers: bool,
    proxy_protocol: bool,
    websocket_max_message: usize,
    websocket_ping_interval: f64,
    websocket_ping_timeout: f64,
    websocket_close_timeout: f64,
    websocket_send_queue: usize,
    websocket_threads: usize,
    websocket_compression: bool,
}

pub(crate) fn extract(config: &Bound<'_, PyAny>) -> PyResult<ServerConfig> {
    let c: PyConfig = config.extract()?;
    let binds = |binds: Vec<PyBind>| -> Vec<BindAddr> {
        binds
            .into_iter()
            .map(|b| match (b.path, b.host) {
                (Some(path), _) => BindAddr::Unix(PathBuf::from(path)),
                (None, host) => BindAddr::Tcp {
                    host: host.unwrap_or_else(|| "127.0.0.1".into()),
                    port: b.port.unwrap_or(0),
                },
            })
            .collect()
    };
    let client_cert = client_cert(&c.client_cert)?;
    let access_log = access_log(
        c.access_log,
        &c.access_log_format,
        c.access_log_json,
        c.access_logfile,
    )?;
    let metrics_bind = c.metrics_bind.map(|b| binds(vec![b]).remove(0));
    let tls = match (c.certfile, c.keyfile) {
        (Some(certfile), Some(keyfile)) => Some(TlsSettings {
            certfile: certfile.into(),
            keyfile: keyfile.into(),
            keyfile_password: c.keyfile_password,
            ca_certs: c.ca_certs.map(PathBuf::from),
            client_cert,
        }),
        _ => None,
    };
    Ok(ServerConfig {
        binds: binds(c.binds),
        insecure_binds: binds(c.insecure_binds),
        tls,
        http2: Http2Config {
            max_concurrent_streams: c.h2_max_concurrent_streams,
            initial_stream_window_size: c.h2_initial_stream_window_size,
            initial_connection_window_size: c.h2_initial_connection_window_size,
            max_frame_size: c.h2_max_frame_size,
            max_header_list_size: c.h2_max_header_list_size,
            keep_alive_interval: match c.h2_keep_alive_interval {
                0.0 => None,
                s => Some(secs("h2_keep_alive_interval", s)?),
            },
            keep_alive_timeout: secs("h2_keep_alive_timeout", c.h2_keep_alive_timeout)?,
            push: c.http2_push,
        },
        threads: c.threads,
        queue_size: c.queue_size,
        queue_timeout: secs("queue_timeout", c.queue_timeout)?,
        body: BodyOptions {
            decompress: c.decompress,
            max_body_size: c.max_body_size,
            buffer: c.buffer_body,
        },
        buffer: BufferConfig {
            memory_limit: c.buffer_memory_limit,
            disk_limit: c.buffer_disk_limit,
        },
        preread: PrereadConfig {
            max_size: c.preread_body_size,
            memory_limit: c.preread_memory_limit,
        },
        min_body_rate: MinRate {
            bytes_per_second: c.min_body_rate,
            grace: secs("min_body_rate_grace", c.min_body_rate_grace)?,
        },
        max_header_size: c.max_header_size,
        max_headers: c.max_headers,
        keep_alive_timeout: secs("keep_alive_timeout", c.keep_alive_timeout)?,
        header_timeout: secs("header_timeout", c.header_timeout)?,
        body_timeout: secs("body_timeout", c.body_timeout)?,
        send_timeout: secs("send_timeout", c.send_timeout)?,
        graceful_timeout: secs("graceful_timeout", c.graceful_timeout)?,
        access_log,
        root_path: c.root_path,
        health_path: c.health_path,
        metrics_path: c.metrics_path,
        metrics_bind,
        early_hints: c.early_hints,
        tcp_congestion: c.tcp_congestion,
        backlog: c.backlog,
        limit_concurrency: (c.limit_concurrency > 0).then_some(c.limit_concurrency),
        stuck_timeout: match c.timeout {
            0.0 => None,
            s => Some(secs("timeout", s)?),
        },
        proxies: ProxyConfig {
            trusted: TrustedPeers::parse(&c.forwarded_allow_ips)
                .map_err(|e| PyValueError::new_err(format!("forwarded_allow_ips: {e}")))?,
            headers: c.proxy_headers,
            protocol: c.proxy_protocol,
        },
        websocket: WebSocketConfig {
            max_message: c.websocket_max_message,
            ping_interval: match c.websocket_ping_interval {
                0.0 => None,
                s => Some(secs("websocket_ping_interval", s)?),
            },
            ping_timeout: secs("websocket_ping_timeout", c.websocket_ping_timeout)?,
            close_timeout: secs("websocket_close_timeout", c.websocket_close_timeout)?,
            send_queue: c.websocket_send_queue,
            threads: c.websocket_threads,
            compression: c.websocket_compression,
        },
    })
}

/// The access log, when on: `--access-logfile` turns it on too (`-` is
/// stdout); without a file, lines go to the `propylon.access` logger. The
/// file is opened here: an error names it.
fn access_log(
    on: bool,
    format: &str,
    json: bool,
    file: Option<String>,
) -> PyResult<Option<Arc<AccessLog>>> {
    let destination = match file.as_deref() {
        None if !on => return Ok(None),
        None => Destination::Logger,
        Some("-") => Destination::Stdout,
        Some(path) => Destination::File(PathBuf::from(path)),
    };
    let format = AccessFormat::parse(format)
        .map_err(|e| PyValueError::new_err(format!("access_log_format: {e}")))?;
    let log = AccessLog::open(format, json, destination)
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
    Ok(Some(Arc::new(log)))
}

/// `client_cert` as `Config` spells it (`CLIENT_CERT_MODES`).
fn client_cert(mode: &str) -> PyResult<ClientCert> {
    match mode {
        "none" => Ok(ClientCert::None),
        "optional" => Ok(ClientCert::Optional),
        "required" => Ok(ClientCert::Required),
        other => Err(PyValueError::new_err(format!(
            "client_cert must be one of none, optional, required; got {other:?}"
        ))),
    }
}

fn secs(name: &str, seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a number of seconds a timer can hold; got {seconds}"
        ))
    })
}
