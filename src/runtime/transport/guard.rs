//! HTTP/2 abuse limits that h2 does not enforce, as a transport wrapper.
//!
//! h2 already answers rapid reset of unaccepted streams (CVE-2023-44487),
//! CONTINUATION floods, HPACK bombs and floods of small DATA frames with
//! GOAWAY(ENHANCE_YOUR_CALM). It does not limit frames that cost the server work
//! but carry no request: SETTINGS and PING (each must be acknowledged), RST_STREAM
//! of streams already accepted (each cancels work the server started), and
//! WINDOW_UPDATE. `Guard` watches the frame headers a client sends (9 bytes
//! each; payloads are not inspected) and counts those per time window. Past a
//! limit, or when the connection asks it to (`GuardHandle::trip`, used for
//! responses stalled by a client that takes no data), it writes
//! GOAWAY(ENHANCE_YOUR_CALM) between two of h2's frames and closes.
//!
//! The wrapper is transparent for anything that does not start with the HTTP/2
//! client preface (HTTP/1.1 on the same port), except that it tells the
//! connection's `Activity` when bytes arrive (the request-head timer).
//!
//! What it does not do: parse payloads, keep per-stream state, or replace any
//! check h2 makes.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::detect::PREFACE;
use crate::runtime::timers::Activity;

const FRAME_HEADER: usize = 9;

/// The window the counters cover.
const WINDOW: Duration = Duration::from_secs(10);

/// Frames a client may send per `WINDOW` before the connection is closed.
/// Legitimate clients send a handful of SETTINGS per connection, PINGs for
/// keep-alive or bandwidth probes (gRPC's BDP estimator: a few per second), and
/// resets when users cancel. Envoy's comparable defaults: 1000 outbound control
/// frames, and a ratio of 10 WINDOW_UPDATEs per DATA frame sent.
const MAX_SETTINGS: u32 = 100;
const MAX_PINGS: u32 = 1000;
const MAX_RESETS: u32 = 1000;
const MAX_WINDOW_UPDATES: u32 = 10_000;

/// RFC 9113 §7.
pub(crate) const ENHANCE_YOUR_CALM: u32 = 0xb;

struct Shared {
    tripped: Option<(u32, &'static str)>,
    reader: Option<Waker>,
    /// The debug data of the last GOAWAY h2 wrote (its start), which names
    /// the limit a client broke (`too_many_resets`, ...).
    goaway_data: Vec<u8>,
}

/// The most of a GOAWAY's debug data kept.
const GOAWAY_DATA: usize = 64;

/// What the guard and the connection share. The guard looks at it on every
/// read and write, so what it looks at there needs no lock: whether the
/// connection was tripped, and when response bytes last went out.
struct Handle {
    /// `Shared::tripped` is set (it never goes back).
    is_tripped: AtomicBool,
    /// When response bytes last went out, in nanoseconds after `created`: any
    /// write on HTTP/1.1, DATA frame bytes on HTTP/2 (control frames such as
    /// PING acks do not count).
    sent_data_at: AtomicU64,
    created: Instant,
    shared: Mutex<Shared>,
}

impl Default for Handle {
    fn default() -> Self {
        Handle {
            is_tripped: AtomicBool::new(false),
            sent_data_at: AtomicU64::new(0),
            created: Instant::now(),
            shared: Mutex::new(Shared {
                tripped: None,
                reader: None,
                goaway_data: Vec::new(),
            }),
        }
    }
}

/// Lets the connection close a guarded connection with a GOAWAY.
#[derive(Clone, Default)]
pub(crate) struct GuardHandle(Arc<Handle>);

impl GuardHandle {
    /// Whether no response bytes have gone out for `limit`.
    pub(crate) fn no_data_sent_for(&self, limit: Duration) -> bool {
        let at = Duration::from_nanos(self.0.sent_data_at.load(Ordering::Relaxed));
        (self.0.created + at).elapsed() >= limit
    }

    /// The debug data of the last GOAWAY the connection sent (empty: none,
    /// or none with data).
    pub(crate) fn goaway_data(&self) -> Vec<u8> {
        self.0.shared.lock().unwrap().goaway_data.clone()
    }

    /// Why the connection was tripped, if it was.
    pub(crate) fn tripped(&self) -> Option<&'static str> {
        if !self.0.is_tripped.load(Ordering::Acquire) {
            return None;
        }
        self.0.shared.lock().unwrap().tripped.map(|(_, why)| why)
    }

    /// Close the connection with GOAWAY(`code`) at the next frame boundary.
    pub(crate) fn trip(&self, code: u32, why: &'static str) {
        let mut s = self.0.shared.lock().unwrap();
        if s.tripped.is_none() {
            s.tripped = Some((code, why));
            self.0.is_tripped.store(true, Ordering::Release);
        }
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Inbound {
    /// Matching the client preface; `usize` bytes matched so far.
    Preface(usize),
    /// Not HTTP/2: pass everything through.
    Transparent,
    /// Reading a frame header: the bytes so far.
    Header([u8; FRAME_HEADER], usize),
    /// Skipping a frame payload: bytes left.
    Payload(usize),
}

struct Counters {
    since: Instant,
    settings: u32,
    pings: u32,
    resets: u32,
    window_updates: u32,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            since: Instant::now(),
            settings: 0,
            pings: 0,
            resets: 0,
            window_updates: 0,
        }
    }

    /// Count one frame; the reason when a limit is crossed.
    fn count(&mut self, kind: u8, flags: u8) -> Option<&'static str> {
        const ACK: u8 = 0x1;
        // Only these kinds are counted (and cost a clock read): HEADERS and
        // DATA frames, the bulk of the traffic, pass untouched.
        if !matches!(kind, 0x3 | 0x4 | 0x6 | 0x8) {
            return None;
        }
        if self.since.elapsed() > WINDOW {
            *self = Counters::new();
        }
        let (counter, max, why) = match kind {
            0x4 if flags & ACK == 0 => (&mut self.settings, MAX_SETTINGS, "SETTINGS flood"),
            0x6 if flags & ACK == 0 => (&mut self.pings, MAX_PINGS, "PING flood"),
            0x3 => (&mut self.resets, MAX_RESETS, "RST_STREAM flood"),
            0x8 => (
                &mut self.window_updates,
                MAX_WINDOW_UPDATES,
                "WINDOW_UPDATE flood",
            ),
            _ => return None,
        };
        *counter += 1;
        (*counter > max).then_some(why)
    }
}

pub(crate) struct Guard<I> {
    inner: I,
    handle: GuardHandle,
    activity: Arc<Activity>,
    inbound: Inbound,
    counters: Counters,
    /// Highest client stream id seen (for GOAWAY's last-stream-id).
    last_stream: u32,
    /// Bytes of the frame h2 is writing that are still to come (0: at a boundary).
    outbound_left: usize,
    /// Whether that frame is a DATA frame.
    outbound_data: bool,
    outbound_header: ([u8; FRAME_HEADER], usize),
    /// The GOAWAY being written, and how much of it is out.
    goaway: Option<([u8; 17], usize)>,
    /// The payload so far of a GOAWAY h2 is writing (for its debug data).
    outbound_goaway: Option<Vec<u8>>,
    /// The waker last given to the handle (see `poll_read`).
    reader: Option<Waker>,
}

impl<I> Guard<I> {
    pub(crate) fn new(inner: I, handle: GuardHandle, activity: Arc<Activity>) -> Guard<I> {
        Guard {
            inner,
            handle,
            activity,
            inbound: Inbound::Preface(0),
            counters: Counters::new(),
            last_stream: 0,
            outbound_left: 0,
            outbound_data: false,
            outbound_header: ([0; FRAME_HEADER], 0),
            goaway: None,
            outbound_goaway: None,
            reader: None,
        }
    }

    /// Follow the frame headers in bytes the client sent.
    fn inspect(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.inbound {
                Inbound::Transparent => return,
                Inbound::Preface(matched) => {
                    let n = data.len().min(PREFACE.len() - *matched);
                    if data[..n] != PREFACE[*matched..*matched + n] {
                        self.inbound = Inbound::Transparent;
                        return;
                    }
                    *matched += n;
                    data = &data[n..];
                    if *matched == PREFACE.len() {
                        self.inbound = Inbound::Header([0; FRAME_HEADER], 0);
                    }
                }
                Inbound::Header(buf, have) => {
                    let n = data.len().min(FRAME_HEADER - *have);
                    buf[*have..*have + n].copy_from_slice(&data[..n]);
                    *have += n;
                    data = &data[n..];
                    if *have == FRAME_HEADER {
                        let h = *buf;
                        let len = (usize::from(h[0]) << 16)
                            | (usize::from(h[1]) << 8)
                            | usize::from(h[2]);
                        let stream = u32::from_be_bytes([h[5] & 0x7f, h[6], h[7], h[8]]);
                        if h[3] == 0x1 && stream % 2 == 1 {
                            self.last_stream = self.last_stream.max(stream);
                        }
                        if let Some(why) = self.counters.count(h[3], h[4]) {
                            self.handle.trip(ENHANCE_YOUR_CALM, why);
                        }
                        self.inbound = if len == 0 {
                            Inbound::Header([0; FRAME_HEADER], 0)
                        } else {
                            Inbound::Payload(len)
                        };
                    }
                }
                Inbound::Payload(left) => {
                    let n = data.len().min(*left);
                    *left -= n;
                    data = &data[n..];
                    if *left == 0 {
                        self.inbound = Inbound::Header([0; FRAME_HEADER], 0);
                    }
                }
            }
        }
    }

    /// Follow the frame boundaries in bytes h2 wrote; whether any of them
    /// were response data (any bytes at all, when not HTTP/2).
    fn track_written(&mut self, mut data: &[u8]) -> bool {
        if data.is_empty() {
            return false;
        }
        if self.inbound == Inbound::Transparent || matches!(self.inbound, Inbound::Preface(_)) {
            return true;
        }
        let mut sent_data = false;
        while !data.is_empty() {
            if self.outbound_left > 0 {
                let n = data.len().min(self.outbound_left);
                if let Some(payload) = &mut self.outbound_goaway {
                    let room = (8 + GOAWAY_DATA).saturating_sub(payload.len());
                    payload.extend_from_slice(&data[..n.min(room)]);
                }
                self.outbound_left -= n;
                data = &data[n..];
                sent_data |= self.outbound_data;
                if self.outbound_left == 0 {
                    self.keep_goaway_data();
                }
                continue;
            }
            let (buf, have) = &mut self.outbound_header;
            let n = data.len().min(FRAME_HEADER - *have);
            buf[*have..*have + n].copy_from_slice(&data[..n]);
            *have += n;
            data = &data[n..];
            if *have == FRAME_HEADER {
                self.outbound_left =
                    (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
                self.outbound_data = buf[3] == 0x0;
                // A GOAWAY (RFC 9113 §6.8): last stream, code, debug data.
                self.outbound_goaway = (buf[3] == 0x7).then(Vec::new);
                *have = 0;
            }
        }
        sent_data
    }

    /// A GOAWAY was written whole: keep its debug data for the log.
    fn keep_goaway_data(&mut self) {
        if let Some(payload) = self.outbound_goaway.take() {
            if payload.len() > 8 {
                self.handle.0.shared.lock().unwrap().goaway_data = payload[8..].to_vec();
            }
        }
    }

    /// Response bytes went out now (one clock read per write, not per frame).
    fn note_sent_data(&self) {
        let handle = &self.handle.0;
        // u64 nanoseconds: 584 years of connection.
        let at = u64::try_from(handle.created.elapsed().as_nanos()).unwrap_or(u64::MAX);
        handle.sent_data_at.store(at, Ordering::Relaxed);
    }

    fn at_frame_boundary(&self) -> bool {
        self.outbound_left == 0 && self.outbound_header.1 == 0
    }
}

impl<I: AsyncWrite + Unpin> Guard<I> {
    /// Tripped: write the GOAWAY (if we are between frames and the server has
    /// sent its preface), then fail the connection.
    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        code: u32,
        why: &'static str,
    ) -> Poll<io::Error> {
        let h2 = matches!(self.inbound, Inbound::Header(..) | Inbound::Payload(_));
        // Logged once, by the connection task (`GuardHandle::tripped`).
        if self.goaway.is_none() && h2 && self.at_frame_boundary() {
            let mut frame = [0u8; 17];
            frame[2] = 8; // length
            frame[3] = 0x7; // GOAWAY
            frame[9..13].copy_from_slice(&self.last_stream.to_be_bytes());
            frame[13..17].copy_from_slice(&code.to_be_bytes());
            self.goaway = Some((frame, 0));
        }
        if let Some((frame, sent)) = &mut self.goaway {
            while *sent < frame.len() {
                match Pin::new(&mut self.inner).poll_write(cx, &frame[*sent..]) {
                    Poll::Ready(Ok(n)) if n > 0 => *sent += n,
                    Poll::Pending => return Poll::Pending,
                    _ => break,
                }
            }
            // Over TLS the frame is only written once the record is flushed.
            if Pin::new(&mut self.inner).poll_flush(cx).is_pending() {
                return Poll::Pending;
            }
        }
        Poll::Ready(io::Error::new(io::ErrorKind::ConnectionAborted, why))
    }

    /// A write on a closed or tripped connection fails (a connection that
    /// only writes, such as the server's own HTTP/1.1 path sending a
    /// response, learns of the trip here; an HTTP/2 connection also reads
    /// meanwhile).
    fn poll_write_tripped<T>(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<T>>> {
        if self.goaway.is_some() {
            return Some(Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed",
            ))));
        }
        let (code, why) = self.tripped()?;
        Some(self.poll_close(cx, code, why).map(Err))
    }

    fn tripped(&self) -> Option<(u32, &'static str)> {
        if !self.handle.0.is_tripped.load(Ordering::Acquire) {
            return None;
        }
        self.handle.0.shared.lock().unwrap().tripped
    }
}

impl<I: super::RawSocket> super::RawSocket for Guard<I> {
    fn raw_socket(&self) -> Option<std::os::fd::RawFd> {
        self.inner.raw_socket()
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guard<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((code, why)) = this.tripped() {
            return this.poll_close(cx, code, why).map(Err);
        }
        // Remember who to wake for `GuardHandle::trip`, taking the lock and
        // cloning only when the task changed (per read, both are measurable).
        // `trip` takes the shared copy, but after a trip every read ends above.
        if !this
            .reader
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            this.reader = Some(cx.waker().clone());
            this.handle.0.shared.lock().unwrap().reader = this.reader.clone();
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let received = &buf.filled()[before..];
            // Request heads are HTTP/1.1's (HTTP/2 sends frames).
            if !received.is_empty()
                && matches!(this.inbound, Inbound::Transparent | Inbound::Preface(_))
            {
                this.activity.received();
            }
            this.inspect(received);
            if let Some((code, why)) = this.tripped() {
                return this.poll_close(cx, code, why).map(Err);
            }
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Guard<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(err) = this.poll_write_tripped(cx) {
            return err;
        }
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            if this.track_written(&buf[..n]) {
                this.note_sent_data();
            }
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(err) = this.poll_write_tripped(cx) {
            return err;
        }
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = result {
            let mut sent_data = false;
            for b in bufs {
                if n == 0 {
                    break;
                }
                let take = n.min(b.len());
                sent_data |= this.track_written(&b[..take]);
                n -= take;
            }
            if sent_data {
                this.note_sent_data();
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    super::forward::forward_flush_and_shutdown!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn guard() -> Guard<tokio::io::Empty> {
        Guard::new(
            tokio::io::empty(),
            GuardHandle::default(),
            Arc::new(Activity::new()),
        )
    }

    #[test]
    fn http1_is_transparent() {
        let mut g = guard();
        g.inspect(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(g.inbound, Inbound::Transparent);
        assert!(g.tripped().is_none());
    }

    #[test]
    fn settings_flood_trips_whole_and_byte_by_byte() {
        let mut input = PREFACE.to_vec();
        for _ in 0..=MAX_SETTINGS {
            input.extend(frame(0x4, 0, 0, &[]));
        }
        let mut whole = guard();
        whole.inspect(&input);
        assert_eq!(whole.tripped(), Some((ENHANCE_YOUR_CALM, "SETTINGS flood")));
        let mut bytewise = guard();
        for b in &input {
            bytewise.inspect(std::slice::from_ref(b));
        }
        assert_eq!(
            bytewise.tripped(),
            Some((ENHANCE_YOUR_CALM, "SETTINGS flood"))
        );
    }

    #[test]
    fn acks_and_ordinary_frames_do_not_count() {
        let mut input = PREFACE.to_vec();
        for i in 0..500u32 {
            input.extend(frame(0x4, 0x1, 0, &[])); // SETTINGS ACK
            input.extend(frame(0x1, 0x5, 2 * i + 1, &[0x82])); // HEADERS
            input.extend(frame(0x0, 0x1, 2 * i + 1, b"data")); // DATA
        }
        let mut g = guard();
        g.inspect(&input);
        assert!(g.tripped().is_none());
        assert_eq!(g.last_stream, 999);
    }

    #[test]
    fn ping_flood_trips() {
        let mut input = PREFACE.to_vec();
        for _ in 0..=MAX_PINGS {
            input.extend(frame(0x6, 0, 0, &[0; 8]));
        }
        let mut g = guard();
        g.inspect(&input);
        assert_eq!(g.tripped(), Some((ENHANCE_YOUR_CALM, "PING flood")));
    }

    #[test]
    fn outbound_boundaries() {
        let mut g = guard();
        g.inspect(PREFACE);
        let f = frame(0x0, 0, 1, b"hello");
        g.track_written(&f[..4]);
        assert!(!g.at_frame_boundary());
        g.track_written(&f[4..]);
        assert!(g.at_frame_boundary());
    }
}
