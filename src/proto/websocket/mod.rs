//! The WebSocket protocol's rules (RFC 6455, RFC 7692, RFC 8441), without
//! I/O.
//!
//! What it owns: the opening handshake's checks and answer
//! ([`handshake`]), permessage-deflate negotiation ([`deflate`]), messages
//! from data frames and the rules on close codes ([`message`]). What it does
//! not do: frames. The frame codec (yawc, driven by `src/runtime`) parses and
//! writes frames, masks, checks reserved bits, opcodes, control frames and
//! close codes, answers pings and inflates or deflates each frame with the
//! agreed extension value; the runtime runs the sessions and their timers.

pub(crate) mod deflate;
pub(crate) mod handshake;
mod list;
pub(crate) mod message;
