//! The HTTP runtime: tokio, hyper and hyper-util. No Python here.
//!
//! `server` binds and accepts, `service` turns a request into a `Call` for an
//! `exchange::Application` and its reply into a response, `body` reads request
//! bodies, `response` holds the response body types, `pool` runs blocking
//! application work, `access_log` writes one line per response.

pub mod access_log;
pub mod activity;
pub mod body;
pub mod config;
pub mod detect;
pub mod exchange;
pub mod h2c;
pub mod h2guard;
pub mod pool;
pub mod response;
pub mod sendfile;
pub mod server;
pub mod service;
pub mod tls;
