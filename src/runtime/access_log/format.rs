//! `--access-log-format`: gunicorn's atoms, parsed once at start.
//!
//! The format is Python %-formatting with a mapping, as gunicorn's
//! `access_log_format`: `%(h)s` and friends, `%({name}i)s` for a request
//! header, `%({name}o)s` for a response header, `%%` for a percent sign;
//! everything else is copied. The meaning of each atom is gunicorn's
//! (docs/guide/logging.md has the table). `%({name}e)s` (an environ
//! variable) is refused: the environ is the application's, built in Python.
//!
//! What it does not do: capture a request's values (`record`), or decide
//! where a line goes (`sink`).

use std::fmt;

use http::header::HeaderName;

/// The default (declared in `propylon.config`; here for tests): gunicorn's default format (Apache's "combined") with the
/// response's bytes as a number and the duration in seconds after it.
#[cfg(test)]
pub(crate) const DEFAULT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(B)s "%(f)s" "%(a)s" %(L)s"#;

/// One value a line can show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Atom {
    /// `h`: the client's address.
    RemoteAddr,
    /// `l`: `-` (identd is not asked).
    Ident,
    /// `u`: the user name of `Authorization: Basic`, else `-`.
    User,
    /// `t`: the time, `[24/Nov/2026:00:22:13 +0000]`.
    Time,
    /// `r`: the request line, `GET /p?q HTTP/1.1`.
    RequestLine,
    /// `m`
    Method,
    /// `U`: the path, without the query.
    Path,
    /// `q`: the query, without `?`.
    Query,
    /// `H`: `HTTP/1.1`, `HTTP/2.0`.
    Protocol,
    /// `s`
    Status,
    /// `B`: body bytes sent.
    Bytes,
    /// `b`: body bytes sent, `-` for none (Common Log Format).
    BytesClf,
    /// `f`: `Referer`.
    Referer,
    /// `a`: `User-Agent`.
    UserAgent,
    /// `T`: whole seconds taken.
    Seconds,
    /// `M`: milliseconds taken.
    Millis,
    /// `D`: microseconds taken.
    Micros,
    /// `L`: seconds taken, with six decimals.
    DecimalSeconds,
    /// `p`: the process id, `<12345>` as gunicorn writes it.
    Pid,
    /// `{name}i`
    RequestHeader(HeaderName),
    /// `{name}o`
    ResponseHeader(HeaderName),
}

impl Atom {
    /// The atom's key in a JSON line.
    pub(crate) fn json_key(&self) -> String {
        let key = match self {
            Atom::RemoteAddr => "remote_addr",
            Atom::Ident => "ident",
            Atom::User => "user",
            Atom::Time => "time",
            Atom::RequestLine => "request",
            Atom::Method => "method",
            Atom::Path => "path",
            Atom::Query => "query",
            Atom::Protocol => "protocol",
            Atom::Status => "status",
            Atom::Bytes | Atom::BytesClf => "bytes",
            Atom::Referer => "referer",
            Atom::UserAgent => "user_agent",
            Atom::Seconds => "duration_s",
            Atom::Millis => "duration_ms",
            Atom::Micros => "duration_us",
            Atom::DecimalSeconds => "duration",
            Atom::Pid => "pid",
            Atom::RequestHeader(name) => return format!("request_header.{name}"),
            Atom::ResponseHeader(name) => return format!("response_header.{name}"),
        };
        key.to_string()
    }
}

/// A piece of a format: text copied as it is, or an atom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    Atom(Atom),
}

/// A parsed `--access-log-format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessFormat {
    pieces: Vec<Piece>,
}

/// Why a format cannot be used; the text names the atom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatError(String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormatError {}

impl AccessFormat {
    pub(crate) fn parse(text: &str) -> Result<AccessFormat, FormatError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('%') {
            literal.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some(after) = rest.strip_prefix("%%") {
                literal.push('%');
                rest = after;
                continue;
            }
            let Some(inner) = rest.strip_prefix("%(") else {
                return Err(FormatError(format!(
                    "a lone '%' at {:?}; write %% for a percent sign, %(h)s for an atom",
                    head(rest)
                )));
            };
            let end = inner
                .find(")s")
                .ok_or_else(|| FormatError(format!("{:?} is not closed by ')s'", head(rest))))?;
            let atom = atom(&inner[..end])?;
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Atom(atom));
            rest = &inner[end + 2..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(AccessFormat { pieces })
    }

    pub(crate) fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    pub(crate) fn atoms(&self) -> impl Iterator<Item = &Atom> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Atom(a) => Some(a),
            Piece::Text(_) => None,
        })
    }

    /// Whether the format shows `wanted` (the user name, say: only then is
    /// `Authorization` decoded).
    pub(crate) fn needs(&self, wanted: &Atom) -> bool {
        self.atoms().any(|a| a == wanted)
    }

    /// The request headers the format shows, in the order of `atoms`
    /// (`Referer` and `User-Agent` included).
    pub(crate) fn request_headers(&self) -> Vec<HeaderName> {
        let mut names: Vec<HeaderName> = Vec::new();
        for atom in self.atoms() {
            let name = match atom {
                Atom::Referer => http::header::REFERER,
                Atom::UserAgent => http::header::USER_AGENT,
                Atom::RequestHeader(name) => name.clone(),
                _ => continue,
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// The response headers the format shows.
    pub(crate) fn response_headers(&self) -> Vec<HeaderName> {
        let mut names: Vec<HeaderName> = Vec::new();
        for atom in self.atoms() {
            if let Atom::ResponseHeader(name) = atom {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        names
    }
}

/// The start of `text`, for a message.
fn head(text: &str) -> &str {
    let end = text.char_indices().nth(12).map_or(text.len(), |(i, _)| i);
    &text[..end]
}

const ATOMS: &str = "h l u t r m U q H s B b f a T D M L p {header}i {header}o";

fn atom(name: &str) -> Result<Atom, FormatError> {
    let atom = match name {
        "h" => Atom::RemoteAddr,
        "l" => Atom::Ident,
        "u" => Atom::User,
        "t" => Atom::Time,
        "r" => Atom::RequestLine,
        "m" => Atom::Method,
        "U" => Atom::Path,
        "q" => Atom::Query,
        "H" => Atom::Protocol,
        "s" => Atom::Status,
        "B" => Atom::Bytes,
        "b" => Atom::BytesClf,
        "f" => Atom::Referer,
        "a" => Atom::UserAgent,
        "T" => Atom::Seconds,
        "M" => Atom::Millis,
        "D" => Atom::Micros,
        "L" => Atom::DecimalSeconds,
        "p" => Atom::Pid,
        _ => {
            let header = name
                .strip_prefix('{')
                .and_then(|n| n.rsplit_once('}'))
                .filter(|(_, kind)| matches!(*kind, "i" | "o"));
            let Some((header, kind)) = header else {
                let why = match name.ends_with('e') && name.starts_with('{') {
                    true => "environ variables (%({name}e)s) are not available: the environ is built in Python",
                    false => "unknown atom",
                };
                return Err(FormatError(format!(
                    "%({name})s: {why}; the atoms are {ATOMS}"
                )));
            };
            let header = HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| FormatError(format!("%({name})s: {header:?} is not a header name")))?;
            match kind {
                "i" => Atom::RequestHeader(header),
                _ => Atom::ResponseHeader(header),
            }
        }
    };
    Ok(atom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_parses() {
        let f = AccessFormat::parse(DEFAULT).unwrap();
        assert_eq!(f.atoms().count(), 10);
        assert_eq!(f.pieces()[0], Piece::Atom(Atom::RemoteAddr));
        assert_eq!(f.pieces()[1], Piece::Text(" ".into()));
        assert_eq!(
            f.request_headers(),
            vec![http::header::REFERER, http::header::USER_AGENT]
        );
    }

    #[test]
    fn headers_percent_and_text() {
        let f = AccessFormat::parse("100%% %({X-Request-Id}i)s %({content-type}o)s!").unwrap();
        assert_eq!(
            f.pieces(),
            &[
                Piece::Text("100% ".into()),
                Piece::Atom(Atom::RequestHeader(HeaderName::from_static("x-request-id"))),
                Piece::Text(" ".into()),
                Piece::Atom(Atom::ResponseHeader(HeaderName::from_static(
                    "content-type"
                ))),
                Piece::Text("!".into()),
            ]
        );
    }

    #[test]
    fn bad_formats_say_why() {
        for (text, says) in [
            ("%(z)s", "%(z)s: unknown atom"),
            ("%({PATH}e)s", "environ variables"),
            ("%(h)d", "is not closed"),
            ("50% off", "a lone '%'"),
            ("%({bad name}i)s", "is not a header name"),
        ] {
            let e = AccessFormat::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
