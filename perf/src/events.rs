//! `perf events`: throughput and lag of the auction-event pipeline, from
//! the exchange's producer through a real Kafka-compatible broker to debits
//! committed by the real ledger in PostgreSQL.
//!
//! Modes (each on a fresh topic, with auction ids unique to the run, so one
//! database serves many runs):
//!
//! - `pipeline`: events are emitted at `--rate` through the exchange's
//!   [`EventSystem`] (queue, idempotent producer) while an in-process
//!   [`Ledger`] consumes them; reports end-to-end events/s (first emit to
//!   last commit) and the commit lag (event `ts_ms` to its batch's commit:
//!   the ledger's own histogram, exact to 3 digits).
//! - `backlog`: the same events are produced first (producer throughput),
//!   then the ledger starts and drains the backlog (ledger throughput alone).
//! - `producer`: the producer alone (the baseline for the ratios).
//! - `insert`: PostgreSQL alone: rows in transactions of `--batch-max`,
//!   once row by row (per debit an insert and a
//!   spend upsert, one round trip each) and once set-based (one `UNNEST`
//!   insert per batch), into scratch tables dropped afterwards.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rtb_exchange::events::{now_ms, EventCounters, EventSystem, KafkaConfig, LedgerConfig};
use rtb_ledger::{Ledger, LedgerStats};
use rtb_proto::events::{
    account_key, AuctionResult, ImpResult, Winner, AUCTION_RESULT_SCHEMA_VERSION,
};
use rtb_proto::Micros;
use tokio::sync::watch;

/// What `perf events` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Producer and ledger together, events emitted at `--rate`.
    Pipeline,
    /// Produce everything, then time the ledger draining the backlog.
    Backlog,
    /// The producer alone.
    Producer,
    /// PostgreSQL alone: per-row and set-based inserts.
    Insert,
}

/// Options of `perf events`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// PostgreSQL URL of the ledger's database.
    pub database_url: String,
    /// Events to send.
    pub events: u64,
    /// Events per second to emit; 0 = as fast as the queue takes them.
    pub rate: f64,
    /// `[ledger] batch_max`.
    pub batch_max: usize,
    /// `[ledger] batch_ms`.
    pub batch_ms: u64,
    /// Partitions of the scratch topic.
    pub partitions: i32,
    /// What to measure.
    pub mode: Mode,
}

/// Budget accounts the synthetic events are spread over.
const ACCOUNTS: u64 = 16;
/// Longest any phase may take before the run is called failed.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

/// A one-imp event won by one of [`ACCOUNTS`] accounts, stamped now.
pub fn synthetic_event(run: &str, n: u64) -> AuctionResult {
    let seat = format!("seat{}", n % ACCOUNTS);
    let account = account_key(&seat, None);
    let clearing = Micros(10_000 + (n % 997) as i64 * 1_001);
    AuctionResult {
        schema_version: AUCTION_RESULT_SCHEMA_VERSION,
        auction_id: format!("{run}-{n}"),
        request_id: Some(format!("req-{n}")),
        // Like an exchange's event: the ledger also debits this instance's
        // budget leases (none exist here, so that update touches no row).
        exchange_instance: Some(format!("{run}-exchange")),
        ts_ms: now_ms(),
        publisher_id: Some("pub-1".into()),
        site_id: Some("site-1".into()),
        app_id: None,
        currency: "USD".into(),
        account: Some(account.clone()),
        imps: vec![ImpResult {
            imp_id: "1".into(),
            winner: Some(Winner {
                seat,
                cid: None,
                crid: None,
                account,
                bid_micros: Micros(clearing.0 + 500_000),
                clearing_micros: clearing,
                leased: None,
            }),
            bids: vec![],
        }],
        bidders: vec![],
    }
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    if opts.events == 0 {
        bail!("--events must be > 0");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match opts.mode {
            Mode::Insert => insert_baseline(opts).await,
            _ => kafka_modes(opts).await,
        }
    })
}

/// Creates `topic` and its DLQ with `partitions` each.
async fn create_topics(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let dlq = format!("{topic}-dlq");
    let new = [
        NewTopic::new(topic, partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&dlq, 1, TopicReplication::Fixed(1)),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin.create_topics(&new, &opts).await? {
        if let Err((t, e)) = r {
            bail!("cannot create topic {t}: {e}");
        }
    }
    Ok(())
}

/// Polls `cond` every 5 ms until it holds; the time it took, or an error
/// after [`PHASE_LIMIT`].
async fn until(what: &str, start: Instant, cond: impl Fn() -> bool) -> anyhow::Result<Duration> {
    while !cond() {
        if start.elapsed() > PHASE_LIMIT {
            bail!("{what}: not done after {PHASE_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(start.elapsed())
}

fn per_s(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Emits `n` events at `rate`/s (0: all at once), open loop: each 1 ms
/// tick sends what is due by then, whatever the pipeline does.
async fn emit(events: &EventSystem, run: &str, n: u64, rate: f64) {
    let sink = events.sink();
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let due = if rate > 0.0 {
            ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(n)
        } else {
            n
        };
        while sent < due {
            sink.emit(synthetic_event(run, sent));
            sent += 1;
            // Let the producer task run between chunks when not paced.
            if rate <= 0.0 && sent % 4_096 == 0 {
                tokio::task::yield_now().await;
            }
        }
        if sent < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

struct RunningLedger {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), rtb_ledger::LedgerError>>,
    stats: std::sync::Arc<LedgerStats>,
}

async fn start_ledger(
    opts: &Options,
    kafka: &KafkaConfig,
    ledger: &LedgerConfig,
) -> anyhow::Result<RunningLedger> {
    let l = Ledger::connect(&opts.brokers, kafka, ledger)
        .await
        .context("ledger connect")?;
    let stats = l.stats().clone();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(l.run(rx));
    Ok(RunningLedger { stop, task, stats })
}

async fn kafka_modes(opts: &Options) -> anyhow::Result<()> {
    let run = format!("b{}-{}", now_ms(), std::process::id());
    let topic = format!("bench-{run}");
    create_topics(&opts.brokers, &topic, opts.partitions).await?;
    let spool = std::env::temp_dir().join(format!("perf-events-{run}.spool"));
    let kafka = KafkaConfig {
        brokers: Some(opts.brokers.clone()),
        topic: topic.clone(),
        dlq_topic: format!("{topic}-dlq"),
        // Room for the whole run: a benchmark of the producer, not the spool.
        queue_capacity: usize::try_from(opts.events)
            .unwrap_or(usize::MAX)
            .clamp(1, 4_000_000),
        spool_path: spool.clone(),
        delivery_timeout_ms: 30_000,
        ..KafkaConfig::default()
    };
    let ledger_cfg = LedgerConfig {
        embedded: Some(false),
        database_url: Some(opts.database_url.clone()),
        group_id: format!("ledger-{run}"),
        batch_max: opts.batch_max,
        batch_ms: opts.batch_ms,
        ..LedgerConfig::default()
    };
    let n = opts.events;
    println!(
        "perf events --mode {:?}: {n} events, rate {}, topic {topic} ({} partitions), batch_max {}, batch_ms {}",
        opts.mode,
        if opts.rate > 0.0 {
            format!("{}/s", opts.rate)
        } else {
            "unpaced".into()
        },
        opts.partitions,
        opts.batch_max,
        opts.batch_ms
    );
    // Pipeline: the ledger is up (and has joined the group) before the first event.
    let mut ledger = None;
    if opts.mode == Mode::Pipeline {
        let l = start_ledger(opts, &kafka, &ledger_cfg).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        ledger = Some(l);
    }
    let events = EventSystem::start(&kafka, &ledger_cfg).await?;
    let counters = events.counters().clone();
    let start = Instant::now();
    emit(&events, &run, n, opts.rate).await;
    let emitted = start.elapsed();
    let produced = until("producer", start, || {
        EventCounters::get(&counters.produced) + EventCounters::get(&counters.replayed) >= n
    })
    .await?;
    println!(
        "  producer:  {n} events acknowledged in {:.2} s = {:.0} events/s (emitted in {:.2} s; spooled {}, dropped {})",
        produced.as_secs_f64(),
        per_s(n, produced),
        emitted.as_secs_f64(),
        EventCounters::get(&counters.spooled),
        EventCounters::get(&counters.dropped),
    );
    if opts.mode == Mode::Backlog {
        let t0 = Instant::now();
        let l = start_ledger(opts, &kafka, &ledger_cfg).await?;
        let stats = l.stats.clone();
        // From the first commit: joining the group is not throughput.
        until("first batch", t0, || {
            stats.batches.load(Ordering::Relaxed) > 0
        })
        .await?;
        let first = Instant::now();
        let first_msgs = stats.messages.load(Ordering::Relaxed);
        let all = until("ledger", first, || {
            stats.messages.load(Ordering::Relaxed) >= n
        })
        .await?;
        let batches = stats.batches.load(Ordering::Relaxed);
        println!(
            "  ledger:    {} events committed in {:.2} s after its first batch = {:.0} events/s ({batches} batches, {:.0} events/batch)",
            n - first_msgs,
            all.as_secs_f64(),
            per_s(n - first_msgs, all),
            n as f64 / batches.max(1) as f64
        );
        ledger = Some(l);
    }
    if let (Mode::Pipeline, Some(l)) = (opts.mode, &ledger) {
        let stats = l.stats.clone();
        let all = until("pipeline", start, || {
            stats.messages.load(Ordering::Relaxed) >= n
        })
        .await?;
        let lag = &stats.commit_lag;
        let batches = stats.batches.load(Ordering::Relaxed);
        println!(
            "  pipeline:  {n} events emitted → committed in {:.2} s = {:.0} events/s ({batches} batches, {:.0} events/batch)",
            all.as_secs_f64(),
            per_s(n, all),
            n as f64 / batches.max(1) as f64
        );
        println!(
            "  commit lag (auction ts_ms → debit committed): p50 {} ms, p90 {} ms, p99 {} ms, max {} ms ({} debits)",
            lag.quantile_ms(0.5),
            lag.quantile_ms(0.9),
            lag.quantile_ms(0.99),
            lag.max_ms(),
            lag.count()
        );
    }
    if let Some(l) = ledger {
        let debits = l.stats.debits.load(Ordering::Relaxed);
        let _ = l.stop.send(true);
        l.task.await??;
        if debits != n {
            bail!("the ledger applied {debits} debits for {n} events");
        }
    }
    events.shutdown().await;
    let _ = std::fs::remove_file(&spool);
    Ok(())
}

/// PostgreSQL alone: the ledger's statement shape and a set-based insert.
async fn insert_baseline(opts: &Options) -> anyhow::Result<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&opts.database_url)
        .await
        .context("connect")?;
    let n = opts.events;
    let b = opts.batch_max.max(1) as u64;
    println!("perf events --mode insert: {n} rows, {b} rows per transaction");
    for t in ["perf_debits", "perf_spend"] {
        sqlx::query(&format!("DROP TABLE IF EXISTS {t}"))
            .execute(&pool)
            .await?;
    }
    sqlx::query(
        "CREATE TABLE perf_debits (auction_id TEXT NOT NULL, imp_id TEXT NOT NULL,
         account TEXT NOT NULL, amount_micros BIGINT NOT NULL, event_ts BIGINT NOT NULL,
         PRIMARY KEY (auction_id, imp_id))",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "CREATE TABLE perf_spend (account TEXT NOT NULL, day TEXT NOT NULL,
         spent_micros BIGINT NOT NULL, PRIMARY KEY (account, day))",
    )
    .execute(&pool)
    .await?;
    let day = "2026-01-01";
    // 1. The ledger's shape: two statements, two round trips, per debit.
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let mut tx = pool.begin().await?;
        for k in i..(i + b).min(n) {
            let e = synthetic_event("row", k);
            let w = e.imps[0].winner.as_ref().expect("synthetic events win");
            let inserted = sqlx::query(
                "INSERT INTO perf_debits (auction_id, imp_id, account, amount_micros, event_ts)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (auction_id, imp_id) DO NOTHING",
            )
            .bind(&e.auction_id)
            .bind("1")
            .bind(&w.account)
            .bind(w.clearing_micros.0)
            .bind(e.ts_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                sqlx::query(
                    "INSERT INTO perf_spend (account, day, spent_micros) VALUES ($1, $2, $3)
                     ON CONFLICT (account, day) DO UPDATE SET spent_micros = perf_spend.spent_micros + excluded.spent_micros",
                )
                .bind(&w.account)
                .bind(day)
                .bind(w.clearing_micros.0)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        i += b;
    }
    let per_row = start.elapsed();
    println!(
        "  per-row (the old ledger): {n} rows in {:.2} s = {:.0} rows/s",
        per_row.as_secs_f64(),
        per_s(n, per_row)
    );
    // 2. Set-based: one INSERT ... SELECT FROM UNNEST per batch, and one
    //    spend upsert per account in the batch.
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let (mut ids, mut accounts, mut amounts, mut ts) = (vec![], vec![], vec![], vec![]);
        for k in i..(i + b).min(n) {
            let e = synthetic_event("set", k);
            let w = e.imps[0].winner.as_ref().expect("synthetic events win");
            ids.push(e.auction_id.clone());
            accounts.push(w.account.clone());
            amounts.push(w.clearing_micros.0);
            ts.push(e.ts_ms);
        }
        let mut tx = pool.begin().await?;
        sqlx::query(
            "WITH ins AS (
               INSERT INTO perf_debits (auction_id, imp_id, account, amount_micros, event_ts)
               SELECT a, '1', acc, amt, t FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(a, acc, amt, t)
               ON CONFLICT (auction_id, imp_id) DO NOTHING
               RETURNING account, amount_micros)
             INSERT INTO perf_spend (account, day, spent_micros)
             SELECT account, $5, SUM(amount_micros) FROM ins GROUP BY account
             ON CONFLICT (account, day) DO UPDATE SET spent_micros = perf_spend.spent_micros + excluded.spent_micros",
        )
        .bind(&ids)
        .bind(&accounts)
        .bind(&amounts)
        .bind(&ts)
        .bind(day)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        i += b;
    }
    let set = start.elapsed();
    println!(
        "  set-based (UNNEST):       {n} rows in {:.2} s = {:.0} rows/s ({:.1}x per-row)",
        set.as_secs_f64(),
        per_s(n, set),
        per_row.as_secs_f64() / set.as_secs_f64().max(1e-9)
    );
    let (rows, spent): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM perf_debits), (SELECT CAST(SUM(spent_micros) AS BIGINT) FROM perf_spend)",
    )
    .fetch_one(&pool)
    .await?;
    for t in ["perf_debits", "perf_spend"] {
        sqlx::query(&format!("DROP TABLE {t}"))
            .execute(&pool)
            .await?;
    }
    pool.close().await;
    if rows != 2 * n as i64 {
        bail!("inserted {rows} rows, expected {}", 2 * n);
    }
    let expected: i64 = (0..n)
        .map(|k| 2 * (10_000 + (k % 997) as i64 * 1_001))
        .sum();
    if spent != expected {
        bail!("spend {spent}, expected {expected}");
    }
    Ok(())
}
