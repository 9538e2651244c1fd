//! `exchange ledger`'s metrics listener, the process against a Kafka it
//! reaches over TCP (librdkafka's mock cluster, started by this test) and a
//! SQLite file: `/metrics` follows what the ledger applied, promtool accepts
//! it, `/healthz` answers, and a bad `--metrics-addr` is refused naming it.

mod ledger_common;

use std::collections::BTreeMap;
use std::time::Duration;

use ledger_common::{event, ledger_config, promtool_check, sample, samples, LedgerProcess};
use rtb_exchange::events::{EmbeddedKafka, EventSystem};
use rtb_exchange::Config;

/// Scrapes until `cond` holds on the text (bounded); returns the last text.
async fn scrape_until(ledger: &LedgerProcess, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = ledger.scrape().await;
        if cond(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last /metrics:\n{text}\nledger log:\n{}",
            ledger.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_ledger_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = EmbeddedKafka::start(3, &["auction-results", "auction-results-dlq"]).unwrap();
    let path = ledger_config(dir.path(), cluster.bootstrap(), "batch_max = 50\n");
    let ledger = LedgerProcess::start(&path, dir.path().join("ledger.log"));
    // Before any event: served, counters at zero, valid text.
    let text = ledger.scrape().await;
    assert_eq!(
        sample(&text, "rtb_ledger_debits_total"),
        Some(0.0),
        "{text}"
    );
    promtool_check(&text);
    let health = ledger.get("/healthz").await.expect("/healthz answers");
    assert_eq!(health.0, 200);

    let cfg = Config::load(&path).unwrap();
    // A total budget on bidder alpha: its remaining gauge follows the debits
    // of alpha's campaigns.
    let store = rtb_ledger::Store::open(&cfg.ledger).await.unwrap();
    let budget = rtb_exchange::budget::BudgetRow {
        account: "alpha".into(),
        bidder: "alpha".into(),
        cid: None,
        daily_micros: None,
        total_micros: Some(1_000_000_000),
        currency: "USD".into(),
        start_ms: None,
        end_ms: None,
        pacing: rtb_exchange::budget::Pacing::Asap,
    };
    store.put_budget(&budget, 0).await.unwrap();
    let events = EventSystem::start(&cfg.kafka, &cfg.ledger).await.unwrap();
    const N: u32 = 300;
    let mut spent: BTreeMap<String, i64> = BTreeMap::new();
    // The series: campaigns without a budget (all of them here: only alpha
    // has one) are summed in account="other".
    let mut series: BTreeMap<String, i64> = BTreeMap::new();
    for n in 0..N {
        let mut e = event(n);
        // Recent auctions: the commit lag is measured from ts_ms.
        e.ts_ms = rtb_exchange::events::now_ms();
        let w = e.imps[0].winner.as_ref().unwrap();
        *spent.entry(w.account.clone()).or_default() += w.clearing_micros.0;
        let label = if w.account.contains('/') {
            "other"
        } else {
            &w.account
        };
        *series.entry(label.to_owned()).or_default() += w.clearing_micros.0;
        events.sink().emit(e);
    }
    // One of them again: a duplicate, counted and not applied.
    events.sink().emit(event(7));

    let text = scrape_until(&ledger, "every event applied and sampled", |t| {
        sample(t, "rtb_ledger_messages_total") == Some(f64::from(N + 1))
            && samples(t, "rtb_budget_spent_micros_total").len() == series.len()
            && samples(t, "rtb_budget_spent_micros_total")
                .iter()
                .map(|(_, v)| *v)
                .sum::<f64>()
                == spent.values().sum::<i64>() as f64
            && samples(t, "rtb_ledger_consumer_lag").len() == 3
            && samples(t, "rtb_ledger_consumer_lag")
                .iter()
                .all(|(_, v)| *v == 0.0)
    })
    .await;
    assert_eq!(sample(&text, "rtb_ledger_debits_total"), Some(f64::from(N)));
    assert_eq!(sample(&text, "rtb_ledger_duplicates_total"), Some(1.0));
    assert_eq!(sample(&text, "rtb_ledger_dead_letters_total"), Some(0.0));
    assert!(sample(&text, "rtb_ledger_batches_total").unwrap() >= 1.0);
    // One commit-lag observation per debit of each message consumed for the
    // first time: the N events and the re-produced one.
    assert_eq!(
        sample(&text, "rtb_ledger_commit_lag_seconds_count"),
        Some(f64::from(N + 1))
    );
    assert_eq!(
        sample(&text, "rtb_ledger_commit_lag_seconds_bucket{le=\"+Inf\"}"),
        Some(f64::from(N + 1))
    );
    for (account, micros) in &series {
        let series = format!("rtb_budget_spent_micros_total{{account=\"{account}\"}}");
        assert_eq!(sample(&text, &series), Some(*micros as f64), "{series}");
    }
    for p in 0..3 {
        let series = format!("rtb_ledger_consumer_lag{{partition=\"{p}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{text}");
    }
    let alpha_spent: i64 = spent
        .iter()
        .filter(|(a, _)| a.as_str() == "alpha" || a.starts_with("alpha/"))
        .map(|(_, v)| v)
        .sum();
    assert!(alpha_spent > 0);
    let remaining = "rtb_budget_remaining_micros{account=\"alpha\"}";
    let text = scrape_until(&ledger, "the remaining budget sampled", |t| {
        sample(t, remaining) == Some((1_000_000_000 - alpha_spent) as f64)
    })
    .await;
    assert_eq!(
        sample(&text, "rtb_budget_leased_micros{account=\"alpha\"}"),
        Some(0.0)
    );
    store.close().await;
    promtool_check(&text);

    events.shutdown().await;
    let status = ledger.terminate().await;
    assert!(status.success(), "exit status {status:?}");
}

/// A metrics address that is not `ip:port` is refused before anything
/// starts: exit 64 naming the flag (or the key, from the file).
#[test]
fn bad_metrics_addr_names_the_flag_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.toml");
    std::fs::write(&path, "[kafka]\nbrokers = \"127.0.0.1:1\"\n").unwrap();
    let out = ledger_common::ledger_command(&path, &["--metrics-addr", "localhost"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--metrics-addr"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        &path,
        "[kafka]\nbrokers = \"127.0.0.1:1\"\n[ledger]\nmetrics_addr = \"nowhere\"\n",
    )
    .unwrap();
    let out = ledger_common::ledger_command(&path, &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ledger.metrics_addr"));
}
