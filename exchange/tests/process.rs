//! The real `exchange` binary: `serve --config FILE`, bad configs, SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

const EXCHANGE: &str = env!("CARGO_BIN_EXE_exchange");

/// Starts `exchange serve` and returns the child and its URL (read from stdout).
fn serve(config: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(EXCHANGE)
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        // These would switch on the registry database or the admin API.
        .env_remove("DATABASE_URL")
        .env_remove("EXCHANGE_ADMIN_TOKEN")
        // The default event spool and embedded ledger live under ./data.
        .current_dir(config.parent().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("exchange listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

/// A config file with `settings` and one h2c bidder `alpha` at `url`; the
/// directory must outlive the exchange.
fn one_bidder_config(settings: &str, url: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.toml");
    let text = format!("{settings}[[bidders]]\nname = \"alpha\"\nendpoints = [\"{url}\"]\n");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_a_config_file_then_drain_on_sigterm() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let b = bidder("beta", 2.0, |_| {}).await;
    let b2 = bidder("beta", 2.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.toml");
    std::fs::write(
        &path,
        format!(
            r#"
listen = "127.0.0.1:8080"
[auction]
default_tmax_ms = 120
max_tmax_ms = 500
[[bidders]]
name = "alpha"
endpoints = ["{}"]
protocol = "h2c"
[[bidders]]
name = "beta"
endpoints = ["{}", "{}"]
protocol = "h2c"
"#,
            a.url(),
            b.url(),
            b2.url()
        ),
    )
    .unwrap();
    let (mut child, url) = serve(&path);
    let c = client(true);
    let req = http::Request::post(format!("{url}/openrtb2/auction"))
        .body(http_body_util::Full::new(bytes::Bytes::from(
            serde_json::to_vec(&request("proc-1", 0.5, 300)).unwrap(),
        )))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["seatbid"][0]["seat"], "alpha");
    assert_eq!(v["seatbid"][0]["bid"][0]["price"], json!(2.01));
    assert_eq!(a.stats().http2, 1);
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_bad_config_exits_64_naming_the_key_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[auction]\ndefault_tmax = 5\n", "default_tmax"),
        (
            "[[bidders]]\nname = \"a\"\nendpoints = [\"gopher://x\"]\n",
            "bidders[0].endpoints[0]",
        ),
        (
            "[[bidders]]\nname = \"a\"\nendpoints = []\n",
            "bidders[0].endpoints",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        for sub in ["serve", "check-config"] {
            let out = Command::new(EXCHANGE)
                .args([sub, "--config"])
                .arg(&path)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(64), "{sub} {text}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(key), "{key} not in {err}");
        }
    }
    // An admin API without a token is refused before anything is bound.
    let path = dir.path().join("no-token.toml");
    std::fs::write(&path, "admin_listen = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(EXCHANGE)
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("EXCHANGE_ADMIN_TOKEN")
        .env_remove("DATABASE_URL")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin_token") && err.contains("EXCHANGE_ADMIN_TOKEN"),
        "{err}"
    );
    assert!(
        !dir.path().join("exchange.db").exists(),
        "no database before the check"
    );
    let out = Command::new(EXCHANGE)
        .args(["serve", "--config", "/nonexistent/exchange.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/exchange.toml"));
}

#[test]
fn the_shipped_configs_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = Command::new(EXCHANGE)
                .args(["check-config", "--config"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert!(n >= 1, "no config files in {}", dir.display());
}

/// SIGTERM in the middle of a stream of auctions: every request sent before
/// the signal is answered (200/204, body complete), including those still
/// waiting on their bidder; requests sent after it are answered or refused
/// without an answer (the listener is closed), never answered with an error;
/// the process exits 0, and no auction-result event is lost: the embedded
/// ledger's debits add up to the clearing prices the publisher was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_accepted_request() {
    let a = bidder("alpha", 3.0, |c| {
        c.latency = rtb_bidder::Latency::Fixed(std::time::Duration::from_millis(100))
    })
    .await;
    let (_dir, path) = one_bidder_config("[auction]\ndefault_tmax_ms = 300\n", &a.url());
    let (mut child, url) = serve(&path);
    // One connection per request: "accepted" then has one meaning.
    let mut b = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    b.pool_max_idle_per_host(0);
    let c = b.build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut tasks = Vec::new();
    let start = std::time::Instant::now();
    let mut pid_term = Some(child.id());
    for i in 0..60u64 {
        tokio::time::sleep_until(tokio::time::Instant::from_std(
            start + std::time::Duration::from_millis(10 * i),
        ))
        .await;
        if i == 30 {
            let pid = pid_term.take().unwrap();
            assert!(Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap()
                .success());
        }
        // Unique auction ids: the ledger keys debits by (auction id, imp id).
        let body = serde_json::to_vec(&request(&format!("drain-{i}"), 0.5, 300)).unwrap();
        let body = bytes::Bytes::from(body);
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let req = http::Request::post(format!("{url}/openrtb2/auction"))
                .body(http_body_util::Full::new(body))
                .unwrap();
            match c.request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    // The body must arrive whole too.
                    let body = http_body_util::BodyExt::collect(resp.into_body())
                        .await
                        .map_err(|e| e.to_string())?
                        .to_bytes();
                    let charged: i64 = if status == 200 {
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        winners(&v)
                            .iter()
                            .map(|(_, b)| {
                                rtb_proto::Micros::from_decimal(b["price"].as_f64().unwrap())
                                    .unwrap()
                                    .0
                            })
                            .sum()
                    } else {
                        0
                    };
                    CHARGED.fetch_add(charged, std::sync::atomic::Ordering::Relaxed);
                    Ok(status)
                }
                // Refused: no connection, or a connection the closing
                // listener reset before any answer was written.
                Err(e) => {
                    let text = format!("{e:?}");
                    let refused = e.is_connect()
                        || text.contains("ConnectionReset")
                        || text.contains("IncompleteMessage");
                    if refused {
                        Ok(0)
                    } else {
                        Err(text)
                    }
                }
            }
        }));
    }
    let mut answered = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(200) | Ok(204) => answered += 1,
            Ok(0) => assert!(i >= 30, "request {i} refused before SIGTERM"),
            other => panic!("request {i}: {other:?}"),
        }
    }
    // Requests 0..30 were sent before SIGTERM, about ten still in flight.
    assert!(answered >= 30, "only {answered} answered");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    // The process is gone; its embedded ledger (SQLite under the config's
    // directory) must hold a debit for every win the publisher was told of.
    let charged = CHARGED.load(std::sync::atomic::Ordering::Relaxed);
    assert!(charged > 0);
    let ledger = path.parent().unwrap().join("data/ledger.sqlite");
    let url = format!("sqlite://{}", ledger.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let debited: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(amount_micros), 0) FROM debits")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        debited, charged,
        "ledger debits vs clearing prices answered"
    );
}

/// Micros charged in the answers of the SIGTERM test (one test uses it).
static CHARGED: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// A starved exchange sheds: the process is stopped (SIGSTOP) for 150 ms at a
/// time, as a CPU-starved one would be; its scheduling-lag probe notices and
/// new auctions get 503 at once. When it runs freely again, auctions are
/// accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_exchange_sheds_then_recovers() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let (_dir, path) = one_bidder_config("[server]\nmax_scheduling_lag_ms = 20\n", &a.url());
    let (mut child, url) = serve(&path);
    let pid = child.id().to_string();
    let signal = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    let c = client(false);
    let body = serde_json::to_vec(&request("starved", 0.5, 300)).unwrap();
    let post = |c: &hyper_util::client::legacy::Client<_, _>| {
        let req = http::Request::post(format!("{url}/openrtb2/auction"))
            .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
            .unwrap();
        c.request(req)
    };
    assert_eq!(post(&c).await.unwrap().status(), 200);
    let mut shed = 0;
    for _ in 0..10 {
        signal("-STOP");
        std::thread::sleep(std::time::Duration::from_millis(150));
        signal("-CONT");
        if post(&c).await.unwrap().status() == 503 {
            shed += 1;
        }
    }
    assert!(shed > 0, "no request shed while the exchange was starved");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        post(&c).await.unwrap().status(),
        200,
        "accepting again after recovery"
    );
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
}

/// The registry and the embedded ledger can share one database file: each
/// migrator tolerates the other's migrations, across restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_and_ledger_share_one_database_across_restarts() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let (dir, path) = one_bidder_config(
        "sqlite_path = \"shared.db\"\n[ledger]\nsqlite_path = \"shared.db\"\n",
        &a.url(),
    );
    for round in 0..2 {
        let (mut child, url) = serve(&path);
        let c = client(true);
        let body = serde_json::to_vec(&request(&format!("shared-{round}"), 0.5, 300)).unwrap();
        let req = http::Request::post(format!("{url}/openrtb2/auction"))
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        assert_eq!(c.request(req).await.unwrap().status(), 200, "round {round}");
        sigterm(&child);
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "round {round}: {status:?}");
    }
    assert!(dir.path().join("shared.db").is_file());
}

/// `exchange serve` in `dir` (its working directory: the default state
/// files go there) with the admin API; stderr (log at info) appended to
/// `log`. Returns the child, its URL and its admin URL.
fn serve_in(
    dir: &std::path::Path,
    config: &std::path::Path,
    log: &std::path::Path,
) -> (Child, String, String) {
    let mut child = Command::new(EXCHANGE)
        .args(["serve", "--config"])
        .arg(config)
        .env("EXCHANGE_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .env_remove("DATABASE_URL")
        .env_remove("LEDGER_DATABASE_URL")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let (url, admin) = listening_urls(&mut child, "exchange");
    (child, url, admin)
}

/// Auctions on `url` until `n` were won (budget leases are granted in the
/// background, so the first ones may find the lease empty); returns the
/// micros charged.
async fn win(url: &str, tag: &str, n: usize) -> i64 {
    let (mut wins, mut charged) = (0, 0);
    for i in 0..600 {
        if wins == n {
            return charged;
        }
        let a = post_url(url, &request(&format!("{tag}-{i}"), 0.5, 300)).await;
        if a.status == 200 {
            for (_, bid) in winners(&a.json()) {
                charged += rtb_proto::Micros::from_decimal(bid["price"].as_f64().unwrap())
                    .unwrap()
                    .0;
                wins += 1;
            }
        } else {
            assert_eq!(a.status, 204, "{}", a.text());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    panic!("only {wins} of {n} wins");
}

/// The default embedded setup keeps the ledger (and budgets) in a file of
/// the working directory while the mock cluster's log is in memory, so a
/// restart starts a new log at offset 0. Two runs in one directory, each
/// with 30 wins under a total budget: the ledger holds the debits of both
/// runs (its spend is the sum of all 60 clearing prices), and each start
/// names the database file by its absolute path in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_default_state_files_loses_no_debit() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let (dir, path) = one_bidder_config(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n",
        &a.url(),
    );
    let log = dir.path().join("exchange.log");
    let mut charged = 0;
    for run in 0..2 {
        let (mut child, url, admin) = serve_in(dir.path(), &path, &log);
        if run == 0 {
            budget_alpha(&admin).await;
        }
        charged += win(&url, &format!("run{run}"), 30).await;
        sigterm(&child);
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "run {run}: {status:?}");
    }
    let db = std::fs::canonicalize(dir.path().join("data/ledger.sqlite")).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("ledger database") && l.contains(&*db.to_string_lossy()))
            .count(),
        // Each start opens it twice: the embedded ledger and the budgets.
        4,
        "the log names the database file by its absolute path:\n{text}"
    );
    let registry = std::fs::canonicalize(dir.path().join("exchange.db")).unwrap();
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("registry database") && l.contains(&*registry.to_string_lossy()))
            .count(),
        2,
        "the log names exchange.db by its absolute path:\n{text}"
    );
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let (debits, spent) = ledger_totals(&pool).await;
    assert_eq!(debits, 60, "one debit per win of both runs");
    assert_eq!(
        spent, charged,
        "the ledger's spend vs the clearing prices of both runs"
    );
}

/// Debits and total spend in the SQLite ledger at `pool`.
async fn ledger_totals(pool: &sqlx::SqlitePool) -> (i64, i64) {
    let debits: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM debits")
        .fetch_one(pool)
        .await
        .unwrap_or(0);
    let spent: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(spent_micros), 0) FROM account_spend")
        .fetch_one(pool)
        .await
        .unwrap_or(0);
    (debits, spent)
}

/// Gives `alpha` a total budget of 1,000 through the admin API at `admin`.
async fn budget_alpha(admin: &str) {
    let set = admin_call(
        "PUT",
        &format!("{admin}/v1/bidders/alpha/budget"),
        Some(&json!({"total": 1000})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(set.status, 201, "{}", set.text());
}

/// kill -9 right after the publishers got their answers loses no event: the
/// auctions' events were in the crash journal before the answers left, and
/// the next start on the same directory sends them again. The embedded
/// ledger batches for 3 s here, so at the kill nothing of the run is
/// applied yet (the mock cluster's log dies with the process); after the
/// restart the ledger holds every debit exactly once, and the log names
/// the journal and what it recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_the_answers_loses_no_event() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let (dir, path) = one_bidder_config(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[ledger]\nbatch_ms = 3000\n",
        &a.url(),
    );
    let log = dir.path().join("exchange.log");
    let (mut child, url, _) = serve_in(dir.path(), &path, &log);
    let charged = win(&url, "k9", 30).await;
    assert!(Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let _ = tokio::task::spawn_blocking(move || child.wait().unwrap()).await;
    let journal = dir.path().join("data/auction-results.journal");
    assert!(
        std::fs::read_dir(&journal).unwrap().count() > 0,
        "the journal holds the run's events"
    );
    // The restart moves them to the spool and replays them to the new log.
    let (child, _, _) = serve_in(dir.path(), &path, &log);
    let db = dir.path().join("data/ledger.sqlite");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut debits: i64 = 0;
    while debits < 30 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        debits = ledger_totals(&pool).await.0;
    }
    sigterm(&child);
    let mut child = child;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let (debits, spent) = ledger_totals(&pool).await;
    assert_eq!(debits, 30, "every answered win debited once");
    assert_eq!(spent, charged);
    // Without the log's colours (ESC [ ... m).
    let raw = std::fs::read_to_string(&log).unwrap();
    let mut text = String::with_capacity(raw.len());
    let mut in_escape = false;
    for ch in raw.chars() {
        match (in_escape, ch) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => text.push(c),
        }
    }
    let shown = std::fs::canonicalize(&journal).unwrap();
    assert!(
        text.lines().any(
            |l| l.contains("event journal: directory") && l.contains(&*shown.to_string_lossy())
        ),
        "the log names the journal by its absolute path:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("an earlier run did not finish") && l.contains("events=30")),
        "the second start says what it recovered:\n{text}"
    );
    // A graceful stop, everything applied: no segment is left behind.
    let left: Vec<_> = std::fs::read_dir(&journal).unwrap().flatten().collect();
    assert!(left.is_empty(), "after a clean stop: {left:?}");
}

/// `exchange serve --config CONFIG` in `dir` under a file size limit of
/// 1 MiB (`ulimit -f`), with SIGXFSZ ignored (kept across exec): a write
/// past the limit fails with EFBIG instead of killing the process.
fn serve_under_file_limit(config: &std::path::Path, dir: &std::path::Path) -> Child {
    Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 1024; exec \"$0\" serve --config \"$1\"")
        .arg(EXCHANGE)
        .arg(config)
        .env("EXCHANGE_ADMIN_TOKEN", TOKEN)
        .env_remove("DATABASE_URL")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Checks that `url` is ready, then posts auctions with 150 KB request ids
/// (each answered 200 or 204), `pause` apart, at most `tries`, until
/// /readyz answers 503; returns its text and the status of the last
/// auction, the one that found the disk full (`None`: it stayed ready).
async fn post_until_not_ready(url: &str, tries: usize, pause: Duration) -> Option<(String, u16)> {
    let ready = || get(format!("{url}/readyz"));
    assert_eq!(ready().await.0, 200);
    let long = "r".repeat(150_000);
    for i in 0..tries {
        let r = post_url(url, &request(&format!("{long}{i}"), 0.5, 300)).await;
        assert!(r.status == 200 || r.status == 204, "{}", r.status);
        let (status, text) = ready().await;
        if status == 503 {
            return Some((text, r.status.as_u16()));
        }
        tokio::time::sleep(pause).await;
    }
    None
}

/// When Kafka is away and the spool cannot be written (here: the journal
/// off, a file size limit of 1 MiB and events of 150 KB), an event that
/// missed Kafka would be lost: /readyz answers 503 naming the spool, no
/// bidder is called (auctions answer no-bid), and /metrics counts the
/// failed writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_spool_with_kafka_away_awards_nothing() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exchange.toml");
    // Port 9 (discard) on loopback: nothing listens, every send fails.
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
             [kafka]\nbrokers = \"127.0.0.1:9\"\njournal = false\n\
             delivery_timeout_ms = 200\nreplay_interval_ms = 100\n\
             [[bidders]]\nname = \"alpha\"\nendpoints = [\"{}\"]\n",
            a.url()
        ),
    )
    .unwrap();
    let mut child = serve_under_file_limit(&config, dir.path());
    let url = listening_urls(&mut child, "exchange").0;
    let text = post_until_not_ready(&url, 100, Duration::from_millis(50))
        .await
        .expect("the exchange stayed ready with an unwritable spool")
        .0;
    assert!(text.contains("spool"), "{text}");
    let asked = a.stats().requests;
    let r = post_url(&url, &request("small", 0.5, 300)).await;
    assert_eq!(
        r.status,
        204,
        "no win while events cannot be kept: {}",
        r.text()
    );
    assert_eq!(a.stats().requests, asked, "the bidder was not called");
    let (_, metrics) = get(format!("{url}/metrics")).await;
    let failures = counter(&metrics, "rtb_events_spool_failures_total");
    assert!(failures >= 1, "{metrics}");
    sigterm(&child);
    let _ = tokio::task::spawn_blocking(move || child.wait().unwrap()).await;
}

/// When the crash journal cannot be written (here: a file size limit of
/// 1 MiB, `ulimit -f`, and events of 150 KB), the exchange says so: /readyz
/// answers 503 naming the journal, no bidder is called any more, budgeted
/// or not (a win's debit could not be recorded for sure: the auction
/// answers no-bid), the auction whose write failed is not awarded, and
/// /metrics counts the failed writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_journal_turns_the_exchange_not_ready() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let b = bidder("beta", 2.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exchange.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
             [[bidders]]\nname = \"alpha\"\nendpoints = [\"{}\"]\n\
             [[bidders]]\nname = \"beta\"\nendpoints = [\"{}\"]\n",
            a.url(),
            b.url()
        ),
    )
    .unwrap();
    let mut child = serve_under_file_limit(&config, dir.path());
    let (url, admin) = listening_urls(&mut child, "exchange");
    budget_alpha(&admin).await;
    let (text, last) = post_until_not_ready(&url, 40, Duration::ZERO)
        .await
        .expect("the exchange stayed ready with an unwritable journal");
    assert!(text.contains("journal"), "{text}");
    // The auction whose event the journal could not take had called the
    // bidders (alpha bid 3.00 and won); its win is withdrawn before the
    // answer left, since its debit could be lost.
    assert_eq!(last, 204, "the unrecorded win was not awarded");
    let asked = (a.stats().requests, b.stats().requests);
    let r = post_url(&url, &request("small", 0.5, 300)).await;
    assert_eq!(
        r.status,
        204,
        "no win while events cannot be kept: {}",
        r.text()
    );
    assert_eq!(
        (a.stats().requests, b.stats().requests),
        asked,
        "neither bidder was called"
    );
    let (_, metrics) = get(format!("{url}/metrics")).await;
    let failures = counter(&metrics, "rtb_events_journal_failures_total");
    assert!(failures >= 1, "{metrics}");
    sigterm(&child);
    let _ = tokio::task::spawn_blocking(move || child.wait().unwrap()).await;
}
