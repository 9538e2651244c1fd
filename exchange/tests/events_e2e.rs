//! End to end: simulated bidders, a live exchange with embedded Kafka (mock
//! cluster) and the embedded ledger on SQLite. What publishers were charged
//! in their responses is what the ledger debited.

mod common;
mod ledger_common;

use common::counter;
use rtb_exchange::events::LedgerConfig;
use rtb_ledger::Store;
use rtb_proto::Micros;

/// Two bidders and an exchange with embedded Kafka and ledger (SQLite in `dir`).
async fn setup(
    dir: &std::path::Path,
) -> (
    rtb_bidder::BidderHandle,
    rtb_bidder::BidderHandle,
    rtb_exchange::server::RunningExchange,
    LedgerConfig,
) {
    setup_with(dir, |_| {}).await
}

/// [`setup`], with `tweak` applied to the exchange's config last.
async fn setup_with(
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut rtb_exchange::config::Config),
) -> (
    rtb_bidder::BidderHandle,
    rtb_bidder::BidderHandle,
    rtb_exchange::server::RunningExchange,
    LedgerConfig,
) {
    let alpha = common::bidder("alpha", 3.0, |c| c.price_spread = 0.5).await;
    let beta = common::bidder("beta", 2.5, |c| {
        c.price_spread = 0.5;
        c.bid_rate = 0.7;
    })
    .await;
    let ledger_cfg = LedgerConfig {
        sqlite_path: dir.join("ledger.sqlite"),
        batch_ms: 20,
        ..Default::default()
    };
    let spool_path = dir.join("events.spool");
    let ledger_for_exchange = ledger_cfg.clone();
    let ex = common::exchange(&[("alpha", &alpha), ("beta", &beta)], move |c| {
        c.kafka.enabled = true;
        c.kafka.brokers = None;
        c.kafka.spool_path = spool_path;
        c.ledger = ledger_for_exchange;
        tweak(c);
    })
    .await;
    assert!(ex.events().unwrap().embedded().is_some());
    (alpha, beta, ex, ledger_cfg)
}

/// Runs `n` one-imp auctions, 10 at a time; returns (wins, micros charged).
async fn auctions(ex: &rtb_exchange::server::RunningExchange, n: usize) -> (i64, i64) {
    let client = common::client(true);
    let mut charged = 0i64;
    let mut wins = 0i64;
    for chunk in 0..n / 10 {
        let calls = (0..10).map(|i| {
            let body =
                serde_json::to_vec(&common::request(&format!("a-{chunk}-{i}"), 0.5, 200)).unwrap();
            common::post_raw(&client, ex, body, &[])
        });
        for answer in futures_util::future::join_all(calls).await {
            if answer.status != http::StatusCode::OK {
                assert_eq!(answer.status, http::StatusCode::NO_CONTENT);
                continue;
            }
            for (_, bid) in common::winners(&answer.json()) {
                let price = Micros::from_decimal(bid["price"].as_f64().unwrap()).unwrap();
                charged += price.0;
                wins += 1;
            }
        }
    }
    (wins, charged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_debits_equal_clearing_prices_in_responses() {
    let dir = tempfile::tempdir().unwrap();
    let (_alpha, _beta, ex, ledger_cfg) = setup(dir.path()).await;
    let (wins, charged) = auctions(&ex, 300).await;
    assert!(wins > 200, "only {wins} wins in 300 auctions");
    let store = Store::open(&ledger_cfg).await.unwrap();
    // While serving: the ledger converges on what publishers were charged.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while store.debit_totals().await.unwrap().0 < wins && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(store.debit_totals().await.unwrap(), (wins, charged));
    store.close().await;
    // The event counters are on /metrics, in a form promtool accepts.
    let resp = common::client(false)
        .request(
            http::Request::get(format!("{}/metrics", ex.url()))
                .body(Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(text.to_vec()).unwrap();
    let produced = counter(&text, "rtb_events_produced_total");
    assert!(
        produced >= 300,
        "produced {produced} of 300 auctions' events"
    );
    assert!(text.contains("\nrtb_spool_events 0\n"), "{text}");
    ledger_common::promtool_check(&text);
    let counters = ex.events().unwrap().counters().clone();
    // Shutdown drains, flushes the producer and lets the embedded ledger
    // catch up (bounded); nothing is applied twice by stopping.
    ex.shutdown().await;
    assert_eq!(
        counters.dropped.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let store = Store::open(&ledger_cfg).await.unwrap();
    assert_eq!(store.debit_totals().await.unwrap(), (wins, charged));
    assert_eq!(store.spend_total().await.unwrap(), charged);
    store.close().await;
}

/// Stopping right after the last auction: the embedded ledger catches up
/// before the mock cluster (and its data) goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_embedded_ledger_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_alpha, _beta, ex, ledger_cfg) = setup(dir.path()).await;
    let (wins, charged) = auctions(&ex, 100).await;
    assert!(wins > 50, "only {wins} wins in 100 auctions");
    ex.shutdown().await;
    let store = Store::open(&ledger_cfg).await.unwrap();
    assert_eq!(store.debit_totals().await.unwrap(), (wins, charged));
    store.close().await;
}

/// `exchange ledger` needs real brokers: without them it exits 64 naming the key.
#[test]
fn ledger_command_without_brokers_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.toml");
    std::fs::write(&path, "[ledger]\nbatch_max = 10\n").unwrap();
    let out = ledger_common::ledger_command(&path, &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kafka.brokers"));
}

/// `exchange ledger` as its own process against a Kafka it reaches over TCP
/// (the mock cluster of this test): it applies the events, and SIGTERM stops it
/// with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_command_applies_events_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cluster =
        rtb_exchange::events::EmbeddedKafka::start(2, &["auction-results", "auction-results-dlq"])
            .unwrap();
    let path = ledger_common::ledger_config(dir.path(), cluster.bootstrap(), "");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_exchange"))
        .args(["ledger", "--config"])
        .arg(&path)
        // The file names the database; an inherited DATABASE_URL must not.
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(dir.path().join("ledger.log")).unwrap())
        .spawn()
        .unwrap();
    // Killed if the test fails before its SIGTERM: no orphan ledger.
    struct Reaper(u32);
    impl Drop for Reaper {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &self.0.to_string()])
                    .status();
            }
        }
    }
    let _reaper = Reaper(child.id());
    let cfg = rtb_exchange::Config::load(&path).unwrap();
    let events = rtb_exchange::events::EventSystem::start(&cfg.kafka, &cfg.ledger)
        .await
        .unwrap();
    let mut expected = 0;
    for n in 0..200u32 {
        let mut e = rtb_proto::events::AuctionResult {
            schema_version: 1,
            auction_id: format!("p-{n}"),
            request_id: None,
            exchange_instance: None,
            ts_ms: 1_795_000_000_000,
            publisher_id: None,
            site_id: None,
            app_id: None,
            currency: "USD".into(),
            account: Some("alpha".into()),
            imps: vec![],
            bidders: vec![],
        };
        let price = Micros(10_000 + i64::from(n));
        expected += price.0;
        e.imps.push(rtb_proto::events::ImpResult {
            imp_id: "1".into(),
            winner: Some(rtb_proto::events::Winner {
                seat: "alpha".into(),
                cid: None,
                crid: None,
                account: "alpha".into(),
                bid_micros: price,
                clearing_micros: price,
                leased: None,
            }),
            bids: vec![],
        });
        events.sink().emit(e);
    }
    let store = Store::open(&cfg.ledger).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while store.debit_totals().await.unwrap().0 < 200 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let totals = store.debit_totals().await.unwrap();
    if totals != (200, expected) {
        let log = std::fs::read_to_string(dir.path().join("ledger.log")).unwrap_or_default();
        panic!("ledger process applied {totals:?}, expected (200, {expected}); its log:\n{log}");
    }
    store.close().await;
    events.shutdown().await;
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

/// An event over `kafka.max_message_bytes` (a request id of 6,000 bytes,
/// against a bound of 4,096) can never be delivered: it goes to the
/// dead-letter file, counted, and the events after it reach the ledger as
/// usual; the spool does not fill up behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_kafka_cannot_take_is_dead_lettered_and_holds_up_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("events.dead");
    let dead_for_config = dead.clone();
    let (_alpha, _beta, ex, ledger_cfg) = setup_with(dir.path(), move |c| {
        c.kafka.max_message_bytes = 4_096;
        c.kafka.dead_letter_path = dead_for_config;
    })
    .await;
    assert!(
        !dead.exists(),
        "the dead-letter file is made only when needed"
    );
    let long_id = "x".repeat(6_000);
    let body = serde_json::to_vec(&common::request(&long_id, 0.5, 200)).unwrap();
    let answer = common::post_raw(&common::client(true), &ex, body, &[]).await;
    assert!(
        [http::StatusCode::OK, http::StatusCode::NO_CONTENT].contains(&answer.status),
        "{}",
        answer.text()
    );
    let (wins, charged) = auctions(&ex, 50).await;
    let counters = ex.events().unwrap().counters().clone();
    let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while get(&counters.dead_lettered) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(get(&counters.dead_lettered), 1);
    assert_eq!(get(&counters.dropped), 0);
    assert_eq!(
        counters
            .spool_pending
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let store = Store::open(&ledger_cfg).await.unwrap();
    while store.debit_totals().await.unwrap().0 < wins && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Every other auction's debit, none of the dead one's.
    assert_eq!(store.debit_totals().await.unwrap(), (wins, charged));
    store.close().await;
    ex.shutdown().await;
    let (records, _) = rtb_exchange::events::spool::read_frames(&dead).unwrap();
    assert_eq!(records.len(), 1);
    let event: serde_json::Value = serde_json::from_slice(&records[0].value).unwrap();
    assert_eq!(event["request_id"], long_id.as_str());
}
