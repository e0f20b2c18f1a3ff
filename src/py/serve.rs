//! `_core.serve(config, plan)`: bind, serve until a signal, drain, return.
//! As a worker of a supervisor (`worker=`), serve on the listeners the
//! supervisor bound, and tell it what the watchdog finds.
//! `_core.bind_listeners(config)`: the supervisor's half, binding.
//!
//! The plan (`propylon.plan.ServePlan`) says what to serve: the WSGI
//! callable, the URL prefixes of each endpoint, the static mounts, the links
//! to announce. It is read here by attribute name, once.
//!
//! Each static mount becomes a `Target::Static` row of the route table and
//! a `StaticEndpoint` (`runtime::static_files`), checked before the server
//! binds.
//!
//! What it does not do: read the configuration (`config`), serve connections
//! (`runtime::server`), or call the application (`wsgi`).

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use super::metrics::Metrics;
use super::websocket::aio::LoopBridge;
use super::{config, errors, logging, websocket, wsgi};
use crate::proto::route::{RouteTable, Target};
use crate::runtime::control::{Control, Notice};
use crate::runtime::endpoint::{Endpoint, Endpoints};
use crate::runtime::metrics::recorder::{PoolGauges, Recorder};
use crate::runtime::metrics::region::Region;
use crate::runtime::metrics::sampler::Sampler;
use crate::runtime::observe::Observe;
use crate::runtime::pool::{Pool, ThreadMain, Worker};
use crate::runtime::server::{bind_all, BoundListener, Role, Server, Serves, Stopped};
use crate::runtime::static_files::endpoint::StaticEndpoint;
use crate::runtime::static_files::mount::{MountSettings, StaticMount};
use crate::runtime::watchdog::{Event, Report, Watch};
use crate::runtime::websocket::WebSocketEndpoint;

/// How long, after the connections are gone, work still on the pool may take
/// to notice and finish (it sees closed channels and returns).
const POOL_GRACE: Duration = Duration::from_secs(2);

/// glibc's `malloc` keeps the memory freed at the top of a heap only up to
/// 128 KiB before it gives it back to the kernel (`M_TRIM_THRESHOLD`), and
/// CPython takes every object over 512 bytes from `malloc`. A server that
/// answers requests in batches frees a batch of large objects together (the
/// request bodies read, the response bodies sent: 64 KiB each, say) and
/// allocates the next batch right after: with glibc's defaults the heap
/// shrinks and grows again each time, and every page of the new objects
/// faults in anew (13 minor faults per 64 KiB echo, doubling its CPU time).
/// So the server keeps up to 16 MiB at the top of each heap, and takes blocks
/// under 1 MiB from the heap rather than from `mmap` (glibc would adapt its
/// mmap threshold upwards on its own; setting one parameter stops that, so
/// both are set). Not done when either `MALLOC_TRIM_THRESHOLD_` or
/// `MALLOC_MMAP_THRESHOLD_` is in the environment: glibc has read those.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const TRIM_THRESHOLD: i32 = 16 << 20;
        const MMAP_THRESHOLD: i32 = 1 << 20;
        let tuned_by_user = ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        if tuned_by_user {
            log::debug!(target: "propylon.server", "malloc: left as MALLOC_*_THRESHOLD_ set it");
            return;
        }
        // SAFETY: mallopt only sets allocator parameters.
        let set = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        };
        if set {
            log::debug!(
                target: "propylon.server",
                "malloc: trim threshold 16 MiB, mmap threshold 1 MiB"
            );
        }
    }
}

/// `propylon.plan.ServePlan`, as far as the server reads it.
#[derive(FromPyObject)]
struct PyPlan {
    wsgi: Option<Py<PyAny>>,
    routes: Vec<(String, String)>,
    preload: Vec<String>,
    #[pyo3(attribute("static"))]
    mounts: Vec<PyStaticMount>,
    websocket: Vec<PyWebSocketRoute>,
}

/// `propylon.plan.WebSocketRoute`.
#[derive(FromPyObject)]
struct PyWebSocketRoute {
    prefix: String,
    handler: Py<PyAny>,
    style: String,
}

/// `propylon.plan.StaticMount`.
#[derive(FromPyObject)]
struct PyStaticMount {
    prefix: String,
    directory: PathBuf,
    cache_control: Option<String>,
    index: Option<String>,
    precompressed: bool,
    follow_symlinks: bool,
    dotfiles: bool,
}

impl From<PyStaticMount> for MountSettings {
    fn from(m: PyStaticMount) -> MountSettings {
        MountSettings {
            prefix: m.prefix,
            directory: m.directory,
            cache_control: m.cache_control,
            index: m.index,
            precompressed: m.precompressed,
            follow_symlinks: m.follow_symlinks,
            dotfiles: m.dotfiles,
        }
    }
}

/// `propylon.worker.WorkerContext`: what a supervisor gives a worker.
#[derive(FromPyObject)]
struct PyWorker<'py> {
    /// Listening sockets, `(fd, tls, metrics only)`, owned by the worker
    /// from now on.
    listeners: Vec<(i32, bool, bool)>,
    /// The worker's end of its socket pair with the supervisor (the
    /// caller keeps it; the server uses a copy).
    control: i32,
    /// `--max-requests` with its jitter; 0: no limit.
    max_requests: u64,
    /// The metrics region the supervisor made before forking, and this
    /// worker's slot in it.
    metrics: Option<PyRef<'py, Metrics>>,
    slot: usize,
}

/// Bind every listener of `config` (`--bind`, then `--insecure-bind`,
/// then `--metrics-bind`) and return them as `(fd, tls, metrics only,
/// description)`: the caller owns the sockets.
#[pyfunction]
pub(crate) fn bind_listeners(
    config: &Bound<'_, PyAny>,
) -> PyResult<Vec<(i32, bool, bool, String)>> {
    let config = config::extract(config)?;
    let bound = bind_all(&config).map_err(|e| PyOSError::new_err(e.to_string()))?;
    Ok(bound
        .into_iter()
        .map(|b| {
            let description = b.describe();
            let (tls, metrics) = (b.tls, b.serves == Serves::Metrics);
            (b.into_raw_fd(), tls, metrics, description)
        })
        .collect())
}

/// What the watchdog found, said: a line on stderr written at once (the
/// thread holding the GIL may be the stuck one, so not through `logging`),
/// then every Python thread's stack, dumped by `faulthandler` on
/// `STACK_SIGNAL` (the worker registers it), then, when every thread is
/// stuck or the request limit is reached, a word to the supervisor.
fn watchdog_report(timeout: Duration, control: Option<Arc<Control>>) -> Report {
    Arc::new(move |events: &[Event]| {
        let mut dump = false;
        for event in events {
            match event {
                Event::Stuck { thread_id, running } => {
                    dump = true;
                    logging::write_now(
                        "WARNING",
                        &format!(
                            "a request has run for {}s on thread {thread_id:#x} (--timeout {}s); \
                             the Python stacks follow",
                            running.as_secs(),
                            timeout.as_secs_f64()
                        ),
                    );
                }
                Event::AllStuck => match &control {
                    Some(control) => {
                        logging::write_now(
                            "ERROR",
                            "every application thread is stuck: asking the supervisor to replace this worker",
                        );
                        control.tell(Notice::Stuck);
                    }
                    None => logging::write_now("ERROR", "every application thread is stuck"),
                },
                Event::RequestLimit => {
                    if let Some(control) = &control {
                        log::info!(target: "propylon.server", "--max-requests reached: asking the supervisor for a new worker");
                        control.tell(Notice::Recycle);
                    }
                }
            }
        }
        if dump {
            // SAFETY: kill with this process's own id and a valid signal.
            unsafe { libc::kill(libc::getpid(), STACK_SIGNAL) };
        }
    })
}

/// The signal on which a worker's `faulthandler` dumps every Python
/// thread's stack (`propylon.worker` registers it).
pub(crate) const STACK_SIGNAL: i32 = libc::SIGUSR2;

/// Returns True when every request finished; False when the graceful timeout
/// expired with application code still running, or the server was told to
/// quit (the caller should then exit without waiting for those threads).
/// `event_loop` is the worker's asyncio loop, where async WebSocket
/// handlers run. `worker`, from a supervisor: the listeners to serve on,
/// the line back to the supervisor, and the metrics region (without one,
/// a one-slot region of the server's own when a metrics path or bind is
/// configured).
#[pyfunction]
#[pyo3(signature = (config, plan, event_loop=None, worker=None))]
pub(crate) fn serve(
    py: Python<'_>,
    config: &Bound<'_, PyAny>,
    plan: &Bound<'_, PyAny>,
    event_loop: Option<Py<PyAny>>,
    worker: Option<&Bound<'_, PyAny>>,
) -> PyResult<bool> {
    // `--workers`: 1, N, or 0 for one per CPU.
    let workers: usize = config.getattr("workers")?.extract()?;
    let config = config::extract(config)?;
    let worker: Option<PyWorker> = worker.map(|w| w.extract()).transpose()?;
    let (metrics, slot) = match &worker {
        Some(w) => (w.metrics.as_ref().map(|m| m.region.clone()), w.slot),
        None => (None, 0),
    };
    let region = match metrics {
        Some(region) => Some(region),
        None if config.metrics_path.is_some() || config.metrics_bind.is_some() => Some(Arc::new(
            Region::new(1).map_err(|e| PyOSError::new_err(e.to_string()))?,
        )),
        None => None,
    };
    let recorder = match region {
        Some(region) => {
            let slots = region.slot_count();
            Some(Arc::new(Recorder::new(region, slot).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "slot {slot} is not one of the {slots} slots of the metrics region"
                ))
            })?))
        }
        None => None,
    };
    let plan: PyPlan = plan.extract()?;
    let declared = plan.routes.iter().map(|(protocol, prefix)| {
        let target = match protocol.as_str() {
            "wsgi" => Ok(Target::Wsgi),
            // Declared by an application, served by no endpoint of this
            // server yet: requests there are not found.
            "stream" => Ok(Target::Stream),
            other => Err(PyValueError::new_err(format!(
                "this server has no {other:?} endpoint"
            ))),
        };
        target.map(|t| (prefix.as_str(), t))
    });
    let mut declared = declared.collect::<PyResult<Vec<_>>>()?;
    // Checked before anything starts: a mount that cannot be served stops
    // the server with one line saying why.
    let mounts = plan
        .mounts
        .into_iter()
        .map(|m| StaticMount::new(m.into()).map_err(PyOSError::new_err))
        .collect::<PyResult<Vec<_>>>()?;
    let prefixes: Vec<String> = mounts.iter().map(|m| m.prefix.clone()).collect();
    declared.extend(
        prefixes
            .iter()
            .enumerate()
            .map(|(i, prefix)| (prefix.as_str(), Target::Static(i))),
    );
    declared.extend(
        plan.websocket
            .iter()
            .enumerate()
            .map(|(i, route)| (route.prefix.as_str(), Target::WebSocket(i))),
    );
    let routes = RouteTable::new(declared).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let preload = plan
        .preload
        .iter()
        .map(|link| {
            // A URI reference is ASCII (RFC 3986 §2): other text is
            // percent-encoded by whoever wrote the plan.
            link.is_ascii()
                .then(|| HeaderValue::from_str(link).ok())
                .flatten()
                .ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "preload {link:?} is not a valid Link field value \
                         (ASCII text without control characters)"
                    ))
                })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let statics = mounts
        .into_iter()
        .map(|m| Arc::new(StaticEndpoint::new(m)) as Arc<dyn Endpoint>)
        .collect();
    logging::install(py)?;
    tune_malloc();
    errors::load(py)?;
    wsgi::load(py)?;
    wsgi::set_multiprocess(py, workers != 1)?;
    if !plan.websocket.is_empty() {
        websocket::load(py)?;
    }
    let (server, role, max_requests) = match worker {
        None => (Server::bind(config.clone()), Role::Alone, 0),
        Some(worker) => {
            // SAFETY: the supervisor handed these descriptors to this
            // worker, which uses them nowhere else.
            let bound = worker
                .listeners
                .iter()
                .map(|&(fd, tls, metrics)| {
                    let serves = match metrics {
                        true => Serves::Metrics,
                        false => Serves::Application,
                    };
                    unsafe { BoundListener::from_raw_fd(fd, tls, serves) }
                })
                .collect::<std::io::Result<Vec<_>>>();
            // A copy: the caller keeps its own, to report a failure to start.
            // SAFETY: dup of a descriptor the caller keeps open.
            let control = match unsafe { libc::dup(worker.control) } {
                -1 => {
                    return Err(PyOSError::new_err(
                        std::io::Error::last_os_error().to_string(),
                    ))
                }
                fd => Arc::new(unsafe { Control::from_raw_fd(fd) }),
            };
            let server = bound.and_then(|bound| Server::inherit(config.clone(), bound));
            (server, Role::Worker(control), worker.max_requests)
        }
    };
    let server = server.map_err(|e| PyOSError::new_err(e.to_string()))?;
    let control = match &role {
        Role::Worker(control) => Some(control.clone()),
        Role::Alone => None,
    };
    let watch = (config.stuck_timeout.is_some() || max_requests > 0).then(|| Watch {
        stuck_after: config.stuck_timeout,
        max_requests: (max_requests > 0).then_some(max_requests),
        report: watchdog_report(config.stuck_timeout.unwrap_or_default(), control),
    });
    // Each pool thread attaches to the interpreter once, for its whole life,
    // runs jobs back to back while there are any, and detaches only to wait for
    // more: a busy server does not hand the GIL over once per request.
    let thread_main: ThreadMain = Arc::new(|mut worker: Worker| {
        Python::attach(|py| loop {
            if let Some(job) = worker.next(false) {
                Worker::run(job);
                continue;
            }
            match py.detach(|| worker.next(true)) {
                Some(job) => Worker::run(job),
                None => break,
            }
        });
    });
    let pool = Arc::new(
        Pool::watched(
            config.threads,
            config.queue_size,
            config.queue_timeout,
            thread_main,
            watch,
        )
        .map_err(|e| PyOSError::new_err(e.to_string()))?,
    );
    let wsgi = plan.wsgi.map(|app| {
        Arc::new(wsgi::WsgiApp::new(
            app,
            pool.clone(),
            config.root_path.clone(),
        )) as Arc<dyn Endpoint>
    });
    let bridge = match plan.websocket.iter().any(|r| r.style == "async") {
        true => {
            let event_loop = event_loop.ok_or_else(|| {
                PyValueError::new_err("async WebSocket handlers need the worker's event loop")
            })?;
            let bridge =
                LoopBridge::new(event_loop).map_err(|e| PyOSError::new_err(e.to_string()))?;
            bridge.attach(py)?;
            Some(bridge)
        }
        false => None,
    };
    let blocking = Arc::new(AtomicUsize::new(0));
    let websockets = plan
        .websocket
        .into_iter()
        .map(|route| {
            let style = match route.style.as_str() {
                "async" => websocket::Style::Async(bridge.clone().expect("made above")),
                "event" => websocket::Style::Events(pool.clone()),
                "blocking" => websocket::Style::Blocking {
                    running: blocking.clone(),
                    max: config.websocket.threads,
                },
                other => {
                    return Err(PyValueError::new_err(format!(
                        "unknown WebSocket handler style {other:?}"
                    )))
                }
            };
            Ok(Arc::new(websocket::Handler::new(route.handler, style))
                as Arc<dyn WebSocketEndpoint>)
        })
        .collect::<PyResult<Vec<_>>>()?;
    let sampler = match &recorder {
        Some(recorder) => {
            let weak = Arc::downgrade(&pool);
            recorder.read_pool_with(Box::new(move || match weak.upgrade() {
                Some(pool) => {
                    let (queued, busy) = pool.load();
                    PoolGauges {
                        queued,
                        busy,
                        threads: pool.threads(),
                    }
                }
                None => PoolGauges::default(),
            }));
            Some(Sampler::start(recorder.clone()).map_err(|e| PyOSError::new_err(e.to_string()))?)
        }
        None => None,
    };
    let observe = Observe::new(
        config.health_path.clone(),
        config.metrics_path.clone(),
        recorder,
    );
    let endpoints = Endpoints::new(routes, wsgi, statics)
        .with_preload(preload)
        .with_websockets(websockets)
        .with_observe(observe);
    let access_log = config.access_log.clone();
    let (stopped, pool_idle) = py.detach(move || {
        let stopped = server.run(endpoints, role);
        // Past the graceful timeout, or told to quit, the threads get no
        // more time: the process is to end now.
        let grace = match stopped {
            Ok(Stopped::Drained) => POOL_GRACE,
            _ => Duration::ZERO,
        };
        let idle = pool.shutdown(grace);
        drop(sampler);
        if let Some(log) = access_log {
            log.flush();
        }
        (stopped, idle)
    });
    if let Some(bridge) = bridge {
        bridge.detach(py)?;
    }
    let stopped = stopped.map_err(|e| PyOSError::new_err(e.to_string()))?;
    let clean = stopped == Stopped::Drained && pool_idle;
    log::info!(target: "propylon.server", "Stopped");
    py.detach(logging::flush);
    Ok(clean)
}
