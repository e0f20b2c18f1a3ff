//! One WebSocket connection after its handshake, to its close.
//!
//! What it does: reads frames (`yawc`'s `Streaming`: framing, unmasking,
//! control frames, close codes, permessage-deflate), assembles them into
//! messages (`proto::websocket::message::Assembler`: fragmentation rules,
//! UTF-8 checked as the fragments arrive, the message size limit) and hands
//! them to the application through the `Link`, reading no further while the
//! application has `link::INBOX` messages to take; writes what the
//! application sends; pings the client every `ping_interval` and drops a
//! connection whose pong does not come within `ping_timeout`; and closes:
//! the client's close is answered (`yawc` echoes it), the application's
//! close waits `close_timeout` for the client's, a protocol error fails the
//! connection with its code (1002, 1007, 1009; RFC 6455 §7.1.7), and a
//! server shutting down closes with 1001 once its drain period is over.
//! The server closes the TCP connection (or ends the HTTP/2 stream) first,
//! as RFC 6455 §7.1.1 asks of servers.
//!
//! What it does not do: the handshake (`websocket::open`), or anything the
//! application does with a message.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use yawc::close::CloseCode;
use yawc::streaming::Streaming;
use yawc::{Frame, OpCode, Options, Role, WebSocket, WebSocketError};

use super::link::{Closed, Data, Link, Outgoing};
use crate::proto::websocket::message::{
    Assembler, DataFrame, Message, GOING_AWAY, INTERNAL_ERROR, INVALID_DATA, NO_STATUS,
    PROTOCOL_ERROR, TOO_BIG,
};
use crate::runtime::config::WebSocketConfig;

/// After a shutdown's drain period, how long the close handshake with 1001
/// may take before the connection is dropped.
const GOING_AWAY_GRACE: Duration = Duration::from_secs(1);

/// Serve the connection `io` (its handshake done; `agreed` is the
/// `Sec-WebSocket-Extensions` value the server answered with) until it
/// closes; `link` is the application's end. `shutdown` turns true when the
/// server stops; `drain` is how long the connection may go on after that.
pub(crate) async fn serve<S>(
    io: S,
    agreed: Option<&str>,
    link: Link,
    config: &WebSocketConfig,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Should this future be dropped (the server stopping, the connection's
    // task ending), the application's waits still end.
    let _ends = EndsWith(link.clone());
    // One byte over the limit: yawc refuses a payload of `max_payload_read`
    // bytes or more.
    let limit = config.max_message.saturating_add(1);
    let mut options = Options::default()
        .with_max_payload_read(limit)
        .with_max_read_buffer(limit);
    if agreed.is_some() {
        options = options.with_balanced_compression();
    }
    let ws = match WebSocket::from_stream_with_extensions(io, Role::Server, agreed, options) {
        Ok(ws) => ws.into_streaming(),
        Err(e) => {
            log::warn!(target: "propylon.server", "WebSocket not started: {e}");
            link.finish(Closed::abnormal());
            return;
        }
    };
    let mut shutdown = shutdown;
    let going_away = Box::pin(async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(drain.saturating_sub(GOING_AWAY_GRACE)).await;
    });
    let mut session = Session {
        ws,
        assembler: Assembler::new(config.max_message),
        link,
        writes: VecDeque::new(),
        unflushed: false,
        phase: Phase::Open,
        peer_close: None,
        ping: config.ping_interval.map(|interval| Keepalive {
            interval,
            timeout: config.ping_timeout,
            timer: Box::pin(tokio::time::sleep(interval)),
            awaiting_pong: false,
        }),
        going_away,
        close_timeout: config.close_timeout,
        pong_queued: false,
    };
    let closed = std::future::poll_fn(|cx| session.poll_run(cx)).await;
    session.link.finish(closed);
    // The server closes the TCP connection first (RFC 6455 §7.1.1): flush
    // what is written, then shut the transport down.
    let _ = tokio::time::timeout(GOING_AWAY_GRACE, session.ws.close()).await;
}

/// Finishes the link when dropped (`Link::finish` keeps the first end).
struct EndsWith(Link);

impl Drop for EndsWith {
    fn drop(&mut self) {
        self.0.finish(Closed::abnormal());
    }
}

enum Phase {
    Open,
    /// A close frame went out (the application's, or 1001): waiting for the
    /// client's until the deadline.
    Closing(Pin<Box<Sleep>>),
    /// A protocol error: the close frame with its code goes out, then the
    /// connection ends.
    Failing(Closed),
    /// The client's close came; yawc's echo is flushed, then the end.
    Answering,
}

struct Keepalive {
    interval: Duration,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    awaiting_pong: bool,
}

struct Session<S> {
    ws: Streaming<S>,
    assembler: Assembler,
    link: Link,
    /// Frames to write, in order.
    writes: VecDeque<Frame>,
    unflushed: bool,
    phase: Phase,
    /// The client's close frame, as the application is told.
    peer_close: Option<Closed>,
    ping: Option<Keepalive>,
    going_away: Pin<Box<dyn Future<Output = ()> + Send>>,
    close_timeout: Duration,
    /// yawc queued a pong that has not been written yet.
    pong_queued: bool,
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Run until the connection is over; evaluates to how it ended.
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Closed> {
        loop {
            let mut progress = false;
            match self.poll_write(cx) {
                Poll::Ready(Err(())) => return Poll::Ready(self.ended()),
                Poll::Ready(Ok(wrote)) => progress |= wrote,
                Poll::Pending => {}
            }
            if let Phase::Failing(closed) = &self.phase {
                if self.writes.is_empty() && !self.unflushed {
                    return Poll::Ready(closed.clone());
                }
            }
            match self.poll_read(cx) {
                Poll::Ready(Some(end)) => return Poll::Ready(end),
                Poll::Ready(None) => progress = true,
                Poll::Pending => {}
            }
            if let Some(end) = self.poll_timers(cx) {
                return Poll::Ready(end);
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    fn queue(&mut self, out: Outgoing) {
        match out {
            Outgoing::Data(Data::Text(text)) => self.writes.push_back(Frame::text(text)),
            Outgoing::Data(Data::Binary(data)) => self.writes.push_back(Frame::binary(data)),
            Outgoing::Close(code, reason) => self.start_close(code, &reason),
        }
    }

    /// Send a close frame and wait for the client's.
    fn start_close(&mut self, code: u16, reason: &str) {
        self.writes
            .push_back(Frame::close(CloseCode::from(code), reason));
        self.phase = Phase::Closing(Box::pin(tokio::time::sleep(self.close_timeout)));
        if self.peer_close.is_none() {
            self.peer_close = Some(Closed::new(code, reason));
        }
    }

    /// Fail the connection (RFC 6455 §7.1.7): the close frame with `code`,
    /// then the end.
    fn fail(&mut self, code: u16, reason: &str) {
        log::debug!(target: "propylon.server", "WebSocket closed with {code}: {reason}");
        self.writes.clear();
        self.writes
            .push_back(Frame::close(CloseCode::from(code), reason));
        self.phase = Phase::Failing(Closed::new(code, reason));
    }

    /// Write queued frames, then what the application queued, one message
    /// at a time while the transport takes them (the rest stays in the
    /// link, whose bound holds the application's `send`); Ok(true) when
    /// some went out.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, ()>> {
        let mut wrote = false;
        loop {
            if self.writes.is_empty() && matches!(self.phase, Phase::Open) {
                match self.link.poll_outgoing(cx) {
                    Poll::Ready(out) => self.queue(out),
                    Poll::Pending => break,
                }
            }
            let Some(frame) = self.writes.pop_front() else {
                break;
            };
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Pending => {
                    self.writes.push_front(frame);
                    break;
                }
            }
            if Pin::new(&mut self.ws).start_send(frame).is_err() {
                return Poll::Ready(Err(()));
            }
            self.unflushed = true;
            wrote = true;
        }
        if self.unflushed {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Pending => {}
            }
        }
        match wrote {
            true => Poll::Ready(Ok(true)),
            false => Poll::Pending,
        }
    }

    /// Read one frame, if the application has room for what it may bring.
    /// Ready(Some) when the connection is over; Ready(None) after a frame.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Closed>> {
        let reading_messages = matches!(self.phase, Phase::Open);
        if matches!(self.phase, Phase::Failing(_)) {
            return Poll::Pending;
        }
        if reading_messages && self.link.poll_room(cx).is_pending() {
            return Poll::Pending;
        }
        if self.pong_queued {
            // `poll_ready` writes yawc's queued control frames first.
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => self.pong_queued = false,
                Poll::Ready(Err(_)) => return Poll::Ready(Some(Closed::abnormal())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let frame = match self.ws.poll_next_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(frame)) => frame,
            Poll::Ready(Err(WebSocketError::ConnectionClosed)) => {
                // The transport ended, or the client's close was answered.
                return Poll::Ready(Some(self.ended()));
            }
            Poll::Ready(Err(e)) if e.is_io_error() || matches!(self.phase, Phase::Answering) => {
                // The connection is gone (a reset, an HTTP/2 stream
                // cancelled), or answering its close failed: no close frame
                // can go out.
                log::debug!(target: "propylon.server", "WebSocket connection lost: {e}");
                if matches!(self.phase, Phase::Answering) {
                    return Poll::Ready(Some(self.ended()));
                }
                return Poll::Ready(Some(Closed::abnormal()));
            }
            Poll::Ready(Err(e)) => {
                // yawc queued a close frame with the code for `e`; the next
                // read flushes it and reports the end.
                let code = close_code(&e);
                log::debug!(target: "propylon.server", "WebSocket closed with {code}: {e}");
                self.peer_close = Some(Closed::new(code, e.to_string()));
                self.phase = Phase::Answering;
                return Poll::Ready(None);
            }
        };
        let (opcode, fin, payload) = frame.into_parts();
        let data = match opcode {
            OpCode::Text => DataFrame::Text,
            OpCode::Binary => DataFrame::Binary,
            OpCode::Continuation => DataFrame::Continuation,
            // yawc queued the pong; it goes out before anything more is
            // read (a flood of pings from a client that does not read its
            // pongs stops being read, instead of queueing pongs).
            OpCode::Ping => {
                self.pong_queued = true;
                return Poll::Ready(None);
            }
            OpCode::Pong => {
                if let Some(ping) = &mut self.ping {
                    ping.awaiting_pong = false;
                    let next = Instant::now() + ping.interval;
                    ping.timer.as_mut().reset(next);
                }
                return Poll::Ready(None);
            }
            OpCode::Close => {
                if let Phase::Closing(_) = self.phase {
                    // The answer to our close: the handshake is complete
                    // (yawc's echo of it is not sent). The application
                    // sees the client's code, if it gave one.
                    if let Some(close) = peer_close_code(&payload) {
                        self.peer_close = Some(close);
                    }
                    return Poll::Ready(Some(self.ended()));
                }
                self.peer_close = Some(peer_close(&payload));
                self.phase = Phase::Answering;
                return Poll::Ready(None);
            }
        };
        match self.assembler.push(data, fin, payload) {
            Ok(Some(message)) if reading_messages => self.link.deliver(match message {
                Message::Text(text) => Data::Text(text),
                Message::Binary(data) => Data::Binary(data),
            }),
            Ok(_) => {}
            Err(refused) => self.fail(refused.code, refused.reason),
        }
        Poll::Ready(None)
    }

    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Option<Closed> {
        if let Phase::Closing(deadline) = &mut self.phase {
            if deadline.as_mut().poll(cx).is_ready() {
                log::debug!(target: "propylon.server", "WebSocket: no close frame from the client in time");
                return Some(self.ended());
            }
        }
        if let (Phase::Open, Some(ping)) = (&self.phase, &mut self.ping) {
            if ping.timer.as_mut().poll(cx).is_ready() {
                if ping.awaiting_pong {
                    log::debug!(target: "propylon.server", "WebSocket: no pong within the ping timeout: dropping the connection");
                    return Some(Closed::abnormal());
                }
                ping.awaiting_pong = true;
                let deadline = Instant::now() + ping.timeout;
                ping.timer.as_mut().reset(deadline);
                self.writes.push_back(Frame::ping(Bytes::new()));
                cx.waker().wake_by_ref();
            }
        }
        if matches!(self.phase, Phase::Open) && self.going_away.as_mut().poll(cx).is_ready() {
            self.start_close(GOING_AWAY, "server shutting down");
            // The application sees the close now, not after the client's
            // answer: the server may stop before that comes.
            self.link
                .finish(Closed::new(GOING_AWAY, "server shutting down"));
            if let Phase::Closing(deadline) = &mut self.phase {
                deadline.as_mut().reset(Instant::now() + GOING_AWAY_GRACE);
            }
            cx.waker().wake_by_ref();
        }
        None
    }

    /// How the connection ended, as far as the application is concerned.
    fn ended(&mut self) -> Closed {
        match &self.phase {
            Phase::Failing(closed) => closed.clone(),
            _ => self.peer_close.take().unwrap_or_else(Closed::abnormal),
        }
    }
}

/// The close code yawc answers a read error with.
fn close_code(e: &WebSocketError) -> u16 {
    match e {
        WebSocketError::FrameTooLarge => TOO_BIG,
        WebSocketError::InvalidUTF8 => INVALID_DATA,
        WebSocketError::InvalidOpCode(_)
        | WebSocketError::ReservedBitsNotZero
        | WebSocketError::ControlFrameFragmented
        | WebSocketError::PingFrameTooLarge
        | WebSocketError::InvalidFragment
        | WebSocketError::InvalidCloseFrame
        | WebSocketError::InvalidCloseCode
        | WebSocketError::FragmentTimeout
        | WebSocketError::InvalidContinuationFrame
        | WebSocketError::CompressionNotSupported => PROTOCOL_ERROR,
        _ => INTERNAL_ERROR,
    }
}

/// The client's close frame as the application sees it: 1005 without a code
/// (RFC 6455 §7.1.5).
fn peer_close(payload: &Bytes) -> Closed {
    peer_close_code(payload).unwrap_or_else(|| Closed::new(NO_STATUS, ""))
}

fn peer_close_code(payload: &Bytes) -> Option<Closed> {
    let code = u16::from_be_bytes(payload.get(0..2)?.try_into().ok()?);
    let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
    Some(Closed::new(code, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;
    use std::task::Poll;

    fn config() -> WebSocketConfig {
        crate::runtime::config::ServerConfig::for_tests().websocket
    }

    /// A session over one end of an in-memory pipe, a yawc client on the
    /// other; the link is the application's end.
    fn pair(
        config: WebSocketConfig,
    ) -> (
        WebSocket<tokio::io::DuplexStream>,
        Link,
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ) {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let link = Link::new(config.send_queue);
        let (stop, shutdown) = watch::channel(false);
        let session_link = link.clone();
        let task = tokio::spawn(async move {
            serve(
                server_io,
                None,
                session_link,
                &config,
                shutdown,
                Duration::from_secs(1),
            )
            .await;
        });
        let client = WebSocket::from_stream(client_io, Role::Client, Options::default()).unwrap();
        (client, link, stop, task)
    }

    async fn receive(link: &Link) -> Result<Data, Closed> {
        std::future::poll_fn(|cx| link.poll_receive(cx)).await
    }

    #[tokio::test]
    async fn messages_go_both_ways_and_the_clients_close_ends_the_session() {
        let (mut client, link, _stop, task) = pair(config());
        client.send(Frame::text("hello")).await.unwrap();
        assert_eq!(
            receive(&link).await,
            Ok(Data::Text(Bytes::from_static(b"hello")))
        );
        let mut reply = Some(Data::Binary(Bytes::from_static(b"\x01\x02")));
        std::future::poll_fn(|cx| link.poll_send(cx, &mut reply))
            .await
            .unwrap();
        let frame = client.next().await.unwrap();
        assert_eq!(
            (frame.opcode(), frame.payload().as_ref()),
            (OpCode::Binary, &b"\x01\x02"[..])
        );
        client
            .send(Frame::close(CloseCode::from(4001), "bye"))
            .await
            .unwrap();
        assert_eq!(receive(&link).await, Err(Closed::new(4001, "bye")));
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_dropped_connection_is_1006_and_the_session_ends() {
        let (client, link, _stop, task) = pair(config());
        drop(client);
        assert_eq!(receive(&link).await, Err(Closed::abnormal()));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn invalid_utf8_fails_the_connection_with_1007() {
        let (mut client, link, _stop, task) = pair(config());
        client
            .send(Frame::text(Bytes::from_static(b"\xff\xfe")))
            .await
            .unwrap();
        assert_eq!(receive(&link).await.map_err(|c| c.code), Err(INVALID_DATA));
        let close = client.next().await.unwrap();
        assert_eq!(close.opcode(), OpCode::Close);
        assert_eq!(close.close_code().map(u16::from), Some(INVALID_DATA));
        task.await.unwrap();
    }

    #[tokio::test]
    async fn the_applications_close_waits_for_the_clients() {
        let (mut client, link, _stop, task) = pair(config());
        assert!(link.close(1000, "done".into()));
        let close = client.next().await.unwrap();
        assert_eq!(close.close_code().map(u16::from), Some(1000));
        // The client answers (yawc echoes); the session then ends.
        assert!(client.next().await.is_none());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(link.closed(), Some(Closed::new(1000, "done")));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_with_1001_at_the_end_of_the_drain_period() {
        let (mut client, link, stop, task) = pair(config());
        stop.send(true).unwrap();
        let close = client.next().await.unwrap();
        assert_eq!(close.close_code().map(u16::from), Some(GOING_AWAY));
        assert!(client.next().await.is_none());
        task.await.unwrap();
        assert_eq!(link.closed().map(|c| c.code), Some(GOING_AWAY));
    }

    #[tokio::test]
    async fn the_session_stops_reading_while_the_application_has_not_taken_its_messages() {
        let (mut client, link, _stop, _task) = pair(config());
        for i in 0..100u8 {
            client.send(Frame::binary(vec![i])).await.unwrap();
        }
        // The inbox holds 16; the rest waits in the pipe and the client.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut taken = 0;
        while let Poll::Ready(Ok(_)) = link.poll_receive(&mut cx) {
            taken += 1;
        }
        assert!(taken <= 16, "{taken} messages were queued");
        for _ in taken..100 {
            assert!(receive(&link).await.is_ok());
        }
    }

    #[tokio::test]
    async fn compressed_empty_messages_echo() {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let config = config();
        let link = Link::new(config.send_queue);
        let (_stop, shutdown) = watch::channel(false);
        let session_link = link.clone();
        let agreed = "permessage-deflate";
        tokio::spawn(async move {
            serve(
                server_io,
                Some(agreed),
                session_link,
                &config,
                shutdown,
                Duration::from_secs(1),
            )
            .await;
        });
        let options = Options::default().with_balanced_compression();
        let mut client =
            WebSocket::from_stream_with_extensions(client_io, Role::Client, Some(agreed), options)
                .unwrap();
        for _ in 0..3 {
            client.send(Frame::binary(Bytes::new())).await.unwrap();
            let got = tokio::time::timeout(Duration::from_secs(2), receive(&link)).await;
            assert_eq!(got.expect("delivered"), Ok(Data::Binary(Bytes::new())));
        }
    }
}
