//! The outbox spool: an append-only file where events wait while Kafka is
//! unreachable (or the producer's queue is full), replayed in order later.
//!
//! Format, one frame per event, little-endian:
//! `len: u32 | crc32(body): u32 | body`, with `body = key_len: u32 | key | value`.
//! The checksum catches a torn last frame after a crash; reading stops at the
//! first frame that is short or fails its checksum, and [`Spool::open`] cuts
//! the file there, so a crash mid-write loses at most the batch being written.
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
use std::io::{self, BufWriter, Read, Write};
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
}

impl Spool {
    /// Opens (creating it and its directory if needed) the spool at `path`,
    /// counts the events waiting in it and cuts off a torn tail.
    pub fn open(path: &Path) -> io::Result<Spool> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let (records, good_len) = read_frames(path)?;
        if good_len < file.metadata()?.len() {
            tracing::warn!(path = %path.display(), kept = records.len(), "spool: cutting a torn tail");
            file.set_len(good_len)?;
            file.sync_data()?;
        }
        Ok(Spool {
            path: path.to_owned(),
            file,
            pending: records.len(),
        })
    }

    /// Events waiting in the spool.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Appends `records` and syncs them to disk (one fsync for the batch).
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut out = BufWriter::new(&self.file);
        for r in records {
            write_frame(&mut out, r)?;
        }
        out.flush()?;
        drop(out);
        self.file.sync_data()?;
        self.pending += records.len();
        Ok(())
    }

    /// Every event in the spool, oldest first.
    pub fn read_all(&self) -> io::Result<Vec<Record>> {
        Ok(read_frames(&self.path)?.0)
    }

    /// Replaces the spool's content with `remaining` (what replay could not
    /// deliver), atomically: a crash leaves the old or the new list.
    pub fn replace(&mut self, remaining: &[Record]) -> io::Result<()> {
        let tmp = self.path.with_extension("spool.tmp");
        {
            let f = File::create(&tmp)?;
            let mut out = BufWriter::new(&f);
            for r in remaining {
                write_frame(&mut out, r)?;
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
        self.pending = remaining.len();
        Ok(())
    }
}

fn write_frame(out: &mut impl Write, r: &Record) -> io::Result<()> {
    let mut body = Vec::with_capacity(4 + r.key.len() + r.value.len());
    body.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
    body.extend_from_slice(r.key.as_bytes());
    body.extend_from_slice(&r.value);
    out.write_all(&(body.len() as u32).to_le_bytes())?;
    out.write_all(&crc32fast::hash(&body).to_le_bytes())?;
    out.write_all(&body)
}

/// Reads every intact frame; returns them and the length of the intact prefix.
fn read_frames(path: &Path) -> io::Result<(Vec<Record>, u64)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_FRAME {
            break;
        }
        let Some(body) = bytes.get(at + 8..at + 8 + len as usize) else {
            break;
        };
        if crc32fast::hash(body) != crc || body.len() < 4 {
            break;
        }
        let key_len = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
        let Some(key) = body.get(4..4 + key_len) else {
            break;
        };
        records.push(Record {
            key: String::from_utf8_lossy(key).into_owned(),
            value: body[4 + key_len..].to_vec(),
        });
        at += 8 + len as usize;
    }
    Ok((records, at as u64))
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
