//! Out of process, end to end: a real Kafka-compatible broker (`tansu`, a
//! child process on a free loopback port), simulated bidders, a live
//! exchange producing to it, and `exchange ledger` as its own process
//! applying debits to a fresh PostgreSQL database. The ledger is killed
//! with SIGKILL twice (once after live traffic, once in the middle of a
//! backlog) and restarted; every publisher-charged clearing price must end
//! up debited exactly once.
//!
//! Needs the `tansu` binary (`cargo install tansu --locked --features
//! dynostore`; `.ci/run` installs it) on PATH or in `~/.cargo/bin`, and
//! PostgreSQL at 127.0.0.1:5432. Without either: a visible skip, or a
//! failure under `CI=true`.

mod common;
mod ledger_common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ledger_common::{
    create_pg_database, drop_pg_database, free_port, promtool_check, sample, samples, LedgerProcess,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use rtb_exchange::server::RunningExchange;
use rtb_proto::Micros;
use sqlx::Row;

const INSTALL: &str = "cargo install tansu --locked --features dynostore";
/// Partitions of both topics.
const PARTITIONS: i32 = 4;

/// The `tansu` binary: on PATH, else `~/.cargo/bin/tansu`.
fn tansu_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let p = PathBuf::from(std::env::var_os("HOME")?).join(".cargo/bin/tansu");
        p.is_file().then_some(p)
    })
}

/// The binary, or `None` after a visible skip; a failure under `CI=true`.
fn require_tansu() -> Option<PathBuf> {
    if let Some(p) = tansu_binary() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "tansu is required under CI=true but was found neither on PATH nor in ~/.cargo/bin: {INSTALL}"
    );
    // Straight to stderr, past the test harness's capture, so it shows.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: tansu not installed ({INSTALL})"
    );
    None
}

/// A tansu broker with in-memory storage; killed on drop.
struct Tansu {
    child: Child,
    bootstrap: String,
    log: PathBuf,
}

impl Tansu {
    fn start(bin: &Path, dir: &Path) -> Tansu {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = dir.join("tansu.log");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
            ])
            .arg(&url)
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Tansu {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Creates both topics, retrying (bounded) while the broker starts.
    async fn create_topics(&mut self, topics: &[&str]) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap();
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("tansu exited ({status}); its log:\n{}", self.log());
            }
            let result = admin.create_topics(&new, &opts).await;
            let done = match &result {
                Ok(per_topic) => per_topic.iter().all(|r| match r {
                    Ok(_) => true,
                    Err((_, code)) => *code == RDKafkaErrorCode::TopicAlreadyExists,
                }),
                Err(_) => false,
            };
            if done {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "cannot create topics on tansu at {}: {result:?}; its log:\n{}",
                self.bootstrap,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What publishers were charged: (auction id, imp id) → clearing micros.
type Charged = BTreeMap<(String, String), i64>;

/// Runs `n` one-imp auctions named `{prefix}-{i}`, 20 at a time, and
/// records every winning bid's clearing price.
async fn auctions(ex: &RunningExchange, prefix: &str, n: usize, charged: &mut Charged) {
    let client = common::client(true);
    for chunk in 0..n / 20 {
        let calls = (0..20).map(|i| {
            let id = format!("{prefix}-{}", chunk * 20 + i);
            let body = serde_json::to_vec(&common::request(&id, 0.5, 300)).unwrap();
            let client = &client;
            async move { (id, common::post_raw(client, ex, body, &[]).await) }
        });
        for (id, answer) in futures_util::future::join_all(calls).await {
            if answer.status != http::StatusCode::OK {
                assert_eq!(answer.status, http::StatusCode::NO_CONTENT, "{id}");
                continue;
            }
            let json = answer.json();
            for (_, bid) in common::winners(&json) {
                let price = Micros::from_decimal(bid["price"].as_f64().unwrap()).unwrap();
                let imp = bid["impid"].as_str().unwrap().to_owned();
                let fresh = charged.insert((id.clone(), imp), price.0).is_none();
                assert!(fresh, "two winners for one imp of {id}");
            }
        }
    }
}

/// Every debit in the database: (auction id, imp id) → amount.
/// Debits by (publisher request id, imp id): the auction id is the
/// exchange's own, the request id is what the test sent.
async fn debits(pool: &sqlx::PgPool) -> Charged {
    sqlx::query("SELECT request_id, imp_id, amount_micros FROM debits")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get::<i64, _>(2)))
        .collect()
}

async fn debit_count(pool: &sqlx::PgPool) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM debits")
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0)
}

/// Whether the database holds at least `count` debits within 120 s.
async fn reaches(pool: &sqlx::PgPool, count: i64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while debit_count(pool).await < count {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Partition → (low, high) watermarks of `auction-results`.
fn topic_counts(bootstrap: &str) -> BTreeMap<i32, (i64, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    (0..PARTITIONS)
        .map(|p| {
            (
                p,
                c.fetch_watermarks("auction-results", p, Duration::from_secs(5))
                    .unwrap(),
            )
        })
        .collect()
}

/// Waits (bounded) until the database holds at least `count` debits.
async fn wait_for_count(pool: &sqlx::PgPool, count: i64, ledger: &LedgerProcess) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let have = debit_count(pool).await;
        if have >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{have} of {count} debits after 120 s; ledger log:\n{}",
            ledger.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ledger process runs throughout: debits equal the prices answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_through_tansu() {
    run(false).await;
}

/// The ledger process is SIGKILLed mid-stream and restarted: still exactly once.
///
/// tansu 0.6 answers a fetch that starts inside a record batch with nothing
/// until a newer batch arrives, and then with that newer batch. A ledger
/// restarted after SIGKILL seeks to its stored offset, usually inside a
/// producer batch; without the ledger's hole check (`Ledger::contiguous`:
/// read the partition again from its beginning) this test found 2-16 of 3000
/// debits missing although the topic held all 3000 events.
///
/// The ledger here runs with `ledger.assignment = "all"` (every partition,
/// no consumer group), as perf/chaos.sh does against tansu. tansu 0.6's group
/// coordinator can hand a ledger restarted within the killed one's session
/// an empty assignment and never rebalance once that session expires: CI
/// saw "630 of 655 debits after 120 s" with `assignment=[]` in the ledger's
/// log. A group member killed and restarted is covered against librdkafka's
/// mock cluster (`ledger.rs`, `killed_mid_batch`); the test above runs the
/// group mode against tansu without kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_through_tansu_with_ledger_killed() {
    run(true).await;
}

/// The scenario; `kill`: SIGKILL the ledger twice and restart it.
async fn run(kill: bool) {
    let Some(bin) = require_tansu() else { return };
    let Some((admin, db_url)) = create_pg_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut tansu = Tansu::start(&bin, dir.path());
    tansu
        .create_topics(&["auction-results", "auction-results-dlq"])
        .await;

    let alpha = common::bidder("alpha", 3.0, |c| c.price_spread = 0.5).await;
    let beta = common::bidder("beta", 2.5, |c| {
        c.price_spread = 0.5;
        c.bid_rate = 0.7;
    })
    .await;
    let bootstrap = tansu.bootstrap.clone();
    let spool = dir.path().join("events.spool");
    let ex = common::exchange(&[("alpha", &alpha), ("beta", &beta)], move |c| {
        c.kafka.enabled = true;
        c.kafka.brokers = Some(bootstrap);
        c.kafka.spool_path = spool;
        c.ledger.embedded = Some(false);
    })
    .await;

    // Small batches: many transactions, so a kill lands between and inside them.
    let assignment = if kill { "all" } else { "group" };
    let config = dir.path().join("ledger.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{}\"\nspool_path = \"{}\"\n[ledger]\ndatabase_url = \"{db_url}\"\ngroup_id = \"ledger-e2e\"\nassignment = \"{assignment}\"\nbatch_max = 5\nbatch_ms = 20\n",
            tansu.bootstrap,
            dir.path().join("ledger.spool").display(),
        ),
    )
    .unwrap();
    let log = dir.path().join("ledger.log");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&db_url)
        .await
        .unwrap();
    let mut charged = Charged::new();

    // 1. Live traffic with the ledger running; then SIGKILL.
    let mut ledger = LedgerProcess::start(&config, log.clone());
    auctions(&ex, "a", 1_500, &mut charged).await;
    wait_for_count(&pool, 1, &ledger).await;
    let text = ledger.scrape().await;
    assert!(
        sample(&text, "rtb_ledger_debits_total").unwrap() > 0.0,
        "{text}"
    );
    if kill {
        ledger.kill9();
    }

    // 2. More traffic: with `kill`, a backlog while no ledger runs, and a
    //    new ledger killed in its middle.
    auctions(&ex, "b", 1_500, &mut charged).await;
    let wins = i64::try_from(charged.len()).unwrap();
    assert!(wins > 2_000, "only {wins} wins in 3000 auctions");
    if kill {
        let before = debit_count(&pool).await;
        let mut second = LedgerProcess::start(&config, log.clone());
        wait_for_count(&pool, before + 25, &second).await;
        second.kill9();
        let at_kill = debit_count(&pool).await;
        assert!(
            at_kill < wins,
            "the ledger had applied everything ({at_kill}) before it was killed"
        );
        // 3. Restarted: it converges on exactly what publishers were charged.
        ledger = LedgerProcess::start(&config, log.clone());
    }
    let counters = ex.events().unwrap().counters().clone();
    if !reaches(&pool, wins).await {
        let applied = debits(&pool).await;
        let missing: Vec<_> = charged
            .keys()
            .filter(|k| !applied.contains_key(*k))
            .take(20)
            .collect();
        panic!(
            "{} of {wins} debits after 120 s; missing (first 20) {missing:?}; exchange events {counters:?}; topic: {:?}; ledger /metrics:\n{}",
            applied.len(),
            topic_counts(&tansu.bootstrap),
            ledger.scrape().await
        );
    }
    ex.shutdown().await;
    let total: i64 = charged.values().sum();
    let applied = debits(&pool).await;
    assert_eq!(applied.len(), charged.len());
    assert_eq!(applied.values().sum::<i64>(), total);
    assert_eq!(applied, charged, "debits differ from the prices answered");
    // Spend moves only with an inserted debit: a debit applied twice would
    // show here even though the primary key keeps one row.
    let spent: i64 = sqlx::query("SELECT CAST(SUM(spent_micros) AS BIGINT) FROM account_spend")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(spent, total);
    assert_eq!(
        counters.dropped.load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // The restarted ledger's metrics: caught up on every partition, spend
    // per account adding up to the total, a text promtool accepts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = ledger.scrape().await;
        let lag = samples(&text, "rtb_ledger_consumer_lag");
        let spend: f64 = samples(&text, "rtb_budget_spent_micros_total")
            .iter()
            .map(|(_, v)| v)
            .sum();
        if lag.len() == PARTITIONS as usize
            && lag.iter().all(|(_, v)| *v == 0.0)
            && spend == total as f64
        {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics did not settle; last /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(sample(&text, "rtb_ledger_commit_lag_seconds_count").unwrap() > 0.0);
    promtool_check(&text);
    let status = ledger.terminate().await;
    assert!(status.success(), "ledger exit status {status:?}");
    pool.close().await;
    drop_pg_database(&admin, &db_url).await;
    drop(tansu);
}
