//! `propylon.config.Config` into `ServerConfig`: the one crossing of settings.
//!
//! Every field is read by attribute name; none has a default here (the
//! defaults live in `propylon/config.py` alone). A missing attribute is a bug in
//! the caller and surfaces as Python's own AttributeError.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;

use crate::proto::body::BodyOptions;
use crate::runtime::config::{BindAddr, Http2Config, ServerConfig};
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
    threads: usize,
    queue_size: usize,
    max_body_size: u64,
    decompress: bool,
    buffer_body: bool,
    buffer_memory_limit: usize,
    max_header_size: usize,
    max_headers: usize,
    keep_alive_timeout: f64,
    header_timeout: f64,
    body_timeout: f64,
    send_timeout: f64,
    graceful_timeout: f64,
    access_log: bool,
    root_path: String,
    tcp_congestion: Option<String>,
}

pub fn extract(config: &Bound<'_, PyAny>) -> PyResult<ServerConfig> {
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
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let tls = match (c.certfile, c.keyfile) {
        (Some(certfile), Some(keyfile)) => Some(TlsSettings {
            certfile: certfile.into(),
            keyfile: keyfile.into(),
            keyfile_password: c.keyfile_password,
            ca_certs: c.ca_certs.map(PathBuf::from),
            client_cert: match c.client_cert.as_str() {
                "optional" => ClientCert::Optional,
                "required" => ClientCert::Required,
                _ => ClientCert::None,
            },
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
            keep_alive_interval: (c.h2_keep_alive_interval > 0.0)
                .then(|| secs(c.h2_keep_alive_interval)),
            keep_alive_timeout: secs(c.h2_keep_alive_timeout),
        },
        threads: c.threads,
        queue_size: c.queue_size,
        body: BodyOptions {
            decompress: c.decompress,
            max_body_size: c.max_body_size,
            buffer: c.buffer_body,
        },
        buffer_memory_limit: c.buffer_memory_limit,
        max_header_size: c.max_header_size,
        max_headers: c.max_headers,
        keep_alive_timeout: secs(c.keep_alive_timeout),
        header_timeout: secs(c.header_timeout),
        body_timeout: secs(c.body_timeout),
        send_timeout: secs(c.send_timeout),
        graceful_timeout: secs(c.graceful_timeout),
        access_log: c.access_log,
        root_path: c.root_path,
        tcp_congestion: c.tcp_congestion,
    })
}
