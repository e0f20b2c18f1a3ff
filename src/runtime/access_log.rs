//! The access log, and the body wrapper that reports the end of a response:
//! `Tracked` counts the bytes sent and runs a callback when the response ends
//! (or is dropped: a client that went away still gets a line, with the bytes
//! actually sent). The connection uses the same callback for its idle timer.
//!
//! Format (gunicorn's default, plus the duration in seconds):
//! `127.0.0.1 - - [24/Nov/2026:00:00:00 +0000] "GET /path?q HTTP/1.1" 200 13 "-" "curl/8" 0.001234`
//!
//! What it does not do: decide where the line goes. It logs on the
//! `propylon.access` target; the bridge forwards that to Python `logging`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};

use super::timers::{InFlight, Progress};

pub(crate) struct AccessRecord {
    peer: String,
    request_line: String,
    referer: String,
    user_agent: String,
    status: u16,
    started: Instant,
}

impl AccessRecord {
    pub(crate) fn start<B>(req: &Request<B>, peer: Option<SocketAddr>) -> AccessRecord {
        let header = |name: http::header::HeaderName| {
            req.headers()
                .get(name)
                .map_or_else(|| "-".to_string(), |v| escaped(v.as_bytes()))
        };
        // The target as the client sent it: an HTTP/1.x request in absolute
        // form (`GET http://host/p HTTP/1.1`, proxies' form) keeps its scheme
        // and authority. HTTP/2 always carries them (as pseudo-header
        // fields), and its line shows the path, as in gunicorn's and
        // hypercorn's logs.
        let uri = req.uri();
        let target = match uri.scheme() {
            Some(_) if req.version() < http::Version::HTTP_2 => escaped(uri.to_string().as_bytes()),
            _ => escaped(uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes()),
        };
        AccessRecord {
            peer: peer.map_or_else(|| "-".to_string(), |p| p.ip().to_string()),
            request_line: format!("{} {} {:?}", req.method(), target, req.version()),
            referer: header(http::header::REFERER),
            user_agent: header(http::header::USER_AGENT),
            status: 0,
            started: Instant::now(),
        }
    }

    pub(crate) fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    pub(crate) fn write(&self, sent: u64) {
        let elapsed = self.started.elapsed().as_secs_f64();
        log::info!(
            target: "propylon.access",
            "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\" {:.6}",
            self.peer,
            clf_time(SystemTime::now()),
            self.request_line,
            self.status,
            sent,
            self.referer,
            self.user_agent,
            elapsed
        );
    }
}

/// Runs once when the response ends, with the number of body bytes sent.
/// What a response's end settles: its access-log line (when logging) and
/// the end of its request on the connection (`Activity`).
pub(crate) struct OnEnd {
    pub(crate) record: Option<Box<AccessRecord>>,
    /// Held, never read: dropped with this, it ends the request.
    #[allow(dead_code)]
    pub(crate) in_flight: InFlight,
}

pub(crate) struct Tracked<B> {
    inner: B,
    on_end: OnEnd,
    sent: u64,
    progress: Arc<Progress>,
}

impl<B> Tracked<B> {
    pub(crate) fn new(inner: B, progress: Arc<Progress>, on_end: OnEnd) -> Tracked<B> {
        Tracked {
            inner,
            on_end,
            sent: 0,
            progress,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                    this.progress.gave_data();
                }
            }
            _ => this.progress.waiting(),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        // The request ends when `on_end.in_flight` drops, just after this.
        if let Some(record) = &self.on_end.record {
            record.write(self.sent);
        }
    }
}

/// A request's text as it goes between the log line's quotes, escaped as
/// Apache's `mod_log_config` escapes `%r` and `%{...}i`: `"` and `\` get a
/// backslash, bytes outside printable ASCII become `\xhh`. A client's
/// `User-Agent: x" 200 0 "-" "forged` then cannot end the field and write
/// fields of its own, and log readers never see raw control bytes.
fn escaped(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// Common Log Format time, in UTC: `24/Nov/2026:00:22:13 +0000`.
fn clf_time(now: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fields_are_escaped_as_apache_does() {
        assert_eq!(escaped(b"curl/8.5.0"), "curl/8.5.0");
        assert_eq!(
            escaped(b"x\" 200 0 \"-\" \"forged"),
            r#"x\" 200 0 \"-\" \"forged"#
        );
        assert_eq!(escaped(b"a\\b\tc\x7f\xc3\xa9"), r"a\\b\x09c\x7f\xc3\xa9");
    }

    #[test]
    fn absolute_form_targets_keep_scheme_and_authority_on_http1_only() {
        let request = |version| {
            Request::builder()
                .uri("http://example.com/p?q")
                .version(version)
                .body(())
                .unwrap()
        };
        let h1 = AccessRecord::start(&request(http::Version::HTTP_11), None);
        assert_eq!(h1.request_line, "GET http://example.com/p?q HTTP/1.1");
        let h2 = AccessRecord::start(&request(http::Version::HTTP_2), None);
        assert_eq!(h2.request_line, "GET /p?q HTTP/2.0");
    }

    #[test]
    fn clf_dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_479_733);
        assert_eq!(clf_time(t), "24/Nov/2026:00:22:13 +0000");
        assert_eq!(
            clf_time(SystemTime::UNIX_EPOCH),
            "01/Jan/1970:00:00:00 +0000"
        );
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(clf_time(leap), "29/Feb/2000:00:00:00 +0000");
    }
}
