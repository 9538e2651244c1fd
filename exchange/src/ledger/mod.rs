//! The ledger: consumes `auction-results` and applies each winner's clearing
//! price as a debit, exactly once.
//!
//! Exactly once, without Kafka transactions: the consumer never commits
//! offsets to Kafka. Each batch (up to `batch_max` messages or `batch_ms`)
//! is applied in one database transaction that also stores the next offset
//! of every partition it covers ([`store`]). On start and on every partition
//! assignment the consumer is positioned at the stored offsets
//! ([`consumer`]). A crash anywhere rolls the batch back with its offsets, so
//! it is consumed again; duplicates (a replayed spool, a re-produced event)
//! hit the (auction id, imp id) primary key and change nothing.
//!
//! Events that cannot be decoded or break the schema's rules go to the
//! dead-letter topic, with the error in the `x-ledger-error` header, before
//! the batch that skips them commits; the stream goes on.

pub mod cli;
mod consumer;
pub mod metrics;
pub mod store;
pub(crate) use store::on_pool;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rtb_proto::events::AuctionResult;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::events::{KafkaConfig, LedgerConfig};
use consumer::LedgerContext;
pub use store::{Applied, Debit, Entry, Store};

/// Header of a dead letter that says why the ledger refused it.
pub const DLQ_ERROR_HEADER: &str = "x-ledger-error";
/// How long to wait before retrying a batch the database or the DLQ refused.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Why the ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A database error.
    #[error("ledger database: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema migrations failed.
    #[error("ledger migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A Kafka client error.
    #[error("ledger kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A dead letter could not be written, so its batch is not committed.
    #[error("ledger cannot write to the dead-letter topic: {0}")]
    Dlq(String),
    /// The configuration cannot work (names the key).
    #[error("config: {0}")]
    Config(String),
}

/// The ledger's counters.
#[derive(Debug, Default)]
pub struct LedgerStats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Messages committed (applied, skipped or dead-lettered).
    pub messages: AtomicU64,
    /// Debits applied.
    pub debits: AtomicU64,
    /// Duplicate debits ignored.
    pub duplicates: AtomicU64,
    /// Messages skipped as already applied (below the stored offset).
    pub skipped: AtomicU64,
    /// Messages sent to the dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Auction time (`ts_ms`) to the commit of the batch, per debit of each
    /// message consumed for the first time (re-reads below the stored
    /// offset are left out; a re-produced duplicate event counts).
    pub commit_lag: metrics::CommitLag,
}

/// A connected ledger, ready to [`run`](Ledger::run).
pub struct Ledger {
    consumer: StreamConsumer<LedgerContext>,
    dlq: FutureProducer,
    store: Store,
    topic: String,
    dlq_topic: String,
    batch_max: usize,
    batch_wait: Duration,
    offsets: Arc<Mutex<HashMap<i32, i64>>>,
    stats: Arc<LedgerStats>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("topic", &self.topic)
            .finish()
    }
}

impl Ledger {
    /// Opens the database (migrating it), loads the stored offsets and joins
    /// the consumer group on `bootstrap`.
    pub async fn connect(
        bootstrap: &str,
        kafka: &KafkaConfig,
        cfg: &LedgerConfig,
    ) -> Result<Ledger, LedgerError> {
        let store = Store::open(cfg).await?;
        let offsets = Arc::new(Mutex::new(store.offsets(&kafka.topic).await?));
        let consumer = consumer::subscribe(bootstrap, kafka, cfg, offsets.clone())?;
        let dlq = crate::events::kafka_producer(bootstrap, kafka.delivery_timeout_ms)?;
        Ok(Ledger {
            consumer,
            dlq,
            store,
            topic: kafka.topic.clone(),
            dlq_topic: kafka.dlq_topic.clone(),
            batch_max: cfg.batch_max,
            batch_wait: Duration::from_millis(cfg.batch_ms),
            offsets,
            stats: Arc::new(LedgerStats::default()),
        })
    }

    /// The ledger's counters.
    pub fn stats(&self) -> &Arc<LedgerStats> {
        &self.stats
    }

    /// The ledger's database (a clone shares its pool): the metrics
    /// samplers read offsets and spend through it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Consumes and applies batches until `stop` turns true; a batch in
    /// progress is finished first. Dropping the future at any point is safe:
    /// the open transaction rolls back and the batch is consumed again.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), LedgerError> {
        let mut gaps = Gaps::default();
        loop {
            let first = tokio::select! {
                biased;
                _ = stop.changed() => break,
                m = self.consumer.recv() => m,
            };
            let mut batch = Vec::with_capacity(self.batch_max);
            let mut dead = Vec::new();
            // Where each partition must go on: the stored positions.
            gaps.expect = self
                .offsets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Err(e) = self.take(first, &mut batch, &mut dead, &mut gaps) {
                // Broker away, rebalance in progress: librdkafka retries.
                tracing::warn!(error = %e, "ledger: consume error");
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
            let until = Instant::now() + self.batch_wait;
            while batch.len() < self.batch_max {
                let Ok(next) = tokio::time::timeout_at(until, self.consumer.recv()).await else {
                    break;
                };
                if self.take(next, &mut batch, &mut dead, &mut gaps).is_err() {
                    break;
                }
            }
            // Retried until it commits (or the ledger stops): skipping a batch
            // would lose debits.
            loop {
                match self.commit(&batch, &dead).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "ledger: batch not applied; retrying");
                        if *stop.borrow() {
                            self.store.close().await;
                            return Ok(());
                        }
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                }
            }
        }
        self.store.close().await;
        Ok(())
    }

    /// Writes the dead letters, then applies the batch with its offsets.
    async fn commit(
        &self,
        batch: &[(Entry, Option<String>)],
        dead: &[DeadLetter],
    ) -> Result<(), LedgerError> {
        for d in dead {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: DLQ_ERROR_HEADER,
                    value: Some(&d.error),
                })
                .insert(Header {
                    key: "x-source",
                    value: Some(&format!("{}/{}/{}", self.topic, d.partition, d.offset)),
                });
            let mut record = FutureRecord::to(&self.dlq_topic)
                .payload(&d.payload)
                .headers(headers);
            if let Some(k) = &d.key {
                record = record.key(k);
            }
            self.dlq
                .send(record, Duration::from_secs(5))
                .await
                .map_err(|(e, _)| LedgerError::Dlq(e.to_string()))?;
        }
        let entries: Vec<Entry> = batch.iter().map(|(e, _)| e.clone()).collect();
        // Positions before this batch: messages below them are re-reads,
        // whose lag is not a commit lag.
        let before = self
            .offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let applied = self.store.apply(&self.topic, &entries).await?;
        self.stats.commit_lag.record(
            crate::events::now_ms(),
            entries
                .iter()
                .filter(|e| e.offset >= before.get(&e.partition).copied().unwrap_or(0))
                .flat_map(|e| e.debits.iter().map(|d| d.event_ts)),
        );
        let s = &self.stats;
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.messages
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        s.debits.fetch_add(applied.debits, Ordering::Relaxed);
        s.duplicates
            .fetch_add(applied.duplicates, Ordering::Relaxed);
        s.skipped.fetch_add(applied.skipped, Ordering::Relaxed);
        s.dead_letters
            .fetch_add(dead.len() as u64, Ordering::Relaxed);
        // What the next assignment seeks to: the database's positions.
        let stored = self.store.offsets(&self.topic).await?;
        *self.offsets.lock().unwrap_or_else(|p| p.into_inner()) = stored;
        Ok(())
    }

    /// Adds a consumed message to the batch (and to the dead letters when it
    /// does not decode). Takes the message by value so that no borrowed
    /// message (not `Send`) lives across an await.
    fn take(
        &self,
        m: KafkaResult<BorrowedMessage<'_>>,
        batch: &mut Vec<(Entry, Option<String>)>,
        dead: &mut Vec<DeadLetter>,
        gaps: &mut Gaps,
    ) -> KafkaResult<()> {
        let m = m?;
        if !self.contiguous(&m, gaps) {
            return Ok(());
        }
        let entry = self.entry(&m);
        self.collect_dead(&m, &entry, dead);
        batch.push(entry);
        Ok(())
    }

    /// Whether `m` follows what was consumed before on its partition. The
    /// topic has no transactions and no compaction, so its offsets have no
    /// holes: a message past the expected offset means the broker skipped
    /// some (tansu 0.6 does, for a fetch that starts inside a record batch,
    /// as a restarted ledger's does). The partition is then read again from
    /// its beginning, once per hole; what was applied is skipped by offset
    /// and by debit key. A hole still there after that (retention deleted
    /// the messages) is accepted with an error in the log.
    fn contiguous(&self, m: &BorrowedMessage<'_>, gaps: &mut Gaps) -> bool {
        let (p, o) = (m.partition(), m.offset());
        let Some(&expected) = gaps.expect.get(&p) else {
            gaps.expect.insert(p, o + 1);
            return true;
        };
        if o > expected {
            if gaps.rewound.insert((p, expected)) {
                tracing::warn!(
                    partition = p,
                    expected,
                    got = o,
                    "ledger: offsets skipped by the broker; reading the partition again"
                );
                let seek = self.consumer.seek(
                    &self.topic,
                    p,
                    rdkafka::Offset::Beginning,
                    Duration::from_secs(5),
                );
                match seek {
                    Ok(()) => return false,
                    Err(e) => {
                        tracing::error!(partition = p, error = %e, "ledger: cannot re-read the partition")
                    }
                }
            } else {
                tracing::error!(partition = p, expected, got = o, "ledger: offsets missing from the partition after a re-read (deleted by retention?)");
            }
        }
        let e = gaps.expect.entry(p).or_insert(0);
        *e = (*e).max(o + 1);
        true
    }

    /// Decodes one message into its debits; an undecodable one has none and
    /// carries its error.
    fn entry(&self, m: &BorrowedMessage<'_>) -> (Entry, Option<String>) {
        let mut entry = Entry {
            partition: m.partition(),
            offset: m.offset(),
            debits: Vec::new(),
        };
        let event = match m.payload() {
            None => Err("empty message".to_owned()),
            Some(p) => AuctionResult::from_json(p).map_err(|e| e.to_string()),
        };
        match event {
            Ok(e) => {
                entry.debits = debits(&e);
                (entry, None)
            }
            Err(error) => (entry, Some(error)),
        }
    }

    /// Queues a dead letter for a message that failed to decode, unless a
    /// previous run already got past it.
    fn collect_dead(
        &self,
        m: &BorrowedMessage<'_>,
        entry: &(Entry, Option<String>),
        dead: &mut Vec<DeadLetter>,
    ) {
        let Some(error) = &entry.1 else { return };
        let stored = self
            .offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&m.partition())
            .copied()
            .unwrap_or(0);
        if m.offset() < stored {
            return;
        }
        tracing::warn!(partition = m.partition(), offset = m.offset(), %error, "ledger: dead letter");
        dead.push(DeadLetter {
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            error: error.clone(),
            partition: m.partition(),
            offset: m.offset(),
        });
    }
}

/// Offset holes seen by [`Ledger::run`].
#[derive(Debug, Default)]
struct Gaps {
    /// Next offset expected per partition (stored positions at the start of
    /// a batch, then what the batch consumed).
    expect: HashMap<i32, i64>,
    /// (partition, expected offset) holes already re-read once.
    rewound: std::collections::HashSet<(i32, i64)>,
}

/// A message for the dead-letter topic.
#[derive(Debug)]
struct DeadLetter {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    error: String,
    partition: i32,
    offset: i64,
}

/// The debits of an event: one per imp with a winner.
pub fn debits(e: &AuctionResult) -> Vec<Debit> {
    e.imps
        .iter()
        .filter_map(|imp| {
            let w = imp.winner.as_ref()?;
            Some(Debit {
                auction_id: e.auction_id.clone(),
                imp_id: imp.imp_id.clone(),
                account: w.account.clone(),
                seat: w.seat.clone(),
                cid: w.cid.clone(),
                amount_micros: w.clearing_micros.0,
                currency: e.currency.clone(),
                event_ts: e.ts_ms,
                request_id: e.request_id.clone(),
                exchange_instance: e.exchange_instance.clone(),
            })
        })
        .collect()
}
