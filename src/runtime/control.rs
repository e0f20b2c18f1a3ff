//! A worker process's line to its supervisor.
//!
//! What it owns: one end of a Unix stream socket pair the supervisor made
//! before it forked the worker. The worker writes one line per notice
//! (`ready`, `stuck`, `recycle`); the supervisor never writes, so the only
//! thing the worker reads is the end of the stream, which means the
//! supervisor is gone and the worker should drain and exit rather than
//! serve on unsupervised.
//!
//! What it does not do: decide anything. The server tells `Ready`, the
//! pool's watchdog `Stuck` and `Recycle`; what follows is the supervisor's
//! decision (`propylon.supervisor`).

use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use tokio::io::AsyncReadExt;

/// What a worker tells its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// Every listener is being accepted on: the worker serves.
    Ready,
    /// Every application thread has run one job past `--timeout`: replace
    /// this worker.
    Stuck,
    /// The worker has started `--max-requests` requests: replace it, then
    /// let it drain.
    Recycle,
}

impl Notice {
    fn line(self) -> &'static [u8] {
        match self {
            Notice::Ready => b"ready\n",
            Notice::Stuck => b"stuck\n",
            Notice::Recycle => b"recycle\n",
        }
    }
}

pub(crate) struct Control {
    stream: UnixStream,
}

impl Control {
    /// Take ownership of `fd`, the worker's end of the pair.
    ///
    /// # Safety
    /// `fd` must be an open Unix stream socket that nothing else owns.
    pub(crate) unsafe fn from_raw_fd(fd: RawFd) -> Control {
        // SAFETY: the caller gives up `fd`.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Control {
            stream: UnixStream::from(owned),
        }
    }

    /// Write `notice`. A supervisor that is gone is not an error here: the
    /// end of the stream (`closed`) handles that.
    pub(crate) fn tell(&self, notice: Notice) {
        if let Err(e) = (&self.stream).write_all(notice.line()) {
            log::debug!(target: "propylon.server", "cannot tell the supervisor {notice:?}: {e}");
        }
    }

    /// Resolves when the supervisor's end is closed (or fails). The
    /// supervisor writes nothing, so any byte read is ignored.
    pub(crate) async fn closed(&self) -> io::Result<()> {
        let reader = self.stream.try_clone()?;
        reader.set_nonblocking(true)?;
        let mut reader = tokio::net::UnixStream::from_std(reader)?;
        let mut buf = [0u8; 64];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::IntoRawFd;

    #[tokio::test]
    async fn notices_are_lines_and_the_supervisor_going_away_is_seen() {
        let (worker, mut supervisor) = UnixStream::pair().unwrap();
        // SAFETY: the fd comes from a socket this test owns and gives up.
        let control = unsafe { Control::from_raw_fd(worker.into_raw_fd()) };
        control.tell(Notice::Ready);
        control.tell(Notice::Recycle);
        let mut got = [0u8; 14];
        supervisor.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ready\nrecycle\n");
        let closed = tokio::spawn(async move { control.closed().await.unwrap() });
        drop(supervisor);
        closed.await.unwrap();
    }
}
