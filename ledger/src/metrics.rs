//! The ledger's metrics listener: `GET /metrics` (Prometheus text) and
//! `GET /healthz`, served by `exchange ledger` on `[ledger] metrics_addr`.
//!
//! Nothing here runs on the batch loop. The loop only bumps the counters of
//! [`LedgerStats`] and records each committed batch's commit lag
//! ([`CommitLag`], one lock per batch). Two samplers run beside it:
//!
//! - consumer lag, every [`LAG_INTERVAL`]: the high watermark of each
//!   partition (a metadata-only Kafka client of its own, on the blocking
//!   pool) minus the next offset stored in the database (the low watermark
//!   when none is stored, since the ledger starts there);
//! - spend per account, every [`SPEND_INTERVAL`]: `SUM(spent_micros)` of
//!   `account_spend` per account.
//!
//! A scrape renders the last samples and the counters; it never touches
//! Kafka or the database.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{LedgerStats, Store};

/// How often the consumer lag is sampled.
pub const LAG_INTERVAL: Duration = Duration::from_secs(1);
/// How often the spend per account is read from the database.
pub const SPEND_INTERVAL: Duration = Duration::from_secs(3);
/// Upper bounds (ms) of the commit-lag histogram's buckets; `+Inf` follows.
const LAG_BUCKETS_MS: [u64; 15] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 3_600_000,
];
/// Longest lag the exact (HDR) histogram holds; longer ones are clamped.
const HDR_MAX_MS: u64 = 24 * 3_600_000;

/// Time from an auction (its event's `ts_ms`) to the commit of the batch
/// that applied its debit: Prometheus buckets for `/metrics`, and an HDR
/// histogram (ms, 3 significant digits) for exact percentiles in reports.
#[derive(Debug)]
pub struct CommitLag {
    buckets: [AtomicU64; LAG_BUCKETS_MS.len()],
    count: AtomicU64,
    sum_ms: AtomicU64,
    hdr: Mutex<Histogram<u64>>,
}

impl Default for CommitLag {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ms: AtomicU64::new(0),
            // Bounds are constants that hdrhistogram accepts.
            hdr: Mutex::new(
                Histogram::new_with_bounds(1, HDR_MAX_MS, 3).expect("valid histogram bounds"),
            ),
        }
    }
}

impl CommitLag {
    /// Records the lag of every event time in `event_ts_ms` at `now_ms`
    /// (a clock behind the producer's counts as 0).
    pub fn record(&self, now_ms: i64, event_ts_ms: impl IntoIterator<Item = i64>) {
        let mut hdr = self.hdr.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        let mut sum = 0;
        for ts in event_ts_ms {
            let lag = u64::try_from(now_ms.saturating_sub(ts)).unwrap_or(0);
            for (i, le) in LAG_BUCKETS_MS.iter().enumerate() {
                if lag <= *le {
                    self.buckets[i].fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            hdr.saturating_record(lag.min(HDR_MAX_MS));
            n += 1;
            sum += lag;
        }
        self.count.fetch_add(n, Ordering::Relaxed);
        self.sum_ms.fetch_add(sum, Ordering::Relaxed);
    }

    /// Lags recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The lag at quantile `q` (0..=1) in ms; 0 when nothing was recorded.
    pub fn quantile_ms(&self, q: f64) -> u64 {
        let hdr = self.hdr.lock().unwrap_or_else(|p| p.into_inner());
        if hdr.is_empty() {
            0
        } else {
            hdr.value_at_quantile(q)
        }
    }

    /// The largest lag recorded, in ms.
    pub fn max_ms(&self) -> u64 {
        self.hdr.lock().unwrap_or_else(|p| p.into_inner()).max()
    }

    fn encode(&self, out: &mut String) {
        let name = "rtb_ledger_commit_lag_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from an auction (event ts_ms) to the commit of its debit's batch."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, le) in LAG_BUCKETS_MS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cumulative}", seconds(*le));
        }
        // Read after the buckets: a concurrent record never makes +Inf
        // smaller than the last bucket.
        let count = self.count().max(cumulative);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            seconds(self.sum_ms.load(Ordering::Relaxed))
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// `ms` as seconds, printed exactly (`0.005`, `2.5`, `60`).
fn seconds(ms: u64) -> String {
    let (s, frac) = (ms / 1_000, ms % 1_000);
    if frac == 0 {
        s.to_string()
    } else {
        format!("{s}.{frac:03}").trim_end_matches('0').to_owned()
    }
}

/// What `/metrics` shows: the ledger's counters and the samplers' results.
#[derive(Debug)]
pub struct LedgerMetrics {
    stats: Arc<LedgerStats>,
    /// Partition → messages not yet applied (last sample).
    lag: Mutex<BTreeMap<i32, i64>>,
    /// Account → micros spent, all days (last sample).
    spend: Mutex<BTreeMap<String, i64>>,
    /// Budgeted account → (remaining, leased) micros today (last sample).
    budgets: Mutex<BTreeMap<String, (i64, i64)>>,
}

impl LedgerMetrics {
    /// Metrics over `stats` (the running ledger's counters), with no samples yet.
    pub fn new(stats: Arc<LedgerStats>) -> Self {
        Self {
            stats,
            lag: Mutex::new(BTreeMap::new()),
            spend: Mutex::new(BTreeMap::new()),
            budgets: Mutex::new(BTreeMap::new()),
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        let s = &self.stats;
        let counters = [
            ("batches", "Batches committed", &s.batches),
            (
                "messages",
                "Messages committed (applied, skipped or dead-lettered)",
                &s.messages,
            ),
            ("debits", "Debits applied", &s.debits),
            (
                "duplicates",
                "Duplicate debits ignored (already applied)",
                &s.duplicates,
            ),
            (
                "dead_letters",
                "Messages sent to the dead-letter topic",
                &s.dead_letters,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(out, "# HELP rtb_ledger_{name}_total {help}.");
            let _ = writeln!(out, "# TYPE rtb_ledger_{name}_total counter");
            let _ = writeln!(out, "rtb_ledger_{name}_total {}", c.load(Ordering::Relaxed));
        }
        s.commit_lag.encode(&mut out);
        let _ = writeln!(
            out,
            "# HELP rtb_ledger_consumer_lag Messages of a partition not yet applied (high watermark minus the stored next offset)."
        );
        let _ = writeln!(out, "# TYPE rtb_ledger_consumer_lag gauge");
        for (p, lag) in lock(&self.lag).iter() {
            let _ = writeln!(out, "rtb_ledger_consumer_lag{{partition=\"{p}\"}} {lag}");
        }
        let _ = writeln!(
            out,
            "# HELP rtb_budget_spent_micros_total Micros debited per budget account (account_spend, all days); campaigns without a budget, and accounts past 193 bytes or outside [A-Za-z0-9._:/-], are summed in account=\"other\"."
        );
        let _ = writeln!(out, "# TYPE rtb_budget_spent_micros_total counter");
        let budgets = lock(&self.budgets);
        // Only budgeted accounts and bidders (seat accounts) get a series of
        // their own: campaign ids come from bids, so without this a bidder
        // could create any number of series.
        let sampled = lock(&self.spend);
        let spend = fold(sampled.iter().map(|(account, micros)| {
            let own = budgets.contains_key(account) || !account.contains('/');
            (if own { account.as_str() } else { OTHER_LABEL }, *micros)
        }));
        for (account, micros) in &spend {
            let _ = writeln!(
                out,
                "rtb_budget_spent_micros_total{{account=\"{}\"}} {micros}",
                escape_label(account)
            );
        }
        let gauges = [
            (
                "remaining",
                "Budget neither spent nor leased to an exchange, per budgeted account (the tighter of daily and total).",
            ),
            (
                "leased",
                "Budget leased to exchanges and not yet debited, per budgeted account.",
            ),
        ];
        for (i, (name, help)) in gauges.into_iter().enumerate() {
            let _ = writeln!(out, "# HELP rtb_budget_{name}_micros {help}");
            let _ = writeln!(out, "# TYPE rtb_budget_{name}_micros gauge");
            let values = fold(budgets.iter().map(|(account, (remaining, leased))| {
                (account.as_str(), if i == 0 { *remaining } else { *leased })
            }));
            for (account, v) in &values {
                let _ = writeln!(
                    out,
                    "rtb_budget_{name}_micros{{account=\"{}\"}} {v}",
                    escape_label(account)
                );
            }
        }
        out
    }

    /// Starts both samplers; they stop when `stop` turns true.
    pub fn spawn_samplers(
        self: &Arc<Self>,
        bootstrap: &str,
        topic: &str,
        store: Store,
        stop: watch::Receiver<bool>,
    ) -> Result<Vec<JoinHandle<()>>, rdkafka::error::KafkaError> {
        // Metadata and watermarks only: no group, no subscription.
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()?;
        let client = Arc::new(client);
        let lag = tokio::spawn(lag_loop(
            self.clone(),
            client,
            topic.to_owned(),
            store.clone(),
            stop.clone(),
        ));
        let spend = tokio::spawn(spend_loop(self.clone(), store, stop));
        Ok(vec![lag, spend])
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Longest label value that gets a series of its own; longer ones are
/// folded into [`OTHER_LABEL`]. It is the longest account key a budget can
/// be set on (a bidder name of at most 64 bytes, `/`, a `cid` of at most 128
/// through the admin API), so a budgeted account in the charset keeps its
/// series; a 1 MB `cid` from a bid does not get one.
pub(crate) const MAX_LABEL_BYTES: usize = 64 + 1 + 128;
/// The label value that values past the bound (and, for spend, campaigns
/// without a budget) are folded into.
pub(crate) const OTHER_LABEL: &str = "other";

/// `v` when it is 1 to [`MAX_LABEL_BYTES`] bytes of `[A-Za-z0-9._:/-]`, else
/// [`OTHER_LABEL`]: label values that come from bidders (campaign ids in
/// budget accounts) cannot create long series names or break the format.
pub(crate) fn bounded_label(v: &str) -> &str {
    let ok = !v.is_empty()
        && v.len() <= MAX_LABEL_BYTES
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'));
    if ok {
        v
    } else {
        OTHER_LABEL
    }
}

/// Sums `(label, value)` pairs by their [`bounded_label`], in label order
/// (saturating: a fold of many accounts cannot overflow).
pub fn fold<'a>(pairs: impl IntoIterator<Item = (&'a str, i64)>) -> BTreeMap<&'a str, i64> {
    let mut out: BTreeMap<&str, i64> = BTreeMap::new();
    for (label, v) in pairs {
        let sum = out.entry(bounded_label(label)).or_insert(0);
        *sum = sum.saturating_add(v);
    }
    out
}

/// A label value in the text format: `\`, `"` and newlines escaped (the
/// exchange's own `/metrics` uses it too, for budget accounts).
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Runs `f` every `every` until `stop` turns true.
async fn every<F, Fut>(every: Duration, mut stop: watch::Receiver<bool>, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => f().await,
            _ = stop.changed() => return,
        }
    }
}

async fn lag_loop(
    m: Arc<LedgerMetrics>,
    client: Arc<BaseConsumer>,
    topic: String,
    store: Store,
    stop: watch::Receiver<bool>,
) {
    every(LAG_INTERVAL, stop, || async {
        let c = client.clone();
        let t = topic.clone();
        // librdkafka's metadata calls block: off the runtime's workers.
        let marks = tokio::task::spawn_blocking(move || watermarks(&c, &t)).await;
        let marks = match marks {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "ledger metrics: watermarks unavailable");
                return;
            }
            Err(_) => return,
        };
        let stored = match store.offsets(&topic).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "ledger metrics: stored offsets unavailable");
                return;
            }
        };
        let lag = marks
            .into_iter()
            .map(|(p, (low, high))| {
                let next = stored.get(&p).copied().unwrap_or(low).max(low);
                (p, (high - next).max(0))
            })
            .collect();
        *lock(&m.lag) = lag;
    })
    .await;
}

/// Partition → (low, high) watermark of every partition of `topic`.
fn watermarks(
    c: &BaseConsumer,
    topic: &str,
) -> Result<BTreeMap<i32, (i64, i64)>, rdkafka::error::KafkaError> {
    let timeout = Duration::from_secs(2);
    let md = c.fetch_metadata(Some(topic), timeout)?;
    let mut out = BTreeMap::new();
    for t in md.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            out.insert(p.id(), c.fetch_watermarks(topic, p.id(), timeout)?);
        }
    }
    Ok(out)
}

async fn spend_loop(m: Arc<LedgerMetrics>, store: Store, stop: watch::Receiver<bool>) {
    every(SPEND_INTERVAL, stop, || async {
        match store.spend_by_account().await {
            Ok(s) => *lock(&m.spend) = s,
            Err(e) => tracing::debug!(error = %e, "ledger metrics: spend unavailable"),
        }
        match budget_gauges(&store).await {
            Ok(b) => *lock(&m.budgets) = b,
            Err(e) => tracing::debug!(error = %e, "ledger metrics: budgets unavailable"),
        }
    })
    .await;
}

/// Remaining and leased micros of every budgeted account, today (UTC).
async fn budget_gauges(store: &Store) -> Result<BTreeMap<String, (i64, i64)>, super::LedgerError> {
    let day = super::store::utc_day(super::store::now_ms());
    let mut out = BTreeMap::new();
    for b in store.budgets().await? {
        if let Some(s) = store.budget_status(&b.account, &day).await? {
            out.insert(b.account, (s.remaining_micros, s.leased_micros));
        }
    }
    Ok(out)
}

/// Binds the metrics listener (so a busy or bad address fails the start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/metrics` and `/healthz` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<LedgerMetrics>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

async fn metrics_handler(State(m): State<Arc<LedgerMetrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_print_exactly() {
        assert_eq!(seconds(5), "0.005");
        assert_eq!(seconds(250), "0.25");
        assert_eq!(seconds(2_500), "2.5");
        assert_eq!(seconds(60_000), "60");
        assert_eq!(seconds(0), "0");
    }

    #[test]
    fn commit_lag_buckets_are_cumulative() {
        let lag = CommitLag::default();
        // Lags 3 ms, 40 ms, 40 ms, 7 s; one event from a clock ahead (0).
        lag.record(10_000, [9_997, 9_960, 9_960, 3_000, 10_500]);
        let mut out = String::new();
        lag.encode(&mut out);
        assert!(
            out.contains("rtb_ledger_commit_lag_seconds_bucket{le=\"0.005\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("_bucket{le=\"0.05\"} 4\n"), "{out}");
        assert!(out.contains("_bucket{le=\"5\"} 4\n"), "{out}");
        assert!(out.contains("_bucket{le=\"10\"} 5\n"), "{out}");
        assert!(out.contains("_bucket{le=\"+Inf\"} 5\n"), "{out}");
        assert!(out.contains("_sum 7.083\n"), "{out}");
        assert!(out.contains("_count 5\n"), "{out}");
        assert_eq!(lag.quantile_ms(0.5), 40);
        // 3 significant digits: 7 s is held to within a few ms.
        assert!((7_000..7_010).contains(&lag.max_ms()), "{}", lag.max_ms());
    }

    /// Every sample line of `text` is `name{account="[A-Za-z0-9._:/-]+"} value`
    /// or has no labels, and no line is long; returns the account samples.
    fn account_samples(text: &str, name: &str) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            assert!(line.len() <= 400, "a {}-byte line", line.len());
            if line.starts_with('#') || !line.starts_with(name) {
                continue;
            }
            let rest = &line[name.len()..];
            let (labels, value) = rest.rsplit_once(' ').expect(line);
            let account = labels
                .strip_prefix("{account=\"")
                .and_then(|l| l.strip_suffix("\"}"))
                .unwrap_or_else(|| panic!("bad labels in {line:?}"));
            assert_eq!(bounded_label(account), account, "{line:?}");
            let prev = out.insert(account.to_owned(), value.parse::<i64>().expect(line));
            assert!(prev.is_none(), "{account} twice in:\n{text}");
        }
        out
    }

    #[test]
    fn bidder_controlled_accounts_are_bounded_and_folded() {
        let m = LedgerMetrics::new(Arc::new(LedgerStats::default()));
        let huge = format!("alpha/{}", "x".repeat(1 << 20));
        let quotes = "alpha/a\"b\nc\\d} 1\nfake_metric 9".to_owned();
        {
            let mut spend = lock(&m.spend);
            spend.insert("alpha".into(), 1);
            spend.insert("alpha/c1".into(), 10);
            spend.insert("alpha/c2".into(), 100);
            spend.insert(huge.clone(), 1_000);
            spend.insert(quotes.clone(), 10_000);
            spend.insert("other".into(), 100_000);
            spend.insert("beta/bad key".into(), 1_000_000);
        }
        {
            let mut b = lock(&m.budgets);
            b.insert("alpha".into(), (5, 6));
            b.insert("alpha/c1".into(), (50, 60));
            // Budgeted, but past the bound: folded too.
            b.insert(huge.clone(), (500, 600));
            b.insert("beta/bad key".into(), (5_000, 6_000));
        }
        let text = m.encode();
        assert!(!text.contains("fake_metric"), "{text}");
        assert!(!text.contains("xxxxxxxx"), "{text}");
        let spent = account_samples(&text, "rtb_budget_spent_micros_total");
        // Seats and budgeted campaigns keep their series; campaigns without
        // a budget, and anything out of bounds, sum into `other` (with a
        // seat named `other`, if there is one).
        assert_eq!(
            spent,
            BTreeMap::from([
                ("alpha".to_owned(), 1),
                ("alpha/c1".to_owned(), 10),
                (
                    "other".to_owned(),
                    100 + 1_000 + 10_000 + 100_000 + 1_000_000
                ),
            ]),
            "{text}"
        );
        let remaining = account_samples(&text, "rtb_budget_remaining_micros");
        assert_eq!(
            remaining,
            BTreeMap::from([
                ("alpha".to_owned(), 5),
                ("alpha/c1".to_owned(), 50),
                ("other".to_owned(), 5_500),
            ])
        );
        let leased = account_samples(&text, "rtb_budget_leased_micros");
        assert_eq!(leased.get("other"), Some(&6_600));
    }

    #[test]
    fn label_bounds() {
        assert_eq!(bounded_label("alpha/cmp-1.a_b:c"), "alpha/cmp-1.a_b:c");
        assert_eq!(
            bounded_label(&"a".repeat(MAX_LABEL_BYTES)),
            "a".repeat(MAX_LABEL_BYTES)
        );
        assert_eq!(bounded_label(&"a".repeat(MAX_LABEL_BYTES + 1)), "other");
        for bad in ["", "a b", "a\"b", "a\nb", "a\\b", "é", "a{b}", "a=b"] {
            assert_eq!(bounded_label(bad), "other", "{bad:?}");
        }
        let folded = fold([("a", i64::MAX), ("b c", 1), ("d e", i64::MAX)]);
        assert_eq!(folded.get("other"), Some(&i64::MAX));
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
