//! A thread that copies the worker pool's load into the worker's slot once
//! a second: a scrape answered by another worker reads it from there (the
//! worker answering refreshes its own slot first).
//!
//! What it does not do: count requests (`recorder`).

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::recorder::Recorder;

/// How often the pool's gauges are copied; a scrape every 15 s or more
/// (Prometheus's usual interval) sees them at most this old.
const PERIOD: Duration = Duration::from_secs(1);

/// The running sampler; stops (and clears the pool gauges) when dropped.
pub(crate) struct Sampler {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    pub(crate) fn start(recorder: Arc<Recorder>) -> std::io::Result<Sampler> {
        let (stop, stopped) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name("propylon-metrics".into())
            .spawn(move || {
                loop {
                    recorder.refresh();
                    match stopped.recv_timeout(PERIOD) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
                recorder.clear_pool();
            })?;
        Ok(Sampler {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
