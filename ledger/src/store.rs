//! The ledger's database: PostgreSQL or SQLite through sqlx, the same SQL
//! for both (`$n` placeholders and `ON CONFLICT` work in each).
//!
//! One transaction per batch holds the debits, the spend per account and day,
//! and the consumer's next offsets. Inside it, messages below the stored
//! offset are skipped (another ledger, or this one before a crash, already
//! applied them) and a debit that already exists is not applied again; both
//! guards together give each debit exactly one effect.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::Duration;

use rtb_proto::events::Leased;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use super::LedgerError;
use crate::config::LedgerConfig;

/// One debit, from one imp's winner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debit {
    /// Auction (`BidRequest.id`).
    pub auction_id: String,
    /// Imp id.
    pub imp_id: String,
    /// Budget account charged.
    pub account: String,
    /// Winning seat.
    pub seat: String,
    /// Campaign id, if the bid named one.
    pub cid: Option<String>,
    /// Clearing price in micros.
    pub amount_micros: i64,
    /// Currency of the amount.
    pub currency: String,
    /// Event time, ms since epoch.
    pub event_ts: i64,
    /// `BidRequest.id` of the auction (schema v2 events).
    pub request_id: Option<String>,
    /// Exchange instance whose budget lease the win was awarded from.
    pub exchange_instance: Option<String>,
    /// Which of that instance's leases paid (schema v3 events); `None` for
    /// older events, whose debits go to every lease row of the accounts.
    pub leased: Option<Leased>,
}

impl Debit {
    /// The lease accounts (of [`Debit::exchange_instance`]) this debit is
    /// taken from: the ones the exchange reserved the win from, or for an
    /// event older than schema v3 both the account and the seat (where a
    /// lease row exists; rows that do not are untouched).
    pub fn lease_accounts(&self) -> impl Iterator<Item = &str> {
        let own = self.account != self.seat;
        // The campaign's lease is the account's when the bid named one; a
        // win without a campaign is charged to the seat's lease alone.
        let (account, seat) = match self.leased {
            None => (true, own),
            Some(l) if own => (l.campaign, l.seat),
            Some(l) => (l.seat, false),
        };
        [
            account.then_some(self.account.as_str()),
            seat.then_some(self.seat.as_str()),
        ]
        .into_iter()
        .flatten()
    }
}

/// One consumed message, decoded (or not: then it has no debits).
#[derive(Debug, Clone)]
pub struct Entry {
    /// Kafka partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Its debits (none for no-winner events and dead letters).
    pub debits: Vec<Debit>,
}

/// What one batch changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Debits inserted.
    pub debits: u64,
    /// Debits that already existed (duplicate events).
    pub duplicates: u64,
    /// Messages below the stored offset (already applied).
    pub skipped: u64,
}

impl std::ops::AddAssign for Applied {
    fn add_assign(&mut self, o: Applied) {
        self.debits += o.debits;
        self.duplicates += o.duplicates;
        self.skipped += o.skipped;
    }
}

/// The database.
#[derive(Debug, Clone)]
pub enum Store {
    /// PostgreSQL (`ledger.database_url`).
    Postgres(PgPool),
    /// SQLite (`ledger.sqlite_path`).
    Sqlite(SqlitePool),
}

/// Runs the same body against either pool; sqlx's query builders are
/// generic, so one text serves both backends.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::Store::Postgres($pool) => $body,
            $crate::Store::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Opens a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`:
/// the write lock is taken at the start, where the busy timeout waits for
/// it. A deferred transaction that reads first and writes later fails at
/// once with `database is locked` when another connection committed in
/// between (SQLite cannot upgrade a stale read snapshot, and does not call
/// the busy handler for it); the ledger, the budget grants and the registry
/// write to one file concurrently. PostgreSQL has row locks: a plain BEGIN.
pub(crate) trait BeginWrite {
    /// The pool's database.
    type Db: sqlx::Database;
    /// A transaction that holds the write lock from its first statement on
    /// SQLite; a plain one on PostgreSQL.
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send;
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send {
        self.begin()
    }
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

/// Stored positions of one log epoch (see [`Store::offsets_at`]).
const SELECT_OFFSETS: &str = r#"SELECT "partition", next_offset FROM ledger_offsets
    WHERE topic = $1 AND log_epoch = $2"#;
/// Rows per multi-row insert: 10 parameters a debit stay far below SQLite's
/// 32,766 and PostgreSQL's 65,535 bound parameters.
const INSERT_CHUNK: usize = 1_000;
const UPSERT_OFFSET: &str = r#"INSERT INTO ledger_offsets (topic, "partition", next_offset, log_epoch)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (topic, "partition") DO UPDATE SET next_offset = excluded.next_offset,
    log_epoch = excluded.log_epoch"#;
/// The largest debit accepted, in micros: one million currency units for one
/// impression is far above any real CPM price, and sums of a batch's debits
/// stay far below `i64::MAX`. A larger amount is a dead letter.
pub const MAX_DEBIT_MICROS: i64 = 1_000_000 * 1_000_000;
/// A debit moves from the instance's lease to spend (outstanding is granted
/// minus debited). Applied to the campaign's lease and the bidder's,
/// whichever exist (summed per lease in the batch).
const DEBIT_LEASE: &str = "UPDATE budget_leases SET debited_micros = debited_micros + $1
    WHERE instance = $2 AND day = $3 AND account = $4";

impl Store {
    /// Connects (PostgreSQL when `database_url` is set, else SQLite, creating
    /// the file) and runs the ledger's migrations.
    pub async fn open(cfg: &LedgerConfig) -> Result<Store, LedgerError> {
        let store = match &cfg.database_url {
            Some(url) => Store::Postgres(
                PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?,
            ),
            None => {
                if let Some(dir) = cfg
                    .sqlite_path
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        LedgerError::Config(format!("ledger.sqlite_path: {}: {e}", dir.display()))
                    })?;
                }
                let shown = std::path::absolute(&cfg.sqlite_path)
                    .unwrap_or_else(|_| cfg.sqlite_path.clone());
                // The default is a file in the working directory that keeps
                // spend and offsets between runs: say which one.
                tracing::info!(path = %shown.display(), "ledger database: SQLite file");
                let options = SqliteConnectOptions::from_str("sqlite:")?
                    .filename(&cfg.sqlite_path)
                    .create_if_missing(true)
                    // WAL: readers (reports, tests) do not block the writer.
                    // Its default `synchronous = NORMAL` may lose the last
                    // commits on power loss, but offsets roll back with their
                    // debits, so they are consumed again: nothing is lost.
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10));
                Store::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(4)
                        .connect_with(options)
                        .await?,
                )
            }
        };
        // Two processes migrating a fresh database at once (two ledgers, a
        // ledger and a report) race on the migrations table; SQLite has no
        // migration lock. The loser's retry finds the work done.
        let mut attempt = 0;
        loop {
            match store.migrate().await {
                Ok(()) => return Ok(store),
                Err(e) if attempt < 3 => {
                    tracing::warn!(error = %e, "ledger migrations raced; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn migrate(&self) -> Result<(), LedgerError> {
        // Other components may keep their own migrations in the same
        // database: versions the ledger does not know are not an error.
        match self {
            Store::Postgres(pool) => {
                let mut m = sqlx::migrate!("migrations/ledger-postgres");
                m.set_ignore_missing(true);
                m.run(pool).await?;
            }
            Store::Sqlite(pool) => {
                let mut m = sqlx::migrate!("migrations/ledger-sqlite");
                m.set_ignore_missing(true);
                m.run(pool).await?;
            }
        }
        Ok(())
    }

    /// The stored next offsets of `topic` for the log epoch `epoch` (the
    /// broker's identity: a random id per start of the in-memory embedded
    /// cluster, empty for real brokers, whose log outlives restarts).
    /// Offsets stored for another epoch are ignored: that log is gone, and
    /// the new one starts at 0 again.
    pub async fn offsets_at(
        &self,
        topic: &str,
        epoch: &str,
    ) -> Result<HashMap<i32, i64>, LedgerError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(SELECT_OFFSETS).bind(topic).bind(epoch).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<i32, _>(0)?, r.try_get::<i64, _>(1)?)))
                .collect()
        })
    }

    /// The stored next offset of every partition of `topic` (any epoch).
    pub async fn offsets(&self, topic: &str) -> Result<HashMap<i32, i64>, LedgerError> {
        let sql = r#"SELECT "partition", next_offset FROM ledger_offsets WHERE topic = $1"#;
        on_pool!(self, pool => {
            let rows = sqlx::query(sql).bind(topic).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<i32, _>(0)?, r.try_get::<i64, _>(1)?)))
                .collect()
        })
    }

    /// Applies a batch of consumed messages of `topic` in one transaction:
    /// debits, spend, lease debits, and the next offsets.
    ///
    /// Set-based: the debits go in multi-row inserts that return the rows
    /// actually inserted (a duplicate returns nothing), and spend and lease
    /// debits are summed per key in memory and written once per key. The
    /// round trips per batch are a handful, not two per debit.
    pub async fn apply(&self, topic: &str, entries: &[Entry]) -> Result<Applied, LedgerError> {
        self.apply_at(topic, "", entries).await
    }

    /// [`apply`](Self::apply) for the log epoch `epoch` (see
    /// [`offsets_at`](Self::offsets_at)): positions of another epoch count
    /// as none, and the batch's positions replace them.
    ///
    /// Sums are checked: a batch whose spend or lease debits would overflow
    /// is refused ([`LedgerError::Refused`]) before anything is written, as
    /// the database refuses a sum that overflows its column; the batch loop
    /// then splits the batch to find the event at fault.
    pub async fn apply_at(
        &self,
        topic: &str,
        epoch: &str,
        entries: &[Entry],
    ) -> Result<Applied, LedgerError> {
        let mut applied = Applied::default();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // Stored positions, read inside the transaction that moves them.
            let rows = sqlx::query(SELECT_OFFSETS)
                .bind(topic)
                .bind(epoch)
                .fetch_all(&mut *tx)
                .await?;
            let mut stored: HashMap<i32, i64> = HashMap::new();
            for r in &rows {
                stored.insert(r.try_get::<i32, _>(0)?, r.try_get::<i64, _>(1)?);
            }
            let mut next: HashMap<i32, i64> = HashMap::new();
            let mut fresh: Vec<&Debit> = Vec::new();
            // (auction id, imp id) → index in `fresh`.
            let mut index: HashMap<(&str, &str), usize> = HashMap::new();
            for e in entries {
                let at = stored.get(&e.partition).copied().unwrap_or(0);
                let n = next.entry(e.partition).or_insert(at);
                if e.offset < at {
                    applied.skipped += 1;
                    continue;
                }
                for d in &e.debits {
                    // The same debit twice in one batch: the second is a duplicate.
                    match index.entry((d.auction_id.as_str(), d.imp_id.as_str())) {
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(fresh.len());
                            fresh.push(d);
                        }
                        std::collections::hash_map::Entry::Occupied(_) => applied.duplicates += 1,
                    }
                }
                *n = (*n).max(e.offset + 1);
            }
            let mut inserted = vec![false; fresh.len()];
            for chunk in fresh.chunks(INSERT_CHUNK) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO debits (auction_id, imp_id, account, seat, cid, amount_micros, \
                     currency, event_ts, request_id, exchange_instance) ",
                );
                q.push_values(chunk, |mut b, d| {
                    b.push_bind(&d.auction_id)
                        .push_bind(&d.imp_id)
                        .push_bind(&d.account)
                        .push_bind(&d.seat)
                        .push_bind(&d.cid)
                        .push_bind(d.amount_micros)
                        .push_bind(&d.currency)
                        .push_bind(d.event_ts)
                        .push_bind(&d.request_id)
                        .push_bind(&d.exchange_instance);
                });
                q.push(" ON CONFLICT (auction_id, imp_id) DO NOTHING RETURNING auction_id, imp_id");
                for r in q.build().fetch_all(&mut *tx).await? {
                    let key: (String, String) = (r.try_get(0)?, r.try_get(1)?);
                    if let Some(&i) = index.get(&(key.0.as_str(), key.1.as_str())) {
                        inserted[i] = true;
                    }
                }
            }
            // Spend per (account, day) and lease debits per (instance, day,
            // lease account), for the debits actually inserted.
            let mut spend: BTreeMap<(&str, String), i64> = BTreeMap::new();
            let mut leases: BTreeMap<(&str, String, &str), i64> = BTreeMap::new();
            for (d, inserted) in fresh.iter().zip(&inserted) {
                if !inserted {
                    applied.duplicates += 1;
                    continue;
                }
                applied.debits += 1;
                let day = utc_day(d.event_ts);
                let overflow = |what: &str, key: &str| {
                    LedgerError::Refused(format!(
                        "{what} of {key:?} on {day} overflows with debit {}/{} ({} micros)",
                        d.auction_id, d.imp_id, d.amount_micros
                    ))
                };
                if let Some(instance) = &d.exchange_instance {
                    for account in d.lease_accounts() {
                        let l = leases.entry((instance, day.clone(), account)).or_default();
                        *l = l.checked_add(d.amount_micros).ok_or_else(|| overflow("lease debit", account))?;
                    }
                }
                let e = spend.entry((&d.account, day.clone())).or_default();
                *e = e.checked_add(d.amount_micros).ok_or_else(|| overflow("spend", &d.account))?;
            }
            let spend: Vec<_> = spend.into_iter().collect();
            for chunk in spend.chunks(INSERT_CHUNK) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO account_spend (account, day, spent_micros) ",
                );
                q.push_values(chunk, |mut b, ((account, day), micros)| {
                    b.push_bind(*account).push_bind(day).push_bind(*micros);
                });
                q.push(
                    " ON CONFLICT (account, day) DO UPDATE SET \
                     spent_micros = account_spend.spent_micros + excluded.spent_micros",
                );
                q.build().execute(&mut *tx).await?;
            }
            for ((instance, day, account), micros) in &leases {
                sqlx::query(DEBIT_LEASE)
                    .bind(*micros)
                    .bind(*instance)
                    .bind(day)
                    .bind(*account)
                    .execute(&mut *tx)
                    .await?;
            }
            for (partition, next_offset) in &next {
                sqlx::query(UPSERT_OFFSET)
                    .bind(topic)
                    .bind(*partition)
                    .bind(*next_offset)
                    .bind(epoch)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(applied)
    }

    /// Number of debits and their sum in micros.
    pub async fn debit_totals(&self) -> Result<(i64, i64), LedgerError> {
        // PostgreSQL's SUM(bigint) is NUMERIC: the CAST makes it BIGINT in
        // both backends, so one Rust type reads it.
        let sql = "SELECT COUNT(*), CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM debits";
        on_pool!(self, pool => {
            let row = sqlx::query(sql).fetch_one(pool).await?;
            Ok((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?))
        })
    }

    /// Total spend in micros recorded in `account_spend`.
    pub async fn spend_total(&self) -> Result<i64, LedgerError> {
        let sql = "SELECT CAST(COALESCE(SUM(spent_micros), 0) AS BIGINT) FROM account_spend";
        on_pool!(self, pool => {
            let row = sqlx::query(sql).fetch_one(pool).await?;
            Ok(row.try_get::<i64, _>(0)?)
        })
    }

    /// Micros spent per account, over all days of `account_spend`.
    pub async fn spend_by_account(
        &self,
    ) -> Result<std::collections::BTreeMap<String, i64>, LedgerError> {
        let sql =
            "SELECT account, CAST(SUM(spent_micros) AS BIGINT) FROM account_spend GROUP BY account";
        on_pool!(self, pool => {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
                .collect()
        })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The day number (days since 1970-01-01, UTC) of a timestamp.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `YYYY-MM-DD` of a ms-since-epoch timestamp, in UTC.
pub fn utc_day(ts_ms: i64) -> String {
    let (y, m, d) = civil_from_days(day_of(ts_ms));
    format!("{y:04}-{m:02}-{d:02}")
}

/// (year, month, day) of a day number (days since 1970-01-01), by Howard
/// Hinnant's civil-from-days arithmetic: no time-zone database needed.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::utc_day;

    #[test]
    fn utc_days() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(951_782_400_000), "2000-02-29");
        assert_eq!(utc_day(1_795_000_000_000 - 1), "2026-11-18");
        assert_eq!(utc_day(-1), "1969-12-31");
    }
}
