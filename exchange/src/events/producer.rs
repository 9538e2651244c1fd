//! The producer task and the spool task (see the module docs of `events`).
//!
//! Both are background tasks: they await Kafka deliveries and disk syncs so
//! that the auctions never do. File I/O runs on the blocking pool.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use rtb_ledger::config::kafka_producer;

use super::journal::{self, Journal, Ticket};
use super::spool::{FrameReader, Record, Spool};
use super::{EventCounters, EventSink, EventsError, KafkaConfig};

/// Events taken from the queue at once: one batch of deliveries to await.
const BATCH: usize = 512;
/// Capacity of the spool task's queue: room for a burst while the file syncs.
const SPOOL_QUEUE: usize = 65_536;
/// Spooled events sent per replay round before the file is rewritten.
const REPLAY_CHUNK: usize = 4_096;

/// What the spool task is handed.
#[derive(Debug)]
pub(super) enum SpoolItem {
    /// Events Kafka did not take, or that found the queue full.
    Records(Vec<Journaled>),
    /// Events Kafka can never take (over `kafka.max_message_bytes`, or
    /// refused as invalid): they go to the dead-letter file instead, so
    /// they neither hold up the events behind them nor get lost.
    Dead(Vec<Journaled>),
}

impl SpoolItem {
    /// The events could not be handed on: they are lost in memory, their
    /// journal segments kept for the next start.
    pub(super) fn lost(self) {
        let (SpoolItem::Records(items) | SpoolItem::Dead(items)) = self;
        items.into_iter().for_each(|j| j.ticket.pin());
    }
}

/// An encoded event and its hold on the journal, which it keeps until the
/// event is safe elsewhere (see [`journal`]).
#[derive(Debug)]
pub(crate) struct Journaled {
    /// Key and JSON value.
    pub(crate) record: Record,
    /// Returned (dropped) once Kafka, the spool or the dead-letter file has it.
    pub(crate) ticket: Ticket,
}

impl Journaled {
    fn spooled(record: Record) -> Journaled {
        Journaled {
            record,
            ticket: Ticket::none(),
        }
    }
}

/// Hands `item` to the spool task; if that task is gone, the events are lost.
async fn to_spool(spool_tx: &mpsc::Sender<SpoolItem>, item: SpoolItem) {
    if let Err(mpsc::error::SendError(item)) = spool_tx.send(item).await {
        tracing::error!("spool task gone: events kept in the journal for the next start");
        item.lost();
    }
}

/// Splits `items` into records to write and tickets to return once written.
fn unzip(items: Vec<Journaled>) -> (Vec<Record>, Vec<Ticket>) {
    items.into_iter().map(|j| (j.record, j.ticket)).unzip()
}

/// What one [`send_all`] did with its records.
#[derive(Debug, Default)]
pub(super) struct Sent {
    /// Acknowledged by Kafka.
    pub(super) delivered: usize,
    /// Not taken now (Kafka away, queue full): to be tried again, in order.
    pub(super) failed: Vec<Journaled>,
    /// Never deliverable: for the dead-letter file.
    pub(super) dead: Vec<Journaled>,
    /// Why the first of `failed` was not taken (for the log).
    pub(super) error: Option<String>,
    /// A broker refused this producer's id or epoch (fenced, after an
    /// outage): nothing it sends will be taken again, a new one is needed.
    pub(super) fenced: bool,
}

/// Whether an error refuses the producer itself (its id or epoch), not the
/// record: tansu answers `ProducerFenced` to every record of an idempotent
/// producer that outlived an outage, and librdkafka does not report that
/// as fatal, so the producer would stay useless forever.
fn refuses_producer(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::ProducerFenced
                | C::InvalidProducerEpoch
                | C::UnknownProducerId
                | C::InvalidProducerIdMapping
                | C::OutOfOrderSequenceNumber
        )
    )
}

/// Whether Kafka refused a record for what it is, not for where Kafka is:
/// sending it again can never succeed.
fn permanent(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    // librdkafka refuses an oversized record locally with the same code the
    // broker uses.
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::MessageBatchTooLarge
                | C::InvalidRecord
                | C::InvalidMessage
                | C::InvalidMessageSize
        )
    )
}

/// The started tasks and their handles.
pub(super) struct Started {
    pub(super) sink: EventSink,
    pub(super) producer_stop: watch::Sender<bool>,
    pub(super) producer_task: JoinHandle<()>,
    pub(super) spool_stop: watch::Sender<bool>,
    pub(super) spool_task: JoinHandle<()>,
    pub(super) journal: Option<Arc<Journal>>,
    pub(super) journal_stop: watch::Sender<bool>,
    pub(super) journal_task: Option<JoinHandle<()>>,
}

/// The producer the two tasks share, replaced when librdkafka reports a
/// fatal error: an idempotent producer that was fenced (a broker answers
/// `ProducerFenced` after an outage, for instance) refuses every later
/// record for good, so the spool would never drain while the process runs.
pub(super) struct SharedProducer {
    current: arc_swap::ArcSwap<FutureProducer>,
    bootstrap: String,
    cfg: KafkaConfig,
}

impl SharedProducer {
    fn new(bootstrap: &str, cfg: &KafkaConfig) -> Result<Arc<Self>, rdkafka::error::KafkaError> {
        Ok(Arc::new(Self {
            current: arc_swap::ArcSwap::from_pointee(kafka_producer(bootstrap, cfg)?),
            bootstrap: bootstrap.to_owned(),
            cfg: cfg.clone(),
        }))
    }

    /// The producer to send with now.
    fn get(&self) -> Arc<FutureProducer> {
        self.current.load_full()
    }

    /// After failures: if the producer is in a fatal state, or a broker
    /// refused its id (`fenced`), a new one takes its place (the records it
    /// refused are retried as usual).
    fn renew_if_fatal(&self, fenced: bool) {
        use rdkafka::producer::Producer;
        let p = self.get();
        let (code, reason) = match p.client().fatal_error() {
            Some((code, reason)) => (Some(code), reason),
            None if fenced => (
                None,
                "a broker refused the producer's id (fenced)".to_owned(),
            ),
            None => return,
        };
        match kafka_producer(&self.bootstrap, &self.cfg) {
            Ok(fresh) => {
                tracing::warn!(?code, %reason, "kafka producer in a fatal state: replaced by a new one");
                self.current.store(Arc::new(fresh));
            }
            Err(e) => {
                tracing::error!(error = %e, "kafka producer in a fatal state and a new one cannot be made")
            }
        }
    }
}

/// Opens the spool and the journal (moving what an earlier run left in the
/// journal into the spool) and starts the tasks.
pub(super) fn start(
    bootstrap: &str,
    cfg: &KafkaConfig,
    counters: Arc<EventCounters>,
    gate: Option<journal::Gate>,
) -> Result<Started, EventsError> {
    let spool_error = |source| EventsError::Spool {
        path: cfg.spool_path.display().to_string(),
        source,
    };
    let mut spool = Spool::open(&cfg.spool_path).map_err(spool_error)?;
    let journal = match cfg.journal {
        true => {
            let dir = cfg.journal_dir();
            let (j, _) = Journal::open(&dir, cfg.journal_segment_bytes, gate, &mut spool).map_err(
                |source| EventsError::Spool {
                    path: dir.display().to_string(),
                    source,
                },
            )?;
            Some(Arc::new(j))
        }
        false => None,
    };
    let producer = SharedProducer::new(bootstrap, cfg)?;
    counters
        .spool_pending
        .store(spool.pending(), Ordering::Relaxed);
    if spool.pending() > 0 {
        tracing::info!(
            pending = spool.pending(),
            "spool not empty: replaying it first"
        );
    }
    let (queue_tx, queue_rx) = mpsc::channel(cfg.queue_capacity);
    let (spool_tx, spool_rx) = mpsc::channel(SPOOL_QUEUE);
    let (producer_stop, producer_stop_rx) = watch::channel(false);
    let (spool_stop, spool_stop_rx) = watch::channel(false);
    let producer_task = tokio::spawn(produce_loop(
        queue_rx,
        producer.clone(),
        cfg.topic.clone(),
        spool_tx.clone(),
        counters.clone(),
        cfg.max_message_bytes,
        producer_stop_rx,
    ));
    let spool_task = tokio::spawn(spool_loop(SpoolTask {
        spool: Some(spool),
        path: cfg.spool_path.clone(),
        dead: None,
        dead_path: cfg.dead_letter_path.clone(),
        max_bytes: cfg.max_message_bytes,
        rx: spool_rx,
        producer,
        topic: cfg.topic.clone(),
        counters: counters.clone(),
        interval: Duration::from_millis(cfg.replay_interval_ms),
        stop: spool_stop_rx,
        journal: journal.clone(),
    }));
    let (journal_stop, journal_stop_rx) = watch::channel(false);
    let journal_task = journal.clone().map(|j| {
        tokio::spawn(journal::sync_loop(
            j,
            Duration::from_millis(cfg.journal_sync_ms),
            journal_stop_rx,
        ))
    });
    Ok(Started {
        sink: EventSink {
            queue_tx,
            spool_tx,
            counters,
            journal: journal.clone(),
        },
        producer_stop,
        producer_task,
        spool_stop,
        spool_task,
        journal,
        journal_stop,
        journal_task,
    })
}

/// Sends queued events to Kafka until stopped, then sends what is left.
async fn produce_loop(
    mut rx: mpsc::Receiver<Journaled>,
    producer: Arc<SharedProducer>,
    topic: String,
    spool_tx: mpsc::Sender<SpoolItem>,
    counters: Arc<EventCounters>,
    max_bytes: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut closing = false;
    loop {
        let n = if closing {
            rx.recv_many(&mut batch, BATCH).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => n,
                _ = stop.changed() => {
                    // No new events; the ones queued are still sent below.
                    rx.close();
                    closing = true;
                    continue;
                }
            }
        };
        if n == 0 {
            break;
        }
        let records = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        // A backlog in the spool goes first: newer events queue behind it.
        if counters.spool_pending.load(Ordering::Relaxed) > 0 {
            to_spool(&spool_tx, SpoolItem::Records(records)).await;
            continue;
        }
        let Sent {
            delivered,
            failed,
            dead,
            error,
            fenced,
        } = send_all(&producer.get(), &topic, max_bytes, records).await;
        if !failed.is_empty() {
            producer.renew_if_fatal(fenced);
        }
        EventCounters::add(&counters.produced, delivered);
        // Kafka takes events and the spool holds none: a spool that failed
        // earlier keeps nothing that is needed now.
        if delivered > 0
            && failed.is_empty()
            && counters.spool_pending.load(Ordering::Relaxed) == 0
            && counters.spool_broken.swap(false, Ordering::Relaxed)
        {
            tracing::info!("kafka takes events again and the spool is empty: recording again");
        }
        if !dead.is_empty() {
            to_spool(&spool_tx, SpoolItem::Dead(dead)).await;
        }
        if !failed.is_empty() {
            tracing::warn!(
                failed = failed.len(),
                error = error.as_deref().unwrap_or(""),
                "kafka did not take events: spooling them"
            );
            // Mark the backlog now, before the spool task runs, so the next
            // batch does not overtake these.
            counters
                .spool_pending
                .fetch_add(failed.len(), Ordering::Relaxed);
            to_spool(&spool_tx, SpoolItem::Records(failed)).await;
        }
    }
    // Every delivery above was awaited, so librdkafka holds nothing: there
    // is nothing left to flush.
}

/// Sends `records` and awaits every delivery; says which Kafka acknowledged,
/// which it did not take now (in their original order), and which it can
/// never take: over `max_bytes`, or refused for what they are.
pub(super) async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    max_bytes: usize,
    records: Vec<Journaled>,
) -> Sent {
    let mut sent = Sent::default();
    let mut in_flight = Vec::with_capacity(records.len());
    for j in records {
        let r = &j.record;
        if r.value.len() > max_bytes {
            sent.dead.push(j);
            continue;
        }
        // `Err` means the local queue refused it: full (tried again later),
        // or the record itself is refused (dead).
        let delivery =
            match producer.send_result(FutureRecord::to(topic).key(&r.key).payload(&r.value)) {
                Ok(d) => Some(d),
                Err((e, _)) if permanent(&e) => {
                    sent.dead.push(j);
                    continue;
                }
                Err(_) => None,
            };
        in_flight.push((delivery, j));
    }
    for (delivery, j) in in_flight {
        match delivery {
            Some(d) => match d.await {
                // Safe in Kafka: the journal ticket is returned here.
                Ok(Ok(_)) => sent.delivered += 1,
                Ok(Err((e, _))) if permanent(&e) => sent.dead.push(j),
                Ok(Err((e, _))) => {
                    sent.fenced |= refuses_producer(&e);
                    sent.error.get_or_insert_with(|| e.to_string());
                    sent.failed.push(j)
                }
                Err(_) => {
                    sent.error
                        .get_or_insert_with(|| "delivery future canceled".into());
                    sent.failed.push(j)
                }
            },
            None => {
                sent.error
                    .get_or_insert_with(|| "local queue refused the record".into());
                sent.failed.push(j)
            }
        }
    }
    sent
}

struct SpoolTask {
    /// `None` only while a blocking call holds it.
    spool: Option<Spool>,
    path: PathBuf,
    /// The dead-letter file, opened at the first dead letter (a default run
    /// that never has one writes no file).
    dead: Option<Spool>,
    dead_path: PathBuf,
    /// `kafka.max_message_bytes`.
    max_bytes: usize,
    rx: mpsc::Receiver<SpoolItem>,
    producer: Arc<SharedProducer>,
    topic: String,
    counters: Arc<EventCounters>,
    interval: Duration,
    stop: watch::Receiver<bool>,
    /// Its kept segments are sent again once the spool is empty.
    journal: Option<Arc<Journal>>,
}

/// Appends what it is handed (one fsync per batch) and replays the spool
/// every `interval` while it holds anything; on stop, appends what is left.
async fn spool_loop(mut t: SpoolTask) {
    let mut items = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(t.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            n = t.rx.recv_many(&mut items, SPOOL_QUEUE) => {
                if n == 0 {
                    return;
                }
                append(&mut t, &mut items).await;
                false
            }
            _ = tick.tick(), if t.pending() > 0 || t.has_kept() => {
                replay(&mut t).await;
                false
            }
            // `changed`, not `wait_for`: its output borrows nothing across the arms.
            _ = t.stop.changed() => true,
        };
        if stopping {
            break;
        }
    }
    // What is still queued is written before the task ends: nothing handed
    // to the spool is lost on a graceful stop.
    t.rx.close();
    while t.rx.recv_many(&mut items, SPOOL_QUEUE).await > 0 {
        append(&mut t, &mut items).await;
    }
}

async fn append(t: &mut SpoolTask, items: &mut Vec<SpoolItem>) {
    let mut records = Vec::with_capacity(items.len());
    let mut dead = Vec::new();
    for item in items.drain(..) {
        match item {
            SpoolItem::Records(r) => records.extend(r),
            SpoolItem::Dead(r) => dead.extend(r),
        }
    }
    // An event Kafka can never take would stop every event behind it in the
    // spool: it goes to the dead-letter file (checked here too: events that
    // found the queue full come here without passing the producer).
    let (fits, over): (Vec<Journaled>, Vec<Journaled>) = records
        .into_iter()
        .partition(|j| j.record.value.len() <= t.max_bytes);
    dead.extend(over);
    if !dead.is_empty() {
        dead_letter(t, dead).await;
    }
    let (records, tickets) = unzip(fits);
    let n = records.len();
    let result = blocking(&mut t.spool, move |s| s.append(&records)).await;
    match result {
        // Synced into the spool: the journal no longer needs them.
        Ok(()) => {
            EventCounters::add(&t.counters.spooled, n);
            drop(tickets);
            if t.counters.spool_broken.swap(false, Ordering::Relaxed) {
                tracing::info!(path = %t.path.display(), "spool writable again: recording again");
            }
        }
        Err(e) => {
            EventCounters::add(&t.counters.dropped, n);
            EventCounters::add(&t.counters.spool_failures, n);
            if !t.counters.spool_broken.swap(true, Ordering::Relaxed) {
                tracing::error!(path = %t.path.display(), error = %e, "spool unwritable: not ready, no bidder called until events can be kept again");
            }
            tracing::error!(path = %t.path.display(), error = %e, lost = n, "cannot write the spool; the events stay in the journal and are sent from there");
            tickets.into_iter().for_each(Ticket::pin);
        }
    }
    // The producer counted its failures as pending when it handed them over;
    // the file's count is the truth from here on.
    t.counters
        .spool_pending
        .store(t.pending(), Ordering::Relaxed);
}

/// Sends the spool's events, oldest first, and keeps only those Kafka did
/// not take. Streams: one chunk of `REPLAY_CHUNK` events is in memory at a
/// time, and the unsent rest is copied frame by frame into the new file.
async fn replay(t: &mut SpoolTask) {
    let mut from = 0u64;
    let mut replayed = 0;
    // Delivered or dead-lettered: what leaves the spool this round.
    let mut moved = 0;
    // What Kafka refused, and where the part not tried yet starts.
    let mut keep = Vec::new();
    loop {
        let chunk = blocking(&mut t.spool, move |s| s.read_chunk(from, REPLAY_CHUNK)).await;
        let (records, next) = match chunk {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(path = %t.path.display(), error = %e, "cannot read the spool");
                break;
            }
        };
        if records.is_empty() {
            break;
        }
        let Sent {
            delivered,
            failed,
            dead,
            error,
            fenced,
        } = send_all(
            &t.producer.get(),
            &t.topic,
            t.max_bytes,
            records.into_iter().map(Journaled::spooled).collect(),
        )
        .await;
        replayed += delivered;
        if !dead.is_empty() {
            // Out of the spool for good: counted as moved, like a delivery.
            moved += dead.len();
            dead_letter(t, dead).await;
        }
        from = next;
        if !failed.is_empty() {
            tracing::warn!(
                failed = failed.len(),
                delivered,
                error = error.as_deref().unwrap_or(""),
                "spool replay: kafka did not take events; trying again next round"
            );
            // Kafka is still away (or the producer was fenced: replaced
            // here): keep the rest for the next round, in order.
            t.producer.renew_if_fatal(fenced);
            keep = failed.into_iter().map(|j| j.record).collect();
            break;
        }
    }
    EventCounters::add(&t.counters.replayed, replayed);
    // Nothing moved: the file is unchanged, no rewrite.
    if replayed + moved > 0 {
        let result = blocking(&mut t.spool, move |s| s.replace_from(&keep, from)).await;
        if let Err(e) = result {
            // The old file stays: its events will be sent again (the ledger
            // ignores the duplicates).
            tracing::error!(path = %t.path.display(), error = %e, "cannot rewrite the spool");
        }
    }
    if replayed > 0 {
        tracing::info!(replayed, left = t.pending(), "spool replayed");
    }
    t.counters
        .spool_pending
        .store(t.pending(), Ordering::Relaxed);
    // In order: the journal's kept events come after the spool's.
    if t.pending() == 0 {
        resend_kept(t).await;
    }
}

/// Sends the events of the journal's kept segments (an earlier run's that
/// the spool could not take, or this run's holding events lost in memory)
/// straight from the segment files, oldest first, one chunk in memory at a
/// time; a segment whose every event reached Kafka (or the dead-letter
/// file) is handed back to the journal to be deleted. A segment Kafka does
/// not take whole is sent again from its start next round: the ledger
/// ignores the duplicates.
async fn resend_kept(t: &mut SpoolTask) {
    let Some(journal) = t.journal.clone() else {
        return;
    };
    for path in journal.kept() {
        let mut resent = 0;
        let p = path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            std::fs::File::open(&p).map(|f| FrameReader::new(std::io::BufReader::new(f)))
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        let mut reader = match opened {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                journal.resent(&path);
                continue;
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read a kept journal segment; trying again next round");
                return;
            }
        };
        loop {
            let chunk = tokio::task::spawn_blocking(move || {
                let mut records = Vec::new();
                let mut result = Ok(());
                while records.len() < REPLAY_CHUNK {
                    match reader.next_record() {
                        Ok(Some(r)) => records.push(r),
                        Ok(None) => break,
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                (reader, records, result)
            })
            .await;
            let (back, records, result) = match chunk {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "kept journal segment: read task failed");
                    return;
                }
            };
            reader = back;
            if let Err(e) = result {
                tracing::error!(path = %path.display(), error = %e, "cannot read a kept journal segment; trying again next round");
                return;
            }
            if records.is_empty() {
                EventCounters::add(&t.counters.replayed, resent);
                tracing::info!(path = %path.display(), events = resent, "kept journal segment sent again");
                journal.resent(&path);
                break;
            }
            let Sent {
                delivered,
                failed,
                dead,
                error,
                fenced,
            } = send_all(
                &t.producer.get(),
                &t.topic,
                t.max_bytes,
                records.into_iter().map(Journaled::spooled).collect(),
            )
            .await;
            resent += delivered;
            if !dead.is_empty() {
                dead_letter(t, dead).await;
            }
            if !failed.is_empty() {
                tracing::warn!(
                    path = %path.display(),
                    failed = failed.len(),
                    error = error.as_deref().unwrap_or(""),
                    "kept journal segment: kafka did not take events; sent again from its start next round"
                );
                t.producer.renew_if_fatal(fenced);
                EventCounters::add(&t.counters.replayed, resent);
                return;
            }
        }
    }
}

/// Appends `records` to the dead-letter file (opened on first use, its path
/// logged), counts them, and logs each one's key. A file that cannot be
/// written loses them, counted as dropped: there is nowhere else to keep them.
async fn dead_letter(t: &mut SpoolTask, items: Vec<Journaled>) {
    let (records, tickets) = unzip(items);
    let n = records.len();
    for r in &records {
        tracing::error!(
            key = %r.key,
            bytes = r.value.len(),
            max = t.max_bytes,
            path = %t.dead_path.display(),
            "auction event Kafka cannot take: written to the dead-letter file"
        );
    }
    if t.dead.is_none() {
        let path = t.dead_path.clone();
        match tokio::task::spawn_blocking(move || Spool::open(&path)).await {
            Ok(Ok(s)) => {
                tracing::warn!(path = %t.dead_path.display(), "dead-letter file opened");
                t.dead = Some(s);
            }
            Ok(Err(e)) => {
                tracing::error!(path = %t.dead_path.display(), error = %e, "cannot open the dead-letter file")
            }
            Err(e) => tracing::error!(error = %e, "dead-letter open task failed"),
        }
    }
    let result = match t.dead.is_some() {
        true => blocking(&mut t.dead, move |s| s.append(&records)).await,
        false => Err(std::io::Error::other("no dead-letter file")),
    };
    match result {
        Ok(()) => {
            EventCounters::add(&t.counters.dead_lettered, n);
            drop(tickets);
        }
        Err(e) => {
            EventCounters::add(&t.counters.dropped, n);
            tracing::error!(path = %t.dead_path.display(), error = %e, lost = n, "cannot write the dead-letter file; the events stay in the journal for the next start");
            tickets.into_iter().for_each(Ticket::pin);
        }
    }
}

impl SpoolTask {
    fn pending(&self) -> usize {
        self.spool.as_ref().map_or(0, Spool::pending)
    }

    fn has_kept(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| !j.kept().is_empty())
    }
}

/// Runs `f` on the spool on the blocking pool (file I/O and fsync).
async fn blocking<T: Send + 'static>(
    slot: &mut Option<Spool>,
    f: impl FnOnce(&mut Spool) -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    // Moved out and back in: the blocking pool needs an owned value.
    let Some(mut spool) = slot.take() else {
        return Err(std::io::Error::other(
            "spool lost after a failed blocking call",
        ));
    };
    let (spool, result) = tokio::task::spawn_blocking(move || {
        let r = f(&mut spool);
        (spool, r)
    })
    .await
    .map_err(std::io::Error::other)?;
    *slot = Some(spool);
    result
}
