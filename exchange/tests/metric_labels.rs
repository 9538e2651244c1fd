//! Label values that come from bidders are bounded: a campaign id (`cid`)
//! of a hundred kilobytes, or one with quotes and newlines, becomes part
//! of a budget account key, yet the ledger's `/metrics` stays valid text
//! with short lines, and only budgeted accounts and bidders get series of
//! their own; the rest is summed in `account="other"`. The exchange's own
//! `/metrics` bounds its per-account lease gauge the same way.

mod common;
mod ledger_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{admin, bidder, get, TOKEN};
use ledger_common::{event, ledger_config, promtool_check, samples, LedgerProcess};
use rtb_exchange::config::{BidderEntry, Protocol};
use rtb_exchange::events::{EmbeddedKafka, EventSystem};
use rtb_exchange::{server, Config};
use rtb_proto::events::account_key;
use serde_json::json;

/// Longest line a scrape may have: far below any bidder-sized value.
const MAX_LINE: usize = 400;

/// Asserts the text is well formed line by line: comments, or
/// `name[{labels}] value` with label values in the bounded charset.
fn assert_bounded(text: &str) {
    for line in text.lines() {
        assert!(
            line.len() <= MAX_LINE,
            "a {}-byte line: {}…",
            line.len(),
            &line[..120.min(line.len())]
        );
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        assert!(value.parse::<f64>().is_ok(), "{line:?}");
        if let Some(account) = series.split_once("{account=\"").map(|(_, rest)| {
            rest.strip_suffix("\"}")
                .unwrap_or_else(|| panic!("{line:?}"))
        }) {
            assert!(
                !account.is_empty()
                    && account
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b)),
                "unbounded label in {line:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_cids_do_not_reach_ledger_labels() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = EmbeddedKafka::start(1, &["auction-results", "auction-results-dlq"]).unwrap();
    let path = ledger_config(dir.path(), cluster.bootstrap(), "");
    let ledger = LedgerProcess::start(&path, dir.path().join("ledger.log"));
    let cfg = Config::load(&path).unwrap();
    let store = rtb_ledger::Store::open(&cfg.ledger).await.unwrap();
    // One budgeted campaign; the other campaigns have none.
    let budget = rtb_exchange::budget::BudgetRow {
        account: "alpha/c1".into(),
        bidder: "alpha".into(),
        cid: Some("c1".into()),
        daily_micros: None,
        total_micros: Some(1_000_000_000),
        currency: "USD".into(),
        start_ms: None,
        end_ms: None,
        pacing: rtb_exchange::budget::Pacing::Asap,
    };
    store.put_budget(&budget, 0).await.unwrap();
    let events = EventSystem::start(&cfg.kafka, &cfg.ledger).await.unwrap();
    // A 100 KB cid (the 1 MB case is a unit test of the rendering: an event
    // that large does not travel through Kafka), one that would break the
    // text format, an ordinary campaign without a budget, the budgeted one,
    // and the seat.
    let big = "x".repeat(100 * 1024);
    let cids = [
        Some(big.as_str()),
        Some("a\"b\nfake_metric{x=\"1\"} 9\\"),
        Some("c2"),
        Some("c1"),
        None,
    ];
    let mut expected: BTreeMap<&str, i64> = BTreeMap::new();
    for (n, cid) in cids.iter().enumerate() {
        let mut e = event(n as u32 * 3);
        let w = e.imps[0].winner.as_mut().unwrap();
        assert_eq!(w.seat, "alpha");
        w.cid = cid.map(str::to_owned);
        w.account = account_key("alpha", *cid);
        e.account = Some(w.account.clone());
        let label = match cid {
            Some("c1") => "alpha/c1",
            None => "alpha",
            _ => "other",
        };
        *expected.entry(label).or_default() += w.clearing_micros.0;
        events.sink().emit(e);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = ledger.scrape().await;
        let got: BTreeMap<String, i64> = samples(&text, "rtb_budget_spent_micros_total")
            .into_iter()
            .map(|(l, v)| (l, v as i64))
            .collect();
        let want: BTreeMap<String, i64> = expected
            .iter()
            .map(|(a, v)| (format!("{{account=\"{a}\"}}"), *v))
            .collect();
        if got == want {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spend never sampled as {want:?} but {got:?}; /metrics:\n{}\nledger log:\n{}",
            &text[..text.len().min(2000)],
            ledger.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Every debit was applied (none dead-lettered): the fold is in the
    // labels only, the database has the full accounts.
    assert_eq!(
        ledger_common::sample(&text, "rtb_ledger_debits_total"),
        Some(cids.len() as f64)
    );
    assert_bounded(&text);
    assert!(!text.contains("fake_metric"), "{text}");
    promtool_check(&text);
    store.close().await;
    events.shutdown().await;
    let status = ledger.terminate().await;
    assert!(status.success(), "exit status {status:?}");
}

/// The exchange's `rtb_budget_lease_available_micros{account}`: a budget
/// on a campaign whose id is outside the label charset (the admin API
/// accepts any non-control characters) is reported under `other`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_gauges_on_the_exchange_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let alpha = bidder("alpha", 1.0, |_| {}).await;
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        admin_token: Some(TOKEN.to_owned()),
        sqlite_path: Some(dir.path().join("registry.sqlite")),
        ..Config::default()
    };
    config
        .bidders
        .push(BidderEntry::new("alpha", vec![alpha.url()], Protocol::H2c));
    config.server.max_scheduling_lag_ms = 0;
    config.kafka.spool_path = dir.path().join("events.spool");
    config.ledger.sqlite_path = dir.path().join("ledger.sqlite");
    config.budget.reload_interval_ms = 100;
    config.validate().unwrap();
    let ex = server::start_with_clock(config, Arc::new(rtb_exchange::budget::SystemClock))
        .await
        .unwrap();
    for (path, total) in [
        ("/v1/bidders/alpha/budget", 50),
        ("/v1/bidders/alpha/campaigns/campaign-1/budget", 5),
        // "spring sale \"50%\"", path-encoded.
        (
            "/v1/bidders/alpha/campaigns/spring%20sale%20%2250%25%22/budget",
            7,
        ),
    ] {
        let a = admin(&ex, "PUT", path, Some(&json!({ "total": total }))).await;
        assert_eq!(a.status, 201, "{path}: {}", a.text());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let (status, text) = get(format!("{}/metrics", ex.url())).await;
        assert_eq!(status, 200);
        let gauges = samples(&text, "rtb_budget_lease_available_micros");
        let labels: Vec<&str> = gauges.iter().map(|(l, _)| l.as_str()).collect();
        if labels.len() == 3 {
            assert_eq!(
                labels,
                [
                    "{account=\"alpha\"}",
                    "{account=\"alpha/campaign-1\"}",
                    "{account=\"other\"}"
                ],
                "{text}"
            );
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "three budgeted accounts never showed:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!text.contains("spring"), "{text}");
    assert_bounded(&text);
    promtool_check(&text);
    ex.shutdown().await;
}
