//! The bidder registry: the set of bidders auctions fan out to, changed at
//! run time through the admin API and shared by every replica through the
//! database.
//!
//! The hot path never touches the database. It loads the current
//! [`BidderSet`] (an immutable snapshot behind an `ArcSwap`) once per
//! auction. A background task polls the database's version stamp every
//! `registry.poll_interval_ms`; when it moved, the task reads every bidder
//! and swaps in a new set. A bidder whose endpoints and protocol did not
//! change keeps its runtime state (pooled connections, circuit, in-flight
//! counts, instruments), so a change of limits costs no reconnection.
//!
//! Without a database (no `admin_listen`, `database_url` or `sqlite_path`),
//! the set is built once from the config file and never changes.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{Mutex, Notify};

use crate::config::{BidderEntry, Config, EndpointPolicy};
use crate::fanout::{Bidder, ClientError};
use crate::metrics::Metrics;
pub use rtb_ledger::registry::StoreError;

/// The registry's table, holding [`BidderEntry`]s.
pub type Store = rtb_ledger::registry::Store<BidderEntry>;
/// A stored [`BidderEntry`] with its timestamps.
pub type Stored = rtb_ledger::registry::Stored<BidderEntry>;

impl rtb_ledger::registry::Spec for BidderEntry {
    fn name(&self) -> &str {
        &self.name
    }
}

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bidder's client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// `[registry]`'s endpoint policy is invalid.
    #[error("{key}: {message}")]
    Policy {
        /// The config key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// An immutable snapshot of the bidders.
#[derive(Debug, Default)]
pub struct BidderSet {
    /// The database version it was read at (0 without a database).
    pub version: i64,
    /// Every bidder, enabled or not, in name order (config order without a
    /// database).
    pub all: Vec<Arc<Bidder>>,
    /// The enabled ones: what auctions fan out to.
    pub active: Vec<Arc<Bidder>>,
}

impl BidderSet {
    /// The bidder named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Bidder>> {
        self.all.iter().find(|b| b.name == name)
    }
}

/// The current bidders and, with a database, the means to follow it.
#[derive(Debug)]
pub struct Registry {
    current: ArcSwap<BidderSet>,
    store: Option<Store>,
    metrics: Arc<Metrics>,
    /// Serializes reloads, so an older read never replaces a newer one.
    reloading: Mutex<()>,
    /// Wakes the poller early (after a local change); shared with the
    /// poller so it need not hold the registry alive while it sleeps.
    wake: Arc<Notify>,
    /// What bidders registered through the API may connect to, checked
    /// again at every connect (after DNS).
    policy: Arc<EndpointPolicy>,
    /// The config file's bidders: written by the operator, so trusted and
    /// connected to without the policy (a bidder in the database with the
    /// same name and transport counts as one of them).
    trusted: Vec<BidderEntry>,
}

impl Registry {
    /// Builds the registry the config asks for: persisted (opened, migrated,
    /// seeded from the config's bidders on first start, then loaded) or
    /// fixed from the config file.
    pub async fn open(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<Self>, RegistryError> {
        let policy = Arc::new(
            EndpointPolicy::new(&config.registry)
                .map_err(|(key, message)| RegistryError::Policy { key, message })?,
        );
        let trusted = config.bidders.clone();
        let Some(url) = config.registry_database() else {
            let mut set = BidderSet::default();
            for e in &config.bidders {
                let b = Arc::new(Bidder::new(e, metrics.bidder(&e.name), None)?);
                if e.enabled {
                    set.active.push(b.clone());
                }
                set.all.push(b);
            }
            return Ok(Arc::new(Self::with(set, None, metrics, policy, trusted)));
        };
        let store = Store::open(&url).await?;
        if store.seed(&config.bidders).await? {
            tracing::info!(
                bidders = config.bidders.len(),
                "registry seeded from the config file"
            );
        } else if !config.bidders.is_empty() {
            tracing::info!("registry already initialised: config-file bidders not re-seeded");
        }
        let registry = Arc::new(Self::with(
            BidderSet::default(),
            Some(store),
            metrics,
            policy,
            trusted,
        ));
        registry.reload().await?;
        Ok(registry)
    }

    fn with(
        set: BidderSet,
        store: Option<Store>,
        metrics: Arc<Metrics>,
        policy: Arc<EndpointPolicy>,
        trusted: Vec<BidderEntry>,
    ) -> Self {
        Self {
            current: ArcSwap::from_pointee(set),
            store,
            metrics,
            reloading: Mutex::new(()),
            wake: Arc::new(Notify::new()),
            policy,
            trusted,
        }
    }

    /// The policy `e`'s connections go through: none for a bidder of the
    /// config file, the endpoint policy for one registered through the API.
    fn guard_for(&self, e: &BidderEntry) -> Option<Arc<EndpointPolicy>> {
        let trusted = self
            .trusted
            .iter()
            .any(|t| t.name == e.name && t.same_transport(e));
        (!trusted).then(|| self.policy.clone())
    }

    /// The current bidders: one atomic load, for the hot path.
    pub fn current(&self) -> Arc<BidderSet> {
        self.current.load_full()
    }

    /// The database, if the registry is persisted.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Reads the version stamp and, when it moved, every bidder; swaps in
    /// the new set. Returns the version now live.
    pub async fn reload(&self) -> Result<i64, RegistryError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let _one = self.reloading.lock().await;
        // Version first: a change landing between the two reads makes the
        // next poll reload again, which is harmless.
        let version = store.version().await?;
        let old = self.current();
        if version == old.version && version != 0 {
            return Ok(version);
        }
        let entries: Vec<BidderEntry> = store.list().await?.into_iter().map(|s| s.entry).collect();
        let set = self.build(&old, version, entries);
        log_changes(&old, &set);
        self.current.store(Arc::new(set));
        Ok(version)
    }

    fn build(&self, old: &BidderSet, version: i64, entries: Vec<BidderEntry>) -> BidderSet {
        let by_name: HashMap<&str, &Arc<Bidder>> =
            old.all.iter().map(|b| (b.name.as_str(), b)).collect();
        let mut set = BidderSet {
            version,
            ..BidderSet::default()
        };
        for e in entries {
            let kept = by_name.get(e.name.as_str()).and_then(|b| b.renew(&e));
            let bidder = match kept {
                Some(b) => b,
                None => match Bidder::new(&e, self.metrics.bidder(&e.name), self.guard_for(&e)) {
                    Ok(b) => b,
                    Err(err) => {
                        // One bad entry must not take the others down.
                        tracing::error!(bidder = %e.name, error = %err, "bidder left out");
                        continue;
                    }
                },
            };
            let bidder = Arc::new(bidder);
            if e.enabled {
                set.active.push(bidder.clone());
            }
            set.all.push(bidder);
        }
        set
    }

    /// Wakes the poller now (after a change through this replica's API).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Starts the poller; it stops when the registry is dropped. No-op
    /// without a database.
    pub fn spawn_poller(self: &Arc<Self>, every: Duration) {
        if self.store.is_none() {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let wake = self.wake.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = wake.notified() => {}
                }
                let Some(me) = weak.upgrade() else { return };
                if let Err(e) = me.reload().await {
                    // The current set stays live: a database outage must not
                    // stop auctions.
                    tracing::warn!(error = %e, "registry reload failed; keeping the current bidders");
                }
            }
        });
    }
}

fn log_changes(old: &BidderSet, new: &BidderSet) {
    for b in &new.all {
        match old.get(&b.name) {
            None => {
                tracing::info!(bidder = %b.name, enabled = b.entry.enabled, version = new.version, "bidder added")
            }
            Some(o) if o.entry != b.entry => {
                tracing::info!(bidder = %b.name, enabled = b.entry.enabled, version = new.version, "bidder changed")
            }
            Some(_) => {}
        }
    }
    for b in &old.all {
        if new.get(&b.name).is_none() {
            tracing::info!(bidder = %b.name, version = new.version, "bidder removed");
        }
    }
}
