//! Money faults of the budget leases, against a real SQLite ledger
//! database: a price that once did not fit, a budget lowered while a lease
//! is held, a budget known before it is written, and unique instance ids.

use std::sync::Arc;
use std::time::Duration;

use rtb_exchange::budget::Leased;
use rtb_exchange::budget::{
    day_of, BudgetConfig, BudgetRow, Budgets, Clock, ManualClock, Pacing, Refusal,
};
use rtb_exchange::events::LedgerConfig;
use rtb_ledger::store::utc_day;
use rtb_ledger::{Debit, Entry, Store};
use tokio::sync::watch;

/// 2026-11-23 12:00 UTC.
const NOON: i64 = 1_795_435_200_000;

fn row(total: i64) -> BudgetRow {
    BudgetRow {
        account: "alpha".into(),
        bidder: "alpha".into(),
        cid: None,
        daily_micros: None,
        total_micros: Some(total),
        currency: "USD".into(),
        start_ms: None,
        end_ms: None,
        pacing: Pacing::Asap,
    }
}

async fn store(dir: &std::path::Path) -> Store {
    Store::open(&LedgerConfig {
        sqlite_path: dir.join("ledger.sqlite"),
        ..LedgerConfig::default()
    })
    .await
    .unwrap()
}

fn config(fraction: f64) -> BudgetConfig {
    BudgetConfig {
        lease_fraction: fraction,
        min_lease_micros: 1_000_000,
        refill_interval_ms: 20,
        ..BudgetConfig::default()
    }
}

/// A store in `dir` with alpha's total budget `total` (none when 0) and
/// instance "x" started on it at NOON with `cfg`.
async fn start_x(
    dir: &std::path::Path,
    total: i64,
    cfg: BudgetConfig,
) -> (Store, Arc<ManualClock>, Arc<Budgets>) {
    let store = store(dir).await;
    if total > 0 {
        store.put_budget(&row(total), 0).await.unwrap();
    }
    let clock = Arc::new(ManualClock::new(NOON));
    let x = Budgets::start(store.clone(), "x".into(), clock.clone(), cfg)
        .await
        .unwrap();
    (store, clock, x)
}

/// Polls `cond` (bounded), moving `clock` forward 100 ms a time (time
/// passes for the leases too, as it would).
async fn until(clock: &ManualClock, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        clock.advance(100);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// A bid of 5.00 does not fit a budget with 3.00 left: it loses, but the
/// bidder is not turned away for the rest of the day; once the refill task
/// has had a dry answer it asks for an ordinary lease again, and a 1.00 bid
/// is awarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_that_did_not_fit_does_not_block_the_bidder_for_the_day() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, clock, b) = start_x(dir.path(), 3_000_000, config(1.0)).await;
    let day = day_of(NOON);
    assert_eq!(b.blocked("alpha", day, "USD"), None, "leased at start");
    assert!(
        b.reserve("alpha", None, 5_000_000, day, "USD").is_err(),
        "5.00 does not fit"
    );
    let (stop, rx) = watch::channel(false);
    let task = b.spawn_refill(rx);
    until(&clock, "the bidder is called again", || {
        b.blocked("alpha", day_of(clock.now_ms()), "USD").is_none()
    })
    .await;
    assert!(b
        .reserve("alpha", None, 1_000_000, day_of(clock.now_ms()), "USD")
        .is_ok());
    let _ = stop.send(true);
    task.await.unwrap();
}

/// A lowered budget revokes the lease at once: nothing more is awarded from
/// the old grant, and what is awarded afterwards stays within the new limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_a_budget_revokes_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _clock, b) = start_x(dir.path(), 10_000_000, config(0.5)).await;
    let day = day_of(NOON);
    // The first lease holds 5.00; 1.00 of it is awarded.
    assert!(b.reserve("alpha", None, 1_000_000, day, "USD").is_ok());
    store.put_budget(&row(2_000_000), NOON).await.unwrap();
    b.reload().await.unwrap();
    assert!(
        b.reserve("alpha", None, 100_000, day, "USD").is_err(),
        "nothing more from a revoked lease"
    );
    let s = store
        .budget_status("alpha", &utc_day(NOON))
        .await
        .unwrap()
        .unwrap();
    // The database still counts the old grant as outstanding until this
    // instance gives it back with what it awarded (fail closed): nothing is
    // free under the new limit meanwhile.
    assert_eq!(s.remaining_micros, 0, "{s:?}");
    assert_eq!(s.leased_micros, 5_000_000, "{s:?}");
    // Refilled under the new limit: at most 2.00 in all (1.00 awarded before).
    let (stop, rx) = watch::channel(false);
    let task = b.spawn_refill(rx);
    let mut awarded = 1_000_000;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        if b.reserve("alpha", None, 100_000, day, "USD").is_ok() {
            awarded += 100_000;
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let s = store
        .budget_status("alpha", &utc_day(NOON))
        .await
        .unwrap()
        .unwrap();
    assert!(
        awarded <= 2_000_000,
        "{awarded} micros awarded under a budget of 2.00: {s:?}"
    );
    assert!(awarded > 1_000_000, "the new limit's rest is leased again");
    let _ = stop.send(true);
    task.await.unwrap();
}

/// A budget deleted and made again on the same day, on the same instance,
/// keeps what that instance awarded from it: the lease row goes on counting
/// the wins awarded before the delete (their debits may still be on the
/// way), so no later cut-back (a give-back, a revoke, an expiry) frees budget
/// that was already awarded. Before, the new lease started again from
/// nothing awarded and the row forgot the first 3.00, which a give-back then
/// handed out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_made_again_after_a_delete_awards_no_more_than_its_total() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _clock, b) = start_x(dir.path(), 10_000_000, config(0.5)).await;
    let day = day_of(NOON);
    // 3.00 of the first lease (5.00) awarded; the ledger has not debited it.
    let mut awarded = 0;
    for _ in 0..3 {
        assert!(b.reserve("alpha", None, 1_000_000, day, "USD").is_ok());
        awarded += 1_000_000;
    }
    assert!(store.delete_budget("alpha").await.unwrap());
    b.reload().await.unwrap();
    assert!(
        b.reserve("alpha", None, 1_000_000, day, "USD").is_ok(),
        "deleted: not limited (and not from a lease)"
    );
    store.put_budget(&row(10_000_000), NOON).await.unwrap();
    b.reload().await.unwrap();
    // Awarded from leases until nothing is left: small bids, so leases run
    // low, misses give remainders back and grants come again.
    let (stop, rx) = watch::channel(false);
    let task = b.spawn_refill(rx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let price = if awarded % 3 == 0 { 700_000 } else { 100_000 };
        if b.reserve("alpha", None, price, day, "USD").is_ok() {
            awarded += price;
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let _ = stop.send(true);
    task.await.unwrap();
    let s = store
        .budget_status("alpha", &utc_day(NOON))
        .await
        .unwrap()
        .unwrap();
    assert!(
        awarded <= 10_000_000,
        "{awarded} micros awarded from leases under a total of 10.00: {s:?}"
    );
    assert!(awarded > 9_000_000, "the rest is leased again: {awarded}");
}

/// A budget lowered while another replica holds a lease: the lowering does
/// not cut that replica's lease row to its last report (which does not
/// count the wins it awarded since, nor are they debited yet), so a third
/// replica's grant right after the write cannot hand those wins out again.
/// Both award until nothing is left: never more than the new total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_lowered_under_two_replicas_awards_no_more_than_its_total() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock, x) = start_x(dir.path(), 10_000_000, config(0.5)).await;
    let day = day_of(NOON);
    // x holds 5.00 and awards 3.00 of it; its row still reports 0 awarded.
    let mut awarded = 0;
    for _ in 0..3 {
        assert!(x.reserve("alpha", None, 1_000_000, day, "USD").is_ok());
        awarded += 1_000_000;
    }
    // Another replica's admin API lowers the total to 6.00; y starts (and
    // takes its first lease) before x has reloaded.
    store.put_budget(&row(6_000_000), NOON).await.unwrap();
    let y = Budgets::start(store.clone(), "y".into(), clock.clone(), config(0.5))
        .await
        .unwrap();
    let (stop, rx) = watch::channel(false);
    let tasks = [x.spawn_refill(rx.clone()), y.spawn_refill(rx)];
    x.reload().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let mut any = false;
        for b in [&x, &y] {
            if b.reserve("alpha", None, 100_000, day, "USD").is_ok() {
                awarded += 100_000;
                any = true;
            }
        }
        if !any {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let _ = stop.send(true);
    for t in tasks {
        t.await.unwrap();
    }
    let s = store
        .budget_status("alpha", &utc_day(NOON))
        .await
        .unwrap()
        .unwrap();
    assert!(
        awarded <= 6_000_000,
        "{awarded} micros awarded from leases under a total of 6.00: {s:?}"
    );
    assert!(awarded > 5_000_000, "the rest is leased again: {awarded}");
}

/// A budget the admin API is about to write is known at once: no lease
/// yet, so the bidder is neither called nor awarded anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_budget_awards_nothing_before_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let clock = Arc::new(ManualClock::new(NOON));
    let b = Budgets::start(store, "x".into(), clock, config(0.5))
        .await
        .unwrap();
    let day = day_of(NOON);
    assert!(
        b.reserve("alpha", None, 100_000, day, "USD").is_ok(),
        "no budget: not limited"
    );
    b.expect(&row(5_000_000));
    assert!(b.reserve("alpha", None, 100_000, day, "USD").is_err());
    assert_eq!(b.blocked("alpha", day, "USD"), Some(Refusal::Exhausted));
    // Kept by a reload while the write is pending, even though the
    // database does not have it yet.
    b.reload().await.unwrap();
    assert_eq!(b.blocked("alpha", day, "USD"), Some(Refusal::Exhausted));
    assert_eq!(b.blocked("alpha", day, "GBP"), Some(Refusal::Currency));
    b.settle("alpha");
    b.reload().await.unwrap();
    assert_eq!(b.blocked("alpha", day, "USD"), None, "never written: gone");
}

/// Instance ids (in auction ids) carry 128 random bits.
#[test]
fn instance_ids_carry_128_random_bits() {
    let a = rtb_exchange::pipeline::instance_id();
    let b = rtb_exchange::pipeline::instance_id();
    assert_ne!(a, b);
    let random = a.rsplit('-').next().unwrap();
    assert_eq!(random.len(), 32, "{a}");
    assert!(random.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
}

/// A lease whose renewals stop (a stalled database, a long refill pass) is
/// not awarded from past its validity, which ends a safety margin (a third
/// of the TTL) before the database may reclaim it for another instance; so
/// the two instances never hold more than the budget between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_past_its_validity_awards_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    store.put_budget(&row(10_000_000), 0).await.unwrap();
    let clock = Arc::new(ManualClock::new(NOON));
    let cfg = config(1.0);
    let ttl = cfg.lease_ttl_ms as i64;
    let x = Budgets::start(store.clone(), "x".into(), clock.clone(), cfg)
        .await
        .unwrap();
    let day = day_of(NOON);
    assert!(x.reserve("alpha", None, 1_000_000, day, "USD").is_ok());
    // Its last renewal, then none: the database stalls for x.
    store
        .renew("alpha", "x", &utc_day(NOON), NOON + ttl, 1_000_000)
        .await
        .unwrap();
    clock.set(NOON + ttl - x.safety_margin().as_millis() as i64);
    assert!(
        x.reserve("alpha", None, 100_000, day, "USD").is_err(),
        "nothing is awarded from a lease past its validity"
    );
    assert_eq!(x.blocked("alpha", day, "USD"), Some(Refusal::Exhausted));
    // The database reclaims x's rest for y once the row expired.
    let y = store
        .grant(&rtb_exchange::budget::LeaseRequest {
            account: "alpha",
            instance: "y",
            day: &utc_day(NOON),
            now_ms: NOON + ttl + 1,
            awarded_micros: 0,
            release: false,
            need_micros: 0,
            min_micros: 1_000_000,
            fraction: 1.0,
            ttl_ms: ttl,
            pacing_lead_ms: 60_000,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(y.amount, 9_000_000, "all but what x awarded");
    // x's refill gives its lease back and finds nothing free.
    clock.set(NOON + ttl + 2);
    let (stop, rx) = watch::channel(false);
    let task = x.spawn_refill(rx);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(x.reserve("alpha", None, 100_000, day, "USD").is_err());
    let s = store
        .budget_status("alpha", &utc_day(NOON))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.leased_micros, 10_000_000,
        "x's 1.00 awarded and y's 9.00: {s:?}"
    );
    let _ = stop.send(true);
    task.await.unwrap();
}

/// A grant for this instance, made straight in the database: what a grant
/// whose commit went through but whose answer was lost leaves behind.
async fn lost_grant(store: &Store, now_ms: i64, awarded: i64) -> i64 {
    store
        .grant(&rtb_exchange::budget::LeaseRequest {
            account: "alpha",
            instance: "x",
            day: &utc_day(now_ms),
            now_ms,
            awarded_micros: awarded,
            release: false,
            need_micros: 0,
            min_micros: 1_000_000,
            fraction: 0.5,
            ttl_ms: BudgetConfig::default().lease_ttl_ms as i64,
            pacing_lead_ms: BudgetConfig::default().pacing_lead_ms as i64,
        })
        .await
        .unwrap()
        .unwrap()
        .amount
}

/// A resync makes memory agree with the database, both ways: a grant that
/// committed with its answer lost is used, and a lease cut back behind the
/// instance's back caps what it awards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_adopts_what_the_database_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _clock, x) = start_x(dir.path(), 10_000_000, config(0.2)).await;
    let day = day_of(NOON);
    // The first grant: 20 % of 10.00.
    assert!(x.reserve("alpha", None, 2_000_000, day, "USD").is_ok());
    assert!(x.reserve("alpha", None, 10_000, day, "USD").is_err());
    let lost = lost_grant(&store, NOON, 2_000_000).await;
    assert_eq!(lost, 4_000_000, "half of the 8.00 free");
    assert!(
        x.reserve("alpha", None, 10_000, day, "USD").is_err(),
        "memory does not know the lost grant yet"
    );
    assert_eq!(x.resync(NOON).await.unwrap(), 1);
    assert!(x.reserve("alpha", None, 3_000_000, day, "USD").is_ok());
    // Awarded 5.00 of 6.00. The row is cut back to 5.00 behind x's back
    // (as a revoke or an expiry would): x awards nothing more after a resync.
    store
        .release("alpha", "x", &utc_day(NOON), 5_000_000)
        .await
        .unwrap();
    assert_eq!(x.resync(NOON).await.unwrap(), 1);
    assert!(x.reserve("alpha", None, 10_000, day, "USD").is_err());
    let s = store
        .budget_status("alpha", &utc_day(NOON))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.leased_micros, 5_000_000, "{s:?}");
}

/// A grant that times out (the database locked for longer than the call's
/// time budget) makes the next refill pass read the leases back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_grant_is_followed_by_a_resync() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BudgetConfig {
        lease_ttl_ms: 1_200,
        ..config(0.2)
    };
    let (_store, clock, x) = start_x(dir.path(), 10_000_000, cfg).await;
    let day = day_of(NOON);
    assert!(x.reserve("alpha", None, 2_000_000, day, "USD").is_ok());
    let resyncs = |b: &Budgets| {
        let mut text = String::new();
        b.encode_prometheus(&mut text);
        text.lines()
            .find_map(|l| l.strip_prefix("rtb_budget_lease_resyncs_total "))
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(resyncs(&x), 0);
    // Another connection holds SQLite's write lock for 1.5 s: the grant
    // the refill task asks for (the lease is empty) waits past its 400 ms.
    let lock = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("ledger.sqlite")),
        )
        .await
        .unwrap();
    let mut tx = lock.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("UPDATE budget_accounts SET updated_ms = updated_ms")
        .execute(&mut *tx)
        .await
        .unwrap();
    let (stop, rx) = watch::channel(false);
    let task = x.spawn_refill(rx);
    assert!(x.reserve("alpha", None, 1_000_000, day, "USD").is_err());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    tx.rollback().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while resyncs(&x) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no resync");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Afterwards grants go on as usual.
    until(&clock, "a new grant", || {
        x.reserve("alpha", None, 1_000_000, day, "USD").is_ok()
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
}

/// A debit of instance x for alpha, paid from the leases `leased` says.
fn debit(n: u32, amount: i64, leased: Leased) -> Entry {
    Entry {
        partition: 0,
        offset: n as i64,
        debits: vec![Debit {
            auction_id: format!("x-{n}"),
            imp_id: "1".into(),
            account: "alpha".into(),
            seat: "alpha".into(),
            cid: None,
            amount_micros: amount,
            currency: "USD".into(),
            event_ts: NOON,
            request_id: None,
            exchange_instance: Some("x".into()),
            leased: Some(leased),
        }],
    }
}

/// A win awarded while alpha had no budget was paid from no lease; when
/// its debit reaches the ledger after a budget (and a lease of x) exists,
/// it is spend but must not shrink x's lease row. It did (the ledger
/// debited every lease row of the account): outstanding read too low, and
/// the next grant handed out again what x still held (the budget-crud row
/// of the fault matrix, 10 to 22 units overspent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_win_awarded_before_the_budget_existed_is_not_debited_from_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock, x) = start_x(dir.path(), 0, config(0.5)).await;
    let day = day_of(NOON);
    let free = x.reserve("alpha", None, 3_000_000, day, "USD");
    assert_eq!(free, Ok(Leased::NONE), "no budget: paid from no lease");
    store.put_budget(&row(10_000_000), NOON).await.unwrap();
    x.reload().await.unwrap();
    let (stop, rx) = watch::channel(false);
    let task = x.spawn_refill(rx);
    let paid = {
        let mut paid = None;
        until(&clock, "a lease for alpha", || {
            paid = x.reserve("alpha", None, 1_000_000, day, "USD").ok();
            paid.is_some()
        })
        .await;
        paid.unwrap()
    };
    assert_eq!(
        paid,
        Leased {
            seat: true,
            campaign: false
        }
    );
    let _ = stop.send(true);
    task.await.unwrap();
    let status = || async {
        store
            .budget_status("alpha", &utc_day(NOON))
            .await
            .unwrap()
            .unwrap()
    };
    let held = status().await.leased_micros;
    assert!(held >= 1_000_000, "x holds a lease: {:?}", status().await);
    store
        .apply("t", &[debit(0, 3_000_000, free.unwrap())])
        .await
        .unwrap();
    let s = status().await;
    assert_eq!(
        s.spent_total_micros, 3_000_000,
        "the free win is spend: {s:?}"
    );
    assert_eq!(
        s.leased_micros, held,
        "and leaves x's lease as it was: {s:?}"
    );
    store
        .apply("t", &[debit(1, 1_000_000, paid)])
        .await
        .unwrap();
    let s = status().await;
    assert_eq!(s.spent_total_micros, 4_000_000, "{s:?}");
    assert_eq!(
        s.leased_micros,
        held - 1_000_000,
        "the leased win moves from the lease to spend: {s:?}"
    );
    assert_eq!(
        s.remaining_micros,
        10_000_000 - s.spent_total_micros - s.leased_micros,
        "{s:?}"
    );
}

/// Events older than schema v3 carry no `leased`: their debits go to every
/// lease row of the accounts, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_without_leases_debits_the_accounts_leases_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _clock, x) = start_x(dir.path(), 10_000_000, config(0.5)).await;
    let day = day_of(NOON);
    assert!(x.reserve("alpha", None, 1_000_000, day, "USD").is_ok());
    let held = store
        .budget_status("alpha", &utc_day(NOON))
        .await
        .unwrap()
        .unwrap()
        .leased_micros;
    let mut old = debit(0, 1_000_000, Leased::NONE);
    old.debits[0].leased = None;
    store.apply("t", &[old]).await.unwrap();
    let s = store
        .budget_status("alpha", &utc_day(NOON))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.leased_micros, held - 1_000_000, "{s:?}");
}
