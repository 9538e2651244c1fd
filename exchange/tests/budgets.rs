//! Budgets end to end: the admin budget API, leases, daily rollover with a
//! controlled clock, lease expiry, and three real `exchange serve` processes
//! spending one small budget through a Kafka-protocol broker (librdkafka's
//! mock cluster) into a ledger on PostgreSQL.
//!
//! The simulated bidder bids 1.00 and the floor is 0.09, so a lone bidder
//! clears at 0.10 (second price: floor + 0.01): each win costs 100,000 micros.

mod common;
mod ledger_common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ledger_common::{Backend, Harness};
use rtb_exchange::budget::{BudgetRow, Clock, LeaseRequest, ManualClock, SystemClock};
use rtb_exchange::config::{BidderEntry, Config, Protocol};
use rtb_exchange::server::{self, RunningExchange};
use rtb_ledger::{Ledger, Store};
use rtb_proto::Micros;
use serde_json::{json, Value};
use tokio::sync::watch;

/// What one win costs: floor 0.09 + 0.01.
const PRICE: i64 = 100_000;
const FLOOR: f64 = 0.09;
/// No win for this long: the budget is spent (see `spend_until_exhausted`).
const QUIET: Duration = Duration::from_millis(1_500);

/// Sends `n` auctions to `url` at once; returns (wins, micros charged).
async fn round(url: &str, tag: &str, n: usize) -> (i64, i64) {
    let requests: Vec<Value> = (0..n)
        .map(|i| request(&format!("{tag}-{i}"), FLOOR, 300))
        .collect();
    let calls = requests.iter().map(|r| post_url(url, r));
    let mut wins = 0;
    let mut charged = 0;
    for a in futures_util::future::join_all(calls).await {
        if a.status == 204 {
            continue;
        }
        assert_eq!(a.status, 200, "{}", a.text());
        let v = a.json();
        for (_, bid) in winners(&v) {
            charged += Micros::from_decimal(bid["price"].as_f64().unwrap())
                .unwrap()
                .0;
            wins += 1;
        }
    }
    (wins, charged)
}

/// Runs rounds against every URL until nothing was won for `quiet` (a few
/// times the refill task's retry interval, so remainders given back by one
/// replica have been picked up by another), or 60 s pass; returns (wins,
/// micros charged).
async fn spend_until_exhausted(urls: &[&str], tag: &str, quiet: Duration) -> (i64, i64) {
    let (mut wins, mut charged) = (0, 0);
    let mut last_win = tokio::time::Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for r in 0.. {
        let tags: Vec<String> = (0..urls.len()).map(|i| format!("{tag}-{r}-{i}")).collect();
        let rounds = urls.iter().zip(&tags).map(|(u, t)| round(u, t, 10));
        let mut won = 0;
        for (w, c) in futures_util::future::join_all(rounds).await {
            won += w;
            charged += c;
        }
        wins += won;
        if won > 0 {
            last_win = tokio::time::Instant::now();
        } else if last_win.elapsed() >= quiet {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still winning after 60 s: {wins} wins, {charged} micros"
        );
        // Leases are refilled in the background; give the refill task a turn.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    (wins, charged)
}

/// An exhausted bidder is not called at all (seat-non-bid 501): more
/// auctions on every replica leave its request count where it was.
async fn assert_not_called(urls: &[&str], bidder: &rtb_bidder::BidderHandle) {
    let before = bidder.stats().requests;
    let (wins, _) = spend_until_exhausted(urls, "after", Duration::ZERO).await;
    assert_eq!(wins, 0);
    assert_eq!(
        bidder.stats().requests,
        before,
        "an exhausted bidder must not be called"
    );
}

async fn get_budget(ex: &RunningExchange, path: &str) -> Value {
    let a = admin(ex, "GET", path, None).await;
    assert_eq!(a.status, 200, "{}", a.text());
    a.json()
}

/// Polls the budget until the ledger has debited `micros` today.
async fn until_spent_today(ex: &RunningExchange, micros: i64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_budget(ex, "/v1/bidders/alpha/budget").await;
        if v["spent_today_micros"] == micros {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ledger never reached {micros} micros today: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An exchange with the admin API, bidder `alpha`, the embedded Kafka mock
/// cluster and ledger (SQLite in `dir`), and leases of 0.20 (two wins at a
/// time) or 20 % of what is free.
async fn embedded_exchange(
    dir: &Path,
    alpha: &rtb_bidder::BidderHandle,
    clock: Arc<dyn Clock>,
) -> RunningExchange {
    embedded_exchange_with(dir, alpha, clock, |_| {}).await
}

/// [`embedded_exchange`] with `tweak` applied to its config.
async fn embedded_exchange_with(
    dir: &Path,
    alpha: &rtb_bidder::BidderHandle,
    clock: Arc<dyn Clock>,
    tweak: impl FnOnce(&mut Config),
) -> RunningExchange {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        admin_token: Some(TOKEN.to_owned()),
        sqlite_path: Some(dir.join("registry.sqlite")),
        ..Config::default()
    };
    config
        .bidders
        .push(BidderEntry::new("alpha", vec![alpha.url()], Protocol::H2c));
    config.server.max_scheduling_lag_ms = 0;
    config.kafka.spool_path = dir.join("events.spool");
    config.ledger.sqlite_path = dir.join("ledger.sqlite");
    config.ledger.batch_ms = 10;
    config.budget.min_lease_micros = 2 * PRICE;
    config.budget.lease_fraction = 0.2;
    config.budget.reload_interval_ms = 100;
    tweak(&mut config);
    config.validate().unwrap();
    server::start_with_clock(config, clock).await.unwrap()
}

/// The admin budget API (validation included), and a daily budget that is
/// spent to the micro, rolls over at UTC midnight on a controlled clock, and
/// stops at the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_budget_rolls_over_at_midnight_and_total_caps_it() {
    let dir = tempfile::tempdir().unwrap();
    let alpha = bidder("alpha", 1.0, |_| {}).await;
    // 2026-11-23 23:59:00 UTC.
    let clock = Arc::new(ManualClock::new(1_795_478_340_000));
    // Grants of 0.20 (two wins) out of a daily 1.00: whole wins only, so the
    // day is spent to the micro.
    let ex = embedded_exchange(dir.path(), &alpha, clock.clone()).await;

    // Validation: the field at fault is named.
    for (body, field) in [
        (json!({"daily": -1}), "daily"),
        (json!({"daily": "ten"}), "daily"),
        (json!({"total": 5, "dayly": 1}), "dayly"),
        (json!({}), "daily"),
        (json!({"total": 9_000_000_000_001u64}), "total"),
    ] {
        let a = admin(&ex, "PUT", "/v1/bidders/alpha/budget", Some(&body)).await;
        assert_eq!(a.status, 400, "{body}: {}", a.text());
        assert_eq!(a.json()["field"], field, "{body}: {}", a.text());
    }
    let a = admin(
        &ex,
        "PUT",
        "/v1/bidders/nobody/budget",
        Some(&json!({"total": 1})),
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.text());
    let a = admin(&ex, "GET", "/v1/bidders/alpha/budget", None).await;
    assert_eq!(a.status, 404, "{}", a.text());

    // Before any budget the bidder is not limited.
    let (wins, _) = round(&ex.url(), "free", 5).await;
    assert_eq!(wins, 5);
    let unbudgeted = 5 * PRICE;
    // Spend made without a lease is known once the ledger has applied it.
    let stats = ex.events().unwrap().ledger_stats().unwrap().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stats.debits.load(std::sync::atomic::Ordering::Relaxed) < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ledger never applied the wins"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let set = json!({"daily": 1.0, "total": 2.5});
    let a = admin(&ex, "PUT", "/v1/bidders/alpha/budget", Some(&set)).await;
    assert_eq!(a.status, 201, "{}", a.text());
    let a = admin(&ex, "PUT", "/v1/bidders/alpha/budget", Some(&set)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["daily"], 1.0);
    assert_eq!(v["total_micros"], 2_500_000);
    assert_eq!(v["day"], "2026-11-23");
    assert_eq!(v["status"], "active");

    // A campaign budget for a campaign this bidder does not bid with: the
    // API stores and reports it, and it limits nothing here.
    let c = admin(
        &ex,
        "PUT",
        "/v1/bidders/alpha/campaigns/other-campaign/budget",
        Some(&json!({"total": 0.5})),
    )
    .await;
    assert_eq!(c.status, 201, "{}", c.text());
    assert_eq!(c.json()["cid"], "other-campaign");
    assert_eq!(c.json()["account"], "alpha/other-campaign");

    // Day one: the earlier unbudgeted wins count against the daily budget
    // too, so 1.00 - 0.50 is left.
    let (wins, charged) = spend_until_exhausted(&[&ex.url()], "d1", QUIET).await;
    assert_eq!(charged, 1_000_000 - unbudgeted, "{wins} wins");
    assert_not_called(&[&ex.url()], &alpha).await;
    let v = until_spent_today(&ex, 1_000_000).await;
    assert_eq!(v["status"], "exhausted", "{v}");
    assert_eq!(v["remaining_micros"], 0, "{v}");

    // Midnight: a new daily budget; the total (2.50) still counts day one.
    clock.advance(120_000);
    let (_, charged) = spend_until_exhausted(&[&ex.url()], "d2", QUIET).await;
    assert_eq!(charged, 1_000_000);
    let v = until_spent_today(&ex, 1_000_000).await;
    assert_eq!(v["day"], "2026-11-24");
    assert_eq!(v["spent_total_micros"], 2_000_000, "{v}");

    // Day three: only 0.50 of the total is left.
    clock.advance(86_400_000);
    let (_, charged) = spend_until_exhausted(&[&ex.url()], "d3", QUIET).await;
    assert_eq!(charged, 500_000);
    let v = until_spent_today(&ex, 500_000).await;
    assert_eq!(v["spent_total_micros"], 2_500_000, "{v}");
    assert_eq!(v["status"], "exhausted", "{v}");

    let gone = admin(&ex, "DELETE", "/v1/bidders/alpha/budget", None).await;
    assert_eq!(gone.status, 204);
    let a = admin(&ex, "GET", "/v1/bidders/alpha/budget", None).await;
    assert_eq!(a.status, 404, "{}", a.text());
    // Idempotent: nothing to remove is still what was asked for.
    let again = admin(&ex, "DELETE", "/v1/bidders/alpha/budget", None).await;
    assert_eq!(again.status, 204);
    ex.shutdown().await;
}

/// A lease its instance stops renewing goes back to the account, less what
/// that instance reported awarding; grants never exceed the budget.
async fn leases_expire_back_to_the_account(backend: Backend) {
    let Some(h) = Harness::start(backend).await else {
        return;
    };
    let store: Store = h.store().await;
    let row = BudgetRow {
        account: "alpha".into(),
        bidder: "alpha".into(),
        cid: None,
        daily_micros: None,
        total_micros: Some(10_000_000),
        currency: "USD".into(),
        start_ms: None,
        end_ms: None,
        pacing: rtb_exchange::budget::Pacing::Asap,
    };
    assert!(store.put_budget(&row, 0).await.unwrap());
    let ask = |instance: &'static str, now_ms: i64, awarded: i64| LeaseRequest {
        account: "alpha",
        instance,
        day: "2026-11-23",
        now_ms,
        awarded_micros: awarded,
        release: false,
        need_micros: 0,
        min_micros: 1_000_000,
        fraction: 1.0,
        ttl_ms: 5_000,
        pacing_lead_ms: 60_000,
    };
    let x = store.grant(&ask("x", 1_000, 0)).await.unwrap().unwrap();
    assert_eq!(x.amount, 10_000_000, "the whole free budget (fraction 1)");
    let y = store.grant(&ask("y", 2_000, 0)).await.unwrap().unwrap();
    assert_eq!(y.amount, 0, "nothing is free while x holds it all");
    // x reports 3.00 awarded, then stops renewing.
    store
        .renew("alpha", "x", "2026-11-23", 6_000, 3_000_000)
        .await
        .unwrap();
    let y = store.grant(&ask("y", 5_500, 0)).await.unwrap().unwrap();
    assert_eq!(y.amount, 0, "x's lease has not expired yet");
    let y = store.grant(&ask("y", 6_001, 0)).await.unwrap().unwrap();
    assert_eq!(y.amount, 7_000_000, "what x did not award came back");
    let s = store
        .budget_status("alpha", "2026-11-23")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.leased_micros, 10_000_000);
    assert_eq!(s.remaining_micros, 0);
    assert!(s.exhausted());
    // No budget: no lease.
    let none = LeaseRequest {
        account: "beta",
        ..ask("y", 7_000, 0)
    };
    assert_eq!(store.grant(&none).await.unwrap(), None);
    store.close().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_back_to_the_account_sqlite() {
    leases_expire_back_to_the_account(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_back_to_the_account_postgres() {
    leases_expire_back_to_the_account(Backend::Postgres).await;
}

fn replica(dir: &Path, name: &str, body: &str) -> Replica {
    let config = dir.join(format!("{name}.toml"));
    let spool = dir.join(format!("{name}.spool"));
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{}",
            body.replace("#KAFKA#", &format!("spool_path = \"{}\"", spool.display()))
        ),
    )
    .unwrap();
    Replica::start(&config, name)
}

/// Three exchange processes sell one bidder's small budget at once: total
/// spend ends at most the budget and within one clearing price of it, and
/// the ledger's debits equal the clearing prices the publishers were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_exchanges_share_a_small_budget_postgres() {
    let Some(h) = Harness::start(Backend::Postgres).await else {
        return;
    };
    let db = h.ledger.database_url.clone().unwrap();
    let alpha = bidder("alpha", 1.0, |_| {}).await;
    let ledger = Ledger::connect(&h.bootstrap(), &h.kafka, &h.ledger)
        .await
        .unwrap();
    let (stop_ledger, rx) = watch::channel(false);
    let ledger_task = tokio::spawn(ledger.run(rx));

    let body = format!(
        "database_url = \"{db}\"\n\
         [[bidders]]\nname = \"alpha\"\nendpoints = [\"{}\"]\nprotocol = \"h2c\"\n\
         [server]\nmax_scheduling_lag_ms = 0\n\
         [ledger]\nembedded = false\ndatabase_url = \"{db}\"\n\
         [budget]\nmin_lease_micros = 300000\nlease_fraction = 0.05\nreload_interval_ms = 200\n\
         [kafka]\nbrokers = \"{}\"\ndelivery_timeout_ms = 5000\n#KAFKA#\n",
        alpha.url(),
        h.bootstrap()
    );
    let replicas: Vec<Replica> = ["one", "two", "three"]
        .iter()
        .map(|n| replica(h.dir.path(), n, &body))
        .collect();
    let budget = 20_000_000;
    let set = admin_call(
        "PUT",
        &format!("{}/v1/bidders/alpha/budget", replicas[0].admin),
        Some(&json!({"total": 20.0})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(set.status, 201, "{}", set.text());
    // Every replica loads the new budget within its reload interval.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let urls: Vec<&str> = replicas.iter().map(|r| r.url.as_str()).collect();
    let (wins, charged) = spend_until_exhausted(&urls, "hammer", QUIET).await;
    assert!(charged <= budget, "overspent: {charged} > {budget}");
    assert!(
        budget - charged < PRICE,
        "{charged} micros spent of {budget}: more than one clearing price left unsold"
    );
    assert_not_called(&urls, &alpha).await;

    for r in replicas {
        r.stop();
    }
    let store = h.store().await;
    let (count, sum) = ledger_common::wait_for_debits(&store, wins, 30).await;
    assert_eq!(count, wins, "one debit per win");
    assert_eq!(sum, charged, "debits equal the clearing prices sent");
    let s = store
        .budget_status(
            "alpha",
            &rtb_ledger::store::utc_day(rtb_exchange::events::now_ms()),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.spent_total_micros, charged);
    assert_eq!(
        s.leased_micros, 0,
        "stopped replicas give their leases back"
    );

    let _ = stop_ledger.send(true);
    ledger_task.await.unwrap().unwrap();
    store.close().await;
    h.cleanup().await;
}

/// A campaign budget limits the bids that name that campaign (`cid`), and
/// its spend counts toward the bidder's own figures too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_budget_limits_its_campaign() {
    let dir = tempfile::tempdir().unwrap();
    // The simulated bidder bids with cid "campaign-1".
    let alpha = bidder("alpha", 1.0, |_| {}).await;
    let ex = embedded_exchange(dir.path(), &alpha, Arc::new(SystemClock)).await;
    let a = admin(
        &ex,
        "PUT",
        "/v1/bidders/alpha/campaigns/campaign-1/budget",
        Some(&json!({"total": 0.6})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text());
    // A bidder budget far above it: the campaign's is the one that binds.
    let a = admin(
        &ex,
        "PUT",
        "/v1/bidders/alpha/budget",
        Some(&json!({"daily": 50})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text());
    let (wins, charged) = spend_until_exhausted(&[&ex.url()], "camp", QUIET).await;
    assert_eq!(charged, 600_000, "{wins} wins");
    assert_campaign_wins_nothing(&ex, &alpha).await;
    // /metrics shows why: bids lost for budget, and the campaign's lease.
    let (status, text) = get(format!("{}/metrics", ex.url())).await;
    assert_eq!(status, 200);
    let lost = counter(&text, "rtb_budget_lost_bids_total");
    assert!(lost >= 20, "{lost} bids lost for budget");
    assert!(
        text.contains("rtb_budget_lease_available_micros{account=\"alpha/campaign-1\"} "),
        "{text}"
    );
    ledger_common::promtool_check(&text);
    // The ledger has it on both accounts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let c = get_budget(&ex, "/v1/bidders/alpha/campaigns/campaign-1/budget").await;
        let b = get_budget(&ex, "/v1/bidders/alpha/budget").await;
        if c["spent_total_micros"] == 600_000 && b["spent_today_micros"] == 600_000 {
            assert_eq!(c["status"], "exhausted", "{c}");
            assert_eq!(b["status"], "active", "{b}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ledger never showed the campaign's spend: {c} {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ex.shutdown().await;
}

/// After a campaign is exhausted its bids still reach the exchange (the
/// campaign is only known from the bid), but none of them wins.
async fn assert_campaign_wins_nothing(ex: &RunningExchange, bidder: &rtb_bidder::BidderHandle) {
    let (wins, _) = round(&ex.url(), "after-campaign", 20).await;
    assert_eq!(wins, 0);
    assert!(bidder.stats().requests > 0);
}

/// One of two replicas sharing `h`'s brokers and ledger database (the
/// ledger runs apart), with the admin API and bidder `alpha`; budgets
/// reload at the default interval (1 s).
async fn shared_replica(
    h: &Harness,
    name: &str,
    alpha: &rtb_bidder::BidderHandle,
) -> RunningExchange {
    let dir = h.dir.path();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        admin_token: Some(TOKEN.to_owned()),
        sqlite_path: Some(dir.join(format!("registry-{name}.sqlite"))),
        ..Config::default()
    };
    config
        .bidders
        .push(BidderEntry::new("alpha", vec![alpha.url()], Protocol::H2c));
    config.server.max_scheduling_lag_ms = 0;
    config.kafka = h.kafka.clone();
    config.kafka.spool_path = dir.join(format!("{name}.spool"));
    config.ledger = h.ledger.clone();
    config.budget.min_lease_micros = 2 * PRICE;
    config.budget.lease_fraction = 0.2;
    config.validate().unwrap();
    server::start(config).await.unwrap()
}

/// A daily budget of 5.00 created through one replica, then auctions at
/// once on it and on another replica (which learns budgets at its reload):
/// spend never exceeds 5.00, in the answers and in the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_budget_binds_every_replica_from_the_answer_on() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    let alpha = bidder("alpha", 1.0, |_| {}).await;
    let ledger = Ledger::connect(&h.bootstrap(), &h.kafka, &h.ledger)
        .await
        .unwrap();
    let (stop_ledger, rx) = watch::channel(false);
    let ledger_task = tokio::spawn(ledger.run(rx));
    let a = shared_replica(&h, "a", &alpha).await;
    let b = shared_replica(&h, "b", &alpha).await;
    let set = admin(
        &a,
        "PUT",
        "/v1/bidders/alpha/budget",
        Some(&json!({"daily": 5.0})),
    )
    .await;
    assert_eq!(set.status, 201, "{}", set.text());
    assert_eq!(set.json()["currency"], "USD");
    let (wins, charged) = spend_until_exhausted(&[&a.url(), &b.url()], "new", QUIET).await;
    assert!(
        charged <= 5_000_000,
        "overspent: {charged} micros of 5.00 ({wins} wins)"
    );
    a.shutdown().await;
    b.shutdown().await;
    let store = h.store().await;
    assert_eq!(
        ledger_common::wait_for_debits(&store, wins, 30).await,
        (wins, charged)
    );
    let day = rtb_ledger::store::utc_day(rtb_exchange::events::now_ms());
    let s = store.budget_status("alpha", &day).await.unwrap().unwrap();
    assert!(s.spent_today_micros <= 5_000_000, "{s:?}");
    let _ = stop_ledger.send(true);
    ledger_task.await.unwrap().unwrap();
    store.close().await;
}

/// A budget kept in EUR does not pay for wins of USD auctions (there are no
/// conversion rates): the bidder is not called, nothing is won; lowering
/// and deleting work as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_in_another_currency_awards_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let alpha = bidder("alpha", 1.0, |_| {}).await;
    let ex = embedded_exchange(dir.path(), &alpha, Arc::new(SystemClock)).await;
    let bad = admin(
        &ex,
        "PUT",
        "/v1/bidders/alpha/budget",
        Some(&json!({"daily": 5.0, "currency": "euro"})),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(bad.json()["field"], "currency");
    let set = admin(
        &ex,
        "PUT",
        "/v1/bidders/alpha/budget",
        Some(&json!({"daily": 5.0, "currency": "EUR"})),
    )
    .await;
    assert_eq!(set.status, 201, "{}", set.text());
    assert_eq!(
        get_budget(&ex, "/v1/bidders/alpha/budget").await["currency"],
        "EUR"
    );
    let before = alpha.stats().requests;
    let (wins, _) = round(&ex.url(), "usd", 10).await;
    assert_eq!(wins, 0, "a USD auction must not spend an EUR budget");
    assert_eq!(alpha.stats().requests, before, "not called");
    // In USD again: it wins.
    let set = admin(
        &ex,
        "PUT",
        "/v1/bidders/alpha/budget",
        Some(&json!({"daily": 5.0})),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.text());
    let (wins, _) = spend_until_exhausted(&[&ex.url()], "usd-again", Duration::ZERO).await;
    assert!(wins > 0);
    ex.shutdown().await;
}

/// 2026-12-01T00:00:00Z.
const DEC_1: i64 = 1_796_083_200_000;
const HOUR: i64 = 3_600_000;

/// Sends `n` auctions; returns alpha's (wins, micros charged, seat-non-bid
/// status codes).
async fn round_codes(url: &str, tag: &str, n: usize) -> (i64, i64, Vec<u64>) {
    let calls: Vec<Value> = (0..n)
        .map(|i| request(&format!("{tag}-{i}"), FLOOR, 300))
        .collect();
    let (mut wins, mut charged, mut codes) = (0, 0, Vec::new());
    for a in futures_util::future::join_all(calls.iter().map(|r| post_url(url, r))).await {
        if a.status == 204 {
            continue;
        }
        assert_eq!(a.status, 200, "{}", a.text());
        let v = a.json();
        for (_, bid) in winners(&v).iter().filter(|(seat, _)| seat == "alpha") {
            charged += Micros::from_decimal(bid["price"].as_f64().unwrap())
                .unwrap()
                .0;
            wins += 1;
        }
        codes.extend(
            nonbids(&v, "alpha")
                .iter()
                .filter_map(|n| n["statuscode"].as_u64()),
        );
    }
    (wins, charged, codes)
}

/// An exchange as [`embedded_exchange_with`] makes, with a second bidder,
/// `beta`, without a budget, that bids at the floor: an auction alpha's
/// budget keeps it out of is still answered (beta wins), with alpha's
/// seat-non-bid entry in it, and alpha still clears at `PRICE`.
async fn with_beta(
    dir: &Path,
    alpha: &rtb_bidder::BidderHandle,
    beta: &rtb_bidder::BidderHandle,
    clock: Arc<dyn Clock>,
    tweak: impl FnOnce(&mut Config),
) -> RunningExchange {
    embedded_exchange_with(dir, alpha, clock, |c| {
        c.bidders
            .push(BidderEntry::new("beta", vec![beta.url()], Protocol::H2c));
        tweak(c);
    })
    .await
}

/// Rounds until one is won, or 20 s pass (a lease is refilled in the
/// background once the flight starts).
async fn until_a_win(url: &str, tag: &str) -> (i64, i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for r in 0.. {
        let (wins, charged, _) = round_codes(url, &format!("{tag}-{r}"), 5).await;
        if wins > 0 {
            return (wins, charged);
        }
        assert!(tokio::time::Instant::now() < deadline, "never won");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    unreachable!()
}

/// A campaign budget's flight (`start`, `end`): before it starts and once
/// it has ended, a bidder with no other live campaign is not called at all
/// (seat-non-bid 501, with the reason); with another live campaign it is
/// called, and its bid for the campaign out of flight loses with loss
/// reason 1001. The admin API checks the fields and shows the flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_outside_their_flight_are_not_awarded() {
    let dir = tempfile::tempdir().unwrap();
    // The simulated bidder bids with cid "campaign-1".
    let alpha = bidder("alpha", 1.0, |_| {}).await;
    let beta = bidder("beta", FLOOR, |_| {}).await;
    let clock = Arc::new(ManualClock::new(DEC_1 + 10 * HOUR));
    let ex = with_beta(dir.path(), &alpha, &beta, clock.clone(), |_| {}).await;
    let path = "/v1/bidders/alpha/campaigns/campaign-1/budget";

    for (body, field) in [
        (json!({"total": 1, "start": "tomorrow"}), "start"),
        (json!({"total": 1, "end": "2026-12-01 14:00"}), "end"),
        (
            json!({"total": 1, "start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"}),
            "end",
        ),
        (json!({"total": 1, "pacing": "fast"}), "pacing"),
        // A total is spread along the flight: it needs both ends.
        (
            json!({"total": 1, "pacing": "even", "start": "2026-12-01T00:00:00Z"}),
            "pacing",
        ),
    ] {
        let a = admin(&ex, "PUT", path, Some(&body)).await;
        assert_eq!(a.status, 400, "{body}: {}", a.text());
        assert_eq!(a.json()["field"], field, "{body}: {}", a.text());
    }
    // 12:00 to 14:00 UTC, given in another offset for the start.
    let set =
        json!({"total": 10.0, "start": "2026-12-01T13:00:00+01:00", "end": "2026-12-01T14:00:00Z"});
    let a = admin(&ex, "PUT", path, Some(&set)).await;
    assert_eq!(a.status, 201, "{}", a.text());
    let v = a.json();
    assert_eq!(v["start"], "2026-12-01T12:00:00Z", "{v}");
    assert_eq!(v["end"], "2026-12-01T14:00:00Z", "{v}");
    assert_eq!(v["pacing"], "asap", "{v}");
    assert_eq!(v["flight"], "before", "{v}");
    assert_eq!(
        v["grantable_micros"], 0,
        "nothing is leased before the start: {v}"
    );

    // Before the start: its only campaign is not live, so it is not called.
    let before = alpha.stats().requests;
    let (wins, _, codes) = round_codes(&ex.url(), "early", 5).await;
    assert_eq!(wins, 0);
    assert_eq!(alpha.stats().requests, before, "called before its flight");
    assert_eq!(codes, vec![501; 5], "seat-non-bid 501 for each auction");
    let early = post_url(&ex.url(), &request("early-why", FLOOR, 300)).await;
    assert_eq!(
        nonbids(&early.json(), "alpha")[0]["reason"],
        "budget outside its flight (start/end)"
    );

    // In flight: it wins.
    clock.set(DEC_1 + 12 * HOUR);
    assert_eq!(get_budget(&ex, path).await["flight"], "live");
    let (wins, charged) = until_a_win(&ex.url(), "flying").await;
    assert!(wins > 0 && charged == wins * PRICE);

    // Ended: not called again.
    clock.set(DEC_1 + 14 * HOUR);
    let v = get_budget(&ex, path).await;
    assert_eq!(v["flight"], "after", "{v}");
    assert_eq!(v["grantable_micros"], 0, "{v}");
    let before = alpha.stats().requests;
    let (wins, _, codes) = round_codes(&ex.url(), "late", 5).await;
    assert_eq!(
        (wins, alpha.stats().requests),
        (0, before),
        "called after its flight"
    );
    assert_eq!(codes, vec![501; 5]);

    // Another campaign of alpha's is live: alpha is called again, and its
    // bid for campaign-1 loses with 1001.
    let other = admin(
        &ex,
        "PUT",
        "/v1/bidders/alpha/campaigns/campaign-2/budget",
        Some(&json!({"daily": 5.0})),
    )
    .await;
    assert_eq!(other.status, 201, "{}", other.text());
    let (wins, _, codes) = round_codes(&ex.url(), "other", 5).await;
    assert_eq!(wins, 0);
    assert!(
        alpha.stats().requests > before,
        "a bidder with a live campaign is called"
    );
    assert_eq!(codes, vec![1001; 5], "out of flight: loss reason 1001");
    ex.shutdown().await;
}

/// Even pacing of a daily budget on a manual clock: 24.00 a day (1.00 an
/// hour), a lead of one hour, and a bidder that could win far faster. At
/// each hour the clock is moved to, spend runs to the ideal line plus half
/// a lead and stops there: the grants never lease past it, and the hot
/// path holds wins back with loss reason 1002 as it nears it. A deficit
/// (six hours without auctions) is made up only to the same bound, and
/// the day ends at its budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn even_pacing_follows_the_daily_line_on_a_manual_clock() {
    let dir = tempfile::tempdir().unwrap();
    let alpha = bidder("alpha", 1.0, |_| {}).await;
    let beta = bidder("beta", FLOOR, |_| {}).await;
    let clock = Arc::new(ManualClock::new(DEC_1));
    let ex = with_beta(dir.path(), &alpha, &beta, clock.clone(), |c| {
        c.budget.pacing_lead_ms = HOUR as u64;
    })
    .await;
    let set = json!({"daily": 24.0, "pacing": "even"});
    let a = admin(&ex, "PUT", "/v1/bidders/alpha/budget", Some(&set)).await;
    assert_eq!(a.status, 201, "{}", a.text());
    assert_eq!(a.json()["pacing"], "even");
    assert_eq!(a.json()["ideal_today_micros"], 0);

    let mut spent = 0;
    let mut paced = 0;
    // Half a lead is half an hour's spend: 0.50.
    for (at, line) in [
        (0, 0),
        (HOUR, 1_000_000),
        (7 * HOUR, 7_000_000),
        (12 * HOUR + HOUR / 2, 12_500_000),
        (24 * HOUR - 1, 24_000_000),
    ] {
        clock.set(DEC_1 + at);
        let v = get_budget(&ex, "/v1/bidders/alpha/budget").await;
        assert_eq!(
            v["ideal_today_micros"],
            line - i64::from(at == 24 * HOUR - 1),
            "{v}"
        );
        let bound = (line + 500_000).min(24_000_000);
        // Auctions until none is won for a while: spend has reached what
        // pacing allows.
        let mut last_win = tokio::time::Instant::now();
        for r in 0.. {
            let (_, charged, codes) = round_codes(&ex.url(), &format!("h{at}-{r}"), 10).await;
            paced += codes.iter().filter(|&&c| c == 1002).count();
            spent += charged;
            assert!(spent <= bound, "at +{at} ms: {spent} spent, over {bound}");
            if charged > 0 {
                last_win = tokio::time::Instant::now();
            } else if last_win.elapsed() >= QUIET {
                break;
            }
            assert!(r < 2_000, "still winning at +{at} ms: {spent}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            bound - spent < 2 * PRICE,
            "at +{at} ms: {spent} spent, well short of {bound}"
        );
    }
    assert_eq!(spent, 24_000_000, "the day ends at its budget");
    assert!(
        paced > 0,
        "the hot path held no win back (loss reason 1002)"
    );
    let v = until_spent_today(&ex, 24_000_000).await;
    assert_eq!(v["status"], "exhausted", "{v}");
    ex.shutdown().await;
}
