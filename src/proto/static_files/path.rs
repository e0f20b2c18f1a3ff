//! From a request path to a path under a static mount's directory.
//!
//! The rules (everything that decides whether a path may name a file):
//! - the part of the path after the mount's prefix is percent-decoded once
//!   (RFC 3986 §2.1); a `%` not followed by two hex digits is refused;
//! - refused, as an attempt to leave the directory or to confuse the file
//!   system: a `..` or `.` segment (written plainly or encoded, `%2e%2e`),
//!   an empty segment (`//`, which would also make an absolute path), an
//!   encoded `/` (`%2f`: no file name holds one), a backslash plainly or
//!   encoded (`%5c`: a separator elsewhere), NUL and other control
//!   characters (`%00`), and bytes that are not UTF-8 once decoded;
//! - a segment starting with "." (a dotfile or dot-directory: `.git`,
//!   `.env`) is refused unless the mount serves dotfiles;
//! - a path ending in "/" asks for a directory (its index file); the mount's
//!   own URL without a trailing "/" is the directory itself.
//!
//! Every refusal is answered 404 by the endpoint: the request names nothing
//! the mount serves, and the answer does not say why.
//!
//! What it does not do: look at the file system. Whether the path names a
//! file, a directory (redirected to the path with "/") or a symbolic link
//! leaving the directory is the runtime's to find out (`runtime::static_files`).

/// A request path, checked and decoded, relative to the mount's directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RelativePath {
    /// The decoded segments, none empty, none starting with "." unless the
    /// mount serves dotfiles. Empty: the mount's directory itself.
    pub(crate) segments: Vec<String>,
    /// The path ended in "/": a directory is asked for.
    pub(crate) trailing_slash: bool,
}

/// Why a path was refused (for the debug log; the answer is 404 whatever it is).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Refusal {
    /// Not under the prefix, or not starting with "/" after it ("*").
    Outside,
    /// `%` without two hex digits.
    BadEscape,
    /// An encoded "/" (`%2f`).
    EncodedSlash,
    /// A backslash, plain or encoded.
    Backslash,
    /// NUL or another control character, or bytes that are not UTF-8.
    BadByte,
    /// `.` or `..`, plain or encoded.
    DotSegment,
    /// An empty segment (`//`).
    EmptySegment,
    /// A segment starting with "." on a mount that does not serve dotfiles.
    Dotfile,
}

/// The path of a request to the mount at `prefix` ("" or "/x", normalized as
/// the route table's), relative to the mount's directory. `path` is the
/// request target's path, still percent-encoded, which the route table
/// found under `prefix`.
pub(crate) fn resolve(path: &str, prefix: &str, dotfiles: bool) -> Result<RelativePath, Refusal> {
    let rest = path.strip_prefix(prefix).ok_or(Refusal::Outside)?;
    if rest.is_empty() {
        if prefix.is_empty() {
            return Err(Refusal::Outside);
        }
        return Ok(RelativePath {
            segments: Vec::new(),
            trailing_slash: false,
        });
    }
    let rest = rest.strip_prefix('/').ok_or(Refusal::Outside)?;
    if rest.is_empty() {
        return Ok(RelativePath {
            segments: Vec::new(),
            trailing_slash: true,
        });
    }
    let (rest, trailing_slash) = match rest.strip_suffix('/') {
        Some(inner) => (inner, true),
        None => (rest, false),
    };
    let segments = rest
        .split('/')
        .map(|raw| segment(raw, dotfiles))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RelativePath {
        segments,
        trailing_slash,
    })
}

/// One segment, decoded and checked.
fn segment(raw: &str, dotfiles: bool) -> Result<String, Refusal> {
    if raw.is_empty() {
        return Err(Refusal::EmptySegment);
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(Refusal::BadEscape)?;
                let b = (hex_value(hex[0]).ok_or(Refusal::BadEscape)? << 4)
                    | hex_value(hex[1]).ok_or(Refusal::BadEscape)?;
                i += 3;
                if b == b'/' {
                    return Err(Refusal::EncodedSlash);
                }
                b
            }
            b => {
                i += 1;
                b
            }
        };
        match b {
            b'\\' => return Err(Refusal::Backslash),
            0..=0x1f | 0x7f => return Err(Refusal::BadByte),
            _ => decoded.push(b),
        }
    }
    let name = String::from_utf8(decoded).map_err(|_| Refusal::BadByte)?;
    if name == "." || name == ".." {
        return Err(Refusal::DotSegment);
    }
    if name.starts_with('.') && !dotfiles {
        return Err(Refusal::Dotfile);
    }
    Ok(name)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Where a directory asked for without its trailing "/" is redirected: the
/// same path (still encoded, as the client sent it) with "/", and the same
/// query. A path-absolute reference (RFC 9110 §10.2.2). Only for a path
/// `resolve` accepted, so it never starts with "//" (which a client would
/// read as another host).
pub(crate) fn directory_location(path: &str, query: Option<&str>) -> String {
    let mut location = String::with_capacity(path.len() + 2 + query.map_or(0, str::len));
    location.push_str(path);
    location.push('/');
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    location
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(segments: &[&str], trailing_slash: bool) -> Result<RelativePath, Refusal> {
        Ok(RelativePath {
            segments: segments.iter().map(|s| s.to_string()).collect(),
            trailing_slash,
        })
    }

    #[test]
    fn paths_under_a_prefix() {
        use Refusal::*;
        let cases: &[(&str, &str, bool, Result<RelativePath, Refusal>)] = &[
            ("/static/app.css", "/static", false, ok(&["app.css"], false)),
            (
                "/static/a/b.js",
                "/static",
                false,
                ok(&["a", "b.js"], false),
            ),
            ("/static", "/static", false, ok(&[], false)),
            ("/static/", "/static", false, ok(&[], true)),
            ("/static/docs/", "/static", false, ok(&["docs"], true)),
            ("/", "", false, ok(&[], true)),
            ("/index.html", "", false, ok(&["index.html"], false)),
            ("*", "", false, Err(Outside)),
            ("", "", false, Err(Outside)),
            ("/other/x", "/static", false, Err(Outside)),
            ("/staticx", "/static", false, Err(Outside)),
            // Decoded once: "%2541" is "%41", a name, not "A".
            (
                "/static/a%20b.txt",
                "/static",
                false,
                ok(&["a b.txt"], false),
            ),
            ("/static/%2541", "/static", false, ok(&["%41"], false)),
            ("/static/caf%C3%A9", "/static", false, ok(&["café"], false)),
            // Traversal, plain and encoded.
            ("/static/../secret", "/static", false, Err(DotSegment)),
            ("/static/a/../../secret", "/static", false, Err(DotSegment)),
            ("/static/%2e%2e/secret", "/static", false, Err(DotSegment)),
            ("/static/%2E%2E/secret", "/static", false, Err(DotSegment)),
            ("/static/%2E./secret", "/static", false, Err(DotSegment)),
            ("/static/.%2e/secret", "/static", true, Err(DotSegment)),
            ("/static/./app.css", "/static", true, Err(DotSegment)),
            ("/static/..", "/static", true, Err(DotSegment)),
            ("/static/..%2fsecret", "/static", false, Err(EncodedSlash)),
            ("/static/..%2Fsecret", "/static", true, Err(EncodedSlash)),
            ("/static/a%2fb", "/static", false, Err(EncodedSlash)),
            ("/static/..\\secret", "/static", false, Err(Backslash)),
            ("/static/..%5csecret", "/static", false, Err(Backslash)),
            ("/static/..%5Csecret", "/static", false, Err(Backslash)),
            ("/static/a%00.txt", "/static", false, Err(BadByte)),
            ("/static/a%0a.txt", "/static", false, Err(BadByte)),
            ("/static/%ff", "/static", false, Err(BadByte)),
            ("/static/a%zz", "/static", false, Err(BadEscape)),
            ("/static/a%2", "/static", false, Err(BadEscape)),
            // Absolute paths and empty segments.
            ("/static//etc/passwd", "/static", false, Err(EmptySegment)),
            ("//etc/passwd", "", false, Err(EmptySegment)),
            ("/static/a//b", "/static", false, Err(EmptySegment)),
            ("/static/a//", "/static", false, Err(EmptySegment)),
            ("/static//", "/static", false, Err(EmptySegment)),
            // Dotfiles.
            ("/static/.env", "/static", false, Err(Dotfile)),
            ("/static/%2eenv", "/static", false, Err(Dotfile)),
            ("/static/.git/config", "/static", false, Err(Dotfile)),
            ("/static/a/.hidden/", "/static", false, Err(Dotfile)),
            ("/static/.env", "/static", true, ok(&[".env"], false)),
            (
                "/static/.well-known/x",
                "/static",
                true,
                ok(&[".well-known", "x"], false),
            ),
            ("/static/a.b.c", "/static", false, ok(&["a.b.c"], false)),
        ];
        for (path, prefix, dotfiles, expected) in cases {
            assert_eq!(
                &resolve(path, prefix, *dotfiles),
                expected,
                "{path:?} under {prefix:?} (dotfiles: {dotfiles})"
            );
        }
    }

    #[test]
    fn directory_redirects_keep_the_query() {
        let cases = [
            ("/static", None, "/static/"),
            ("/static/docs", Some("a=1&b"), "/static/docs/?a=1&b"),
            ("/static/a%20b", None, "/static/a%20b/"),
        ];
        for (path, query, expected) in cases {
            assert_eq!(directory_location(path, query), expected);
        }
    }
}
