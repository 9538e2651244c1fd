//! Helpers for the event and ledger tests: a mock Kafka cluster, temp
//! SQLite files or fresh PostgreSQL databases, synthetic events, and a
//! bounded wait on the ledger's database.

#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use rtb_exchange::events::{EmbeddedKafka, KafkaConfig, LedgerConfig};
use rtb_ledger::Store;
use rtb_proto::events::{
    account_key, AuctionResult, ImpResult, Winner, AUCTION_RESULT_SCHEMA_VERSION,
};
use rtb_proto::Micros;

/// Where the ledger keeps its data in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Admin URL of the test PostgreSQL (trust auth), per the project's test setup.
const PG_ADMIN_URLS: [&str; 2] = [
    "postgres://postgres@127.0.0.1:5432/test",
    "postgres://root@127.0.0.1:5432/test",
];

/// A mock cluster, a temp dir, and configs pointing at them.
pub struct Harness {
    pub kafka_cluster: EmbeddedKafka,
    pub kafka: KafkaConfig,
    pub ledger: LedgerConfig,
    pub dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl Harness {
    /// Starts a mock cluster and, for PostgreSQL, creates a fresh database.
    /// Returns `None` (after saying so) when PostgreSQL is unreachable and
    /// `CI` is not `true`; under `CI=true` that is a failure.
    pub async fn start(backend: Backend) -> Option<Harness> {
        let dir = tempfile::tempdir().unwrap();
        let mut kafka = KafkaConfig {
            spool_path: dir.path().join("events.spool"),
            // Short, so an outage spools quickly in tests.
            delivery_timeout_ms: 1_500,
            replay_interval_ms: 200,
            ..KafkaConfig::default()
        };
        let kafka_cluster = EmbeddedKafka::start(4, &[&kafka.topic, &kafka.dlq_topic]).unwrap();
        kafka.brokers = Some(kafka_cluster.bootstrap().to_owned());
        let mut ledger = LedgerConfig {
            embedded: Some(false),
            sqlite_path: dir.path().join("ledger.sqlite"),
            group_id: unique("ledger"),
            batch_max: 100,
            batch_ms: 20,
            ..LedgerConfig::default()
        };
        let mut pg = None;
        if backend == Backend::Postgres {
            let (admin, url) = create_pg_database().await?;
            ledger.database_url = Some(url.clone());
            pg = Some((admin, url));
        }
        Some(Harness {
            kafka_cluster,
            kafka,
            ledger,
            dir,
            pg,
        })
    }

    pub fn bootstrap(&self) -> String {
        self.kafka_cluster.bootstrap().to_owned()
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.ledger).await.unwrap()
    }

    /// Drops the PostgreSQL database, if any.
    pub async fn cleanup(self) {
        if let Some((admin, url)) = &self.pg {
            drop_pg_database(admin, url).await;
        }
    }
}

/// Creates a fresh PostgreSQL database; returns (admin URL, its URL).
/// `None` (after saying so) when PostgreSQL is unreachable and `CI` is not
/// `true`; under `CI=true` that is a failure.
pub async fn create_pg_database() -> Option<(String, String)> {
    let mut last_err = String::new();
    for admin in PG_ADMIN_URLS {
        let pool = match sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect(admin)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                last_err = e.to_string();
                continue;
            }
        };
        let name = unique("ledger_test");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        return Some((admin.to_owned(), url));
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("PostgreSQL at 127.0.0.1:5432 is required under CI=true: {last_err}");
    }
    eprintln!("SKIPPED: PostgreSQL at 127.0.0.1:5432 unreachable ({last_err}); set CI=true to fail instead");
    None
}

/// A one-imp event won by `seat` (campaign `c{n % 5}`) at a price derived from `n`.
pub fn event(n: u32) -> AuctionResult {
    let seat = ["alpha", "beta", "gamma"][(n % 3) as usize];
    let cid = format!("c{}", n % 5);
    let clearing = Micros(10_000 + i64::from(n % 997) * 1_001);
    AuctionResult {
        schema_version: AUCTION_RESULT_SCHEMA_VERSION,
        auction_id: format!("auction-{n}"),
        request_id: Some(format!("request-{n}")),
        exchange_instance: None,
        ts_ms: 1_795_000_000_000 + i64::from(n),
        publisher_id: Some("pub-1".into()),
        site_id: Some("site-1".into()),
        app_id: None,
        currency: "USD".into(),
        account: Some(account_key(seat, Some(&cid))),
        imps: vec![ImpResult {
            imp_id: "1".into(),
            winner: Some(Winner {
                seat: seat.into(),
                account: account_key(seat, Some(&cid)),
                cid: Some(cid),
                crid: Some("cr".into()),
                bid_micros: Micros(clearing.0 + 500_000),
                clearing_micros: clearing,
                leased: None,
            }),
            bids: vec![],
        }],
        bidders: vec![],
    }
}

/// Sum of the clearing prices of events `range`.
pub fn clearing_sum(range: std::ops::Range<u32>) -> i64 {
    range
        .map(|n| event(n).imps[0].winner.as_ref().unwrap().clearing_micros.0)
        .sum()
}

/// Waits (up to `secs`) until the ledger holds `count` debits; returns (count, sum).
pub async fn wait_for_debits(store: &Store, count: i64, secs: u64) -> (i64, i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let totals = store.debit_totals().await.unwrap();
        if totals.0 >= count || tokio::time::Instant::now() > deadline {
            return totals;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drops the PostgreSQL database `url` (created by [`create_pg_database`]).
pub async fn drop_pg_database(admin: &str, url: &str) {
    let name = url.rsplit('/').next().unwrap().to_owned();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(admin)
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `exchange ledger` as a child process, its log in a file; killed (-9) on
/// drop if still running.
pub struct LedgerProcess {
    pub child: Child,
    pub log: PathBuf,
    pub metrics_addr: String,
}

impl LedgerProcess {
    /// Starts `exchange ledger --config config --metrics-addr 127.0.0.1:<free>`.
    pub fn start(config: &Path, log: PathBuf) -> LedgerProcess {
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_exchange"))
            .args(["ledger", "--config"])
            .arg(config)
            .args(["--metrics-addr", &metrics_addr])
            // The file names the database; an inherited one must not.
            .env_remove("DATABASE_URL")
            .env_remove("LEDGER_DATABASE_URL")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        LedgerProcess {
            child,
            log,
            metrics_addr,
        }
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`, and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; returns its exit status (bounded wait).
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ledger did not exit within 30 s of SIGTERM; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET path` on the metrics listener: (status, body); `None` while it
    /// does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.metrics_addr, path).await
    }

    /// `/metrics`, waiting (bounded) for the listener to come up.
    pub async fn scrape(&self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, body)) = self.get("/metrics").await {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no /metrics on {} within 30 s; log:\n{}",
                self.metrics_addr,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for LedgerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET (`Connection: close`): (status, body).
pub async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The value of the sample `series` (name with its labels, exactly as
/// exported) in a Prometheus text exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().ok())?
    })
}

/// Every sample of metric `name` (any labels): (labels, value).
pub fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (s, v) = l.rsplit_once(' ')?;
            let labels = s.strip_prefix(name)?;
            if !(labels.is_empty() || labels.starts_with('{')) {
                return None;
            }
            Some((labels.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// `promtool check metrics` on `text`. Without promtool: a failure under
/// `CI=true` (`.ci/run` installs it), else a visible skip of this check.
pub fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is required under CI=true: {e}"
            );
            // Straight to stderr, past the test harness's capture.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: promtool check metrics (promtool not installed)"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `exchange ledger --config CONFIG EXTRA...` to completion (for the
/// tests of a refused start).
pub fn ledger_command(config: &std::path::Path, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_exchange"))
        .args(["ledger", "--config"])
        .arg(config)
        .args(extra)
        .output()
        .unwrap()
}

/// Writes `dir/ledger.toml` for an `exchange ledger` process on the brokers
/// at `bootstrap`: its spool and SQLite ledger in `dir`, batches of 20 ms,
/// then `extra` lines of `[ledger]`. Returns the file's path.
pub fn ledger_config(dir: &Path, bootstrap: &str, extra: &str) -> PathBuf {
    let path = dir.join("ledger.toml");
    std::fs::write(
        &path,
        format!(
            "[kafka]\nbrokers = \"{bootstrap}\"\nspool_path = \"{}\"\n[ledger]\nsqlite_path = \"{}\"\nbatch_ms = 20\n{extra}",
            dir.join("events.spool").display(),
            dir.join("ledger.sqlite").display()
        ),
    )
    .unwrap();
    path
}
