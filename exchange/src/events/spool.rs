//! The outbox spool: an append-only file where events wait while Kafka is
//! unreachable (or the producer's queue is full), replayed in order later.
//!
//! Format, one frame per event, little-endian:
//! `len: u32 | crc32(body): u32 | body`, with `body = key_len: u32 | key | value`.
//! The checksum catches a torn last frame after a crash; reading stops at the
//! first frame that is short or fails its checksum, and [`Spool::open`] cuts
//! the file there, so a crash mid-write loses at most the batch being written.
//!
//! A failed append (disk full, I/O error) is cut back to the last good frame
//! at once: the spool remembers the length of its intact prefix and truncates
//! to it (and, should that fail too, before the next append), so a torn frame
//! can never hide the frames appended after it.
//!
//! Reading streams: [`FrameReader`] reads one frame at a time through a
//! `BufReader`, so opening a spool holds one frame in memory and replay holds
//! one chunk ([`Spool::read_chunk`]), whatever the file's size.
//!
//! fsync policy: one `sync_data` per appended batch (not per event). A batch
//! is acknowledged to nobody until it is synced, and replay replaces the file
//! atomically (write a new file, sync it, rename over the old one), so a crash
//! at any point leaves either the old or the new list of pending events.
//! Replay may resend events that Kafka already has (crash between delivery
//! and rewrite); the ledger's (auction id, imp id) key makes that harmless.
//!
//! The methods do blocking file I/O: callers run them off the runtime's
//! worker threads (`spawn_blocking`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Frames larger than this are treated as corruption (events are a few KB).
const MAX_FRAME: u32 = 16 * 1024 * 1024;

/// One spooled event: its Kafka key and JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Kafka key (the budget account).
    pub key: String,
    /// Event JSON.
    pub value: Vec<u8>,
}

/// The spool file and the number of events in it.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    file: File,
    pending: usize,
    /// Length of the intact prefix: every byte past it is a torn append.
    good_len: u64,
}

impl Spool {
    /// Opens (creating it and its directory if needed) the spool at `path`,
    /// counts the events waiting in it (streaming, one frame in memory at a
    /// time) and cuts off a torn tail.
    pub fn open(path: &Path) -> io::Result<Spool> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let mut frames = FrameReader::new(BufReader::new(File::open(path)?));
        let mut pending = 0;
        while frames.next_record()?.is_some() {
            pending += 1;
        }
        let good_len = frames.position();
        if good_len < file.metadata()?.len() {
            tracing::warn!(path = %path.display(), kept = pending, "spool: cutting a torn tail");
            file.set_len(good_len)?;
            file.sync_data()?;
        }
        Ok(Spool {
            path: path.to_owned(),
            file,
            pending,
            good_len,
        })
    }

    /// Events waiting in the spool.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Appends `records` and syncs them to disk (one fsync for the batch).
    /// On error the file is cut back to its last good frame: nothing of the
    /// batch is kept, and later appends are readable.
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        self.append_through(records, |f| Box::new(f))
    }

    /// [`append`](Self::append), writing through the writer `wrap` makes of
    /// the file (tests inject one that fails halfway, as a full disk does).
    pub fn append_through(
        &mut self,
        records: &[Record],
        wrap: impl for<'f> FnOnce(&'f File) -> Box<dyn Write + 'f>,
    ) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        // A cut that failed after an earlier error is retried first.
        if self.file.metadata()?.len() != self.good_len {
            self.file.set_len(self.good_len)?;
        }
        let written = (|| {
            let mut out = BufWriter::new(wrap(&self.file));
            let mut n = 0u64;
            for r in records {
                n += write_frame(&mut out, r)?;
            }
            out.flush()?;
            drop(out);
            self.file.sync_data()?;
            Ok::<u64, io::Error>(n)
        })();
        match written {
            Ok(n) => {
                self.good_len += n;
                self.pending += records.len();
                Ok(())
            }
            Err(e) => {
                // Back to the last good frame; if even that fails, the next
                // append tries again before writing (see above).
                if let Err(cut) = self
                    .file
                    .set_len(self.good_len)
                    .and_then(|()| self.file.sync_data())
                {
                    tracing::error!(path = %self.path.display(), error = %cut, "spool: cannot cut a failed append back");
                }
                Err(e)
            }
        }
    }

    /// Every event in the spool, oldest first (tests; replay reads in
    /// chunks with [`read_chunk`](Self::read_chunk)).
    pub fn read_all(&self) -> io::Result<Vec<Record>> {
        Ok(read_frames(&self.path)?.0)
    }

    /// Up to `max` events starting at byte `from` (0, or a position an
    /// earlier call returned), and the position after the last one read.
    /// Memory: the events returned, not the file.
    pub fn read_chunk(&self, from: u64, max: usize) -> io::Result<(Vec<Record>, u64)> {
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(from))?;
        let mut frames =
            FrameReader::new(BufReader::new(f.take(self.good_len.saturating_sub(from))));
        let mut out = Vec::new();
        while out.len() < max {
            match frames.next_record()? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok((out, from + frames.position()))
    }

    /// Replaces the spool's content with `remaining` (what replay could not
    /// deliver), atomically: a crash leaves the old or the new list.
    pub fn replace(&mut self, remaining: &[Record]) -> io::Result<()> {
        self.replace_from(remaining, self.good_len)
    }

    /// Replaces the spool's content with `first` followed by the frames from
    /// byte `from` to the end (the part replay has not sent yet), copied as
    /// a stream; atomic like [`replace`](Self::replace).
    pub fn replace_from(&mut self, first: &[Record], from: u64) -> io::Result<()> {
        let tmp = self.path.with_extension("spool.tmp");
        let mut kept = first.len();
        let mut len = 0u64;
        {
            let f = File::create(&tmp)?;
            let mut out = BufWriter::new(&f);
            for r in first {
                len += write_frame(&mut out, r)?;
            }
            if from < self.good_len {
                let mut src = File::open(&self.path)?;
                src.seek(SeekFrom::Start(from))?;
                // Count what is copied, frame by frame (bounded memory).
                let mut frames = FrameReader::new(BufReader::new(src.take(self.good_len - from)));
                while let Some(r) = frames.next_record()? {
                    len += write_frame(&mut out, &r)?;
                    kept += 1;
                }
            }
            out.flush()?;
            drop(out);
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        // The rename itself is durable only once the directory is synced.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)?;
        self.pending = kept;
        self.good_len = len;
        Ok(())
    }
}

/// Writes one frame; returns its length in bytes.
fn write_frame(out: &mut impl Write, r: &Record) -> io::Result<u64> {
    let frame = frame_bytes(r);
    out.write_all(&frame)?;
    Ok(frame.len() as u64)
}

/// One whole frame of `r` in one buffer (the journal writes it with one
/// `write` call).
pub(crate) fn frame_bytes(r: &Record) -> Vec<u8> {
    let body_len = 4 + r.key.len() + r.value.len();
    let mut frame = Vec::with_capacity(8 + body_len);
    frame.extend_from_slice(&(body_len as u32).to_le_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
    frame.extend_from_slice(r.key.as_bytes());
    frame.extend_from_slice(&r.value);
    let crc = crc32fast::hash(&frame[8..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    frame
}

/// Reads frames one at a time from `R` (give it a `BufReader`): memory is
/// one frame's body, whatever the input's size. Stops at the end or at the
/// first frame that is short, too long or fails its checksum.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    /// Bytes of intact frames read so far.
    pos: u64,
    done: bool,
    body: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    /// A reader at the start of `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            pos: 0,
            done: false,
            body: Vec::new(),
        }
    }

    /// Length of the intact prefix read so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next intact frame; `None` at the end or at the first bad frame
    /// (and from then on). Errors are I/O errors of `inner`.
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        if self.done {
            return Ok(None);
        }
        let r = self.read_one();
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }

    fn read_one(&mut self) -> io::Result<Option<Record>> {
        let mut header = [0u8; 8];
        if !fill(&mut self.inner, &mut header)? {
            return Ok(None);
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if !(4..=MAX_FRAME).contains(&len) {
            return Ok(None);
        }
        self.body.clear();
        // `take`: a corrupt length cannot make it allocate more than is there.
        (&mut self.inner)
            .take(u64::from(len))
            .read_to_end(&mut self.body)?;
        let body = &self.body;
        if body.len() < len as usize || crc32fast::hash(body) != crc {
            return Ok(None);
        }
        let key_len = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
        let Some(key) = body.get(4..4usize.saturating_add(key_len)) else {
            return Ok(None);
        };
        let record = Record {
            key: String::from_utf8_lossy(key).into_owned(),
            value: body[4 + key_len..].to_vec(),
        };
        self.pos += 8 + u64::from(len);
        Ok(Some(record))
    }
}

/// Fills `buf` from `r`; false when the input ends first (a torn header or
/// the clean end).
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => return Ok(false),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads every intact frame of the file at `path` (streaming, through
/// [`FrameReader`]); returns them and the length of the intact prefix.
pub fn read_frames(path: &Path) -> io::Result<(Vec<Record>, u64)> {
    let mut frames = FrameReader::new(BufReader::new(File::open(path)?));
    let mut records = Vec::new();
    while let Some(r) = frames.next_record()? {
        records.push(r);
    }
    Ok((records, frames.position()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize) -> Record {
        Record {
            key: format!("seat-{i}"),
            value: format!("{{\"n\":{i}}}").into_bytes(),
        }
    }

    #[test]
    fn appends_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/events.spool");
        let mut s = Spool::open(&path).unwrap();
        s.append(&[rec(0), rec(1)]).unwrap();
        s.append(&[rec(2)]).unwrap();
        drop(s);
        let s = Spool::open(&path).unwrap();
        assert_eq!(s.pending(), 3);
        assert_eq!(s.read_all().unwrap(), vec![rec(0), rec(1), rec(2)]);
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.spool");
        let mut s = Spool::open(&path).unwrap();
        s.append(&[rec(0), rec(1)]).unwrap();
        drop(s);
        // A crash mid-frame: half of a third frame, and a flipped byte would
        // fail the checksum the same way.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, b'x']).unwrap();
        drop(f);
        let mut s = Spool::open(&path).unwrap();
        assert_eq!(s.pending(), 2);
        s.append(&[rec(3)]).unwrap();
        assert_eq!(s.read_all().unwrap(), vec![rec(0), rec(1), rec(3)]);
    }

    /// Writes to the file until `left` bytes are spent, then fails like a
    /// full disk.
    struct FailAfter<'f> {
        file: &'f File,
        left: usize,
    }

    impl Write for FailAfter<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            let n = buf.len().min(self.left);
            let n = (&mut &*self.file).write(&buf[..n])?;
            self.left -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            (&mut &*self.file).flush()
        }
    }

    #[test]
    fn a_failed_append_is_cut_back_and_later_frames_survive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.spool");
        let mut s = Spool::open(&path).unwrap();
        s.append(&[rec(0), rec(1)]).unwrap();
        let good = std::fs::metadata(&path).unwrap().len();
        // Half of the next batch reaches the file, then the disk is full.
        let err = s
            .append_through(&[rec(2), rec(3)], |file| {
                Box::new(FailAfter { file, left: 30 })
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good, "cut back");
        assert_eq!(s.pending(), 2);
        // Later appends are readable, by this handle and after a restart.
        s.append(&[rec(4)]).unwrap();
        assert_eq!(s.read_all().unwrap(), vec![rec(0), rec(1), rec(4)]);
        drop(s);
        let s = Spool::open(&path).unwrap();
        assert_eq!(s.pending(), 3);
        assert_eq!(s.read_all().unwrap(), vec![rec(0), rec(1), rec(4)]);
    }

    #[test]
    fn chunks_stream_and_replace_from_keeps_the_unsent_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.spool");
        let mut s = Spool::open(&path).unwrap();
        s.append(&(0..10).map(rec).collect::<Vec<_>>()).unwrap();
        let (first, at) = s.read_chunk(0, 4).unwrap();
        assert_eq!(first, (0..4).map(rec).collect::<Vec<_>>());
        let (second, at2) = s.read_chunk(at, 4).unwrap();
        assert_eq!(second, (4..8).map(rec).collect::<Vec<_>>());
        // Kafka took the first chunk and one of the second: keep the rest.
        s.replace_from(&second[1..], at2).unwrap();
        assert_eq!(s.pending(), 5);
        let (all, end) = s.read_chunk(0, 100).unwrap();
        assert_eq!(all, (5..10).map(rec).collect::<Vec<_>>());
        assert_eq!(end, std::fs::metadata(&path).unwrap().len());
        s.append(&[rec(10)]).unwrap();
        assert_eq!(Spool::open(&path).unwrap().pending(), 6);
    }

    #[test]
    fn a_corrupt_length_reads_as_the_end_without_allocating_it() {
        // 16 MB claimed, 3 bytes present: the reader stops, keeping nothing.
        let bytes = [0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3];
        let mut r = FrameReader::new(&bytes[..]);
        assert_eq!(r.next_record().unwrap(), None);
        assert_eq!(r.position(), 0);
    }

    #[test]
    fn replace_keeps_only_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.spool");
        let mut s = Spool::open(&path).unwrap();
        s.append(&[rec(0), rec(1), rec(2)]).unwrap();
        s.replace(&[rec(2)]).unwrap();
        s.append(&[rec(3)]).unwrap();
        assert_eq!(s.pending(), 2);
        assert_eq!(
            Spool::open(&path).unwrap().read_all().unwrap(),
            vec![rec(2), rec(3)]
        );
        s.replace(&[]).unwrap();
        assert_eq!(Spool::open(&path).unwrap().pending(), 0);
    }
}
