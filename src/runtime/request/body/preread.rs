//! Small request bodies, read whole before the application is called.
//!
//! What it does: `preread` reads a body from an HTTP/2 stream (`H2Body`)
//! or from the own HTTP/1.1 path's channel, asynchronously, in the task of
//! its connection or stream: no thread, OS or Python, waits for a slow
//! client. A body that ends within
//! the limit becomes a memory body (`Source::Held`); one that goes past it
//! is handed on as it is, the bytes read first ahead of the rest
//! (`Source::Prefixed`). Each wait ends at the body timeout or when the
//! body falls below the minimum rate (the source's `BodyClock`, which goes
//! on counting when the application reads the rest). A body is read ahead
//! only under a `Reservation` of the memory budget (`budget`).
//!
//! What it does not do: choose which bodies are read ahead
//! (`request::service`), or decode them (`reader` does, and counts the
//! decoded bytes against the maximum body size, as the application reads).

use bytes::BytesMut;

use super::budget::Reservation;
use super::reader::Source;
use super::BodyError;

/// Read `source` (an HTTP/2 body, or a channel body) up to `limit` bytes.
/// The body, whole in memory under `reservation`; or, past `limit`, the
/// bytes read so far ahead of the rest, to be streamed. Past
/// `max_body_size` (raw bytes) it is `TooLarge` at once. An error gives the
/// source up (its rest is not drained: the connection closes).
pub(crate) async fn preread(
    mut source: Source,
    limit: u64,
    max_body_size: u64,
    mut reservation: Reservation,
) -> Result<Source, BodyError> {
    let mut held = BytesMut::new();
    loop {
        let next = match &mut source {
            Source::H2 { .. } => source.next_h2().await,
            Source::Channel(body) => body.next_chunk_async().await,
            // Nothing to wait for in the others.
            _ => return Ok(source),
        };
        match next {
            Err(e) => {
                source.give_up();
                return Err(e);
            }
            Ok(None) => {
                reservation.shrink_to(held.len() as u64);
                return Ok(Source::Held {
                    bytes: held.freeze(),
                    _reservation: reservation,
                });
            }
            Ok(Some(chunk)) => {
                held.extend_from_slice(&chunk);
                if held.len() as u64 > max_body_size {
                    source.give_up();
                    return Err(BodyError::TooLarge(max_body_size));
                }
                if held.len() as u64 > limit {
                    return Ok(Source::Prefixed {
                        first: held.freeze(),
                        rest: Box::new(source),
                    });
                }
            }
        }
    }
}
