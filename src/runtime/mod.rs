//! The HTTP runtime: tokio, h2 and rustls. No Python here.
//!
//! `server` binds and accepts and shuts down; each connection is a task of
//! `conn` over a `transport`; each request goes through `request::service` to
//! an `endpoint`, whose work runs on the `pool` (or, for `static_files`, on
//! tokio's blocking pool); `access_log` writes one line
//! per response, `metrics` counts requests and connections for every worker,
//! `observe` answers the health and metrics paths, `timers` watch each
//! connection, `config` holds the settings.

pub(crate) mod access_log;
pub(crate) mod config;
pub(crate) mod conn;
pub(crate) mod control;
pub(crate) mod endpoint;
pub(crate) mod metrics;
pub(crate) mod observe;
pub(crate) mod pool;
pub(crate) mod request;
pub(crate) mod scheduling;
pub(crate) mod server;
pub(crate) mod static_files;
pub(crate) mod timers;
pub(crate) mod transport;
pub(crate) mod watchdog;
pub(crate) mod websocket;
