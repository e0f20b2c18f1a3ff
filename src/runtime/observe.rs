//! The answers the runtime gives by itself, before any route of the
//! application: the health path and the metrics path.
//!
//! What it does: `--health-path` answers `200` while the server serves and
//! `503` once it drains (after SIGTERM, on connections still open), so a
//! load balancer stops sending before the listener closes;
//! `--metrics-path` answers the Prometheus text of every worker's counts
//! (`metrics::render`). Both answer GET and HEAD (other methods: `405` with
//! `Allow`), with `Cache-Control: no-store`, without a Python thread: they
//! answer while every thread is busy. The listener of `--metrics-bind`
//! gets `Observe::scrape_only`: the metrics at `/metrics`, nothing else.
//!
//! What it does not do: count anything (`metrics::recorder`), or route the
//! application's requests (`endpoint`).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Response, StatusCode};

use super::metrics::recorder::Recorder;
use super::metrics::render::render;
use super::request::response::ResponseBody;
use crate::proto::prometheus;

/// Where the metrics are on the `--metrics-bind` listener (Prometheus's
/// default `metrics_path`).
pub(crate) const SCRAPE_PATH: &str = "/metrics";

/// The runtime's own paths, and the worker's metrics.
#[derive(Default)]
pub(crate) struct Observe {
    health_path: Option<String>,
    metrics_path: Option<String>,
    /// The worker's slot: what this server's requests are counted in, and
    /// what a scrape reads (all slots of its region).
    metrics: Option<Arc<Recorder>>,
    /// The requests and connections of this listener are counted (not the
    /// metrics listener's own scrapes).
    counted: bool,
}

impl Observe {
    pub(crate) fn new(
        health_path: Option<String>,
        metrics_path: Option<String>,
        metrics: Option<Arc<Recorder>>,
    ) -> Observe {
        Observe {
            health_path,
            metrics_path,
            metrics,
            counted: true,
        }
    }

    /// The `--metrics-bind` listener's: the metrics at `SCRAPE_PATH`;
    /// everything else is not found, and nothing there is counted.
    pub(crate) fn scrape_only(&self) -> Observe {
        Observe {
            health_path: None,
            metrics_path: Some(SCRAPE_PATH.to_string()),
            metrics: self.metrics.clone(),
            counted: false,
        }
    }

    /// What requests and connections are counted in, if anything.
    pub(crate) fn recorder(&self) -> Option<&Arc<Recorder>> {
        self.metrics.as_ref().filter(|_| self.counted)
    }

    /// The runtime's answer to a request for `path`, if one of its paths;
    /// `draining` tells whether the server is shutting down (asked only
    /// for the health path).
    pub(crate) fn answer(
        &self,
        method: &Method,
        path: &str,
        draining: impl FnOnce() -> bool,
    ) -> Option<Response<ResponseBody>> {
        if self.health_path.as_deref() == Some(path) {
            let (status, text) = match draining() {
                false => (StatusCode::OK, "ok\n"),
                true => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
            };
            return Some(answer(
                method,
                status,
                "text/plain; charset=utf-8",
                Bytes::from_static(text.as_bytes()),
            ));
        }
        if self.metrics_path.as_deref() == Some(path) {
            let metrics = self.metrics.as_ref()?;
            // Summed only for a method that gets them.
            let text = match allowed(method) {
                true => {
                    metrics.refresh();
                    render(metrics.region())
                }
                false => String::new(),
            };
            return Some(answer(
                method,
                StatusCode::OK,
                prometheus::CONTENT_TYPE,
                Bytes::from(text),
            ));
        }
        None
    }
}

fn allowed(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// `status` with `body` to GET (HEAD: its length, no body); `405` to any
/// other method (RFC 9110 §15.5.6: with `Allow`).
fn answer(
    method: &Method,
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<ResponseBody> {
    let (status, content_type, body) = match allowed(method) {
        true => (status, content_type, body),
        false => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"405 Method Not Allowed\n"),
        ),
    };
    let mut response = Response::new(ResponseBody::Empty);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    if method != Method::HEAD {
        *response.body_mut() = ResponseBody::full(body);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::metrics::region::Region;

    fn observe() -> Observe {
        let region = Arc::new(Region::new(1).unwrap());
        let recorder = Arc::new(Recorder::new(region, 0).unwrap());
        Observe::new(
            Some("/healthz".into()),
            Some("/metrics".into()),
            Some(recorder),
        )
    }

    #[test]
    fn health_serving_then_draining() {
        let o = observe();
        let ok = o.answer(&Method::GET, "/healthz", || false).unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()[CACHE_CONTROL], "no-store");
        let draining = o.answer(&Method::HEAD, "/healthz", || true).unwrap();
        assert_eq!(draining.status(), 503);
        assert!(matches!(draining.body(), ResponseBody::Empty));
        assert!(o.answer(&Method::GET, "/healthz/x", || false).is_none());
        assert!(o.answer(&Method::GET, "/", || false).is_none());
    }

    #[test]
    fn other_methods_get_405_with_allow() {
        let o = observe();
        for path in ["/healthz", "/metrics"] {
            let r = o.answer(&Method::POST, path, || false).unwrap();
            assert_eq!(r.status(), 405);
            assert_eq!(r.headers()[ALLOW], "GET, HEAD");
        }
    }

    #[test]
    fn metrics_text_and_the_scrape_listener() {
        let o = observe();
        let r = o.answer(&Method::GET, "/metrics", || false).unwrap();
        assert_eq!(r.headers()[CONTENT_TYPE], prometheus::CONTENT_TYPE);
        let scrape = o.scrape_only();
        assert!(scrape.recorder().is_none());
        assert!(o.recorder().is_some());
        assert!(scrape.answer(&Method::GET, "/healthz", || false).is_none());
        assert!(scrape.answer(&Method::GET, SCRAPE_PATH, || false).is_some());
    }
}
