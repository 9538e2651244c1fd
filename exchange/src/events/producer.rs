//! The producer task and the spool task (see the module docs of `events`).
//!
//! Both are background tasks: they await Kafka deliveries and disk syncs so
//! that the auctions never do. File I/O runs on the blocking pool.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rtb_proto::events::AuctionResult;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::spool::{Record, Spool};
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
    /// An event that found the queue full (still to be encoded).
    Event(Box<AuctionResult>),
    /// Events Kafka did not take (already encoded).
    Records(Vec<Record>),
    /// Events Kafka can never take (over `kafka.max_message_bytes`, or
    /// refused as invalid): they go to the dead-letter file instead, so
    /// they neither hold up the events behind them nor get lost.
    Dead(Vec<Record>),
}

/// What one [`send_all`] did with its records.
#[derive(Debug, Default)]
pub(super) struct Sent {
    /// Acknowledged by Kafka.
    pub(super) delivered: usize,
    /// Not taken now (Kafka away, queue full): to be tried again, in order.
    pub(super) failed: Vec<Record>,
    /// Never deliverable: for the dead-letter file.
    pub(super) dead: Vec<Record>,
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
}

/// An idempotent producer: retries inside librdkafka cannot duplicate or
/// reorder events within a partition.
pub(crate) fn kafka_producer(
    bootstrap: &str,
    cfg: &KafkaConfig,
) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    // librdkafka's own bound on a request (default 1,000,000) must leave
    // room for one event of `max_message_bytes` and its framing.
    let request_max = (cfg.max_message_bytes + 64 * 1024).max(1_000_000);
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", cfg.delivery_timeout_ms.to_string())
        .set("message.max.bytes", request_max.to_string())
        // A few ms of batching trades nothing visible (the auction is already
        // answered) for far fewer requests to the brokers.
        .set("linger.ms", "5")
        .create()
}

/// Opens the spool and starts both tasks.
pub(super) fn start(bootstrap: &str, cfg: &KafkaConfig) -> Result<Started, EventsError> {
    let spool = Spool::open(&cfg.spool_path).map_err(|source| EventsError::Spool {
        path: cfg.spool_path.display().to_string(),
        source,
    })?;
    let producer = kafka_producer(bootstrap, cfg)?;
    let counters = Arc::new(EventCounters::default());
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
    }));
    Ok(Started {
        sink: EventSink {
            queue_tx,
            spool_tx,
            counters,
        },
        producer_stop,
        producer_task,
        spool_stop,
        spool_task,
    })
}

/// Sends queued events to Kafka until stopped, then sends what is left.
async fn produce_loop(
    mut rx: mpsc::Receiver<AuctionResult>,
    producer: FutureProducer,
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
        let records: Vec<Record> = batch
            .drain(..)
            .map(|e| Record {
                key: e.key().to_owned(),
                value: e.to_json(),
            })
            .collect();
        // A backlog in the spool goes first: newer events queue behind it.
        if counters.spool_pending.load(Ordering::Relaxed) > 0 {
            let _ = spool_tx.send(SpoolItem::Records(records)).await;
            continue;
        }
        let Sent {
            delivered,
            failed,
            dead,
        } = send_all(&producer, &topic, max_bytes, records).await;
        EventCounters::add(&counters.produced, delivered);
        if !dead.is_empty() {
            let _ = spool_tx.send(SpoolItem::Dead(dead)).await;
        }
        if !failed.is_empty() {
            tracing::warn!(
                failed = failed.len(),
                "kafka did not take events: spooling them"
            );
            // Mark the backlog now, before the spool task runs, so the next
            // batch does not overtake these.
            counters
                .spool_pending
                .fetch_add(failed.len(), Ordering::Relaxed);
            let _ = spool_tx.send(SpoolItem::Records(failed)).await;
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
    records: Vec<Record>,
) -> Sent {
    let mut sent = Sent::default();
    let mut in_flight = Vec::with_capacity(records.len());
    for r in records {
        if r.value.len() > max_bytes {
            sent.dead.push(r);
            continue;
        }
        // `Err` means the local queue refused it: full (tried again later),
        // or the record itself is refused (dead).
        let delivery =
            match producer.send_result(FutureRecord::to(topic).key(&r.key).payload(&r.value)) {
                Ok(d) => Some(d),
                Err((e, _)) if permanent(&e) => {
                    sent.dead.push(r);
                    continue;
                }
                Err(_) => None,
            };
        in_flight.push((delivery, r));
    }
    for (delivery, r) in in_flight {
        match delivery {
            Some(d) => match d.await {
                Ok(Ok(_)) => sent.delivered += 1,
                Ok(Err((e, _))) if permanent(&e) => sent.dead.push(r),
                _ => sent.failed.push(r),
            },
            None => sent.failed.push(r),
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
    producer: FutureProducer,
    topic: String,
    counters: Arc<EventCounters>,
    interval: Duration,
    stop: watch::Receiver<bool>,
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
            _ = tick.tick(), if t.pending() > 0 => {
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
            SpoolItem::Event(e) => records.push(Record {
                key: e.key().to_owned(),
                value: e.to_json(),
            }),
            SpoolItem::Records(r) => records.extend(r),
            SpoolItem::Dead(r) => dead.extend(r),
        }
    }
    // An event Kafka can never take would stop every event behind it in the
    // spool: it goes to the dead-letter file (encoded here, checked here).
    let (fits, over): (Vec<Record>, Vec<Record>) = records
        .into_iter()
        .partition(|r| r.value.len() <= t.max_bytes);
    dead.extend(over);
    let records = fits;
    if !dead.is_empty() {
        dead_letter(t, dead).await;
    }
    let n = records.len();
    let result = blocking(&mut t.spool, move |s| s.append(&records)).await;
    match result {
        Ok(()) => EventCounters::add(&t.counters.spooled, n),
        Err(e) => {
            EventCounters::add(&t.counters.dropped, n);
            tracing::error!(path = %t.path.display(), error = %e, lost = n, "cannot write the spool");
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
        } = send_all(&t.producer, &t.topic, t.max_bytes, records).await;
        replayed += delivered;
        if !dead.is_empty() {
            // Out of the spool for good: counted as moved, like a delivery.
            moved += dead.len();
            dead_letter(t, dead).await;
        }
        from = next;
        if !failed.is_empty() {
            // Kafka is still away: keep the rest for the next round, in order.
            keep = failed;
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
}

/// Appends `records` to the dead-letter file (opened on first use, its path
/// logged), counts them, and logs each one's key. A file that cannot be
/// written loses them, counted as dropped: there is nowhere else to keep them.
async fn dead_letter(t: &mut SpoolTask, records: Vec<Record>) {
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
        Ok(()) => EventCounters::add(&t.counters.dead_lettered, n),
        Err(e) => {
            EventCounters::add(&t.counters.dropped, n);
            tracing::error!(path = %t.dead_path.display(), error = %e, lost = n, "cannot write the dead-letter file");
        }
    }
}

impl SpoolTask {
    fn pending(&self) -> usize {
        self.spool.as_ref().map_or(0, Spool::pending)
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
