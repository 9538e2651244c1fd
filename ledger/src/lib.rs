//! `rtb-ledger`: everything that touches the database. The ledger itself
//! (this module), the budget and lease store ([`leases`], the interface the
//! exchange's in-memory budgets call from background tasks), the bidder
//! registry's table ([`registry`]), and the `[kafka]`/`[ledger]` settings
//! the exchange shares ([`config`]). The exchange's crate does not depend
//! on sqlx: the database is reachable only through these calls.
//!
//! The ledger consumes `auction-results` and applies each winner's clearing
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
//! Events that cannot be decoded, break the schema's rules or carry an
//! amount that breaks the ledger's (negative, above [`MAX_DEBIT_MICROS`],
//! a sum that overflows) go to the dead-letter topic, with the error in the
//! `x-ledger-error` header, before the batch that skips them commits; the
//! stream goes on. A batch the database refuses (a value out of range, a
//! constraint) is split in halves until the event at fault is alone; that
//! one is dead-lettered and the rest is applied, so one bad event never
//! stalls the ledger. Other errors (database away) retry the batch.

pub mod config;
mod consumer;
pub mod leases;
pub mod metrics;
pub mod pacing;
pub mod registry;
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

use config::{Assignment, KafkaConfig, LedgerConfig};
use consumer::LedgerContext;
pub use store::{Applied, Debit, Entry, Store, MAX_DEBIT_MICROS};

/// Header of a dead letter that says why the ledger refused it.
pub const DLQ_ERROR_HEADER: &str = "x-ledger-error";
/// How often a ledger with `ledger.assignment = "all"` asks the brokers for
/// the topic's partitions: a partition added to the topic is read within
/// this time (partitions are added rarely, by an operator); the first ask is
/// at start.
const PARTITION_CHECK: Duration = Duration::from_secs(10);
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
    /// The batch cannot be applied as it is (a sum would overflow): like a
    /// database refusal, it is split to find the event at fault.
    #[error("ledger refused the batch: {0}")]
    Refused(String),
    /// A database call took longer than its time budget (named).
    #[error("ledger database: {0} timed out")]
    Timeout(&'static str),
}

impl LedgerError {
    /// The database (or the ledger's own checks) refused the data itself:
    /// retrying the same batch cannot succeed, splitting it can. False for
    /// errors that retrying fixes (connection lost, pool timeout, lock).
    pub fn is_refusal(&self) -> bool {
        match self {
            LedgerError::Refused(_) => true,
            LedgerError::Database(sqlx::Error::Database(e)) => {
                if let Some(pg) = e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    // 22: data exception (bigint out of range, bad UTF-8);
                    // 23: integrity constraint; 54: program limit (an index
                    // row too large).
                    let c = pg.code();
                    c.starts_with("22") || c.starts_with("23") || c.starts_with("54")
                } else if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // Primary result codes: 18 TOOBIG, 19 CONSTRAINT (the
                    // integer triggers' RAISE), 20 MISMATCH.
                    e.code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .is_some_and(|c| matches!(c & 0xff, 18..=20))
                } else {
                    false
                }
            }
            _ => false,
        }
    }
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
    consumer: Arc<StreamConsumer<LedgerContext>>,
    /// `ledger.assignment`: `All` assigns the partitions in [`Ledger::run`].
    assignment: Assignment,
    dlq: FutureProducer,
    store: Store,
    topic: String,
    dlq_topic: String,
    batch_max: usize,
    batch_wait: Duration,
    offsets: Arc<Mutex<HashMap<i32, i64>>>,
    /// The log's identity: offsets are stored and read for it.
    epoch: String,
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
    /// the consumer group on `bootstrap`. The log epoch is the brokers'
    /// cluster id (`cluster:<id>`): offsets stored for another cluster (one
    /// that was replaced, its log starting again at 0) are ignored, so its
    /// events are not skipped. Offsets stored before epochs existed (epoch
    /// empty) are taken over once. Brokers that report no cluster id keep
    /// the empty epoch.
    pub async fn connect(
        bootstrap: &str,
        kafka: &KafkaConfig,
        cfg: &LedgerConfig,
    ) -> Result<Ledger, LedgerError> {
        let id = cluster_id(bootstrap).await;
        let epoch = id.map_or_else(String::new, |id| format!("cluster:{id}"));
        let ledger = Self::connect_at(bootstrap, kafka, cfg, &epoch).await?;
        if !epoch.is_empty() && ledger.offsets.lock().map(|o| o.is_empty()).unwrap_or(false) {
            let legacy = ledger.store.offsets_at(&kafka.topic, "").await?;
            if !legacy.is_empty() {
                tracing::info!(%epoch, partitions = legacy.len(), "ledger: offsets stored without a cluster id taken over");
                if let Ok(mut o) = ledger.offsets.lock() {
                    *o = legacy;
                }
            }
        }
        tracing::info!(%epoch, "ledger log epoch");
        Ok(ledger)
    }

    /// [`connect`](Self::connect) to a log identified by `epoch`: offsets
    /// stored for another epoch are ignored (see [`Store::offsets_at`]).
    /// The embedded cluster passes its random start id: it starts empty at
    /// offset 0 after every restart, and the debits' key keeps what a
    /// previous run applied from being applied again.
    pub async fn connect_at(
        bootstrap: &str,
        kafka: &KafkaConfig,
        cfg: &LedgerConfig,
        epoch: &str,
    ) -> Result<Ledger, LedgerError> {
        let store = Store::open(cfg).await?;
        let offsets = Arc::new(Mutex::new(store.offsets_at(&kafka.topic, epoch).await?));
        let consumer = Arc::new(consumer::connect(bootstrap, kafka, cfg, offsets.clone())?);
        let dlq = config::kafka_producer(bootstrap, kafka)?;
        Ok(Ledger {
            consumer,
            assignment: cfg.assignment,
            dlq,
            store,
            topic: kafka.topic.clone(),
            dlq_topic: kafka.dlq_topic.clone(),
            batch_max: cfg.batch_max,
            batch_wait: Duration::from_millis(cfg.batch_ms),
            offsets,
            epoch: epoch.to_owned(),
            stats: Arc::new(LedgerStats::default()),
        })
    }

    /// The log epoch its offsets are stored under.
    pub fn epoch(&self) -> &str {
        &self.epoch
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
        let manual = self.assignment == Assignment::All;
        // `all` mode: partitions are assigned at once, then looked for again
        // on this schedule (partitions added to the topic).
        let mut check = tokio::time::interval(PARTITION_CHECK);
        let mut assigned = std::collections::BTreeSet::new();
        loop {
            let first = tokio::select! {
                biased;
                _ = stop.changed() => break,
                _ = check.tick(), if manual => {
                    consumer::assign_new(&self.consumer, &self.topic, &self.offsets, &mut assigned).await;
                    continue;
                }
                m = self.consumer.recv() => m,
            };
            let mut batch = Vec::with_capacity(self.batch_max);
            // Where each partition must go on: the stored positions.
            gaps.expect = self
                .offsets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Err(e) = self.take(first, &mut batch, &mut gaps) {
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
                if self.take(next, &mut batch, &mut gaps).is_err() {
                    break;
                }
            }
            // Retried until it commits (or the ledger stops): skipping a batch
            // would lose debits.
            loop {
                match self.commit(&mut batch).await {
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

    /// Writes the dead letters not written yet (marking them), in order.
    async fn send_dead(&self, batch: &mut [Taken]) -> Result<u64, LedgerError> {
        let mut sent = 0;
        for t in batch.iter_mut().filter(|t| t.dead && !t.sent) {
            let error = t.error.as_deref().unwrap_or("refused");
            tracing::warn!(partition = t.entry.partition, offset = t.entry.offset, %error, "ledger: dead letter");
            let source = format!("{}/{}/{}", self.topic, t.entry.partition, t.entry.offset);
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: DLQ_ERROR_HEADER,
                    value: Some(error),
                })
                .insert(Header {
                    key: "x-source",
                    value: Some(&source),
                });
            let mut record = FutureRecord::to(&self.dlq_topic)
                .payload(&t.payload)
                .headers(headers);
            if let Some(k) = &t.key {
                record = record.key(k);
            }
            self.dlq
                .send(record, Duration::from_secs(5))
                .await
                .map_err(|(e, _)| LedgerError::Dlq(e.to_string()))?;
            t.sent = true;
            sent += 1;
        }
        Ok(sent)
    }

    /// Writes the dead letters, then applies the batch with its offsets. A
    /// part the database refuses is halved until the event at fault is
    /// alone; that one is dead-lettered and applied without its debits (so
    /// its offset moves on), the rest as usual. Parts go in consumption
    /// order, so every partition's stored offset only grows. An error that
    /// is no refusal returns: the caller retries the whole batch, and the
    /// parts already applied are skipped by offset.
    async fn commit(&self, batch: &mut [Taken]) -> Result<(), LedgerError> {
        let mut dead = self.send_dead(batch).await?;
        // Positions before this batch: messages below them are re-reads,
        // whose lag is not a commit lag.
        let before = self
            .offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut applied = Applied::default();
        // A stack of index ranges, the next part to apply on top.
        let mut parts: Vec<std::ops::Range<usize>> = Vec::new();
        parts.push(0..batch.len());
        while let Some(part) = parts.pop() {
            let entries: Vec<Entry> = batch[part.clone()]
                .iter()
                .map(|t| t.entry.clone())
                .collect();
            match self
                .store
                .apply_at(&self.topic, &self.epoch, &entries)
                .await
            {
                Ok(a) => applied += a,
                Err(e) if e.is_refusal() && part.len() > 1 => {
                    let mid = part.start + part.len() / 2;
                    tracing::warn!(error = %e, messages = part.len(), "ledger: batch refused; splitting it to find the event at fault");
                    parts.push(mid..part.end);
                    parts.push(part.start..mid);
                }
                Err(e) if e.is_refusal() => {
                    let t = &mut batch[part.start];
                    t.error = Some(format!("refused by the ledger database: {e}"));
                    t.dead = true;
                    t.sent = false;
                    t.entry.debits.clear();
                    dead += self.send_dead(&mut batch[part.clone()]).await?;
                    let entry = batch[part.start].entry.clone();
                    applied += self
                        .store
                        .apply_at(&self.topic, &self.epoch, &[entry])
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
        self.stats.commit_lag.record(
            store::now_ms(),
            batch
                .iter()
                .map(|t| &t.entry)
                .filter(|e| e.offset >= before.get(&e.partition).copied().unwrap_or(0))
                .flat_map(|e| e.debits.iter().map(|d| d.event_ts)),
        );
        let s = &self.stats;
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.messages.fetch_add(batch.len() as u64, Ordering::Relaxed);
        s.debits.fetch_add(applied.debits, Ordering::Relaxed);
        s.duplicates
            .fetch_add(applied.duplicates, Ordering::Relaxed);
        s.skipped.fetch_add(applied.skipped, Ordering::Relaxed);
        s.dead_letters.fetch_add(dead, Ordering::Relaxed);
        // What the next assignment seeks to: the database's positions.
        let stored = self.store.offsets_at(&self.topic, &self.epoch).await?;
        *self.offsets.lock().unwrap_or_else(|p| p.into_inner()) = stored;
        Ok(())
    }

    /// Adds a consumed message to the batch (and to the dead letters when it
    /// does not decode). Takes the message by value so that no borrowed
    /// message (not `Send`) lives across an await.
    fn take(
        &self,
        m: KafkaResult<BorrowedMessage<'_>>,
        batch: &mut Vec<Taken>,
        gaps: &mut Gaps,
    ) -> KafkaResult<()> {
        let m = m?;
        if !self.contiguous(&m, gaps) {
            return Ok(());
        }
        let (entry, error) = self.entry(&m);
        // A dead letter is written once: not again when a previous run
        // already got past it.
        let dead = error.is_some() && m.offset() >= self.stored_offset(m.partition());
        batch.push(Taken {
            entry,
            error,
            dead,
            sent: false,
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        });
        Ok(())
    }

    fn stored_offset(&self, partition: i32) -> i64 {
        self.offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&partition)
            .copied()
            .unwrap_or(0)
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
        match event.and_then(|e| check_amounts(&e).map(|()| e)) {
            Ok(e) => {
                entry.debits = debits(&e);
                (entry, None)
            }
            Err(error) => (entry, Some(error)),
        }
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

/// A consumed message in a batch.
#[derive(Debug)]
struct Taken {
    /// Its position and debits (none for a dead letter).
    entry: Entry,
    /// Why it is refused: it goes to the dead-letter topic.
    error: Option<String>,
    /// Write it to the dead-letter topic (refused, and at or past the
    /// stored offset: not already dead-lettered by a previous run).
    dead: bool,
    /// Already written to the dead-letter topic.
    sent: bool,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// The ledger's rules for amounts, beyond the schema's: a clearing price is
/// not negative, at most [`MAX_DEBIT_MICROS`], and an event's debits add up
/// without overflow. The error names the field.
pub fn check_amounts(e: &AuctionResult) -> Result<(), String> {
    let mut sum: i64 = 0;
    for (i, imp) in e.imps.iter().enumerate() {
        let Some(w) = &imp.winner else { continue };
        let a = w.clearing_micros.0;
        let field = format!("imps[{i}].winner.clearing_micros");
        if a < 0 {
            return Err(format!("amount rule: {field}: {a} is negative"));
        }
        if a > MAX_DEBIT_MICROS {
            return Err(format!(
                "amount rule: {field}: {a} is above the maximum debit {MAX_DEBIT_MICROS}"
            ));
        }
        sum = sum
            .checked_add(a)
            .ok_or_else(|| format!("amount rule: {field}: the event's debits overflow"))?;
    }
    Ok(())
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
                leased: w.leased,
            })
        })
        .collect()
}

/// How long the ledger asks the brokers for their cluster id at start:
/// brokers that cannot answer in this time keep the empty epoch.
const CLUSTER_ID_TIMEOUT: Duration = Duration::from_secs(5);

/// The brokers' cluster id, asked with a short-lived client (a blocking
/// librdkafka call, so on the blocking pool); `None` when they report none.
async fn cluster_id(bootstrap: &str) -> Option<String> {
    let bootstrap = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let client: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .ok()?;
        client.client().fetch_cluster_id(CLUSTER_ID_TIMEOUT)
    })
    .await
    .ok()
    .flatten()
    .filter(|id| !id.is_empty())
}
