//! Rust `log` records into Python `logging`, without blocking I/O threads.
//!
//! Records are formatted where they happen and queued; one thread takes the GIL
//! to hand them to `logging.getLogger(target).log(level, text)`. A tokio thread
//! that logs never waits for the GIL. The queue is bounded: when Python cannot
//! keep up, records are dropped and counted rather than held without limit.
//!
//! What it does not do: format or filter for the user (Python's `logging`
//! configuration does), or log application tracebacks (`errors`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Mutex, OnceLock};

use pyo3::prelude::*;

/// Records waiting for the GIL; beyond this they are dropped.
const QUEUE: usize = 16 * 1024;

enum Msg {
    Record {
        target: String,
        level: u8,
        text: String,
    },
    Flush(Sender<()>),
}

struct Forward {
    tx: Mutex<SyncSender<Msg>>,
    dropped: AtomicU64,
}

static FORWARD: OnceLock<Forward> = OnceLock::new();

impl log::Log for Forward {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let target = record.target();
        let target = if target.starts_with("propylon") {
            target.to_string()
        } else {
            format!("propylon.rust.{}", target.replace("::", "."))
        };
        let msg = Msg::Record {
            target,
            level: python_level(record.level()),
            text: record.args().to_string(),
        };
        if self.tx.lock().unwrap().try_send(msg).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {}
}

fn python_level(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 40,
        log::Level::Warn => 30,
        log::Level::Info => 20,
        log::Level::Debug => 10,
        log::Level::Trace => 5,
    }
}

/// Install the forwarder (once per process) and set the Rust-side level from
/// the Python loggers' effective levels, so disabled records cost nothing.
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    let logging = py.import("logging")?;
    let mut lowest = 50u8;
    for name in [
        "propylon.server",
        "propylon.error",
        "propylon.access",
        "propylon.rust",
    ] {
        let level: u8 = logging
            .call_method1("getLogger", (name,))?
            .call_method0("getEffectiveLevel")?
            .extract()?;
        lowest = lowest.min(level);
    }
    let max = match lowest {
        0..=5 => log::LevelFilter::Trace,
        6..=10 => log::LevelFilter::Debug,
        11..=20 => log::LevelFilter::Info,
        21..=30 => log::LevelFilter::Warn,
        _ => log::LevelFilter::Error,
    };
    if FORWARD.get().is_none() {
        let (tx, rx) = sync_channel(QUEUE);
        let forward = Forward {
            tx: Mutex::new(tx),
            dropped: AtomicU64::new(0),
        };
        if FORWARD.set(forward).is_ok() {
            std::thread::Builder::new()
                .name("propylon-log".into())
                .spawn(move || forward_loop(rx))
                .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
            let _ = log::set_logger(FORWARD.get().unwrap());
        }
    }
    log::set_max_level(max);
    Ok(())
}

/// Wait until every record queued so far has reached Python `logging`.
/// Call with the GIL released.
pub(crate) fn flush() {
    if let Some(f) = FORWARD.get() {
        let (tx, rx) = std::sync::mpsc::channel();
        if f.tx.lock().unwrap().send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}

fn forward_loop(rx: Receiver<Msg>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        loop {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
            if batch.len() >= 256 {
                break;
            }
        }
        let mut acks = Vec::new();
        Python::attach(|py| {
            let Ok(logging) = py.import("logging") else {
                return;
            };
            if let Some(f) = FORWARD.get() {
                let dropped = f.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    let _ = logging
                        .call_method1("getLogger", ("propylon.server",))
                        .and_then(|l| l.call_method1("warning", (format!("{dropped} log records were dropped (logging could not keep up)"),)));
                }
            }
            for msg in batch {
                match msg {
                    Msg::Record {
                        target,
                        level,
                        text,
                    } => {
                        let result = logging
                            .call_method1("getLogger", (target,))
                            .and_then(|l| l.call_method1("log", (level, text)));
                        if let Err(e) = result {
                            e.print(py);
                        }
                    }
                    Msg::Flush(ack) => acks.push(ack),
                }
            }
        });
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// Write one `propylon.server` line to stderr now, in the format of
/// `propylon._logging.FORMAT`, without Python: for what must be said while
/// the interpreter may be held by the very thread it is about (the
/// watchdog's reports, which Python's fault handler follows on stderr).
pub(crate) fn write_now(level: &str, text: &str) {
    use std::io::Write;
    let line = format!(
        "[{}] [{}] [{level}] propylon.server: {text}\n",
        local_time(),
        std::process::id()
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The local time as `logging.Formatter` writes `asctime`:
/// `2026-12-07 13:40:00,123`.
fn local_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    // SAFETY: localtime_r writes into `tm`, which outlives the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let converted = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !converted {
        return format!("{secs}");
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_millis()
    )
}
