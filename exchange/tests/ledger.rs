//! The event pipeline against real components: producer → librdkafka mock
//! cluster → ledger → SQLite file or PostgreSQL database. Each scenario runs
//! on both backends (PostgreSQL is skipped with a message when unreachable,
//! unless `CI=true`).

mod ledger_common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ledger_common::{clearing_sum, event, wait_for_debits, Backend, Harness};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rtb_exchange::events::spool::{Record, Spool};
use rtb_exchange::events::{EventCounters, EventSystem};
use rtb_ledger::{Ledger, LedgerStats, Store, DLQ_ERROR_HEADER};
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), rtb_ledger::LedgerError>>,
    stats: Arc<LedgerStats>,
}

async fn start_ledger(h: &Harness) -> Running {
    let ledger = Ledger::connect(&h.bootstrap(), &h.kafka, &h.ledger)
        .await
        .unwrap();
    let stats = ledger.stats().clone();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(ledger.run(rx));
    Running { stop, task, stats }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
    }
}

/// Waits (bounded) until `cond` holds.
async fn until(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

async fn reset_offsets(store: &Store) {
    match store {
        Store::Postgres(p) => sqlx::query("DELETE FROM ledger_offsets")
            .execute(p)
            .await
            .map(|_| ()),
        Store::Sqlite(p) => sqlx::query("DELETE FROM ledger_offsets")
            .execute(p)
            .await
            .map(|_| ()),
    }
    .unwrap();
}

/// ≥ 1000 auctions through producer, Kafka and ledger: the debits add up to
/// the clearing prices; duplicates and a full re-read change nothing.
async fn exactly_once(backend: Backend) {
    let Some(h) = Harness::start(backend).await else {
        return;
    };
    const N: u32 = 1_200;
    let events = EventSystem::start(&h.kafka, &h.ledger).await.unwrap();
    let ledger = start_ledger(&h).await;
    let sink = events.sink();
    for n in 0..N {
        sink.emit(event(n));
    }
    let store = h.store().await;
    let expected = clearing_sum(0..N);
    assert_eq!(
        wait_for_debits(&store, N.into(), 60).await,
        (N.into(), expected)
    );
    assert_eq!(store.spend_total().await.unwrap(), expected);
    // The same events again (a re-produce): all duplicates.
    for n in 0..N {
        sink.emit(event(n));
    }
    until(60, "duplicates seen", || {
        get(&ledger.stats.duplicates) >= N.into()
    })
    .await;
    ledger.stop().await;
    assert_eq!(store.debit_totals().await.unwrap(), (N.into(), expected));
    // Offsets reset: a ledger reading the topic from the start changes nothing.
    reset_offsets(&store).await;
    let again = start_ledger(&h).await;
    until(60, "full re-read", || {
        get(&again.stats.duplicates) >= 2 * u64::from(N)
    })
    .await;
    again.stop().await;
    assert_eq!(store.debit_totals().await.unwrap(), (N.into(), expected));
    assert_eq!(store.spend_total().await.unwrap(), expected);
    assert_eq!(get(&events.counters().dropped), 0);
    events.shutdown().await;
    store.close().await;
    h.cleanup().await;
}

/// Kafka down during a stream: events are spooled, replayed when it is back,
/// none lost and none applied twice.
async fn outage(backend: Backend) {
    let Some(h) = Harness::start(backend).await else {
        return;
    };
    let events = EventSystem::start(&h.kafka, &h.ledger).await.unwrap();
    let ledger = start_ledger(&h).await;
    let sink = events.sink();
    let store = h.store().await;
    for n in 0..300 {
        sink.emit(event(n));
    }
    assert_eq!(wait_for_debits(&store, 300, 60).await.0, 300);
    h.kafka_cluster.set_broker_down(1).unwrap();
    for n in 300..600 {
        sink.emit(event(n));
    }
    let counters = events.counters().clone();
    until(30, "events spooled", || {
        EventCounters::get(&counters.spooled) > 0
    })
    .await;
    // More traffic while the spool is not empty: it queues behind the backlog.
    for n in 600..700 {
        sink.emit(event(n));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.kafka_cluster.set_broker_up(1).unwrap();
    let totals = wait_for_debits(&store, 700, 90).await;
    assert_eq!(totals, (700, clearing_sum(0..700)));
    assert!(EventCounters::get(&counters.replayed) > 0, "{counters:?}");
    assert_eq!(EventCounters::get(&counters.dropped), 0);
    // Exactly 700 inserted debits ever: nothing was applied twice.
    let stats = ledger.stats.clone();
    ledger.stop().await;
    assert_eq!(get(&stats.debits), 700);
    assert_eq!(store.spend_total().await.unwrap(), clearing_sum(0..700));
    events.shutdown().await;
    store.close().await;
    h.cleanup().await;
}

/// The ledger aborted mid-stream (twice) and restarted: every debit once.
async fn killed_mid_batch(backend: Backend) {
    let Some(mut h) = Harness::start(backend).await else {
        return;
    };
    // Small batches, so an abort lands with most of the stream still unapplied.
    h.ledger.batch_max = 5;
    const N: u32 = 600;
    let events = EventSystem::start(&h.kafka, &h.ledger).await.unwrap();
    for n in 0..N {
        events.sink().emit(event(n));
    }
    let store = h.store().await;
    for round in 0..2 {
        let ledger = start_ledger(&h).await;
        until(60, "a few batches", || get(&ledger.stats.batches) >= 3).await;
        // Abort, not stop: the future is dropped wherever it is, an open
        // transaction included.
        ledger.task.abort();
        let _ = ledger.task.await;
        let (count, _) = store.debit_totals().await.unwrap();
        assert!(count < i64::from(N), "round {round}: all applied already");
    }
    let last = start_ledger(&h).await;
    let totals = wait_for_debits(&store, N.into(), 60).await;
    assert_eq!(totals, (N.into(), clearing_sum(0..N)));
    assert_eq!(store.spend_total().await.unwrap(), clearing_sum(0..N));
    last.stop().await;
    events.shutdown().await;
    store.close().await;
    h.cleanup().await;
}

/// A poison event lands in the DLQ with its error; the stream goes on.
async fn poison(backend: Backend) {
    let Some(h) = Harness::start(backend).await else {
        return;
    };
    let events = EventSystem::start(&h.kafka, &h.ledger).await.unwrap();
    let ledger = start_ledger(&h).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", h.bootstrap())
        .create()
        .unwrap();
    for n in 0..50 {
        events.sink().emit(event(n));
    }
    producer
        .send(
            FutureRecord::to(&h.kafka.topic)
                .key("alpha")
                .payload(b"{not json".as_slice()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    for n in 50..100 {
        events.sink().emit(event(n));
    }
    let store = h.store().await;
    assert_eq!(
        wait_for_debits(&store, 100, 60).await,
        (100, clearing_sum(0..100))
    );
    until(30, "dead letter", || get(&ledger.stats.dead_letters) == 1).await;
    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", h.bootstrap())
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[&h.kafka.dlq_topic]).unwrap();
    let m = tokio::time::timeout(Duration::from_secs(30), dlq.recv())
        .await
        .expect("a dead letter within 30 s")
        .unwrap();
    assert_eq!(m.payload(), Some(b"{not json".as_slice()));
    let headers = m.headers().expect("headers");
    let error = headers
        .iter()
        .find(|h| h.key == DLQ_ERROR_HEADER)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("error header");
    assert!(error.contains("invalid auction-result event"), "{error}");
    drop(m);
    // Clients go before the cluster: one closing against a vanished broker
    // waits for its timeouts.
    drop(dlq);
    drop(producer);
    ledger.stop().await;
    events.shutdown().await;
    store.close().await;
    h.cleanup().await;
}

/// Reads `n` dead letters; returns their error headers.
async fn dead_letter_errors(h: &Harness, n: usize) -> Vec<String> {
    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", h.bootstrap())
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[&h.kafka.dlq_topic]).unwrap();
    let mut errors = Vec::new();
    while errors.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(30), dlq.recv())
            .await
            .expect("a dead letter within 30 s")
            .unwrap();
        let error = m
            .headers()
            .and_then(|hs| hs.iter().find(|h| h.key == DLQ_ERROR_HEADER))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .expect("error header");
        errors.push(error);
    }
    errors
}

/// Poison amounts in one batch among good events: a win at 9e12 currency
/// units (`at=1` pays the bid) breaks the amount rule, and a debit that
/// overflows its account's spend in the database (PostgreSQL refuses
/// `bigint out of range`; SQLite would store a REAL, its triggers refuse
/// it) is isolated by splitting the batch. Both land in the DLQ with the
/// reason, every good event is debited, and the ledger goes on.
async fn poison_amounts(backend: Backend) {
    let Some(h) = Harness::start(backend).await else {
        return;
    };
    let store = h.store().await;
    let ts = event(0).ts_ms;
    let day = rtb_ledger::store::utc_day(ts);
    let seed = "INSERT INTO account_spend (account, day, spent_micros) VALUES ('full', $1, $2)";
    match &store {
        Store::Postgres(p) => sqlx::query(seed)
            .bind(&day)
            .bind(i64::MAX - 5)
            .execute(p)
            .await
            .map(|_| ()),
        Store::Sqlite(p) => sqlx::query(seed)
            .bind(&day)
            .bind(i64::MAX - 5)
            .execute(p)
            .await
            .map(|_| ()),
    }
    .unwrap();
    let absurd = {
        let mut e = event(1_000);
        let w = e.imps[0].winner.as_mut().unwrap();
        w.clearing_micros = rtb_proto::Micros(9_000_000_000_000 * 1_000_000);
        w.bid_micros = w.clearing_micros;
        e
    };
    let overflow = {
        let mut e = event(1_001);
        e.account = Some("full".into());
        let w = e.imps[0].winner.as_mut().unwrap();
        w.seat = "full".into();
        w.account = "full".into();
        w.cid = None;
        w.clearing_micros = rtb_proto::Micros(1_000_000);
        w.bid_micros = w.clearing_micros;
        e
    };
    let events = EventSystem::start(&h.kafka, &h.ledger).await.unwrap();
    let sink = events.sink();
    for n in 0..30 {
        sink.emit(event(n));
    }
    sink.emit(absurd);
    for n in 30..60 {
        sink.emit(event(n));
    }
    sink.emit(overflow);
    for n in 60..90 {
        sink.emit(event(n));
    }
    // All in Kafka before the ledger starts: they arrive in one batch.
    let counters = events.counters().clone();
    until(30, "events produced", || {
        EventCounters::get(&counters.produced) >= 92
    })
    .await;
    let ledger = start_ledger(&h).await;
    assert_eq!(
        wait_for_debits(&store, 90, 60).await,
        (90, clearing_sum(0..90)),
        "the good events are debited"
    );
    until(30, "two dead letters", || {
        get(&ledger.stats.dead_letters) == 2
    })
    .await;
    let errors = dead_letter_errors(&h, 2).await;
    assert!(
        errors
            .iter()
            .any(|e| e.contains("amount rule") && e.contains("clearing_micros")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("refused by the ledger database")),
        "{errors:?}"
    );
    // The ledger goes on.
    for n in 90..100 {
        sink.emit(event(n));
    }
    assert_eq!(
        wait_for_debits(&store, 100, 60).await,
        (100, clearing_sum(0..100))
    );
    assert_eq!(get(&ledger.stats.dead_letters), 2);
    ledger.stop().await;
    events.shutdown().await;
    store.close().await;
    h.cleanup().await;
}

/// A spool left by a previous run is replayed when the pipeline starts.
async fn restart_replays_spool(backend: Backend) {
    let Some(h) = Harness::start(backend).await else {
        return;
    };
    let mut spool = Spool::open(&h.kafka.spool_path).unwrap();
    let old: Vec<Record> = (0..50)
        .map(|n| {
            let e = event(n);
            Record {
                key: e.key().to_owned(),
                value: e.to_json(),
            }
        })
        .collect();
    spool.append(&old).unwrap();
    drop(spool);
    let events = EventSystem::start(&h.kafka, &h.ledger).await.unwrap();
    for n in 50..60 {
        events.sink().emit(event(n));
    }
    let ledger = start_ledger(&h).await;
    let store = h.store().await;
    assert_eq!(
        wait_for_debits(&store, 60, 60).await,
        (60, clearing_sum(0..60))
    );
    assert!(EventCounters::get(&events.counters().replayed) >= 50);
    ledger.stop().await;
    events.shutdown().await;
    assert_eq!(Spool::open(&h.kafka.spool_path).unwrap().pending(), 0);
    store.close().await;
    h.cleanup().await;
}

macro_rules! on_both_backends {
    ($($name:ident),*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    exactly_once,
    outage,
    killed_mid_batch,
    poison,
    poison_amounts,
    restart_replays_spool
);

/// The ledger stores its offsets under the brokers' cluster id: a Kafka
/// cluster replaced by a new one (its log starting at 0 again) does not
/// inherit the old cluster's positions, so its events are not skipped.
/// The same brokers give the same epoch on every start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_epoch_is_the_brokers_cluster_id() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    let first = Ledger::connect(&h.bootstrap(), &h.kafka, &h.ledger)
        .await
        .unwrap();
    let epoch = first.epoch().to_owned();
    assert!(
        epoch.starts_with("cluster:") && epoch.len() > 8,
        "{epoch:?}"
    );
    drop(first);
    let again = Ledger::connect(&h.bootstrap(), &h.kafka, &h.ledger)
        .await
        .unwrap();
    assert_eq!(again.epoch(), epoch);
    drop(again);
    h.cleanup().await;
}

/// A group coordinator that stops handing out partitions (tansu's did, after
/// the broker was frozen past the session timeout) stalls a ledger in group
/// mode: no debit at all. With `ledger.assignment = "all"` the ledger assigns
/// itself every partition, joins no group and applies every debit all the
/// same; restarted, it goes on from its stored offsets (nothing re-read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_that_assigns_itself_every_partition_needs_no_group_coordinator() {
    use rdkafka::types::RDKafkaApiKey;
    use rtb_exchange::events::config::Assignment;
    let mut h = Harness::start(Backend::Sqlite).await.unwrap();
    for api in [RDKafkaApiKey::FindCoordinator, RDKafkaApiKey::JoinGroup] {
        h.kafka_cluster.refuse_requests(api, 1_000_000).unwrap();
    }
    const N: u32 = 300;
    let events = EventSystem::start(&h.kafka, &h.ledger).await.unwrap();
    let sink = events.sink();
    for n in 0..N {
        sink.emit(event(n));
    }
    let store = h.store().await;
    let grouped = start_ledger(&h).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        store.debit_totals().await.unwrap(),
        (0, 0),
        "a group member got partitions although the coordinator refuses"
    );
    grouped.stop().await;

    h.ledger.assignment = Assignment::All;
    let all = start_ledger(&h).await;
    let expected = clearing_sum(0..N);
    assert_eq!(
        wait_for_debits(&store, N.into(), 60).await,
        (N.into(), expected)
    );
    all.stop().await;
    for n in N..2 * N {
        sink.emit(event(n));
    }
    let again = start_ledger(&h).await;
    let expected = clearing_sum(0..2 * N);
    assert_eq!(
        wait_for_debits(&store, (2 * N).into(), 60).await,
        ((2 * N).into(), expected)
    );
    assert_eq!(
        get(&again.stats.skipped),
        0,
        "a restart re-read what it had applied"
    );
    assert_eq!(get(&again.stats.duplicates), 0);
    again.stop().await;
    events.shutdown().await;
    store.close().await;
    h.cleanup().await;
}
