//! Request bodies read whole before the call, for `--buffer-body`.
//!
//! What it does: `spool` reads a body in the task of its connection or
//! stream, asynchronously: no thread, OS or Python, waits for the client
//! (each wait is the source's, bounded by the body timeout and the minimum
//! rate). It keeps the body in memory up to `--buffer-memory-limit`, while
//! the memory budget of the bodies read before the call
//! (`--preread-memory-limit`) has room; past that, in an unlinked
//! temporary file (`spill`), in batches of `BATCH` bytes, without a thread
//! per upload.
//! A spilled body holds its size of the disk budget (`DiskBudget`,
//! `--buffer-disk-limit`) for as long as its file is open; a declared
//! length is reserved before anything is read. A body the server decodes
//! (`--decompress`) is spooled as it came, then decoded into a second
//! spool on a blocking thread (CPU work that no longer waits for the
//! client), so that its exact decoded length is known; the first is given
//! back when the second is complete.
//!
//! What it does not do: decide which bodies are spooled
//! (`request::service`), or choose the statuses of `SpoolError`s.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::task::JoinError;

use super::budget::{DiskBudget, MemoryBudget, Reservation};
use super::reader::{BodyReader, Source};
use super::spill::SpillFile;
use super::BodyError;
use crate::proto::body::Coding;

/// Bytes handed to the temporary file at once (`spill`): the hand-over to
/// a blocking call costs once per batch, not once per read of the
/// connection (16 KiB or less). A spilled body holds at most four in memory
/// (one filling, two waiting, one being written), and only while the disk
/// is slower than the client.
const BATCH: usize = 256 * 1024;

/// Room past `BATCH` for the chunk that fills a batch: one read of the
/// connection (`conn::h1_body` reads up to 64 KiB; an HTTP/2 DATA frame
/// holds 16 KiB unless `--h2-max-frame-size` allows more).
const READ_SLACK: usize = 64 * 1024;

/// What bounds a spooled body.
pub(crate) struct SpoolLimits {
    /// The most of one body kept in memory (`--buffer-memory-limit`).
    pub(crate) memory: usize,
    /// The memory all bodies read before the call hold together
    /// (`--preread-memory-limit`): a body it has no room for goes to disk.
    pub(crate) memory_budget: Arc<MemoryBudget>,
    /// The disk all spilled bodies hold together (`--buffer-disk-limit`).
    pub(crate) disk: Arc<DiskBudget>,
    /// `--max-body-size`, raw and decoded.
    pub(crate) max_body_size: u64,
}

/// Why a body could not be spooled.
#[derive(Debug)]
pub(crate) enum SpoolError {
    /// The body's own error (400, 408, 413).
    Body(BodyError),
    /// The body needs more disk than the whole budget: it can never fit.
    LargerThanDisk(u64),
    /// The disk budget has no room now: other bodies hold it.
    DiskFull(u64),
    /// The temporary file could not be made or written.
    File(io::Error),
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpoolError::Body(e) => e.fmt(f),
            SpoolError::LargerThanDisk(limit) => write!(
                f,
                "the request body needs more than the --buffer-disk-limit of {limit} bytes"
            ),
            SpoolError::DiskFull(limit) => write!(
                f,
                "the --buffer-disk-limit of {limit} bytes is used up by other request bodies"
            ),
            SpoolError::File(e) => {
                write!(f, "cannot write the request body to a temporary file: {e}")
            }
        }
    }
}

/// Read `source` whole: its exact length, and a reader over the spooled
/// copy (which no longer decodes or limits). `declared`: its raw length,
/// when known (reserved at once if it spills). `decode`: the coding to
/// decode it from. An error gives the source up (its rest is not drained:
/// the connection closes).
pub(crate) async fn spool(
    mut source: Source,
    declared: Option<u64>,
    decode: Option<Coding>,
    limits: &SpoolLimits,
) -> Result<(u64, BodyReader), SpoolError> {
    let spooled = async {
        let mut raw = Spool::new(limits, 0);
        if let Some(n) = declared {
            raw.expect(n)?;
        }
        let mut received = 0u64;
        while let Some(chunk) = source.next_chunk_async().await.map_err(SpoolError::Body)? {
            received += chunk.len() as u64;
            if received > limits.max_body_size {
                return Err(SpoolError::Body(BodyError::TooLarge(limits.max_body_size)));
            }
            if let Some(batch) = raw.push(chunk)? {
                raw.write(batch).await?;
            }
        }
        let on_disk = raw.on_disk();
        let (length, body) = raw.finish().await?;
        Ok((length, body, on_disk))
    };
    let (length, raw, held) = match spooled.await {
        Ok(spooled) => spooled,
        Err(e) => {
            source.give_up();
            return Err(e);
        }
    };
    let Some(coding) = decode else {
        return Ok((length, BodyReader::new(raw, None, u64::MAX)));
    };
    let memory = limits.memory;
    let memory_budget = limits.memory_budget.clone();
    let disk = limits.disk.clone();
    let max = limits.max_body_size;
    let (length, decoded) = tokio::task::spawn_blocking(move || {
        let mut reader = BodyReader::new(raw, Some(coding), max);
        let limits = SpoolLimits {
            memory,
            memory_budget,
            disk,
            max_body_size: max,
        };
        let mut decoded = Spool::new(&limits, held);
        while let Some(chunk) = reader.next_chunk().map_err(SpoolError::Body)? {
            if let Some(batch) = decoded.push(chunk)? {
                decoded.write_blocking(batch)?;
            }
        }
        decoded.finish_blocking()
    })
    .await
    .map_err(joined)??;
    Ok((length, BodyReader::new(decoded, None, u64::MAX)))
}

/// A body being spooled: in memory, then in a file.
struct Spool {
    memory_limit: usize,
    budget: Arc<DiskBudget>,
    /// What this request holds of the budget besides (the raw body of one
    /// being decoded): counted to tell "never fits" from "not now".
    held_elsewhere: u64,
    length: u64,
    memory: BytesMut,
    /// The memory budget's part `memory` holds.
    in_memory: Reservation,
    disk: Option<OnDisk>,
}

/// A spilled body: its part of the budget, its file, and the bytes not
/// handed to it yet.
struct OnDisk {
    space: Reservation,
    file: SpillFile,
    batch: BytesMut,
}

impl Spool {
    fn new(limits: &SpoolLimits, held_elsewhere: u64) -> Spool {
        Spool {
            memory_limit: limits.memory,
            budget: limits.disk.clone(),
            held_elsewhere,
            length: 0,
            memory: BytesMut::new(),
            in_memory: limits.memory_budget.reserve_none(),
            disk: None,
        }
    }

    /// The body will be `n` bytes long: a body that spills reserves them now.
    fn expect(&mut self, n: u64) -> Result<(), SpoolError> {
        if n > self.memory_limit as u64 {
            self.spill()?;
            self.reserve(n)?;
        }
        Ok(())
    }

    /// Take `chunk`: a batch to write when one is full.
    fn push(&mut self, chunk: Bytes) -> Result<Option<Bytes>, SpoolError> {
        self.length += chunk.len() as u64;
        if self.disk.is_none() {
            if self.memory.len() + chunk.len() <= self.memory_limit
                && self.in_memory.grow(chunk.len() as u64)
            {
                self.memory.extend_from_slice(&chunk);
                return Ok(None);
            }
            self.spill()?;
        }
        self.reserve(self.length)?;
        let Some(disk) = self.disk.as_mut() else {
            return Ok(None);
        };
        if disk.batch.capacity() == 0 {
            // A batch's whole size at once (and a read's worth more, for
            // the chunk that fills it): no copy as it grows.
            disk.batch.reserve(BATCH + READ_SLACK);
        }
        disk.batch.extend_from_slice(&chunk);
        Ok((disk.batch.len() >= BATCH).then(|| std::mem::take(&mut disk.batch).freeze()))
    }

    /// Go to disk: what is in memory becomes the start of the first batch.
    fn spill(&mut self) -> Result<(), SpoolError> {
        if self.disk.is_none() {
            self.disk = Some(OnDisk {
                file: SpillFile::new(),
                space: self.budget.reserve_none(),
                batch: std::mem::take(&mut self.memory),
            });
            // Counted on disk from now on.
            self.in_memory.shrink_to(0);
        }
        Ok(())
    }

    /// Hold `total` bytes of the disk budget.
    fn reserve(&mut self, total: u64) -> Result<(), SpoolError> {
        let Some(disk) = self.disk.as_mut() else {
            return Ok(());
        };
        let more = total.saturating_sub(disk.space.bytes());
        if more == 0 || disk.space.grow(more) {
            return Ok(());
        }
        let limit = self.budget.limit();
        Err(match self.held_elsewhere.saturating_add(total) > limit {
            true => SpoolError::LargerThanDisk(limit),
            false => SpoolError::DiskFull(limit),
        })
    }

    /// The disk this body holds.
    fn on_disk(&self) -> u64 {
        self.disk.as_ref().map_or(0, |d| d.space.bytes())
    }

    /// Hand `batch` to the file; waits only while the disk is behind.
    async fn write(&mut self, batch: Bytes) -> Result<(), SpoolError> {
        match self.disk.as_mut() {
            Some(disk) => disk.file.write(batch).await.map_err(SpoolError::File),
            None => Ok(()),
        }
    }

    /// Write `batch` on this thread, one of the blocking pool's.
    fn write_blocking(&mut self, batch: Bytes) -> Result<(), SpoolError> {
        match self.disk.as_mut() {
            Some(disk) => disk.file.write_blocking(&batch).map_err(SpoolError::File),
            None => Ok(()),
        }
    }

    /// The body's length, and the body: in memory, or in its file with
    /// the rest written and the file rewound.
    async fn finish(mut self) -> Result<(u64, Source), SpoolError> {
        let Some(disk) = self.disk.take() else {
            return Ok(self.held());
        };
        let file = disk.file.finish(disk.batch.freeze()).await;
        Ok(self.spilled(file.map_err(SpoolError::File)?, disk.space))
    }

    /// `finish` on this thread, one of the blocking pool's.
    fn finish_blocking(mut self) -> Result<(u64, Source), SpoolError> {
        let Some(disk) = self.disk.take() else {
            return Ok(self.held());
        };
        let file = disk.file.finish_blocking(&disk.batch);
        Ok(self.spilled(file.map_err(SpoolError::File)?, disk.space))
    }

    /// The length and the body, held in memory.
    fn held(self) -> (u64, Source) {
        let source = Source::Held {
            bytes: self.memory.freeze(),
            _reservation: self.in_memory,
        };
        (self.length, source)
    }

    /// The length and the body, spilled to `file`.
    fn spilled(&self, file: std::fs::File, space: Reservation) -> (u64, Source) {
        let source = Source::File {
            file,
            left: self.length,
            _space: space,
        };
        (self.length, source)
    }
}

/// A blocking call that panicked or was cancelled (at shutdown).
fn joined(e: JoinError) -> SpoolError {
    SpoolError::File(io::Error::other(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::request::body::budget::Budget;
    use std::io::Write;

    fn limits(memory: usize, disk: u64) -> SpoolLimits {
        SpoolLimits {
            memory,
            memory_budget: Budget::new(1 << 30),
            disk: Budget::new(disk),
            max_body_size: 1 << 30,
        }
    }

    fn refused(spooled: Result<(u64, BodyReader), SpoolError>) -> SpoolError {
        match spooled {
            Ok((len, _)) => panic!("spooled {len} bytes"),
            Err(e) => e,
        }
    }

    fn body(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    async fn spooled(
        data: &[u8],
        declared: Option<u64>,
        limits: &SpoolLimits,
    ) -> Result<(u64, BodyReader), SpoolError> {
        let source = Source::Memory(Bytes::copy_from_slice(data));
        spool(source, declared, None, limits).await
    }

    #[tokio::test]
    async fn a_small_body_stays_in_memory() {
        let limits = limits(1000, 0);
        let (len, mut r) = spooled(b"small", Some(5), &limits).await.unwrap();
        assert_eq!((len, r.remaining()), (5, Some(5)));
        assert_eq!(&r.read_to_end().unwrap()[..], b"small");
        assert_eq!(limits.disk.used(), 0);
    }

    #[tokio::test]
    async fn a_large_body_spills_and_holds_its_disk_until_dropped() {
        let limits = limits(1000, 1 << 20);
        // Over several batches, and not a whole number of them.
        let data = body(2 * BATCH + 12345);
        for declared in [Some(data.len() as u64), None] {
            let (len, mut r) = spooled(&data, declared, &limits).await.unwrap();
            assert_eq!(len, data.len() as u64);
            assert_eq!(limits.disk.used(), len);
            assert_eq!(r.remaining(), Some(len));
            assert_eq!(r.read_to_end().unwrap(), data);
            assert_eq!(r.remaining(), Some(0));
            drop(r);
            assert_eq!(limits.disk.used(), 0);
        }
    }

    #[tokio::test]
    async fn a_body_the_memory_budget_has_no_room_for_goes_to_disk() {
        let mut limits = limits(1000, 1 << 20);
        limits.memory_budget = Budget::new(1500);
        let (_, first) = spooled(&body(1000), None, &limits).await.unwrap();
        assert_eq!((limits.memory_budget.used(), limits.disk.used()), (1000, 0));
        let (len, mut second) = spooled(&body(1000), None, &limits).await.unwrap();
        assert_eq!(
            (limits.memory_budget.used(), limits.disk.used()),
            (1000, 1000)
        );
        assert_eq!(second.read_to_end().unwrap(), body(1000));
        drop((first, second));
        assert_eq!(
            (len, limits.memory_budget.used(), limits.disk.used()),
            (1000, 0, 0)
        );
    }

    #[tokio::test]
    async fn a_body_larger_than_the_whole_budget_never_fits() {
        let limits = limits(10, 100);
        let data = body(101);
        for declared in [Some(101), None] {
            let e = refused(spooled(&data, declared, &limits).await);
            assert!(matches!(e, SpoolError::LargerThanDisk(100)), "{e:?}");
            assert_eq!(limits.disk.used(), 0);
        }
        // Bodies that stay in memory need no disk at all.
        assert!(spooled(&data[..10], None, &limits).await.is_ok());
    }

    #[tokio::test]
    async fn a_body_that_finds_the_budget_held_by_others_is_refused_until_it_is_given_back() {
        let limits = limits(10, 100);
        let (_, held) = spooled(&body(60), None, &limits).await.unwrap();
        for declared in [Some(50), None] {
            let e = refused(spooled(&body(50), declared, &limits).await);
            assert!(matches!(e, SpoolError::DiskFull(100)), "{e:?}");
            assert_eq!(limits.disk.used(), 60);
        }
        drop(held);
        assert!(spooled(&body(50), Some(50), &limits).await.is_ok());
    }

    #[tokio::test]
    async fn a_decoded_body_is_spooled_decoded_and_its_raw_copy_given_back() {
        let limits = limits(1000, 1 << 20);
        let data = body(300_000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let encoded = gz.finish().unwrap();
        assert!(encoded.len() > 1000, "the raw body spills too");
        let source = Source::Memory(Bytes::from(encoded.clone()));
        let declared = Some(encoded.len() as u64);
        let (len, mut r) = spool(source, declared, Some(Coding::Gzip), &limits)
            .await
            .unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(limits.disk.used(), len, "only the decoded copy");
        assert_eq!(r.read_to_end().unwrap(), data);
        drop(r);
        assert_eq!(limits.disk.used(), 0);
    }

    #[tokio::test]
    async fn the_maximum_body_size_holds_raw_and_decoded() {
        let mut limits = limits(1000, 1 << 20);
        limits.max_body_size = 1000;
        let e = refused(spooled(&body(1001), None, &limits).await);
        assert!(matches!(e, SpoolError::Body(BodyError::TooLarge(1000))));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[0u8; 100_000]).unwrap();
        let source = Source::Memory(Bytes::from(gz.finish().unwrap()));
        let e = refused(spool(source, None, Some(Coding::Gzip), &limits).await);
        assert!(matches!(e, SpoolError::Body(BodyError::TooLarge(1000))));
        assert_eq!(limits.disk.used(), 0);
    }
}
