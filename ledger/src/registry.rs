//! The bidder registry's persistence: sqlx's `Any` driver over PostgreSQL or
//! a SQLite file, with one migration and one set of queries for both. The
//! exchange stores its bidder entries here as JSON ([`Spec`]); this crate
//! does not know their fields.
//!
//! Every change runs in a transaction that also bumps the one-row
//! `registry_version`, so a replica that sees a new version and then reads
//! the bidders sees at least that change.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A registered bidder's settings, stored as JSON under its name.
pub trait Spec: Serialize + DeserializeOwned + Clone {
    /// The bidder's name: the registry's key.
    fn name(&self) -> &str;
}

/// The migrations, embedded at build time. The ledger keeps its own
/// migrations in the same `_sqlx_migrations` table when both share one
/// database (as in the Kubernetes manifests), so versions this migrator does
/// not know are expected, not an error.
fn migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.set_ignore_missing(true);
    m
}

/// A registry database error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("registry database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrating the schema failed.
    #[error("registry database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored bidder is not valid JSON of a bidder entry.
    #[error("registry database: bidder {name}: bad stored spec: {message}")]
    Corrupt {
        /// Bidder name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A bidder with this name exists already.
    #[error("bidder {0} already exists")]
    Exists(String),
    /// No bidder has this name.
    #[error("no bidder named {0}")]
    NotFound(String),
}

/// A stored bidder with its timestamps (Unix milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<T> {
    /// The bidder's settings.
    pub entry: T,
    /// When it was registered.
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
}

/// A connection pool to the registry database.
#[derive(Debug)]
pub struct Store<T> {
    pool: AnyPool,
    spec: std::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for Store<T> {
    fn clone(&self) -> Self {
        Store {
            pool: self.pool.clone(),
            spec: std::marker::PhantomData,
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn decode<T: Spec>(row: &AnyRow) -> Result<Stored<T>, StoreError> {
    let name: String = row.try_get("name")?;
    let spec: String = row.try_get("spec")?;
    let entry = serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt {
        name: name.clone(),
        message: e.to_string(),
    })?;
    Ok(Stored {
        entry,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn encode<T: Spec>(entry: &T) -> String {
    // Serializing a plain struct of strings and numbers cannot fail.
    serde_json::to_string(entry).unwrap_or_default()
}

const BUMP: &str = "UPDATE registry_version SET version = version + 1 WHERE id = 1";

impl<T: Spec> Store<T> {
    /// Connects (creating the SQLite file if needed) and migrates.
    pub async fn open(url: &str) -> Result<Store<T>, StoreError> {
        sqlx::any::install_default_drivers();
        // The default (`exchange.db` in the working directory) keeps state
        // between runs: say which file it is.
        if let Some(file) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let file = std::path::Path::new(file.split('?').next().unwrap_or(file));
            let shown = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
            tracing::info!(path = %shown.display(), "registry database: SQLite file");
        }
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await?;
        migrator().run(&pool).await?;
        Ok(Store {
            pool,
            spec: std::marker::PhantomData,
        })
    }

    /// On the registry's first start (version 0), stores `seed` and marks
    /// the registry seeded, in one transaction; later starts change nothing,
    /// so a bidder deleted through the API does not come back from the file.
    /// Returns whether it seeded.
    pub async fn seed(&self, seed: &[T]) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The conditional update takes the row lock first, so of two replicas
        // starting together exactly one seeds.
        let first = sqlx::query(
            "UPDATE registry_version SET version = version + 1 WHERE id = 1 AND version = 0",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if first {
            let now = unix_ms();
            for e in seed {
                sqlx::query(
                    "INSERT INTO bidders (name, spec, created_at, updated_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(e.name().to_owned())
                .bind(encode(e))
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(first)
    }

    /// The version stamp.
    pub async fn version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT version FROM registry_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("version")?)
    }

    /// Every bidder, by name.
    pub async fn list(&self) -> Result<Vec<Stored<T>>, StoreError> {
        sqlx::query("SELECT name, spec, created_at, updated_at FROM bidders ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(decode::<T>)
            .collect()
    }

    /// One bidder.
    pub async fn get(&self, name: &str) -> Result<Stored<T>, StoreError> {
        let row =
            sqlx::query("SELECT name, spec, created_at, updated_at FROM bidders WHERE name = $1")
                .bind(name.to_owned())
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some(r) => decode(&r),
            None => Err(StoreError::NotFound(name.to_owned())),
        }
    }

    /// Registers a new bidder.
    pub async fn insert(&self, entry: &T) -> Result<Stored<T>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = unix_ms();
        let inserted = sqlx::query(
            "INSERT INTO bidders (name, spec, created_at, updated_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(entry.name().to_owned())
        .bind(encode(entry))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Exists(entry.name().to_owned()))
            }
            Err(e) => return Err(e.into()),
        }
        sqlx::query(BUMP).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Stored {
            entry: entry.clone(),
            created_at: now,
            updated_at: now,
        })
    }

    /// Replaces a bidder's settings with what `change` makes of them; the
    /// read and the write are one transaction, so concurrent patches of
    /// different fields do not lose each other.
    pub async fn update<E>(
        &self,
        name: &str,
        change: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<Result<Stored<T>, E>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Writing first takes the write lock (SQLite) or row lock
        // (PostgreSQL) before the read.
        let touched = sqlx::query("UPDATE bidders SET updated_at = updated_at WHERE name = $1")
            .bind(name.to_owned())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if touched == 0 {
            return Err(StoreError::NotFound(name.to_owned()));
        }
        let row =
            sqlx::query("SELECT name, spec, created_at, updated_at FROM bidders WHERE name = $1")
                .bind(name.to_owned())
                .fetch_one(&mut *tx)
                .await?;
        let mut stored: Stored<T> = decode(&row)?;
        if let Err(e) = change(&mut stored.entry) {
            return Ok(Err(e));
        }
        stored.updated_at = unix_ms();
        sqlx::query("UPDATE bidders SET spec = $1, updated_at = $2 WHERE name = $3")
            .bind(encode(&stored.entry))
            .bind(stored.updated_at)
            .bind(name.to_owned())
            .execute(&mut *tx)
            .await?;
        sqlx::query(BUMP).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Ok(stored))
    }

    /// Removes a bidder.
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM bidders WHERE name = $1")
            .bind(name.to_owned())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(StoreError::NotFound(name.to_owned()));
        }
        sqlx::query(BUMP).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
