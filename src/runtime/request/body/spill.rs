//! The temporary file a spooled body (`spool`) spills to, written without a
//! thread per upload.
//!
//! What it does: `SpillFile::write` queues a batch of the body. One
//! blocking call at a time, on tokio's blocking pool, writes the queued
//! batches in order to an unlinked temporary file (made by the first), and
//! waits up to `LINGER` for a next batch before it returns. So a fast
//! upload is written by one call that runs as long as batches keep coming
//! (no hand-over per batch), and a slow one by one short call per batch:
//! no thread waits for a client that sends nothing. A write goes to the
//! page cache, usually in tens of microseconds, but at times waits
//! milliseconds for writeback: too long for a thread that serves
//! connections, hence the blocking pool. `write` waits while `MAX_WAITING`
//! batches wait already (the disk is slower than the client).
//!
//! What it does not do: count bytes against the disk budget, or decide
//! what spills (`spool` does).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

/// How long a writing call waits for a next batch before it returns. A
/// client that keeps a batch (256 KiB) coming within it, 50 MB/s or more,
/// is written by one call; a slower one costs its thread at most this much
/// per batch.
const LINGER: Duration = Duration::from_millis(5);

/// Batches that may wait for the writing call: past them, `write` waits.
const MAX_WAITING: usize = 2;

/// A body's temporary file, and the batches on their way to it.
pub(super) struct SpillFile {
    shared: Arc<Shared>,
}

struct Shared {
    writes: Mutex<Writes>,
    /// Wakes the writing call for a next batch, or to end.
    more: Condvar,
    /// Wakes `write` and `finish` as batches are taken and written.
    progress: Notify,
}

struct Writes {
    waiting: VecDeque<Bytes>,
    /// The file when no call writes it (`None` before the first write).
    file: Option<File>,
    call: Call,
    /// No more batches come: the writing call returns when they are written.
    ending: bool,
    failed: Option<io::Error>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Idle,
    Writing,
}

impl Writes {
    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Ok(()),
        }
    }
}

impl SpillFile {
    pub(super) fn new() -> SpillFile {
        SpillFile {
            shared: Arc::new(Shared {
                writes: Mutex::new(Writes {
                    waiting: VecDeque::new(),
                    file: None,
                    call: Call::Idle,
                    ending: false,
                    failed: None,
                }),
                more: Condvar::new(),
                progress: Notify::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Writes> {
        self.shared.writes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `batch` for the writing call (started if none runs); wait
    /// while `MAX_WAITING` batches wait.
    pub(super) async fn write(&self, batch: Bytes) -> io::Result<()> {
        {
            let mut writes = self.lock();
            writes.check()?;
            writes.waiting.push_back(batch);
            match writes.call {
                Call::Writing => self.shared.more.notify_one(),
                Call::Idle => {
                    writes.call = Call::Writing;
                    let shared = self.shared.clone();
                    tokio::task::spawn_blocking(move || write_waiting(&shared, LINGER));
                }
            }
        }
        self.wait_until(|w| w.waiting.len() <= MAX_WAITING).await
    }

    /// Write `batch` on this thread, one of the blocking pool's. Only for a
    /// file written this way throughout: no call runs for it.
    pub(super) fn write_blocking(&self, batch: &[u8]) -> io::Result<()> {
        let file = self.lock().file.take();
        let file = write_batch(file, batch)?;
        self.lock().file = Some(file);
        Ok(())
    }

    /// Once the batches queued are written, write `rest` and rewind: the
    /// file, to be read from its start.
    pub(super) async fn finish(self, rest: Bytes) -> io::Result<File> {
        self.lock().ending = true;
        self.shared.more.notify_one();
        self.wait_until(|w| w.call == Call::Idle).await?;
        let file = self.lock().file.take();
        tokio::task::spawn_blocking(move || rewound(write_batch(file, &rest)?))
            .await
            .map_err(io::Error::other)?
    }

    /// `finish` on this thread, for a file written by `write_blocking`.
    pub(super) fn finish_blocking(self, rest: &[u8]) -> io::Result<File> {
        let file = self.lock().file.take();
        rewound(write_batch(file, rest)?)
    }

    /// Wait until `done`, or the writing call failed.
    async fn wait_until(&self, done: impl Fn(&Writes) -> bool) -> io::Result<()> {
        loop {
            let progress = self.shared.progress.notified();
            tokio::pin!(progress);
            // Registered before the check: no wake-up is missed between.
            progress.as_mut().enable();
            {
                let writes = self.lock();
                writes.check()?;
                if done(&writes) {
                    return Ok(());
                }
            }
            progress.await;
        }
    }
}

impl Drop for SpillFile {
    /// The body is abandoned (an error, a client gone): what still waits
    /// is not written.
    fn drop(&mut self) {
        let mut writes = self.lock();
        writes.waiting.clear();
        writes.ending = true;
        drop(writes);
        self.shared.more.notify_one();
    }
}

/// The writing call: the batches waiting, in order, then those that come
/// within `linger` of the last; returns when none comes, or at the end.
fn write_waiting(shared: &Shared, linger: Duration) {
    let lock = || shared.writes.lock().unwrap_or_else(|e| e.into_inner());
    let mut writes = lock();
    loop {
        if writes.waiting.is_empty() && !writes.ending {
            writes = shared
                .more
                .wait_timeout_while(writes, linger, |w| w.waiting.is_empty() && !w.ending)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let Some(batch) = writes.waiting.pop_front() else {
            writes.call = Call::Idle;
            drop(writes);
            shared.progress.notify_waiters();
            return;
        };
        let file = writes.file.take();
        drop(writes);
        // Room in the queue.
        shared.progress.notify_waiters();
        let written = write_batch(file, &batch);
        drop(batch);
        writes = lock();
        match written {
            Ok(file) => writes.file = Some(file),
            Err(e) => {
                writes.failed = Some(e);
                writes.waiting.clear();
                writes.call = Call::Idle;
                drop(writes);
                shared.progress.notify_waiters();
                return;
            }
        }
    }
}

/// Append `batch` to `file`, made first if there is none yet.
fn write_batch(file: Option<File>, batch: &[u8]) -> io::Result<File> {
    let mut file = match file {
        Some(file) => file,
        None => tempfile::tempfile()?,
    };
    file.write_all(batch)?;
    Ok(file)
}

fn rewound(mut file: File) -> io::Result<File> {
    file.rewind()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn batches_are_written_in_order_and_read_back_from_the_start() {
        let spill = SpillFile::new();
        let mut expected = Vec::new();
        for i in 0..50u8 {
            let batch = Bytes::from(vec![i; 1000 + i as usize]);
            expected.extend_from_slice(&batch);
            spill.write(batch).await.unwrap();
        }
        let mut file = spill.finish(Bytes::from_static(b"end")).await.unwrap();
        expected.extend_from_slice(b"end");
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert_eq!(back, expected);
    }

    #[test]
    fn written_on_the_callers_thread() {
        let spill = SpillFile::new();
        spill.write_blocking(b"one ").unwrap();
        let mut file = spill.finish_blocking(b"two").unwrap();
        let mut back = String::new();
        file.read_to_string(&mut back).unwrap();
        assert_eq!(back, "one two");
    }
}
