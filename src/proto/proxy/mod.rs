//! What a trusted proxy in front of the server says about the client.
//!
//! - [`trust`]: which peers are trusted proxies (`--forwarded-allow-ips`).
//! - [`forwarded`]: the client, scheme and host a trusted proxy's
//!   `Forwarded` (RFC 7239) or `X-Forwarded-*` fields name.
//! - [`protocol`]: HAProxy's PROXY protocol header, versions 1 and 2, read
//!   at the start of a connection.
//!
//! What it does not do: decide whom to ask (the runtime checks the peer
//! against [`trust::TrustedPeers`] before it reads anything here), read
//! sockets, or build the environ (`proto::wsgi::environ` applies a
//! [`forwarded::Forwarded`]).

pub(crate) mod forwarded;
pub(crate) mod protocol;
pub(crate) mod trust;
