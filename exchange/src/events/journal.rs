//! The crash journal: every auction-result event is appended to a local
//! file before the publisher's answer leaves, so a process crash (kill -9,
//! OOM, panic) loses no event that was answered.
//!
//! The auction writes the event's frame (the spool's format, see [`spool`])
//! with one `write` call: a copy into the page cache, no fsync, so the hot
//! path never waits on the disk. A background task fsyncs the file every
//! `kafka.journal_sync_ms`: a power loss (not a process crash; the page
//! cache survives those) loses at most that window.
//!
//! The journal is a run of segment files (`seg-<n>.log` in
//! `kafka.journal_dir`). Each event holds a [`Ticket`] on its segment until
//! it is safe elsewhere: acknowledged by Kafka, or fsynced into the spool or
//! the dead-letter file. A segment that was rotated out (the sync task
//! starts a new one past `kafka.journal_segment_bytes`) and whose tickets
//! are all returned is deleted by the sync task (with the embedded mock
//! cluster, only once the embedded ledger has applied its events: see
//! [`Gate`]). An event that is lost in memory (both
//! queues full, the spool unwritable) pins its segment instead, which then
//! is kept for resending: once sealed (a pinned segment is rotated out at
//! the next sync round) and with no event of it in flight, its path joins
//! [`Journal::kept`], and the spool task sends its events to Kafka again,
//! streaming, once the spool is empty, then hands it back
//! ([`Journal::resent`]) to be deleted. On start, every segment left by an
//! earlier run is copied into the spool (fsynced) and deleted, so its
//! events are sent again; a segment the spool cannot take (its disk is
//! full) is kept for resending instead, so a full disk frees itself once
//! Kafka takes the events. Events Kafka already had are duplicates the
//! ledger ignores (its (auction id, imp id) key).
//!
//! A write that fails (disk full) is cut back to the last good frame, the
//! event goes on through memory as before, and the journal is marked
//! broken until a write succeeds again: the exchange turns not-ready and
//! calls no bidder, rather than award wins it could lose.
//!
//! [`spool`]: super::spool

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::spool::{frame_bytes, read_frames, Record, Spool};

/// One segment file and the events still waiting on it.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    /// Events written to it and not yet safe elsewhere.
    outstanding: AtomicUsize,
    /// Rotated out: nothing more is written to it.
    sealed: AtomicBool,
    /// An event of it was lost in memory: kept for the next start.
    pinned: AtomicBool,
}

impl Segment {
    fn new(path: PathBuf) -> Arc<Segment> {
        Arc::new(Segment {
            path,
            outstanding: AtomicUsize::new(0),
            sealed: AtomicBool::new(false),
            pinned: AtomicBool::new(false),
        })
    }

    /// One event is safe elsewhere.
    fn release(&self) {
        self.outstanding.fetch_sub(1, Ordering::SeqCst);
    }

    /// Sealed, every event safe, none lost: the file may go (once the gate,
    /// if any, agrees).
    fn done(&self) -> bool {
        self.sealed.load(Ordering::SeqCst)
            && self.outstanding.load(Ordering::SeqCst) == 0
            && !self.pinned.load(Ordering::SeqCst)
    }

    fn remove(&self) {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot delete a journal segment; its events are sent again at the next start")
            }
        }
    }
}

/// When "acknowledged by Kafka" is not yet safe: with the embedded mock
/// cluster, whose log lives in this process's memory, an event is safe
/// only once the embedded ledger has applied it. A done segment is then
/// deleted only after the ledger has applied as many events as had been
/// delivered when the segment was done (this process is the cluster's only
/// producer, so that covers every event of the segment).
pub struct Gate {
    /// Events Kafka acknowledged so far.
    pub delivered: Box<dyn Fn() -> u64 + Send + Sync>,
    /// Events the ledger applied so far.
    pub applied: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("delivered", &(self.delivered)())
            .field("applied", &(self.applied)())
            .finish()
    }
}

/// An event's hold on its journal segment, returned when dropped: drop it
/// once the event is safe elsewhere (Kafka acknowledged it, or the spool or
/// dead-letter file synced it); [`pin`](Self::pin) it when the event is lost.
#[derive(Debug, Default)]
pub struct Ticket(Option<Arc<Segment>>);

impl Ticket {
    /// No segment: the journal is off, the write failed, or the event came
    /// from the spool.
    pub fn none() -> Ticket {
        Ticket(None)
    }

    /// Whether it holds a segment (false when the journal write failed).
    pub fn is_held(&self) -> bool {
        self.0.is_some()
    }

    /// The event was lost in memory: its segment is not deleted this run.
    pub fn pin(mut self) {
        if let Some(s) = self.0.take() {
            if !s.pinned.swap(true, Ordering::SeqCst) {
                tracing::warn!(path = %s.path.display(), "journal segment kept: it holds an event lost in memory, sent to Kafka again from the journal");
            }
            s.release();
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.release();
        }
    }
}

#[derive(Debug)]
struct Current {
    file: File,
    seq: u64,
    /// Length of the intact prefix (a failed write is cut back to it).
    good_len: u64,
    /// Written since the last fsync.
    unsynced: bool,
    segment: Arc<Segment>,
}

/// The journal: the segment written now, and its settings.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    segment_bytes: u64,
    current: Mutex<Current>,
    /// Rotated-out segments not deleted yet, with the delivered count at
    /// the moment each was found done (for the [`Gate`]).
    sealed: Mutex<Vec<(Arc<Segment>, Option<u64>)>>,
    /// Segments whose events must be sent again (see the module docs).
    kept: Mutex<Vec<PathBuf>>,
    gate: Option<Gate>,
    broken: AtomicBool,
    /// Length of the frame whose write failed last: the probe checks for
    /// room for that much.
    failed_len: AtomicUsize,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("seg-{seq:020}.log"))
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("seg-"))
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

fn create(dir: &Path, seq: u64) -> io::Result<File> {
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, seq))
}

impl Journal {
    /// Opens the journal in `dir` (made if missing, its path logged): first
    /// moves every event an earlier run left into `spool` (one fsynced
    /// append per segment, then the segment is deleted), then starts a new
    /// segment. Returns the journal and how many events were recovered.
    /// Blocking file I/O: call it before serving, or off the runtime.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        gate: Option<Gate>,
        spool: &mut Spool,
    ) -> io::Result<(Journal, usize)> {
        fs::create_dir_all(dir)?;
        let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        tracing::info!(path = %shown.display(), "event journal: directory");
        let mut recovered = 0;
        let mut next = 0;
        // A spool that cannot take them (disk full) leaves the segments
        // where they are, for a later start: starting matters more than
        // moving them now (a failed start on a full disk is a crash loop).
        // The journal then starts broken, so the exchange is not ready and
        // calls no bidder until a journal write succeeds.
        let mut keep = false;
        let mut kept = Vec::new();
        for (seq, path) in segments(dir)? {
            next = seq + 1;
            if keep {
                kept.push(path);
                continue;
            }
            // A torn last frame (the crash came mid-write) was never
            // answered: the intact prefix is what counts.
            let (records, _) = read_frames(&path)?;
            if let Err(e) = spool.append(&records) {
                tracing::error!(
                    path = %path.display(),
                    error = %e,
                    "event journal: the spool cannot take an earlier run's events; its segments are sent to Kafka from where they are, not ready until a journal write succeeds"
                );
                keep = true;
                kept.push(path);
                continue;
            }
            recovered += records.len();
            fs::remove_file(&path)?;
        }
        if recovered > 0 {
            tracing::warn!(
                events = recovered,
                path = %shown.display(),
                "event journal: an earlier run did not finish; its events go to the spool and are sent again"
            );
        }
        let file = create(dir, next)?;
        let current = Current {
            file,
            seq: next,
            good_len: 0,
            unsynced: false,
            segment: Segment::new(segment_path(dir, next)),
        };
        Ok((
            Journal {
                dir: dir.to_owned(),
                segment_bytes,
                current: Mutex::new(current),
                sealed: Mutex::new(Vec::new()),
                kept: Mutex::new(kept),
                gate,
                broken: AtomicBool::new(keep),
                failed_len: AtomicUsize::new(0),
            },
            recovered,
        ))
    }

    fn current(&self) -> MutexGuard<'_, Current> {
        // Each update below leaves `Current` consistent: keep going.
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `record` with one `write` (page cache, no fsync); the ticket
    /// holds its segment until the event is safe elsewhere. A failed write
    /// is cut back, counted, marks the journal broken and returns no ticket.
    pub fn write(&self, record: &Record) -> Ticket {
        let frame = frame_bytes(record);
        let mut cur = self.current();
        match cur.file.write_all(&frame) {
            Ok(()) => {
                cur.good_len += frame.len() as u64;
                cur.unsynced = true;
                cur.segment.outstanding.fetch_add(1, Ordering::SeqCst);
                let ticket = Ticket(Some(cur.segment.clone()));
                drop(cur);
                if self.broken.swap(false, Ordering::Relaxed) {
                    tracing::info!("event journal writable again");
                }
                ticket
            }
            Err(e) => {
                self.failed_len.store(frame.len(), Ordering::Relaxed);
                let good = cur.good_len;
                let cut = cur.file.set_len(good);
                drop(cur);
                if !self.broken.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        dir = %self.dir.display(),
                        error = %e,
                        cut_back = cut.is_ok(),
                        "event journal unwritable: not ready, no bidder called until it is"
                    );
                }
                Ticket::none()
            }
        }
    }

    /// False while the last write failed.
    pub fn writable(&self) -> bool {
        !self.broken.load(Ordering::Relaxed)
    }

    /// While broken, each sync round checks whether the disk has room again:
    /// it appends zeros, as many as the write that failed (at least
    /// `PROBE_BYTES`), and cuts them off at once. Without
    /// it an exchange that calls no bidder (and so may get no traffic once
    /// it reports not ready) would never notice that the disk recovered. A
    /// crash between the two leaves zeros after the last good frame: a torn
    /// tail, which recovery ignores.
    fn probe(&self) {
        const PROBE_BYTES: usize = 4096;
        let len = self.failed_len.load(Ordering::Relaxed).max(PROBE_BYTES);
        let mut cur = self.current();
        let good = cur.good_len;
        let wrote = cur.file.write_all(&vec![0u8; len]);
        let cut = cur.file.set_len(good);
        drop(cur);
        if wrote.is_ok() && cut.is_ok() && self.broken.swap(false, Ordering::Relaxed) {
            tracing::info!(dir = %self.dir.display(), "event journal writable again (probe)");
        }
    }

    /// One round of the sync task: fsyncs what was written since the last
    /// round and, past `segment_bytes`, starts a new segment (the old one
    /// is synced, then sealed). Blocking: run it on the blocking pool.
    pub fn sync(&self) -> io::Result<()> {
        if !self.writable() {
            self.probe();
        }
        let (file, rotate, seq) = {
            let mut cur = self.current();
            // A segment holding an event lost in memory is rotated out at
            // once, so it can be sent again while this process runs.
            let pinned = cur.good_len > 0 && cur.segment.pinned.load(Ordering::SeqCst);
            if !cur.unsynced && !pinned {
                drop(cur);
                self.collect();
                return Ok(());
            }
            cur.unsynced = false;
            (
                cur.file.try_clone()?,
                pinned || cur.good_len >= self.segment_bytes,
                cur.seq,
            )
        };
        if rotate {
            let next = seq + 1;
            let new = create(&self.dir, next)?;
            let old = {
                let mut cur = self.current();
                let old = std::mem::replace(
                    &mut *cur,
                    Current {
                        file: new,
                        seq: next,
                        good_len: 0,
                        unsynced: false,
                        segment: Segment::new(segment_path(&self.dir, next)),
                    },
                );
                old.segment
            };
            // Whatever went into the old file before the swap is on disk
            // before it may be deleted.
            file.sync_data()?;
            old.sealed.store(true, Ordering::SeqCst);
            self.sealed_list().push((old, None));
        } else {
            file.sync_data()?;
        }
        self.collect();
        Ok(())
    }

    fn sealed_list(&self) -> MutexGuard<'_, Vec<(Arc<Segment>, Option<u64>)>> {
        self.sealed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes the sealed segments that are done (and past the gate); a
    /// pinned one with nothing in flight is kept for resending.
    fn collect(&self) {
        let mut sealed = self.sealed_list();
        sealed.retain_mut(|(segment, delivered_at)| {
            if segment.sealed.load(Ordering::SeqCst)
                && segment.outstanding.load(Ordering::SeqCst) == 0
                && segment.pinned.load(Ordering::SeqCst)
            {
                self.kept_list().push(segment.path.clone());
                return false;
            }
            if !segment.done() {
                return true;
            }
            if let Some(gate) = &self.gate {
                let at = *delivered_at.get_or_insert_with(|| (gate.delivered)());
                if (gate.applied)() < at {
                    return true;
                }
            }
            segment.remove();
            false
        });
    }

    fn kept_list(&self) -> MutexGuard<'_, Vec<PathBuf>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The segments whose events are to be sent again, oldest first.
    pub fn kept(&self) -> Vec<PathBuf> {
        let mut kept = self.kept_list().clone();
        kept.sort();
        kept
    }

    /// Every event of the kept segment `path` reached Kafka (or the
    /// dead-letter file): it is deleted like a done segment, at the next
    /// sync round (past the gate, if any).
    pub fn resent(&self, path: &Path) {
        self.kept_list().retain(|p| p != path);
        let segment = Segment::new(path.to_owned());
        segment.sealed.store(true, Ordering::SeqCst);
        self.sealed_list().push((segment, None));
    }

    /// On a graceful stop, once every event is delivered or spooled: syncs,
    /// and deletes the last segment if nothing waits on it.
    pub fn close(&self) {
        let segment = {
            let cur = self.current();
            if let Err(e) = cur.file.sync_data() {
                tracing::warn!(error = %e, "event journal: final sync failed");
            }
            cur.segment.clone()
        };
        segment.sealed.store(true, Ordering::SeqCst);
        self.sealed_list().push((segment, None));
        // One pass records the gate's delivered count and compares it (the
        // caller let the ledger catch up before).
        self.collect();
        let kept = self.sealed_list().len() + self.kept_list().len();
        if kept > 0 {
            tracing::warn!(segments = kept, dir = %self.dir.display(), "event journal: segments kept; their events are sent again at the next start");
        }
    }
}

/// Runs [`Journal::sync`] every `every` until `stop`, on the blocking pool.
pub async fn sync_loop(
    journal: Arc<Journal>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let j = journal.clone();
        match tokio::task::spawn_blocking(move || j.sync()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "event journal: sync failed"),
            Err(e) => tracing::error!(error = %e, "event journal: sync task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: usize) -> Record {
        Record {
            key: format!("k{n}"),
            value: format!("{{\"n\":{n}}}").into_bytes(),
        }
    }

    #[test]
    fn segments_go_once_every_event_is_safe_and_a_restart_recovers_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("journal");
        let mut spool = Spool::open(&dir.path().join("s.spool")).unwrap();
        let (j, n) = Journal::open(&jdir, 64, None, &mut spool).unwrap();
        assert_eq!(n, 0);
        // 64 bytes a segment: a few frames each.
        let tickets: Vec<Ticket> = (0..10).map(|i| j.write(&rec(i))).collect();
        j.sync().unwrap();
        let t2: Vec<Ticket> = (10..20).map(|i| j.write(&rec(i))).collect();
        j.sync().unwrap();
        assert_eq!(segments(&jdir).unwrap().len(), 3, "two rotated, one live");
        drop(tickets);
        j.sync().unwrap();
        assert_eq!(segments(&jdir).unwrap().len(), 2, "the first is safe: gone");
        // The second segment's events are "lost": the process dies here.
        std::mem::forget(t2);
        drop(j);
        let (j, n) = Journal::open(&jdir, 64, None, &mut spool).unwrap();
        assert_eq!(n, 10, "the events of the unfinished segment");
        let values: Vec<Record> = spool.read_all().unwrap();
        assert_eq!(values, (10..20).map(rec).collect::<Vec<_>>());
        assert_eq!(segments(&jdir).unwrap().len(), 1, "only the new one");
        j.write(&rec(99)).pin();
        j.close();
        assert_eq!(segments(&jdir).unwrap().len(), 1, "pinned: kept");
    }

    /// An event lost in memory pins its segment: the next sync round
    /// rotates it out, and once nothing of it is in flight it is kept for
    /// resending (not deleted); handed back as resent, it goes.
    #[test]
    fn a_pinned_segment_is_kept_for_resending_and_goes_once_resent() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("journal");
        let mut spool = Spool::open(&dir.path().join("s.spool")).unwrap();
        let (j, _) = Journal::open(&jdir, 1 << 20, None, &mut spool).unwrap();
        let in_flight = j.write(&rec(1));
        j.write(&rec(2)).pin();
        j.sync().unwrap();
        assert_eq!(segments(&jdir).unwrap().len(), 2, "rotated out at once");
        assert!(j.kept().is_empty(), "an event of it is still in flight");
        drop(in_flight);
        j.sync().unwrap();
        let kept = j.kept();
        assert_eq!(kept.len(), 1);
        let (records, _) = read_frames(&kept[0]).unwrap();
        assert_eq!(records, vec![rec(1), rec(2)]);
        j.resent(&kept[0]);
        assert!(j.kept().is_empty());
        j.sync().unwrap();
        assert_eq!(segments(&jdir).unwrap().len(), 1, "resent: gone");
        assert!(!kept[0].exists());
    }

    /// A spool that cannot take an earlier run's segments (its disk full:
    /// here /dev/full) does not fail the start: they are kept for resending
    /// from where they are, and the journal starts not writable.
    #[cfg(target_os = "linux")]
    #[test]
    fn segments_the_spool_cannot_take_are_kept_for_resending() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("journal");
        let mut spool = Spool::open(&dir.path().join("s.spool")).unwrap();
        let (j, _) = Journal::open(&jdir, 1 << 20, None, &mut spool).unwrap();
        std::mem::forget(j.write(&rec(1)));
        drop(j);
        let mut full = Spool::open(Path::new("/dev/full")).unwrap();
        let (j, n) = Journal::open(&jdir, 1 << 20, None, &mut full).unwrap();
        assert_eq!(n, 0);
        assert!(!j.writable(), "not ready until a journal write succeeds");
        let kept = j.kept();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(read_frames(&kept[0]).unwrap().0, vec![rec(1)]);
        // The disk has room (it is not the full one): the probe clears it.
        j.sync().unwrap();
        assert!(j.writable());
    }

    #[test]
    fn a_torn_last_frame_is_not_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("journal");
        let mut spool = Spool::open(&dir.path().join("s.spool")).unwrap();
        let (j, _) = Journal::open(&jdir, 1 << 20, None, &mut spool).unwrap();
        std::mem::forget(j.write(&rec(1)));
        std::mem::forget(j.write(&rec(2)));
        drop(j);
        let (_, path) = segments(&jdir).unwrap().pop().unwrap();
        let len = fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let (_, n) = Journal::open(&jdir, 1 << 20, None, &mut spool).unwrap();
        assert_eq!(n, 1);
        assert_eq!(spool.read_all().unwrap(), vec![rec(1)]);
    }
}

#[cfg(test)]
mod gate_tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn with_a_gate_a_segment_waits_for_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("journal");
        let mut spool = Spool::open(&dir.path().join("s.spool")).unwrap();
        let delivered = Arc::new(AtomicU64::new(0));
        let applied = Arc::new(AtomicU64::new(0));
        let (d, a) = (delivered.clone(), applied.clone());
        let gate = Gate {
            delivered: Box::new(move || d.load(Ordering::SeqCst)),
            applied: Box::new(move || a.load(Ordering::SeqCst)),
        };
        let (j, _) = Journal::open(&jdir, 1, Some(gate), &mut spool).unwrap();
        let r = Record {
            key: "k".into(),
            value: b"{}".to_vec(),
        };
        let t = j.write(&r);
        j.sync().unwrap();
        // Kafka acknowledged it: the ticket is returned.
        delivered.store(1, Ordering::SeqCst);
        drop(t);
        j.sync().unwrap();
        assert_eq!(segments(&jdir).unwrap().len(), 2, "kept until applied");
        applied.store(1, Ordering::SeqCst);
        j.sync().unwrap();
        assert_eq!(segments(&jdir).unwrap().len(), 1, "applied: gone");
    }
}
