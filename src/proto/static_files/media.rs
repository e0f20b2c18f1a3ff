//! What a static file is said to be, and which methods a mount answers.
//!
//! - `Content-Type` comes from the file name's extension, through the
//!   `mime_guess` table (`application/octet-stream` for names it does not
//!   know; JavaScript always as `text/javascript`, RFC 9239); text types, JavaScript and JSON get `; charset=utf-8`: static
//!   assets are written in UTF-8 today, and a browser that has to guess
//!   the charset of a script or a page may guess wrong (WHATWG Encoding).
//!   A precompressed sibling has the type of the file it stands for.
//! - GET and HEAD are served (RFC 9110 §9.3.1, §9.3.2); every other method,
//!   OPTIONS included, is answered 405 with `Allow: GET, HEAD` (§15.5.6):
//!   a file has nothing else to offer, and a CORS preflight for a file is
//!   for the application to answer if it wants one.
//!
//! What it does not do: sniff content.

use http::Method;

/// The `Allow` value of a 405.
pub(crate) const ALLOW: &str = "GET, HEAD";

/// How a mount answers a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MethodPlan {
    /// The file, with its body.
    Get,
    /// The file's head only.
    Head,
    /// 405 with `Allow`.
    NotAllowed,
}

pub(crate) fn method_plan(method: &Method) -> MethodPlan {
    match *method {
        Method::GET => MethodPlan::Get,
        Method::HEAD => MethodPlan::Head,
        _ => MethodPlan::NotAllowed,
    }
}

/// The `Content-Type` of a file named `name` (its last segment).
pub(crate) fn content_type(name: &str) -> String {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let essence = match mime.essence_str() {
        // RFC 9239 §6: "text/javascript" is JavaScript's one type; the
        // table still gives the obsolete one for some names (".mjs").
        "application/javascript" | "application/x-javascript" => "text/javascript",
        other => other,
    };
    let textual = essence.starts_with("text/")
        || essence == "application/json"
        || mime.suffix() == Some(mime_guess::mime::JSON);
    if textual {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_name() {
        let cases = [
            ("index.html", "text/html; charset=utf-8"),
            ("app.css", "text/css; charset=utf-8"),
            ("notes.txt", "text/plain; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("app.mjs", "text/javascript; charset=utf-8"),
            ("data.json", "application/json; charset=utf-8"),
            ("logo.png", "image/png"),
            ("logo.svg", "image/svg+xml"),
            ("font.woff2", "font/woff2"),
            ("app.wasm", "application/wasm"),
            ("ARCHIVE.ZIP", "application/zip"),
            ("no-extension", "application/octet-stream"),
            ("weird.unknownext", "application/octet-stream"),
        ];
        for (name, expected) in cases {
            assert_eq!(content_type(name), expected, "{name}");
        }
    }

    #[test]
    fn methods() {
        assert_eq!(method_plan(&Method::GET), MethodPlan::Get);
        assert_eq!(method_plan(&Method::HEAD), MethodPlan::Head);
        for m in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::TRACE,
        ] {
            assert_eq!(method_plan(&m), MethodPlan::NotAllowed, "{m}");
        }
    }
}
