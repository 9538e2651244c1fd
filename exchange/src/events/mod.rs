//! Auction-result events: from the auction to Kafka, never on the hot path.
//!
//! ```text
//! auction ──try_send──▶ queue ──▶ producer task ──▶ Kafka `auction-results`
//!    │ (queue full)                  │ (delivery failed, or spool not empty)
//!    └──────try_send──▶ spool task ◀─┘──▶ spool file ──replay──▶ Kafka
//! ```
//!
//! The auction hands its event to a bounded queue with `try_send` and goes on
//! (invariant: the hot path never waits on Kafka). The producer task sends
//! events keyed by budget account through an idempotent `FutureProducer`.
//! Events Kafka did not take, and events that found the queue full, go to the
//! spool task, which appends them to an fsynced file ([`spool`]) and replays
//! them, oldest first, when Kafka takes them again. While the spool holds
//! anything, new events go to it too, so a restart or an outage replays the
//! backlog before newer events. `dropped` counts events that found both
//! queues full (or the spool file unwritable): it is expected to stay 0.
//!
//! With no brokers configured, [`EventSystem`] starts an in-process mock
//! cluster ([`embedded`]) and, with `[ledger] embedded`, the ledger too: the
//! same producer, consumer and ledger code as in production.

mod build;
pub use rtb_ledger::config;
pub mod embedded;
pub mod journal;
mod producer;
pub mod spool;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rtb_proto::events::AuctionResult;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use build::{auction_result, now_ms};
pub use config::{KafkaConfig, LedgerConfig};
pub use embedded::EmbeddedKafka;

use journal::{Journal, Ticket};
use producer::{Journaled, SpoolItem};
use rtb_ledger::{Ledger, LedgerError, LedgerStats};

/// Why the event pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The Kafka client could not be created.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The spool file could not be opened.
    #[error("spool {path}: {source}")]
    Spool {
        /// The spool file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The embedded mock cluster could not start.
    #[error("embedded kafka: {0}")]
    Embedded(String),
    /// The embedded ledger could not start.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Counters of the event pipeline (read by tests and operators).
#[derive(Debug, Default)]
pub struct EventCounters {
    /// Events Kafka acknowledged on first try.
    pub produced: AtomicU64,
    /// Events written to the spool.
    pub spooled: AtomicU64,
    /// Spooled events Kafka later acknowledged.
    pub replayed: AtomicU64,
    /// Events lost because both queues were full or the spool failed; never expected.
    pub dropped: AtomicU64,
    /// Events Kafka can never take (over `kafka.max_message_bytes`, or
    /// refused as invalid), written to the dead-letter file.
    pub dead_lettered: AtomicU64,
    /// Events the crash journal could not write (they went on through
    /// memory, not crash-safe).
    pub journal_failures: AtomicU64,
    /// Events the spool could not write (disk full): lost in memory, kept
    /// only by the journal for the next start.
    pub spool_failures: AtomicU64,
    /// Events in the spool file now. Why shared: the producer sends new
    /// events to the spool while it is not empty, to keep them in order.
    pub spool_pending: AtomicUsize,
    /// The spool's last append failed, and Kafka has not taken an event
    /// since with the spool empty: an event that missed Kafka now would be
    /// lost, so the exchange awards nothing (see [`EventSink::recording`]).
    pub spool_broken: AtomicBool,
}

impl EventCounters {
    /// Appends these counters to a Prometheus text exposition: the
    /// `rtb_events_*_total` counters and the `rtb_spool_events` gauge that
    /// the dashboard and alerts read.
    pub fn encode_prometheus(&self, out: &mut String) {
        use std::fmt::Write as _;
        let counters = [
            (
                "produced",
                "Auction-result events Kafka acknowledged on first try",
                &self.produced,
            ),
            (
                "spooled",
                "Auction-result events written to the spool",
                &self.spooled,
            ),
            (
                "replayed",
                "Spooled auction-result events Kafka later acknowledged",
                &self.replayed,
            ),
            (
                "dropped",
                "Auction-result events lost (both queues full or the spool failed)",
                &self.dropped,
            ),
            (
                "dead_lettered",
                "Auction-result events Kafka can never take, written to the dead-letter file",
                &self.dead_lettered,
            ),
            (
                "journal_failures",
                "Auction-result events the crash journal could not write (not crash-safe)",
                &self.journal_failures,
            ),
            (
                "spool_failures",
                "Auction-result events the spool could not write (disk full)",
                &self.spool_failures,
            ),
        ];
        // Writing into a String cannot fail.
        for (name, help, c) in counters {
            let _ = writeln!(out, "# HELP rtb_events_{name}_total {help}.");
            let _ = writeln!(out, "# TYPE rtb_events_{name}_total counter");
            let _ = writeln!(out, "rtb_events_{name}_total {}", c.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP rtb_spool_events Auction-result events waiting in the spool file."
        );
        let _ = writeln!(out, "# TYPE rtb_spool_events gauge");
        let _ = writeln!(
            out,
            "rtb_spool_events {}",
            self.spool_pending.load(Ordering::Relaxed)
        );
    }

    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The hot path's handle: hands events over without ever waiting.
#[derive(Debug, Clone)]
pub struct EventSink {
    queue_tx: mpsc::Sender<Journaled>,
    spool_tx: mpsc::Sender<SpoolItem>,
    counters: Arc<EventCounters>,
    journal: Option<Arc<Journal>>,
}

impl EventSink {
    /// Encodes the event, appends it to the crash journal (one `write` to
    /// the page cache, no fsync) and queues it for Kafka; a full queue sends
    /// it to the spool instead. Never awaits; the journal write is the one
    /// system call, and it happens before the publisher's answer leaves.
    pub fn emit(&self, event: AuctionResult) {
        let (record, ticket) = self.journaled(&event);
        self.send(record, ticket);
    }

    /// Like [`emit`](Self::emit), for an event whose debits must not be
    /// lost: when it has winners, the journal is on and its write fails
    /// (disk full), the event is not sent and comes back, so the caller can
    /// withdraw the wins (and emit the auction without them) before the
    /// publisher's answer leaves.
    pub fn emit_recorded(&self, event: AuctionResult) -> Result<(), Box<AuctionResult>> {
        let (record, ticket) = self.journaled(&event);
        let money = event.imps.iter().any(|i| i.winner.is_some());
        if money && self.journal.is_some() && !ticket.is_held() {
            return Err(Box::new(event));
        }
        self.send(record, ticket);
        Ok(())
    }

    /// Encodes `event` and writes it to the journal, if there is one.
    fn journaled(&self, event: &AuctionResult) -> (spool::Record, Ticket) {
        let record = spool::Record {
            key: event.key().to_owned(),
            value: event.to_json(),
        };
        let ticket = match &self.journal {
            Some(j) => {
                let t = j.write(&record);
                if !t.is_held() {
                    self.counters
                        .journal_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                t
            }
            None => Ticket::none(),
        };
        (record, ticket)
    }

    /// Hands a journaled event to the producer (or the spool, when its
    /// queue is full); never waits.
    fn send(&self, record: spool::Record, ticket: Ticket) {
        let item = Journaled { record, ticket };
        let item = match self.queue_tx.try_send(item) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e)) => e,
        };
        if let Err(e) = self.spool_tx.try_send(SpoolItem::Records(vec![item])) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!("auction event dropped in memory: event queue and spool queue are full (it stays in the journal for the next start)");
            let (mpsc::error::TrySendError::Full(i) | mpsc::error::TrySendError::Closed(i)) = e;
            i.lost();
        }
    }

    /// False while events cannot be recorded durably: the journal's last
    /// write failed, or the spool's did (with Kafka away, an event would be
    /// lost). The exchange is then not ready and calls no bidder: an
    /// auction answers no-bid rather than award a win whose debit it could
    /// lose. Its event (no winners) is still written, which is how a
    /// recovered disk is noticed.
    pub fn recording(&self) -> bool {
        self.journal.as_ref().is_none_or(|j| j.writable())
            && !self.counters.spool_broken.load(Ordering::Relaxed)
    }

    /// The pipeline's counters.
    pub fn counters(&self) -> &Arc<EventCounters> {
        &self.counters
    }
}

/// The longest a stopping embedded setup waits for its ledger to apply what
/// was produced: the mock cluster's data is lost with the process.
const EMBEDDED_CATCH_UP: Duration = Duration::from_secs(5);

/// Waits (bounded) until the embedded ledger has committed every event this
/// process delivered to the mock cluster (it is the cluster's only producer).
async fn catch_up(counters: &EventCounters, ledger: &LedgerStats) {
    let delivered = EventCounters::get(&counters.produced) + EventCounters::get(&counters.replayed);
    let deadline = tokio::time::Instant::now() + EMBEDDED_CATCH_UP;
    while ledger.messages.load(Ordering::Relaxed) < delivered {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                delivered,
                applied = ledger.messages.load(Ordering::Relaxed),
                "embedded ledger did not catch up before stopping; the rest is lost with the mock cluster"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The running event pipeline: producer and spool tasks, and in embedded
/// mode the mock cluster and the ledger.
#[derive(Debug)]
pub struct EventSystem {
    sink: EventSink,
    bootstrap: String,
    producer_stop: watch::Sender<bool>,
    producer_task: JoinHandle<()>,
    spool_stop: watch::Sender<bool>,
    spool_task: JoinHandle<()>,
    journal: Option<Arc<Journal>>,
    journal_stop: watch::Sender<bool>,
    journal_task: Option<JoinHandle<()>>,
    ledger: Option<(watch::Sender<bool>, JoinHandle<()>, Arc<LedgerStats>)>,
    // Dropped last: the tasks above talk to it until they stop.
    embedded: Option<EmbeddedKafka>,
}

impl EventSystem {
    /// Starts the pipeline for `[kafka]` and `[ledger]` (needs a runtime):
    /// the mock cluster when no brokers are configured, the producer, the
    /// spool (replaying what a previous run left), and the embedded ledger.
    pub async fn start(kafka: &KafkaConfig, ledger: &LedgerConfig) -> Result<Self, EventsError> {
        let embedded = match kafka.brokers {
            Some(_) => None,
            None => Some(EmbeddedKafka::start(
                kafka.embedded_partitions,
                &[&kafka.topic, &kafka.dlq_topic],
            )?),
        };
        let bootstrap = match (&embedded, &kafka.brokers) {
            (Some(e), _) => e.bootstrap().to_owned(),
            (None, Some(b)) => b.clone(),
            (None, None) => unreachable!("embedded is started when brokers are absent"),
        };
        let ledger_task = if ledger.runs_embedded(kafka) {
            // The mock cluster's log is new at every start: offsets stored by
            // an earlier run belong to another log (epoch) and are ignored.
            let epoch = embedded.as_ref().map_or("", EmbeddedKafka::log_epoch);
            let l = Ledger::connect_at(&bootstrap, kafka, ledger, epoch).await?;
            let stats = l.stats().clone();
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(async move {
                if let Err(e) = l.run(stop_rx).await {
                    tracing::error!(error = %e, "embedded ledger stopped");
                }
            });
            Some((stop_tx, task, stats))
        } else {
            None
        };
        // With the in-memory cluster, an event is safe once the embedded
        // ledger applied it, not once the cluster has it (see `journal`).
        let counters = Arc::new(EventCounters::default());
        let gate = match (&embedded, &ledger_task) {
            (Some(_), Some((_, _, stats))) => {
                let (c, l) = (counters.clone(), stats.clone());
                Some(journal::Gate {
                    delivered: Box::new(move || {
                        EventCounters::get(&c.produced) + EventCounters::get(&c.replayed)
                    }),
                    applied: Box::new(move || l.messages.load(Ordering::Relaxed)),
                })
            }
            _ => None,
        };
        let p = producer::start(&bootstrap, kafka, counters, gate)?;
        Ok(Self {
            sink: p.sink,
            bootstrap,
            producer_stop: p.producer_stop,
            producer_task: p.producer_task,
            spool_stop: p.spool_stop,
            spool_task: p.spool_task,
            journal: p.journal,
            journal_stop: p.journal_stop,
            journal_task: p.journal_task,
            ledger: ledger_task,
            embedded,
        })
    }

    /// A handle for the auctions.
    pub fn sink(&self) -> EventSink {
        self.sink.clone()
    }

    /// The pipeline's counters.
    pub fn counters(&self) -> &Arc<EventCounters> {
        &self.sink.counters
    }

    /// Bootstrap servers in use (the mock cluster's in embedded mode).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The in-process cluster, in embedded mode (tests take brokers down with it).
    pub fn embedded(&self) -> Option<&EmbeddedKafka> {
        self.embedded.as_ref()
    }

    /// The embedded ledger's counters, when it runs in process.
    pub fn ledger_stats(&self) -> Option<&Arc<LedgerStats>> {
        self.ledger.as_ref().map(|(_, _, s)| s)
    }

    /// Flushes: the producer sends what is queued (failures to the spool),
    /// the spool syncs what it holds; in embedded mode the ledger is given a
    /// few seconds to apply what the mock cluster holds; then it stops.
    pub async fn shutdown(self) {
        let _ = self.producer_stop.send(true);
        let _ = self.producer_task.await;
        let _ = self.spool_stop.send(true);
        let _ = self.spool_task.await;
        if let (Some((_, _, stats)), Some(_)) = (&self.ledger, &self.embedded) {
            catch_up(&self.sink.counters, stats).await;
        }
        if let Some((stop, task, _)) = self.ledger {
            let _ = stop.send(true);
            let _ = task.await;
        }
        // Everything is delivered (and, embedded, applied) or spooled: the
        // journal's segments go, except those an event still needs.
        let _ = self.journal_stop.send(true);
        if let Some(t) = self.journal_task {
            let _ = t.await;
        }
        if let Some(j) = self.journal {
            let _ = tokio::task::spawn_blocking(move || j.close()).await;
        }
        drop(self.embedded);
    }
}
