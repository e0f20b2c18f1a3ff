//! A request body read straight from the socket, on the application's thread.
//!
//! What it does: on the server's own HTTP/1.1 path (`conn::h1`), the connection
//! lends its socket to the body of the request in flight
//! (`BodySocket::lend`). The body, a `SocketBody`, first gives out the bytes
//! that came in with the head, then reads the rest of its declared length
//! from the socket with `recv(2)` into whatever memory its reader passes. For
//! the application's `read(n)` that is the `bytes` object the read returns, so the
//! kernel copies the body once, to where the application gets it (hyper reads
//! a body into its own buffer, from which it is copied again). When the
//! response is over the connection takes the socket back (`Lease::end`): a
//! later read of that body fails, and the connection discards what the body
//! left unread.
//!
//! A read that finds nothing waits in `poll(2)`, as a `pool::blocking` wait
//! (the caller has released the GIL), up to the body timeout, or until the
//! body falls below the minimum rate (`deadline::BodyClock`).
//!
//! What it does not do: decode or limit the body (its length was checked
//! against the maximum before the application was called), or read a byte
//! past it: the next request's bytes stay in the socket for the connection.

use bytes::{Bytes, BytesMut};
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use super::deadline::BodyClock;
use super::BodyError;

/// Chunks read for a reader that passes no memory of its own (`read()` to
/// the end, `readline()`): at most this much at once.
const CHUNK: usize = 64 * 1024;

/// A connection's socket, as its request bodies read it.
pub(crate) struct BodySocket {
    fd: RawFd,
    state: Mutex<LeaseState>,
}

struct LeaseState {
    /// The body that may read now (0: none; the connection owns the socket).
    reader: u64,
    /// Lends so far: each body's number.
    lent: u64,
    /// Bytes the current body has not read from the socket yet.
    left: u64,
}

impl BodySocket {
    /// `fd` must stay open for as long as the connection can lend it: the
    /// connection ends every lease before it closes the socket.
    pub(crate) fn new(fd: RawFd) -> Arc<BodySocket> {
        Arc::new(BodySocket {
            fd,
            state: Mutex::new(LeaseState {
                reader: 0,
                lent: 0,
                left: 0,
            }),
        })
    }

    /// Lend the socket to a body of `buffered` bytes (read with the head)
    /// and `left` more in the socket.
    pub(crate) fn lend(
        self: &Arc<Self>,
        buffered: Bytes,
        left: u64,
        clock: BodyClock,
    ) -> (SocketBody, Lease) {
        let mut state = self.state.lock().unwrap();
        state.lent += 1;
        state.reader = state.lent;
        state.left = left;
        let id = state.lent;
        drop(state);
        (
            SocketBody {
                socket: self.clone(),
                id,
                buffered,
                left,
                clock,
            },
            Lease {
                socket: self.clone(),
                id,
            },
        )
    }
}

/// The connection's side of a lend: ending it takes the socket back.
pub(crate) struct Lease {
    socket: Arc<BodySocket>,
    id: u64,
}

impl Lease {
    /// Take the socket back; returns how many bytes of the body are still in
    /// it. Waits for a `recv` in progress (never for a wait).
    pub(crate) fn end(self) -> u64 {
        let mut state = self.socket.state.lock().unwrap();
        if state.reader == self.id {
            state.reader = 0;
        }
        state.left
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.socket.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.reader == self.id {
            state.reader = 0;
        }
    }
}

/// The request body's side: the bytes read with the head, then the socket.
pub(crate) struct SocketBody {
    socket: Arc<BodySocket>,
    id: u64,
    buffered: Bytes,
    left: u64,
    clock: BodyClock,
}

impl SocketBody {
    /// Bytes still to read.
    pub(crate) fn remaining(&self) -> u64 {
        self.buffered.len() as u64 + self.left
    }

    /// The next bytes: what came with the head, then up to `CHUNK` from the
    /// socket; `None` at the end.
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        if !self.buffered.is_empty() {
            return Ok(Some(std::mem::take(&mut self.buffered)));
        }
        if self.left == 0 {
            return Ok(None);
        }
        let want = CHUNK.min(usize::try_from(self.left).unwrap_or(CHUNK));
        let mut chunk = BytesMut::with_capacity(want);
        let spare = chunk.spare_capacity_mut();
        // `recv` writes into the spare capacity: no need to zero it first.
        let n = self.recv(spare.as_mut_ptr().cast(), want)?;
        // SAFETY: `recv` wrote the first `n` bytes of the spare capacity.
        unsafe { chunk.set_len(n) };
        Ok(Some(chunk.freeze()))
    }

    /// Fill the front of `dst` (0: the body is over): the bytes that came
    /// with the head, else one `recv` straight into `dst`.
    pub(crate) fn read_into(&mut self, dst: &mut [u8]) -> Result<usize, BodyError> {
        if !self.buffered.is_empty() {
            let n = dst.len().min(self.buffered.len());
            dst[..n].copy_from_slice(&self.buffered[..n]);
            bytes::Buf::advance(&mut self.buffered, n);
            return Ok(n);
        }
        if self.left == 0 || dst.is_empty() {
            return Ok(0);
        }
        self.recv(dst.as_mut_ptr(), dst.len())
    }

    /// One `recv` into the `len` bytes at `dst` (written, never read), of
    /// at most what is left of the body, waiting for bytes.
    fn recv(&mut self, dst: *mut u8, len: usize) -> Result<usize, BodyError> {
        let want = len.min(usize::try_from(self.left).unwrap_or(usize::MAX));
        loop {
            {
                let mut state = self.socket.state.lock().unwrap();
                if state.reader != self.id {
                    return Err(BodyError::Disconnected(
                        "the request is over: its connection has taken the socket back".into(),
                    ));
                }
                // SAFETY: `dst` is valid for writes of `want` (<= `len`)
                // bytes, the callers' contract; the descriptor is open while
                // this body holds the lease (checked above, under the lock
                // the connection takes before closing it).
                let n = unsafe { libc::recv(self.socket.fd, dst.cast(), want, libc::MSG_DONTWAIT) };
                if n > 0 {
                    let n = n as usize;
                    self.left -= n as u64;
                    state.left = self.left;
                    self.clock.received(n as u64);
                    return Ok(n);
                }
                if n == 0 {
                    return Err(BodyError::Disconnected(format!(
                        "the connection closed with {} bytes of the body still to come",
                        self.left
                    )));
                }
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {}
                    _ => return Err(BodyError::Disconnected(e.to_string())),
                }
            }
            let fd = self.socket.fd;
            let deadline = self.clock.deadline();
            let readable = crate::runtime::pool::blocking(|| wait_readable(fd, deadline.end()));
            self.clock.waited(&deadline);
            if !readable {
                return Err(deadline.expired());
            }
        }
    }
}

/// Wait until `fd` has bytes (or an end or error, which `recv` reports);
/// false when `deadline` passed first. Not under the lease's lock: if the
/// connection ends the lease meanwhile, the next `recv` sees it.
fn wait_readable(fd: RawFd, deadline: std::time::Instant) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        match r {
            0 => return false,
            r if r > 0 => return true,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            // EBADF and the like: let recv report the error.
            _ => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn the_buffered_bytes_then_the_socket_and_never_past_the_body() {
        let (mut client, server) = pair();
        let socket = BodySocket::new(server.as_raw_fd());
        client.write_all(b"defgNEXT").unwrap();
        let (mut body, lease) = socket.lend(
            Bytes::from_static(b"abc"),
            4,
            BodyClock::timeout_only(Duration::from_secs(5)),
        );
        assert_eq!(body.remaining(), 7);
        let mut buf = [0u8; 16];
        assert_eq!(body.read_into(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(
            body.read_into(&mut buf).unwrap(),
            4,
            "only the body's bytes"
        );
        assert_eq!(&buf[..4], b"defg");
        assert_eq!(body.read_into(&mut buf).unwrap(), 0);
        assert_eq!(lease.end(), 0);
        let mut rest = [0u8; 8];
        let n = (&server).read(&mut rest).unwrap();
        assert_eq!(&rest[..n], b"NEXT", "the next request stays in the socket");
    }

    use std::io::Read;

    #[test]
    fn a_read_waits_for_bytes_and_times_out() {
        let (mut client, server) = pair();
        let socket = BodySocket::new(server.as_raw_fd());
        let (mut body, _lease) = socket.lend(
            Bytes::new(),
            5,
            BodyClock::timeout_only(Duration::from_millis(50)),
        );
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            client.write_all(b"12").unwrap();
            client
        });
        assert_eq!(body.next_chunk().unwrap().unwrap(), &b"12"[..]);
        let _client = writer.join().unwrap();
        assert!(
            matches!(body.next_chunk(), Err(BodyError::Disconnected(m)) if m.contains("timed out"))
        );
    }

    #[test]
    fn a_closed_connection_and_an_ended_lease_are_errors() {
        let (client, server) = pair();
        let socket = BodySocket::new(server.as_raw_fd());
        let (mut body, lease) = socket.lend(
            Bytes::new(),
            5,
            BodyClock::timeout_only(Duration::from_secs(5)),
        );
        drop(client);
        assert!(
            matches!(body.next_chunk(), Err(BodyError::Disconnected(m)) if m.contains("5 bytes"))
        );
        assert_eq!(lease.end(), 5, "what the body left");
        let (mut later, lease) = socket.lend(
            Bytes::new(),
            1,
            BodyClock::timeout_only(Duration::from_secs(5)),
        );
        drop(lease);
        assert!(
            matches!(later.read_into(&mut [0u8; 4]), Err(BodyError::Disconnected(m)) if m.contains("over"))
        );
        // A body from an earlier request cannot read the socket of a later one.
        let (_current, _lease) = socket.lend(
            Bytes::new(),
            1,
            BodyClock::timeout_only(Duration::from_secs(5)),
        );
        assert!(later.next_chunk().is_err());
    }
}
