//! Where access lines go, and the access log's settings as the runtime
//! holds them (`AccessLog`).
//!
//! What it does: without `--access-logfile`, each line is a record on the
//! `propylon.access` target (the bridge hands it to Python `logging`). With
//! it, a thread of its own writes the lines to the file (`-`: stdout),
//! buffered: it writes what has queued up, and flushes when the queue is
//! empty. The queue is bounded; a full one makes the connection that logs
//! wait, and no line is dropped. The file is reopened when it was moved or
//! removed (logrotate's default `create` mode), as Python's
//! `WatchedFileHandler` does: its device and inode are compared with the
//! path's after each batch. `flush` waits until every line queued is written.
//!
//! What it does not do: format lines (`record`).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::time::Duration;

use http::HeaderName;

use super::format::AccessFormat;

/// Lines queued for the file before a connection that logs waits.
const QUEUE: usize = 64 * 1024;

/// The access log of a running server.
pub(crate) struct AccessLog {
    pub(crate) format: AccessFormat,
    /// One JSON object per line instead of the format's text.
    pub(crate) json: bool,
    /// Computed once from the format: the headers a line shows.
    pub(crate) request_headers: Vec<HeaderName>,
    pub(crate) response_headers: Vec<HeaderName>,
    sink: Sink,
}

impl fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.format)
            .field("json", &self.json)
            .field("sink", &self.sink)
            .finish()
    }
}

/// Where lines go.
#[derive(Debug)]
pub(crate) enum Destination {
    /// The `propylon.access` logger.
    Logger,
    Stdout,
    File(PathBuf),
}

enum Sink {
    Logger,
    Writer(SyncSender<Message>),
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sink::Logger => f.write_str("Logger"),
            Sink::Writer(_) => f.write_str("Writer"),
        }
    }
}

enum Message {
    Line(String),
    Flush(Sender<()>),
}

impl AccessLog {
    /// Opens the file now (an error names it) and starts its writer.
    pub(crate) fn open(
        format: AccessFormat,
        json: bool,
        destination: Destination,
    ) -> io::Result<AccessLog> {
        let sink = match destination {
            Destination::Logger => Sink::Logger,
            Destination::Stdout => Sink::Writer(start_writer(Output::Stdout)?),
            Destination::File(path) => {
                let file = open_append(&path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot open the access log file {}: {e}", path.display()),
                    )
                })?;
                Sink::Writer(start_writer(Output::File(path, file))?)
            }
        };
        Ok(AccessLog {
            request_headers: format.request_headers(),
            response_headers: format.response_headers(),
            format,
            json,
            sink,
        })
    }

    /// Send one line (without its line feed).
    pub(crate) fn emit(&self, line: String) {
        match &self.sink {
            Sink::Logger => log::info!(target: "propylon.access", "{line}"),
            Sink::Writer(tx) => {
                let _ = tx.send(Message::Line(line));
            }
        }
    }

    /// Wait (a few seconds at most) until every line sent so far is written.
    pub(crate) fn flush(&self) {
        if let Sink::Writer(tx) = &self.sink {
            let (done, wait) = channel();
            if tx.send(Message::Flush(done)).is_ok() {
                let _ = wait.recv_timeout(Duration::from_secs(5));
            }
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

enum Output {
    Stdout,
    File(PathBuf, File),
}

fn start_writer(output: Output) -> io::Result<SyncSender<Message>> {
    let (tx, rx) = sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("propylon-access-log".into())
        .spawn(move || write_lines(rx, output))?;
    Ok(tx)
}

/// The writer thread: until every sender is gone.
fn write_lines(rx: Receiver<Message>, output: Output) {
    let (path, mut out): (Option<PathBuf>, BufWriter<Box<dyn Write + Send>>) = match output {
        Output::Stdout => (None, BufWriter::new(Box::new(io::stdout()))),
        Output::File(path, file) => (Some(path), BufWriter::new(Box::new(file))),
    };
    let mut opened = path.as_deref().and_then(identity);
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Line(line) => {
                    let written = out
                        .write_all(line.as_bytes())
                        .and_then(|()| out.write_all(b"\n"));
                    if let Err(e) = written {
                        report(&mut failed, &e);
                    }
                }
                Message::Flush(ack) => acks.push(ack),
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            report(&mut failed, &e);
        }
        for ack in acks {
            let _ = ack.send(());
        }
        // Moved or removed (rotated): write to a new file at the path.
        if let Some(path) = &path {
            let now = identity(path);
            if now.is_none() || now != opened {
                match open_append(path) {
                    Ok(file) => {
                        out = BufWriter::new(Box::new(file));
                        opened = identity(path);
                        failed = false;
                    }
                    Err(e) => report(&mut failed, &e),
                }
            }
        }
    }
    let _ = out.flush();
}

/// A file's device and inode.
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Say once that writing fails (the disk is full, say), not once a line.
fn report(failed: &mut bool, e: &io::Error) {
    if !*failed {
        *failed = true;
        log::error!(target: "propylon.server", "cannot write the access log: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::access_log::format::DEFAULT;

    #[test]
    fn lines_reach_the_file_and_follow_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(
            AccessFormat::parse(DEFAULT).unwrap(),
            false,
            Destination::File(path.clone()),
        )
        .unwrap();
        log.emit("one".into());
        log.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        // The writer looks for a move after each batch: "two" goes to the
        // moved file or the new one, depending on whether that look came
        // before the move; from the batch after, lines go to the new one.
        log.emit("two".into());
        log.flush();
        log.emit("three".into());
        log.flush();
        let old = std::fs::read_to_string(dir.path().join("access.log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(old == "one\n" || old == "one\ntwo\n", "{old:?}");
        assert_eq!(old + &new, "one\ntwo\nthree\n");
    }

    #[test]
    fn an_unwritable_path_is_named() {
        let e = AccessLog::open(
            AccessFormat::parse(DEFAULT).unwrap(),
            false,
            Destination::File("/nonexistent/dir/access.log".into()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dir/access.log"), "{e}");
    }
}
