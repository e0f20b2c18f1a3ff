//! The server's settings, as the runtime uses them.
//!
//! Defaults are not defined here: they live in one place, `propylon.config.Config`
//! on the Python side, and arrive complete through the bridge (`crate::py::config`).

use std::path::PathBuf;
use std::time::Duration;

use crate::proto::body::BodyOptions;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    /// Host as given (an IP literal or a name to resolve) and port (0: any).
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub binds: Vec<BindAddr>,
    pub threads: usize,
    pub queue_size: usize,
    pub body: BodyOptions,
    pub buffer_memory_limit: usize,
    pub max_header_size: usize,
    pub max_headers: usize,
    pub keep_alive_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub graceful_timeout: Duration,
    pub access_log: bool,
    pub root_path: String,
}
