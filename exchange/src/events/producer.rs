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
    delivery_timeout_ms: u64,
) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", delivery_timeout_ms.to_string())
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
    let producer = kafka_producer(bootstrap, cfg.delivery_timeout_ms)?;
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
        producer_stop_rx,
    ));
    let spool_task = tokio::spawn(spool_loop(SpoolTask {
        spool: Some(spool),
        path: cfg.spool_path.clone(),
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
        let (delivered, failed) = send_all(&producer, &topic, records).await;
        EventCounters::add(&counters.produced, delivered);
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

/// Sends `records` and awaits every delivery; returns how many Kafka
/// acknowledged and the ones it did not, in their original order.
pub(super) async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    records: Vec<Record>,
) -> (usize, Vec<Record>) {
    let mut in_flight = Vec::with_capacity(records.len());
    for r in records {
        // `Err` means the local queue refused it (full): it counts as failed.
        let delivery = producer
            .send_result(FutureRecord::to(topic).key(&r.key).payload(&r.value))
            .ok();
        in_flight.push((delivery, r));
    }
    let mut delivered = 0;
    let mut failed = Vec::new();
    for (delivery, r) in in_flight {
        let ok = match delivery {
            Some(d) => matches!(d.await, Ok(Ok(_))),
            None => false,
        };
        if ok {
            delivered += 1;
        } else {
            failed.push(r);
        }
    }
    (delivered, failed)
}

struct SpoolTask {
    /// `None` only while a blocking call holds it.
    spool: Option<Spool>,
    path: PathBuf,
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
    for item in items.drain(..) {
        match item {
            SpoolItem::Event(e) => records.push(Record {
                key: e.key().to_owned(),
                value: e.to_json(),
            }),
            SpoolItem::Records(r) => records.extend(r),
        }
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
        let (delivered, failed) = send_all(&t.producer, &t.topic, records).await;
        replayed += delivered;
        from = next;
        if !failed.is_empty() {
            // Kafka is still away: keep the rest for the next round, in order.
            keep = failed;
            break;
        }
    }
    EventCounters::add(&t.counters.replayed, replayed);
    // Nothing delivered: the file is unchanged, no rewrite.
    if replayed > 0 {
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
