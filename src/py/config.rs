//! `propylon.config.Config` into `ServerConfig`: the one crossing of settings.
//!
//! Every field is read by attribute name; none has a default here (the
//! defaults live in `propylon/config.py` alone). A missing attribute is a bug in
//! the caller and surfaces as Python's own AttributeError.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;

use crate::proto::body::BodyOptions;
use crate::runtime::config::{BindAddr, ServerConfig};

#[derive(FromPyObject)]
struct PyBind {
    host: Option<String>,
    port: Option<u16>,
    path: Option<String>,
}

#[derive(FromPyObject)]
struct PyConfig {
    binds: Vec<PyBind>,
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
    graceful_timeout: f64,
    access_log: bool,
    root_path: String,
}

pub fn extract(config: &Bound<'_, PyAny>) -> PyResult<ServerConfig> {
    let c: PyConfig = config.extract()?;
    let binds = c
        .binds
        .into_iter()
        .map(|b| match (b.path, b.host) {
            (Some(path), _) => BindAddr::Unix(PathBuf::from(path)),
            (None, host) => BindAddr::Tcp {
                host: host.unwrap_or_else(|| "127.0.0.1".into()),
                port: b.port.unwrap_or(0),
            },
        })
        .collect();
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    Ok(ServerConfig {
        binds,
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
        graceful_timeout: secs(c.graceful_timeout),
        access_log: c.access_log,
        root_path: c.root_path,
    })
}
