//! The access log: one line per response.
//!
//! `format` parses `--access-log-format` (gunicorn's atoms) once; `record`
//! captures what a request's line shows, when the request starts and when
//! its response head is known, and writes the line (text, or one JSON
//! object) when the response ends; `sink` sends lines to the
//! `propylon.access` logger or, with `--access-logfile`, writes them to a
//! file from a thread of its own (no GIL, no line dropped); `tracked` is the
//! response-body wrapper that reports the end of a response, with the bytes
//! sent, to the access log and the metrics.
//!
//! What it does not do: configure Python `logging` (the bridge and
//! `propylon._logging` do), or count requests (`metrics`).

pub(crate) mod format;
pub(crate) mod record;
pub(crate) mod sink;
pub(crate) mod tracked;
