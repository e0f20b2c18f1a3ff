//! The endpoint that answers requests to a static mount.
//!
//! What it does: `StaticEndpoint::dispatch` checks the method and the path
//! (`proto::static_files`) and answers a refusal at once; otherwise it
//! finds the file (`mount::StaticMount::lookup`, remembered for a second)
//! and answers with the rules of `proto::static_files`: 301 to a directory's
//! path with "/", 304 / 412 on preconditions, 206 / 416 on ranges, the
//! precompressed sibling `Accept-Encoding` chooses. A body is the file
//! itself (`ResponseBody::File`: `sendfile(2)` on cleartext HTTP/1.x,
//! positioned reads elsewhere), or its content in memory for a file of at
//! most `mount::SMALL_FILE` bytes; several ranges go out as a
//! `multipart/byteranges` stream read block by block, so memory stays
//! bounded whatever the file's size. HEAD gets the same head, no body.
//!
//! A request the mount cannot answer with a file is answered here (404,
//! 403, 405), never passed on to another endpoint: the route table gave the
//! path to this mount.
//!
//! What it does not do: read the request's body (the runtime neither reads
//! it ahead nor buffers it for this endpoint: `Endpoint::reads_body`; an
//! unread body closes an HTTP/1.1 connection after the answer, as for any
//! endpoint), touch the worker pool, or add `Date` (the connection does).

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::BuildHasher;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{
    ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, IF_RANGE, LAST_MODIFIED, LOCATION, RANGE, VARY,
};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::mount::{Found, FoundFile, Representation, StaticMount};
use crate::proto::static_files::coding;
use crate::proto::static_files::conditional::{self, Precondition, Validators};
use crate::proto::static_files::media::{self, MethodPlan};
use crate::proto::static_files::path;
use crate::proto::static_files::range::{self, ByteRange, RangeDecision};
use crate::runtime::endpoint::{Busy, Call, Endpoint, Response};
use crate::runtime::request::response::{channel, ChunkSink, FileBody, Push, ResponseBody};

/// Block size of a multipart body's reads (as `FileBody`'s).
const PART_BLOCK: u64 = 256 * 1024;

/// Serves one static mount.
pub(crate) struct StaticEndpoint {
    mount: Arc<StaticMount>,
}

impl StaticEndpoint {
    pub(crate) fn new(mount: StaticMount) -> StaticEndpoint {
        StaticEndpoint {
            mount: Arc::new(mount),
        }
    }
}

impl Endpoint for StaticEndpoint {
    fn dispatch(&self, call: Box<Call>) -> Result<(), Busy> {
        let Call {
            request,
            zero_copy,
            reply,
            ..
        } = *call;
        let head = request.head;
        drop(request.body);
        // What needs no file system is answered here, on the connection's
        // thread.
        let method = media::method_plan(&head.method);
        if method == MethodPlan::NotAllowed {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED);
            response
                .headers
                .insert(ALLOW, HeaderValue::from_static(media::ALLOW));
            reply.send(response);
            return Ok(());
        }
        let relative =
            match path::resolve(head.target.path(), &self.mount.prefix, self.mount.dotfiles) {
                Ok(relative) => relative,
                Err(refusal) => {
                    log::debug!(
                        target: "propylon.server",
                        "static {:?} refused: {refusal:?}",
                        head.target.path()
                    );
                    reply.send(without_body_for(method, text(StatusCode::NOT_FOUND)));
                    return Ok(());
                }
            };
        // The lookup runs here too, on the connection's thread: a few
        // system calls (realpath's readlinks, open, fstat) that the page
        // cache answers in microseconds, as nginx makes them on its event
        // loop. A hop to tokio's blocking pool per request cost more than
        // the calls (a thread hand-off each: 66,000 4 KiB responses a second
        // on one core against 139,000 for nginx). The price: a mount on a
        // slow network file system stalls its connections' thread while a
        // call waits (docs/guide/static.md).
        let response = match self.mount.lookup(&relative) {
            Found::File(file) => respond(&self.mount, &file, method, &head.headers, zero_copy),
            Found::Directory => {
                let location = path::directory_location(head.target.path(), head.target.query());
                let mut response = text(StatusCode::MOVED_PERMANENTLY);
                match HeaderValue::from_str(&location) {
                    Ok(value) => {
                        response.headers.insert(LOCATION, value);
                        response
                    }
                    Err(_) => text(StatusCode::NOT_FOUND),
                }
            }
            Found::Forbidden => text(StatusCode::FORBIDDEN),
            Found::Nothing => text(StatusCode::NOT_FOUND),
        };
        reply.send(without_body_for(method, response));
        Ok(())
    }

    fn reads_body(&self) -> bool {
        false
    }
}

/// The answer for a file found: the representation chosen, its
/// preconditions, its ranges.
fn respond(
    mount: &StaticMount,
    found: &FoundFile,
    method: MethodPlan,
    request: &HeaderMap,
    zero_copy: Option<Arc<crate::runtime::transport::sendfile::SendQueue>>,
) -> Response {
    let FoundFile {
        content_type,
        original,
        siblings,
        ..
    } = found;
    let has_siblings = !siblings.is_empty();
    let available: Vec<_> = siblings.iter().filter_map(|s| s.coding).collect();
    let chosen = match coding::choose(request, &available) {
        Some(coding) => {
            let i = available.iter().position(|c| *c == coding).unwrap_or(0);
            &siblings[i]
        }
        None => original,
    };
    let Representation {
        file,
        meta,
        coding,
        content,
    } = chosen;
    let coding = *coding;
    let size = meta.len();
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let validators = Validators::of_file(size, modified, meta.ino(), SystemTime::now());

    // Fields every answer about this representation carries, 304 included
    // (RFC 9110 §15.4.5).
    let mut headers = HeaderMap::new();
    if let Ok(etag) = HeaderValue::from_str(&validators.etag) {
        headers.insert(ETAG, etag);
    }
    if let Ok(date) = HeaderValue::from_str(&validators.last_modified_value()) {
        headers.insert(LAST_MODIFIED, date);
    }
    if let Some(cache_control) = &mount.cache_control {
        headers.insert(CACHE_CONTROL, cache_control.clone());
    }
    if has_siblings {
        headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    match conditional::evaluate(request, &validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            return Response {
                status: StatusCode::NOT_MODIFIED,
                headers,
                body: ResponseBody::Empty,
                trailers: None,
            };
        }
        Precondition::Failed => {
            let mut response = text(StatusCode::PRECONDITION_FAILED);
            response.headers.extend(headers);
            return response;
        }
    }
    if let Some(coding) = coding {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
    }
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let content_type_value = content_type.clone();
    // RFC 9110 §14.2: ranges on GET only; `If-Range` decides whether they
    // apply (§13.1.5).
    let ranges = match (method, request.get(RANGE)) {
        (MethodPlan::Get, Some(value))
            if request
                .get(IF_RANGE)
                .is_none_or(|v| conditional::if_range_holds(v.as_bytes(), &validators)) =>
        {
            range::decide(value.as_bytes(), size)
        }
        _ => RangeDecision::Whole,
    };
    // Several ranges of a precompressed file: the whole file. A multipart
    // body under `Content-Encoding` would say the whole body is compressed;
    // no browser asks for this, and such files are small.
    let ranges = match ranges {
        RangeDecision::Partial(r) if r.len() > 1 && coding.is_some() => RangeDecision::Whole,
        other => other,
    };
    // A small file's content is in memory (`mount::SMALL_FILE`).
    let file_body = |offset: u64, len: u64| match content {
        Some(content) => {
            ResponseBody::full(content.slice(offset as usize..(offset + len) as usize))
        }
        None => ResponseBody::File(Box::new(FileBody::new(
            file.clone(),
            offset,
            len,
            zero_copy.clone(),
            Box::new(|| {}),
        ))),
    };
    match ranges {
        RangeDecision::Whole => {
            headers.insert(CONTENT_TYPE, content_type_value);
            headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
            Response {
                status: StatusCode::OK,
                headers,
                body: file_body(0, size),
                trailers: None,
            }
        }
        RangeDecision::Unsatisfiable => {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
            if let Ok(value) = HeaderValue::from_str(&range::unsatisfied_range(size)) {
                headers.insert(CONTENT_RANGE, value);
            }
            Response {
                status: StatusCode::RANGE_NOT_SATISFIABLE,
                headers,
                body: ResponseBody::Empty,
                trailers: None,
            }
        }
        RangeDecision::Partial(ranges) if ranges.len() == 1 => {
            let range = ranges[0];
            headers.insert(CONTENT_TYPE, content_type_value);
            headers.insert(CONTENT_LENGTH, HeaderValue::from(range.len()));
            if let Ok(value) = HeaderValue::from_str(&range.content_range(size)) {
                headers.insert(CONTENT_RANGE, value);
            }
            Response {
                status: StatusCode::PARTIAL_CONTENT,
                headers,
                body: file_body(range.first, range.len()),
                trailers: None,
            }
        }
        RangeDecision::Partial(ranges) => {
            let boundary = boundary(&validators.etag);
            let layout = range::multipart(
                &ranges,
                content_type.to_str().unwrap_or("application/octet-stream"),
                size,
                &boundary,
            );
            if let Ok(value) =
                HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
            {
                headers.insert(CONTENT_TYPE, value);
            }
            headers.insert(CONTENT_LENGTH, HeaderValue::from(layout.length));
            let (sink, body) = channel();
            tokio::spawn(send_parts(sink, file.clone(), layout));
            Response {
                status: StatusCode::PARTIAL_CONTENT,
                headers,
                body: ResponseBody::Stream(body),
                trailers: None,
            }
        }
    }
}

/// A multipart boundary (RFC 2046 §5.1.1) that no file can be made to
/// contain on purpose: keyed by this process's random hash keys.
fn boundary(etag: &str) -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static KEYS: RandomState = RandomState::new();
    }
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let hash = KEYS.with(|keys| keys.hash_one((etag, n)));
    format!("propylon-{hash:016x}{n:x}")
}

/// Send a multipart body's parts: each head, then its range of the file
/// read block by block on the blocking pool, waiting while the channel is
/// full (`ChunkSink::pause`), then the close delimiter.
async fn send_parts(sink: ChunkSink, file: Arc<File>, layout: range::Multipart) {
    for (head, ByteRange { first, last }) in layout.parts {
        if !push(&sink, Bytes::from(head)).await {
            return;
        }
        let mut offset = first;
        while offset <= last {
            let want = (last - offset + 1).min(PART_BLOCK);
            let file = file.clone();
            let read = tokio::task::spawn_blocking(move || {
                let mut block = vec![0; want as usize];
                file.read_exact_at(&mut block, offset).map(|_| block)
            })
            .await;
            let block = match read {
                Ok(Ok(block)) => block,
                Ok(Err(e)) => {
                    log::error!(target: "propylon.error", "reading a static file failed: {e}");
                    sink.abort("file read failed");
                    return;
                }
                Err(_) => {
                    sink.abort("file read task failed");
                    return;
                }
            };
            if !push(&sink, Bytes::from(block)).await {
                return;
            }
            offset += want;
        }
    }
    if push(&sink, Bytes::from(layout.tail)).await {
        sink.finish();
    }
}

/// Queue a chunk, waiting for room; false when the client is gone.
async fn push(sink: &ChunkSink, chunk: Bytes) -> bool {
    match sink.push(chunk) {
        Push::Ready => true,
        Push::Closed => false,
        Push::Full => {
            let (resumed, wait) = tokio::sync::oneshot::channel();
            sink.pause(Box::new(move || {
                let _ = resumed.send(());
            }));
            wait.await.is_ok() && !sink.is_closed()
        }
    }
}

/// A short plain-text answer ("404 Not Found").
fn text(status: StatusCode) -> Response {
    let body = Bytes::from(format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    ));
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    Response {
        status,
        headers,
        body: ResponseBody::full(body),
        trailers: None,
    }
}

/// HEAD: the same head, no body (RFC 9110 §9.3.2); `Content-Length` stays,
/// saying what a GET would get.
fn without_body_for(method: MethodPlan, mut response: Response) -> Response {
    if method == MethodPlan::Head {
        response.body = ResponseBody::Empty;
    }
    response
}
