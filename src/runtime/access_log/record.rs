//! One request's access-log line: what it shows, captured when the request
//! starts (client, request line, the request headers the format names) and
//! when its response head is known (status, the response headers named),
//! written when the response ends (bytes sent, duration).
//!
//! Text lines follow the format (`format`); request-derived text is escaped
//! as Apache's `mod_log_config` escapes `%r` and `%{...}i`. JSON lines are one
//! object per line, a key per atom (`Atom::json_key`), numbers as numbers,
//! absent values as `null`.
//!
//! What it does not do: decide where the line goes (`sink`).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use http::header::{HeaderValue, AUTHORIZATION};
use http::{Method, Request, Uri, Version};

use super::format::{Atom, Piece};
use super::sink::AccessLog;

pub(crate) struct AccessRecord {
    log: Arc<AccessLog>,
    peer: Option<IpAddr>,
    method: Method,
    uri: Uri,
    version: Version,
    /// By `AccessLog::request_headers`.
    request_headers: Vec<Option<HeaderValue>>,
    /// By `AccessLog::response_headers`.
    response_headers: Vec<Option<HeaderValue>>,
    user: Option<String>,
    status: u16,
    started: Instant,
}

/// A value of a line, before it is written as text or JSON.
enum Field<'a> {
    /// Text from the request or response: escaped.
    Text(&'a [u8]),
    /// Text the server made (no escaping needed).
    Own(String),
    Number(u64),
    Seconds(Duration),
    Absent,
}

impl AccessRecord {
    pub(crate) fn start<B>(
        req: &Request<B>,
        peer: Option<SocketAddr>,
        log: Arc<AccessLog>,
    ) -> AccessRecord {
        let headers = req.headers();
        let request_headers = log
            .request_headers
            .iter()
            .map(|name| headers.get(name).cloned())
            .collect();
        let user = match log.format.needs(&Atom::User) {
            true => headers.get(AUTHORIZATION).and_then(basic_user),
            false => None,
        };
        AccessRecord {
            peer: peer.map(|p| p.ip()),
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            request_headers,
            response_headers: Vec::new(),
            user,
            status: 0,
            started: Instant::now(),
            log,
        }
    }

    pub(crate) fn set_response(&mut self, parts: &http::response::Parts) {
        self.status = parts.status.as_u16();
        self.response_headers = self
            .log
            .response_headers
            .iter()
            .map(|name| parts.headers.get(name).cloned())
            .collect();
    }

    pub(crate) fn write(&self, sent: u64) {
        let elapsed = self.started.elapsed();
        let line = match self.log.json {
            false => self.text_line(sent, elapsed),
            true => self.json_line(sent, elapsed),
        };
        self.log.emit(line);
    }

    /// The target as the client sent it: an HTTP/1.x request in absolute
    /// form (`GET http://host/p HTTP/1.1`, proxies' form) keeps its scheme
    /// and authority. HTTP/2 always carries them (as pseudo-header fields),
    /// and its line shows the path, as in gunicorn's and hypercorn's logs.
    fn target(&self) -> String {
        match self.uri.scheme() {
            Some(_) if self.version < Version::HTTP_2 => self.uri.to_string(),
            _ => self
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
        }
    }

    fn field(&self, atom: &Atom, sent: u64, elapsed: Duration) -> Field<'_> {
        let request_header = |name: &http::HeaderName| {
            let index = self.log.request_headers.iter().position(|n| n == name);
            header(&self.request_headers, index)
        };
        match atom {
            Atom::RemoteAddr => self
                .peer
                .map_or(Field::Absent, |ip| Field::Own(ip.to_string())),
            Atom::Ident => Field::Absent,
            Atom::User => self
                .user
                .as_deref()
                .map_or(Field::Absent, |u| Field::Text(u.as_bytes())),
            Atom::Time => Field::Own(format!("[{}]", clf_time(SystemTime::now()))),
            Atom::RequestLine => Field::Own(format!(
                "{} {} {:?}",
                self.method,
                escaped(self.target().as_bytes()),
                self.version
            )),
            Atom::Method => Field::Text(self.method.as_str().as_bytes()),
            Atom::Path => Field::Text(self.uri.path().as_bytes()),
            Atom::Query => Field::Text(self.uri.query().unwrap_or("").as_bytes()),
            Atom::Protocol => Field::Own(format!("{:?}", self.version)),
            Atom::Status => Field::Number(u64::from(self.status)),
            Atom::Bytes => Field::Number(sent),
            Atom::BytesClf if sent == 0 => Field::Absent,
            Atom::BytesClf => Field::Number(sent),
            Atom::Referer => request_header(&http::header::REFERER),
            Atom::UserAgent => request_header(&http::header::USER_AGENT),
            Atom::RequestHeader(name) => request_header(name),
            Atom::ResponseHeader(name) => {
                let index = self.log.response_headers.iter().position(|n| n == name);
                header(&self.response_headers, index)
            }
            Atom::Seconds => Field::Number(elapsed.as_secs()),
            Atom::Millis => Field::Number(elapsed.as_millis() as u64),
            Atom::Micros => Field::Number(elapsed.as_micros() as u64),
            Atom::DecimalSeconds => Field::Seconds(elapsed),
            Atom::Pid => Field::Number(u64::from(std::process::id())),
        }
    }

    fn text_line(&self, sent: u64, elapsed: Duration) -> String {
        let mut line = String::with_capacity(160);
        for piece in self.log.format.pieces() {
            let atom = match piece {
                Piece::Text(text) => {
                    line.push_str(text);
                    continue;
                }
                Piece::Atom(atom) => atom,
            };
            match self.field(atom, sent, elapsed) {
                Field::Text(raw) => escape_into(&mut line, raw),
                Field::Own(text) => line.push_str(&text),
                Field::Number(n) if *atom == Atom::Pid => {
                    let _ = write!(line, "<{n}>");
                }
                Field::Number(n) => {
                    let _ = write!(line, "{n}");
                }
                Field::Seconds(d) => {
                    let _ = write!(line, "{}.{:06}", d.as_secs(), d.subsec_micros());
                }
                Field::Absent => line.push('-'),
            }
        }
        line
    }

    fn json_line(&self, sent: u64, elapsed: Duration) -> String {
        let mut line = String::with_capacity(256);
        line.push('{');
        let mut seen: Vec<String> = Vec::new();
        for atom in self.log.format.atoms() {
            let key = atom.json_key();
            if seen.contains(&key) {
                continue;
            }
            if !seen.is_empty() {
                line.push(',');
            }
            json_string(&mut line, key.as_bytes());
            line.push(':');
            match self.field(atom, sent, elapsed) {
                Field::Text(raw) => json_string(&mut line, raw),
                Field::Own(text) => json_string(&mut line, text.as_bytes()),
                Field::Number(n) => {
                    let _ = write!(line, "{n}");
                }
                Field::Seconds(d) => {
                    let _ = write!(line, "{}.{:06}", d.as_secs(), d.subsec_micros());
                }
                Field::Absent => line.push_str("null"),
            }
            seen.push(key);
        }
        line.push('}');
        line
    }
}

/// The value of the header at `index` of `values`, if it came.
fn header(values: &[Option<HeaderValue>], index: Option<usize>) -> Field<'_> {
    match index.and_then(|i| values.get(i)).and_then(Option::as_ref) {
        Some(v) => Field::Text(v.as_bytes()),
        None => Field::Absent,
    }
}

/// The user name of `Authorization: Basic` (RFC 7617 §2), as gunicorn's `u`.
fn basic_user(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let (scheme, credentials) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let decoded = String::from_utf8_lossy(&decoded);
    Some(
        decoded
            .split_once(':')
            .map_or(&*decoded, |(user, _)| user)
            .to_string(),
    )
}

/// A request's text as it goes between the log line's quotes, escaped as
/// Apache's `mod_log_config` escapes `%r` and `%{...}i`: `"` and `\` get a
/// backslash, bytes outside printable ASCII become `\xhh`. A client's
/// `User-Agent: x" 200 0 "-" "forged` then cannot end the field and write
/// fields of its own, and log readers never see raw control bytes.
fn escaped(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    escape_into(&mut out, raw);
    out
}

fn escape_into(out: &mut String, raw: &[u8]) {
    for &b in raw {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// A JSON string (RFC 8259 §7) of `raw`, read as UTF-8 (invalid bytes
/// become U+FFFD).
fn json_string(out: &mut String, raw: &[u8]) {
    out.push('"');
    for c in String::from_utf8_lossy(raw).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
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
    use crate::runtime::access_log::format::{AccessFormat, DEFAULT};
    use crate::runtime::access_log::sink::Destination;

    fn log(format: &str, json: bool) -> Arc<AccessLog> {
        Arc::new(
            AccessLog::open(
                AccessFormat::parse(format).unwrap(),
                json,
                Destination::Logger,
            )
            .unwrap(),
        )
    }

    fn request(uri: &str, version: Version) -> Request<()> {
        Request::builder()
            .uri(uri)
            .version(version)
            .header("user-agent", "x\" 200 0 \"-\" \"forged")
            .header("x-id", "42")
            .header("authorization", "Basic YWxpY2U6c2VjcmV0")
            .body(())
            .unwrap()
    }

    fn respond(record: &mut AccessRecord) {
        let (parts, ()) = http::Response::builder()
            .status(201)
            .header("content-type", "text/plain")
            .body(())
            .unwrap()
            .into_parts();
        record.set_response(&parts);
    }

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
        let log = log("%(r)s", false);
        let peer = Some(SocketAddr::from(([127, 0, 0, 1], 5000)));
        let h1 = AccessRecord::start(
            &request("http://example.com/p?q", Version::HTTP_11),
            peer,
            log.clone(),
        );
        assert_eq!(
            h1.text_line(0, Duration::ZERO),
            "GET http://example.com/p?q HTTP/1.1"
        );
        let h2 = AccessRecord::start(
            &request("http://example.com/p?q", Version::HTTP_2),
            peer,
            log,
        );
        assert_eq!(h2.text_line(0, Duration::ZERO), "GET /p?q HTTP/2.0");
    }

    #[test]
    fn every_atom_as_text() {
        let log = log(
            "%(h)s %(l)s %(u)s %(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(b)s %(f)s %(a)s \
             %(T)s %(M)s %(D)s %(L)s %({X-Id}i)s %({content-type}o)s %({x-none}o)s",
            false,
        );
        let peer = Some(SocketAddr::from(([127, 0, 0, 1], 5000)));
        let mut record = AccessRecord::start(&request("/a%20b?x=1", Version::HTTP_11), peer, log);
        respond(&mut record);
        assert_eq!(
            record.text_line(0, Duration::from_micros(2_003_004)),
            r#"127.0.0.1 - alice GET /a%20b x=1 HTTP/1.1 201 0 - - x\" 200 0 \"-\" \"forged 2 2003 2003004 2.003004 42 text/plain -"#
        );
    }

    #[test]
    fn json_lines() {
        let log = log(DEFAULT, true);
        let mut record = AccessRecord::start(&request("/p", Version::HTTP_2), None, log);
        respond(&mut record);
        let line = record.json_line(13, Duration::from_micros(1500));
        assert!(
            line.starts_with(r#"{"remote_addr":null,"ident":null,"user":"alice","time":"["#),
            "{line}"
        );
        assert!(
            line.ends_with(
                r#""request":"GET /p HTTP/2.0","status":201,"bytes":13,"referer":null,"user_agent":"x\" 200 0 \"-\" \"forged","duration":0.001500}"#
            ),
            "{line}"
        );
    }

    #[test]
    fn the_pid_is_bracketed_and_basic_users_decoded() {
        let log = log("%(p)s", false);
        let record = AccessRecord::start(&request("/", Version::HTTP_11), None, log);
        assert_eq!(
            record.text_line(0, Duration::ZERO),
            format!("<{}>", std::process::id())
        );
        assert_eq!(basic_user(&HeaderValue::from_static("Bearer abc")), None);
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
