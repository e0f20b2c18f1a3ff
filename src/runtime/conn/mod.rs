//! HTTP connections, from the accepted socket to the close: the connection
//! task (`task`), the server's own HTTP/1.1 loop (`h1`), HTTP/2 on the `h2`
//! crate with its streams polled in the connection's task (`h2`), the h2c upgrade
//! (`h2c`), and the watchers beside each connection (`with_watchers`).
//!
//! What it does not do: handle a request (`request`) or touch the transport's
//! bytes below HTTP (`transport`).

pub(crate) mod context;
pub(crate) mod h1;
pub(crate) mod h1_body;
pub(crate) mod h2;
pub(crate) mod h2c;
pub(crate) mod task;
pub(crate) mod with_watchers;
