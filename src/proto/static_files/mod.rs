//! Static files: the rules that decide what a request to a static mount
//! gets, as pure functions of the request's head and of what the file system
//! said about the file.
//!
//! - [`path`]: the request path -> a path relative to the mount's directory,
//!   a redirect, or a refusal (traversal, NUL, backslashes, dotfiles).
//! - [`conditional`]: validators (`ETag`, `Last-Modified`) and the
//!   preconditions of RFC 9110 §13 (304, 412).
//! - [`range`]: `Range` and `If-Range` (RFC 9110 §14): 206, multipart
//!   byte ranges, 416.
//! - [`coding`]: the precompressed sibling chosen by `Accept-Encoding`
//!   (RFC 9110 §12.5.3).
//! - [`media`]: `Content-Type` from a file name, and the methods served.
//!
//! What it does not do: touch the file system, or know how a body is sent
//! (`runtime::static_files` opens the files and sends them).

pub(crate) mod coding;
pub(crate) mod conditional;
pub(crate) mod media;
pub(crate) mod path;
pub(crate) mod range;
