//! The WSGI response state machine (PEP 3333 §"The start_response()
//! Callable", §"Buffering and Streaming", §"Handling the Content-Length
//! Header"; WSGI 1.1).
//!
//! What it does: owns the state of one application call's response and
//! decides what each thing the application does means for it:
//! `start_response` (a first call, a call again with `exc_info`, a call again
//! without), a body chunk from `write()` or from the iterable, the end of the
//! iterable, a list or tuple known whole, a `wsgi.file_wrapper` over a file,
//! and a failure. It counts the body against the declared `Content-Length`
//! (`proto::length`) and reports surplus bytes once.
//!
//! Bring your own I/O: the caller gives the handle the head is sent on (`R`)
//! at the start, and the handle the body is streamed on (`S`) once the head is
//! out; a decision hands a handle back when it is its turn to be used (send
//! the head, abort the stream). Nothing here sends, logs, blocks or calls
//! `close()`.
//!
//! What it does not do: convert or check Python objects (the bridge turns the
//! arguments of `start_response` into a `Head` with `proto::response`), say
//! which Python exception a failure was (the bridge names a
//! `FailureCause`), or frame HTTP (the runtime).

use std::fmt;

use http::header::{HeaderValue, CONTENT_LENGTH};
use http::{HeaderMap, StatusCode};

use crate::proto::length::{Admit, ResponseLength, ShortBody};

/// A response head as `start_response` gave it, checked.
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// The `Content-Length` header's value, when the application sent one.
    pub(crate) content_length: Option<u64>,
}

/// Something the application did that PEP 3333 forbids (the bridge raises
/// `AssertionError` with this text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// `start_response` called again without `exc_info`.
    StartedTwice,
    /// A non-empty body chunk (or `write()`) before `start_response`.
    BodyBeforeHead,
    /// The iterable ended and `start_response` was never called.
    IterableEndedWithoutHead,
    /// A list or tuple returned without `start_response`.
    ReturnedWithoutHead,
    /// A `wsgi.file_wrapper` returned without `start_response`.
    FileWithoutHead,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Violation::StartedTwice => {
                "start_response() called a second time without exc_info (PEP 3333)"
            }
            Violation::BodyBeforeHead => {
                "the application produced a body before calling start_response (PEP 3333)"
            }
            Violation::IterableEndedWithoutHead => {
                "the WSGI response iterable ended without start_response being called (PEP 3333)"
            }
            Violation::ReturnedWithoutHead => {
                "the application returned without calling start_response (PEP 3333)"
            }
            Violation::FileWithoutHead => {
                "the application returned a file_wrapper without calling start_response (PEP 3333)"
            }
        })
    }
}

impl std::error::Error for Violation {}

/// Why a `start_response` call changed nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StartRefused<E> {
    /// `exc_info` came after the head was sent: raise it again (PEP 3333:
    /// "start_response must raise an error, and should re-raise using the
    /// exc_info tuple").
    Reraise,
    /// A call PEP 3333 forbids.
    Illegal(Violation),
    /// The arguments did not make a head (the caller's own error).
    BadHead(E),
}

/// What to do to send the head now, before a body chunk.
pub(crate) enum Open<R> {
    /// The head is out already, or the response is over: nothing to send.
    Sent,
    /// Send `Head` with no body (a HEAD request, a 204 or a 304): the
    /// response is complete.
    Bodiless(R, Head),
    /// Send `Head` with a streamed body, then give the stream's handle to
    /// `streaming`. Until then, and for good if the connection is gone, the
    /// response is over.
    Stream(R, Head),
}

/// How much of a body chunk goes out.
pub(crate) enum Admitted<'a, S> {
    /// Send the chunk's first `len` bytes on `sink`. `last`: that meets the
    /// declared Content-Length; `finish` after sending.
    Send { sink: &'a S, len: usize, last: bool },
    /// The declared Content-Length was met before this chunk: send nothing,
    /// `finish` now.
    Finish,
    /// No body is being streamed (none opened, none allowed, or over): send
    /// nothing.
    Discard,
}

/// How the body stream ends.
pub(crate) enum Finished<S> {
    /// End the stream normally.
    Complete(S),
    /// Fewer bytes than declared: abort the stream (WSGI 1.1: the client
    /// would wait for the missing bytes).
    Short(S, ShortBody),
    /// No stream is open: nothing to end.
    Nothing,
}

/// A list or tuple body, all of it known: how to send it.
pub(crate) enum Whole<R> {
    /// Send `head` and the body's first `len` bytes as one buffer (`None`:
    /// no body, the response has none).
    Send {
        reply: R,
        head: Head,
        len: Option<usize>,
    },
    /// The body is shorter than its Content-Length: open a stream, send it,
    /// `finish` (which aborts the stream).
    Short,
    /// `write()` sent the head: the chunks follow on the stream, then
    /// `finish`.
    AfterWrite,
}

/// A `wsgi.file_wrapper` over a regular file: how to send it.
pub(crate) enum FileResponse<R> {
    /// `write()` sent the head: iterate the wrapper like any iterable.
    Iterate,
    /// Send `head` and `len` bytes of the file from its current position
    /// (`None`: no body, the response has none).
    Send {
        reply: R,
        head: Head,
        len: Option<u64>,
    },
}

/// What a failed application call was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureCause {
    /// It let a `RequestBodyTooLarge` through.
    RequestBodyTooLarge,
    /// It let a `RequestBodyTooSlow` through (RFC 9110 §15.5.9).
    RequestBodyTooSlow,
    /// It let an `InvalidRequestBody` or `ClientDisconnected` through.
    RequestBodyBroken,
    /// Anything else it raised or did wrong.
    Application,
}

/// What a failure does to the response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failed<R, S> {
    /// Nothing was sent: answer with `status` instead. `close`: the request
    /// body may be left unread, so the connection must not be reused.
    Answer {
        reply: R,
        status: StatusCode,
        close: bool,
    },
    /// The head is out: abort the body stream.
    Abort(S),
    /// The response is over already.
    Nothing,
}

// ---------------------------------------------------------------------------
// RULES: everything that changes the state of a WSGI response lives below.
//
// Theory of operation: four phases, one way (PEP 3333 section in brackets).
//
//   NoHead     start_response            -> HeadGiven
//              a body chunk, write()     Illegal(BodyBeforeHead) [Buffering
//                                        and Streaming: the head goes first]
//              the end, a list, a file   Illegal(...Head)
//              a failure                 -> Done, Answer 500 (413, 400)
//   HeadGiven  start_response(exc_info)  -> HeadGiven, the new head replaces
//                                        the old [start_response(): "only
//                                        if the headers have not been sent"]
//              start_response            Illegal(StartedTwice) ["a fatal
//                                        error"]
//              a body chunk, write(),    -> Streaming, or Done for a response
//              the end                   without content [Buffering and
//                                        Streaming: the head goes with the
//                                        first non-empty chunk]
//              a list or tuple, a file   -> Done, head and body at once
//              a failure                 -> Done, Answer 500 (413, 400)
//   Streaming  start_response(exc_info)  Reraise [start_response(): the
//                                        headers were sent]
//              start_response            Illegal(StartedTwice)
//              a body chunk              counted against Content-Length
//                                        [Handling the Content-Length
//                                        Header: never more than declared];
//                                        the chunk that meets it -> Done
//              the end                   -> Done, Complete or Short
//              a failure                 -> Done, Abort
//   Done       start_response(exc_info)  Reraise
//              start_response            Illegal(StartedTwice)
//              anything else             nothing
//
// A response has no content for a HEAD request or a 204 or 304 status (RFC
// 9110 §6.4.1): its head goes out alone, and what the application yields is
// not sent. A 204 never has a Content-Length (RFC 9110 §8.6): it is dropped
// from the head.
// ---------------------------------------------------------------------------

enum Phase<R, S> {
    /// `start_response` was not called; `R` sends the head.
    NoHead(R),
    /// `start_response` gave a head; nothing is sent.
    HeadGiven(R, Head),
    /// The head is sent; the body goes out on `S`.
    Streaming(S),
    /// Nothing more goes out: complete, aborted, without content, failed,
    /// or the connection is gone.
    Done,
}

/// Bytes beyond the declared Content-Length, reported once per response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surplus {
    NotSeen,
    Unreported,
    Reported,
}

/// The state of one WSGI response. `R` sends the head, `S` streams the body.
pub(crate) struct ResponseState<R, S> {
    phase: Phase<R, S>,
    /// The request is HEAD.
    head_request: bool,
    /// The response has no content (HEAD, 204, 304), as the latest head
    /// says.
    bodiless: bool,
    length: ResponseLength,
    surplus: Surplus,
}

impl<R, S> fmt::Debug for ResponseState<R, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseState")
            .field("phase", &self.phase_name())
            .field("bodiless", &self.bodiless)
            .field("length", &self.length)
            .field("surplus", &self.surplus)
            .finish()
    }
}

/// A status whose response has no content (RFC 9110 §15.3.5, §15.4.5).
fn no_content(status: StatusCode) -> bool {
    matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

impl<R, S> ResponseState<R, S> {
    /// A response not started yet, whose head goes out on `reply`.
    #[inline]
    pub(crate) fn new(reply: R, head_request: bool) -> Self {
        ResponseState {
            phase: Phase::NoHead(reply),
            head_request,
            bodiless: head_request,
            length: ResponseLength::new(None),
            surplus: Surplus::NotSeen,
        }
    }

    fn phase_name(&self) -> &'static str {
        match self.phase {
            Phase::NoHead(_) => "NoHead",
            Phase::HeadGiven(..) => "HeadGiven",
            Phase::Streaming(_) => "Streaming",
            Phase::Done => "Done",
        }
    }

    /// `start_response(status, headers, exc_info)`: `head` makes the head
    /// from the arguments, and is called only when the call is legal.
    #[inline]
    pub(crate) fn start_response<E>(
        &mut self,
        with_exc_info: bool,
        head: impl FnOnce() -> Result<Head, E>,
    ) -> Result<(), StartRefused<E>> {
        match (&self.phase, with_exc_info) {
            (Phase::NoHead(_), _) | (Phase::HeadGiven(..), true) => {}
            (Phase::Streaming(_) | Phase::Done, true) => return Err(StartRefused::Reraise),
            (_, false) => return Err(StartRefused::Illegal(Violation::StartedTwice)),
        }
        let mut head = head().map_err(StartRefused::BadHead)?;
        if head.status == StatusCode::NO_CONTENT {
            // RFC 9110 §8.6: never a Content-Length on a 204.
            head.headers.remove(CONTENT_LENGTH);
            head.content_length = None;
        }
        self.length = ResponseLength::new(head.content_length);
        self.bodiless = self.head_request || no_content(head.status);
        match &mut self.phase {
            Phase::HeadGiven(_, given) => *given = head,
            _ => {
                let Phase::NoHead(reply) = self.take_phase() else {
                    unreachable!("refused above")
                };
                self.phase = Phase::HeadGiven(reply, head);
            }
        }
        Ok(())
    }

    /// The head is out (or the response is over): `start_response` can no
    /// longer change it.
    #[inline]
    pub(crate) fn is_sent(&self) -> bool {
        matches!(self.phase, Phase::Streaming(_) | Phase::Done)
    }

    /// Nothing more goes out.
    pub(crate) fn is_over(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The response has no content (HEAD, 204, 304).
    pub(crate) fn is_bodiless(&self) -> bool {
        self.bodiless
    }

    /// The body stream, while one is open.
    pub(crate) fn sink(&self) -> Option<&S> {
        match &self.phase {
            Phase::Streaming(sink) => Some(sink),
            _ => None,
        }
    }

    /// A non-empty body chunk or a `write()` is about to be sent: the head
    /// goes first (PEP 3333 §"Buffering and Streaming").
    pub(crate) fn open(&mut self) -> Result<Open<R>, Violation> {
        self.open_or(Violation::BodyBeforeHead)
    }

    /// The iterable ended: the head goes out now if it has not.
    pub(crate) fn open_at_end(&mut self) -> Result<Open<R>, Violation> {
        self.open_or(Violation::IterableEndedWithoutHead)
    }

    fn open_or(&mut self, no_head: Violation) -> Result<Open<R>, Violation> {
        match self.phase {
            Phase::NoHead(_) => return Err(no_head),
            Phase::Streaming(_) | Phase::Done => return Ok(Open::Sent),
            Phase::HeadGiven(..) => {}
        }
        let Phase::HeadGiven(reply, head) = self.take_phase() else {
            unreachable!("matched above")
        };
        Ok(if self.bodiless {
            Open::Bodiless(reply, head)
        } else {
            Open::Stream(reply, head)
        })
    }

    /// The phase, leaving `Done` in its place.
    #[inline]
    fn take_phase(&mut self) -> Phase<R, S> {
        std::mem::replace(&mut self.phase, Phase::Done)
    }

    /// After `Open::Stream`: the head went out, and the body goes on `sink`.
    pub(crate) fn streaming(&mut self, sink: S) {
        debug_assert!(
            matches!(self.phase, Phase::Done),
            "streaming() after Open::Stream only"
        );
        self.phase = Phase::Streaming(sink);
    }

    /// A body chunk of `len` bytes, counted against Content-Length whether
    /// or not it is sent.
    pub(crate) fn admit(&mut self, len: usize) -> Admitted<'_, S> {
        let len = match self.length.admit(len) {
            Admit::All => len,
            Admit::Truncate(n) => {
                self.see_surplus();
                n
            }
            Admit::Complete => {
                // Content-Length: 0 and a chunk of surplus, or a chunk after
                // the body is complete: end the stream rather than leave it
                // open (HTTP/2 would reset an abandoned stream).
                self.see_surplus();
                return Admitted::Finish;
            }
        };
        match &self.phase {
            Phase::Streaming(sink) => Admitted::Send {
                sink,
                len,
                last: self.length.is_complete(),
            },
            _ => Admitted::Discard,
        }
    }

    /// The body is over: end the stream, normally or aborted when it is
    /// shorter than its Content-Length.
    pub(crate) fn finish(&mut self) -> Finished<S> {
        if !matches!(self.phase, Phase::Streaming(_)) {
            return Finished::Nothing;
        }
        let Phase::Streaming(sink) = self.take_phase() else {
            unreachable!("matched above")
        };
        match self.length.finish() {
            Ok(()) => Finished::Complete(sink),
            Err(short) => Finished::Short(sink, short),
        }
    }

    /// A list or tuple of `len` bytes in all, known at once.
    #[inline]
    pub(crate) fn whole(&mut self, len: usize) -> Result<Whole<R>, Violation> {
        if self.is_sent() {
            return Ok(Whole::AfterWrite);
        }
        let len = match self.length.declared() {
            Some(n) if n < len as u64 => {
                self.see_surplus();
                n as usize
            }
            Some(n) if n > len as u64 && !self.bodiless => return Ok(Whole::Short),
            _ => len,
        };
        if !matches!(self.phase, Phase::HeadGiven(..)) {
            return Err(Violation::ReturnedWithoutHead);
        }
        let Phase::HeadGiven(reply, head) = self.take_phase() else {
            unreachable!("matched above")
        };
        Ok(Whole::Send {
            reply,
            head,
            len: (!self.bodiless).then_some(len),
        })
    }

    /// A file of which `available` bytes are left from its position.
    /// Without a Content-Length, the rest of the file is the body and its
    /// length goes in the head; with one, at most that many bytes are sent
    /// (a file that runs out first aborts the response).
    pub(crate) fn file(&mut self, available: u64) -> Result<FileResponse<R>, Violation> {
        if self.is_sent() {
            return Ok(FileResponse::Iterate);
        }
        if !matches!(self.phase, Phase::HeadGiven(..)) {
            return Err(Violation::FileWithoutHead);
        }
        let Phase::HeadGiven(reply, mut head) = self.take_phase() else {
            unreachable!("matched above")
        };
        let len = match head.content_length {
            Some(declared) => declared,
            // A 204 or 304 has no content, and no length is made up for it.
            None if no_content(head.status) => 0,
            None => {
                head.headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(available));
                available
            }
        };
        Ok(FileResponse::Send {
            reply,
            head,
            len: (!self.bodiless).then_some(len),
        })
    }

    /// The application failed (raised, or broke a rule above).
    pub(crate) fn fail(&mut self, cause: FailureCause) -> Failed<R, S> {
        match self.take_phase() {
            Phase::NoHead(reply) | Phase::HeadGiven(reply, _) => {
                let status = match cause {
                    FailureCause::RequestBodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                    FailureCause::RequestBodyTooSlow => StatusCode::REQUEST_TIMEOUT,
                    FailureCause::RequestBodyBroken => StatusCode::BAD_REQUEST,
                    FailureCause::Application => StatusCode::INTERNAL_SERVER_ERROR,
                };
                Failed::Answer {
                    reply,
                    status,
                    close: cause != FailureCause::Application,
                }
            }
            Phase::Streaming(sink) => Failed::Abort(sink),
            Phase::Done => Failed::Nothing,
        }
    }

    fn see_surplus(&mut self) {
        if self.surplus == Surplus::NotSeen {
            self.surplus = Surplus::Unreported;
        }
    }

    /// The application produced more than its Content-Length after the
    /// body was complete (the caller looked once more).
    pub(crate) fn surplus_found(&mut self) {
        self.see_surplus();
    }

    /// The declared length once, the first time the application produced
    /// more than it: the surplus is dropped, and worth one log line.
    #[inline]
    pub(crate) fn take_surplus_report(&mut self) -> Option<u64> {
        if self.surplus != Surplus::Unreported {
            return None;
        }
        self.surplus = Surplus::Reported;
        Some(self.length.declared().unwrap_or(0))
    }

    /// Content-Length is met and no surplus seen yet: worth looking once
    /// more, so that an application producing more gets its log line.
    pub(crate) fn wants_surplus_check(&self) -> bool {
        self.length.is_complete() && self.surplus == Surplus::NotSeen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body stream, by number (the test's stand-in for the runtime's).
    #[derive(Debug, PartialEq, Eq)]
    struct Sink(u8);

    /// The test's stand-in for the handle a head goes out on.
    #[derive(Debug, PartialEq, Eq)]
    struct Reply;

    /// What an application (through the bridge) does.
    #[derive(Debug, Clone, Copy)]
    enum Event {
        /// start_response(status, headers with this Content-Length, exc_info?).
        Start(u16, Option<u64>, bool),
        /// start_response whose arguments make no head.
        BadStart(bool),
        /// A non-empty chunk or write() (`open`, then `admit`).
        Chunk(usize),
        /// `open` whose head finds the connection gone (no `streaming`).
        OpenLost,
        /// The iterable ended (`open_at_end`, then `finish`).
        End,
        /// A list or tuple of so many bytes.
        List(usize),
        /// A file with so many bytes left.
        FileLeft(u64),
        Fail(FailureCause),
        /// The application produced more after Content-Length was met.
        MoreAfterLength,
    }
    use Event::*;
    use FailureCause::*;

    fn head(status: u16, length: Option<u64>) -> Head {
        let mut headers = HeaderMap::new();
        if let Some(n) = length {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
        }
        Head {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            content_length: length,
        }
    }

    /// The head as the transcript shows it: status and Content-Length.
    fn shown(head: &Head) -> String {
        match head.headers.get(CONTENT_LENGTH) {
            Some(n) => format!("{} cl={}", head.status.as_u16(), n.to_str().unwrap()),
            None => head.status.as_u16().to_string(),
        }
    }

    fn open_text(state: &mut ResponseState<Reply, Sink>, open: Open<Reply>) -> String {
        match open {
            Open::Sent => "".into(),
            Open::Bodiless(Reply, h) => format!("head {} bodiless; ", shown(&h)),
            Open::Stream(Reply, h) => {
                state.streaming(Sink(1));
                format!("head {} stream; ", shown(&h))
            }
        }
    }

    fn finish_text(state: &mut ResponseState<Reply, Sink>) -> String {
        match state.finish() {
            Finished::Complete(Sink(1)) => "complete".into(),
            Finished::Short(Sink(1), s) => format!("short {}/{}", s.sent, s.declared),
            Finished::Nothing => "nothing".into(),
            Finished::Complete(_) | Finished::Short(..) => unreachable!(),
        }
    }

    /// Plays `event` as the bridge does, and says what was decided.
    fn play(state: &mut ResponseState<Reply, Sink>, event: Event) -> String {
        let text = match event {
            Start(status, length, exc_info) => {
                match state.start_response(exc_info, || Ok::<_, ()>(head(status, length))) {
                    Ok(()) => "ok".into(),
                    Err(StartRefused::Reraise) => "reraise".into(),
                    Err(StartRefused::Illegal(v)) => format!("{v:?}"),
                    Err(StartRefused::BadHead(())) => unreachable!(),
                }
            }
            BadStart(exc_info) => match state.start_response(exc_info, || Err("bad")) {
                Ok(()) => unreachable!(),
                Err(StartRefused::BadHead(e)) => e.into(),
                Err(StartRefused::Reraise) => "reraise".into(),
                Err(StartRefused::Illegal(v)) => format!("{v:?}"),
            },
            Chunk(len) => match state.open() {
                Err(v) => format!("{v:?}"),
                Ok(open) => {
                    let mut text = open_text(state, open);
                    let finish = match state.admit(len) {
                        Admitted::Send { len, last, .. } => {
                            text += &format!("send {len}");
                            last
                        }
                        Admitted::Finish => {
                            text += "send nothing";
                            true
                        }
                        Admitted::Discard => {
                            text += "discard";
                            false
                        }
                    };
                    if finish {
                        text += "; ";
                        text += &finish_text(state);
                    }
                    text
                }
            },
            OpenLost => match state.open() {
                Err(v) => format!("{v:?}"),
                Ok(Open::Stream(Reply, h)) => format!("head {} lost", shown(&h)),
                Ok(open) => open_text(state, open),
            },
            End => match state.open_at_end() {
                Err(v) => format!("{v:?}"),
                Ok(open) => open_text(state, open) + &finish_text(state),
            },
            List(len) => match state.whole(len) {
                Err(v) => format!("{v:?}"),
                Ok(Whole::Send {
                    reply: Reply,
                    head,
                    len,
                }) => format!("head {} body {len:?}", shown(&head)),
                Ok(Whole::Short) => "short: stream it".into(),
                Ok(Whole::AfterWrite) => "after write: stream it".into(),
            },
            FileLeft(available) => match state.file(available) {
                Err(v) => format!("{v:?}"),
                Ok(FileResponse::Send {
                    reply: Reply,
                    head,
                    len,
                }) => format!("head {} file {len:?}", shown(&head)),
                Ok(FileResponse::Iterate) => "iterate".into(),
            },
            Fail(cause) => match state.fail(cause) {
                Failed::Answer {
                    reply: Reply,
                    status,
                    close,
                } => format!(
                    "answer {}{}",
                    status.as_u16(),
                    if close { " close" } else { "" }
                ),
                Failed::Abort(Sink(1)) => "abort".into(),
                Failed::Abort(_) => unreachable!(),
                Failed::Nothing => "nothing".into(),
            },
            MoreAfterLength => {
                assert!(state.wants_surplus_check(), "{state:?}");
                state.surplus_found();
                "looked".into()
            }
        };
        let surplus = match state.take_surplus_report() {
            Some(n) => format!(" +surplus over {n}"),
            None => String::new(),
        };
        format!("{text}{surplus} [{}]", state.phase_name())
    }

    /// (what it tests, HEAD request?, events, what each decided [phase after]).
    type Case = (
        &'static str,
        bool,
        &'static [Event],
        &'static [&'static str],
    );

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        // PEP 3333 §"The start_response() Callable": the head is given first,
        // and sent with the first non-empty chunk (§"Buffering and Streaming").
        ("head, chunk, end", false,
         &[Start(200, None, false), Chunk(5), End],
         &["ok [HeadGiven]", "head 200 stream; send 5 [Streaming]", "complete [Done]"]),
        ("an empty body: the head at the end", false,
         &[Start(200, None, false), End],
         &["ok [HeadGiven]", "head 200 stream; complete [Done]"]),
        // §"The start_response() Callable": exc_info may be given on the
        // first call (an error handler that does not know).
        ("exc_info on the first call", false,
         &[Start(500, None, true)],
         &["ok [HeadGiven]"]),
        // §"The start_response() Callable": exc_info before the head is sent
        // replaces the head.
        ("exc_info before sending replaces the head", false,
         &[Start(200, Some(5), false), Start(500, Some(3), true), Chunk(3)],
         &["ok [HeadGiven]", "ok [HeadGiven]", "head 500 cl=3 stream; send 3; complete [Done]"]),
        // §"The start_response() Callable": "it is a fatal error to call
        // start_response without the exc_info argument" a second time.
        ("twice without exc_info, before sending", false,
         &[Start(200, None, false), Start(500, None, false), Chunk(1)],
         &["ok [HeadGiven]", "StartedTwice [HeadGiven]", "head 200 stream; send 1 [Streaming]"]),
        ("twice without exc_info, after sending", false,
         &[Start(200, None, false), Chunk(1), Start(500, None, false)],
         &["ok [HeadGiven]", "head 200 stream; send 1 [Streaming]", "StartedTwice [Streaming]"]),
        ("twice without exc_info, when over", false,
         &[Start(200, Some(1), false), Chunk(1), Start(500, None, false)],
         &["ok [HeadGiven]", "head 200 cl=1 stream; send 1; complete [Done]", "StartedTwice [Done]"]),
        // §"The start_response() Callable": exc_info after the head was sent:
        // "start_response must raise an error, and should re-raise".
        ("exc_info after sending re-raises", false,
         &[Start(200, None, false), Chunk(1), Start(500, None, true), End],
         &["ok [HeadGiven]", "head 200 stream; send 1 [Streaming]", "reraise [Streaming]", "complete [Done]"]),
        ("exc_info when over re-raises", false,
         &[Start(200, None, false), End, Start(500, None, true)],
         &["ok [HeadGiven]", "head 200 stream; complete [Done]", "reraise [Done]"]),
        ("exc_info after a failure re-raises", false,
         &[Start(200, None, false), Fail(Application), Start(500, None, true)],
         &["ok [HeadGiven]", "answer 500 [Done]", "reraise [Done]"]),
        // Arguments that make no head change nothing; legality comes first.
        ("a bad head changes nothing", false,
         &[BadStart(false), Start(200, None, false), BadStart(true), BadStart(false), Chunk(1)],
         &["bad [NoHead]", "ok [HeadGiven]", "bad [HeadGiven]", "StartedTwice [HeadGiven]",
           "head 200 stream; send 1 [Streaming]"]),
        ("a bad head after sending: re-raise first", false,
         &[Start(200, None, false), Chunk(1), BadStart(true)],
         &["ok [HeadGiven]", "head 200 stream; send 1 [Streaming]", "reraise [Streaming]"]),
        // §"Buffering and Streaming": no body before the head.
        ("a chunk before start_response", false,
         &[Chunk(3), Start(200, None, false), Chunk(3)],
         &["BodyBeforeHead [NoHead]", "ok [HeadGiven]", "head 200 stream; send 3 [Streaming]"]),
        ("the end without start_response", false,
         &[End], &["IterableEndedWithoutHead [NoHead]"]),
        ("a list without start_response", false,
         &[List(3)], &["ReturnedWithoutHead [NoHead]"]),
        ("a file without start_response", false,
         &[FileLeft(3)], &["FileWithoutHead [NoHead]"]),
        // §"Handling the Content-Length Header": never more than declared;
        // the surplus is dropped and reported once.
        ("Content-Length met exactly", false,
         &[Start(200, Some(6), false), Chunk(3), Chunk(3), End],
         &["ok [HeadGiven]", "head 200 cl=6 stream; send 3 [Streaming]", "send 3; complete [Done]", "nothing [Done]"]),
        ("a chunk crossing Content-Length is cut", false,
         &[Start(200, Some(4), false), Chunk(3), Chunk(3), Chunk(3)],
         &["ok [HeadGiven]", "head 200 cl=4 stream; send 3 [Streaming]",
           "send 1; complete +surplus over 4 [Done]", "send nothing; nothing [Done]"]),
        ("Content-Length 0 and a chunk: nothing sent, ended", false,
         &[Start(200, Some(0), false), Chunk(3)],
         &["ok [HeadGiven]", "head 200 cl=0 stream; send nothing; complete +surplus over 0 [Done]"]),
        ("more after Content-Length is reported once", false,
         &[Start(200, Some(3), false), Chunk(3), MoreAfterLength],
         &["ok [HeadGiven]", "head 200 cl=3 stream; send 3; complete [Done]", "looked +surplus over 3 [Done]"]),
        // WSGI 1.1: fewer than declared aborts the response.
        ("a body shorter than Content-Length", false,
         &[Start(200, Some(10), false), Chunk(3), End],
         &["ok [HeadGiven]", "head 200 cl=10 stream; send 3 [Streaming]", "short 3/10 [Done]"]),
        // RFC 9110 §6.4.1: no content for HEAD, 204, 304; §8.6: no
        // Content-Length on a 204.
        ("HEAD: the head alone", true,
         &[Start(200, Some(5), false), Chunk(5), Chunk(5), End],
         &["ok [HeadGiven]", "head 200 cl=5 bodiless; discard [Done]",
           "send nothing; nothing +surplus over 5 [Done]", "nothing [Done]"]),
        ("204: the head alone, without Content-Length", false,
         &[Start(204, Some(5), false), Chunk(5)],
         &["ok [HeadGiven]", "head 204 bodiless; discard [Done]"]),
        ("304 keeps its Content-Length", false,
         &[Start(304, Some(5), false), End],
         &["ok [HeadGiven]", "head 304 cl=5 bodiless; nothing [Done]"]),
        ("exc_info replacing a 204 head with a 500 has a body again", false,
         &[Start(204, None, false), Start(500, None, true), Chunk(2)],
         &["ok [HeadGiven]", "ok [HeadGiven]", "head 500 stream; send 2 [Streaming]"]),
        // The connection was gone when the head was sent.
        ("head sent to a closed connection", false,
         &[Start(200, None, false), OpenLost, Chunk(3), End],
         &["ok [HeadGiven]", "head 200 lost [Done]", "discard [Done]", "nothing [Done]"]),
        // A list or tuple: head and body at once.
        ("a list", false,
         &[Start(200, None, false), List(5)],
         &["ok [HeadGiven]", "head 200 body Some(5) [Done]"]),
        ("a list longer than Content-Length is cut", false,
         &[Start(200, Some(3), false), List(5)],
         &["ok [HeadGiven]", "head 200 cl=3 body Some(3) +surplus over 3 [Done]"]),
        ("a list shorter than Content-Length is streamed (and aborted)", false,
         &[Start(200, Some(9), false), List(5), Chunk(5), End],
         &["ok [HeadGiven]", "short: stream it [HeadGiven]", "head 200 cl=9 stream; send 5 [Streaming]",
           "short 5/9 [Done]"]),
        ("a list for HEAD", true,
         &[Start(200, Some(9), false), List(5)],
         &["ok [HeadGiven]", "head 200 cl=9 body None [Done]"]),
        ("a list after write()", false,
         &[Start(200, None, false), Chunk(1), List(5)],
         &["ok [HeadGiven]", "head 200 stream; send 1 [Streaming]", "after write: stream it [Streaming]"]),
        // A file: at most Content-Length bytes, else the rest of the file
        // with its length in the head.
        ("a file without Content-Length", false,
         &[Start(200, None, false), FileLeft(100)],
         &["ok [HeadGiven]", "head 200 cl=100 file Some(100) [Done]"]),
        ("a file with Content-Length", false,
         &[Start(200, Some(10), false), FileLeft(100)],
         &["ok [HeadGiven]", "head 200 cl=10 file Some(10) [Done]"]),
        ("a file for HEAD: its length, no body", true,
         &[Start(200, None, false), FileLeft(100)],
         &["ok [HeadGiven]", "head 200 cl=100 file None [Done]"]),
        ("a file for a 304: no length made up", false,
         &[Start(304, None, false), FileLeft(100)],
         &["ok [HeadGiven]", "head 304 file None [Done]"]),
        ("a file after write()", false,
         &[Start(200, None, false), Chunk(1), FileLeft(100)],
         &["ok [HeadGiven]", "head 200 stream; send 1 [Streaming]", "iterate [Streaming]"]),
        // A failure: an error response while nothing is sent, else abort.
        ("failure before start_response", false,
         &[Fail(Application)], &["answer 500 [Done]"]),
        ("failure with a head given", false,
         &[Start(200, None, false), Fail(RequestBodyTooLarge)], &["ok [HeadGiven]", "answer 413 close [Done]"]),
        ("a broken request body", false,
         &[Fail(RequestBodyBroken)], &["answer 400 close [Done]"]),
        ("a request body below the minimum rate", false,
         &[Fail(RequestBodyTooSlow)], &["answer 408 close [Done]"]),
        ("failure while streaming", false,
         &[Start(200, None, false), Chunk(1), Fail(Application), Chunk(1)],
         &["ok [HeadGiven]", "head 200 stream; send 1 [Streaming]", "abort [Done]", "discard [Done]"]),
        ("failure when over", false,
         &[Start(200, None, false), End, Fail(Application)],
         &["ok [HeadGiven]", "head 200 stream; complete [Done]", "nothing [Done]"]),
    ];

    #[test]
    fn transitions() {
        for (what, head_request, events, expected) in CASES {
            let mut state = ResponseState::new(Reply, *head_request);
            let got: Vec<String> = events.iter().map(|e| play(&mut state, *e)).collect();
            assert_eq!(got, *expected, "{what}");
        }
    }

    #[test]
    fn violations_say_which_rule() {
        for v in [
            Violation::StartedTwice,
            Violation::BodyBeforeHead,
            Violation::IterableEndedWithoutHead,
            Violation::ReturnedWithoutHead,
            Violation::FileWithoutHead,
        ] {
            assert!(v.to_string().ends_with("(PEP 3333)"), "{v}");
        }
    }

    #[test]
    fn debug_shows_the_phase() {
        let state: ResponseState<Reply, Sink> = ResponseState::new(Reply, false);
        assert!(format!("{state:?}").contains("NoHead"));
    }
}
