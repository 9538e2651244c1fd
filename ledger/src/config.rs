//! The settings the exchange and the ledger share, in one place: the
//! `[kafka]` and `[ledger]` sections, the configuration error type, and the
//! Kafka producer both build from `[kafka]` (the exchange's event producer,
//! the ledger's dead-letter writer).
//!
//! The exchange's top-level `Config` holds one field per section. Like the
//! rest of the configuration, unknown keys are errors.

use std::path::PathBuf;

use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureProducer;
use serde::Deserialize;

/// A configuration error; the text names the key (or the file) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not match the schema (unknown key, wrong type).
    #[error("config: {0}")]
    Parse(String),
    /// A key has a value that is not allowed.
    #[error("config: {key}: {message}")]
    Invalid {
        /// Dotted path of the key, e.g. `bidders[1].endpoints[0]`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Environment variable that sets `ledger.database_url` when the file has
/// none: in Kubernetes the URL carries a password from a Secret, which does
/// not belong in a config file.
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";

/// Default of `[ledger] metrics_addr`: the port the ledger Deployment names.
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9091";

/// `[kafka]`: where auction-result events go.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Publish auction events at all. Why a switch: tests and benchmarks that
    /// are not about events run without the producer, spool and ledger.
    pub enabled: bool,
    /// Bootstrap servers (`host:port,...`). Absent: the exchange starts an
    /// in-process mock cluster, so a single binary works out of the box.
    pub brokers: Option<String>,
    /// Topic of auction results.
    pub topic: String,
    /// Dead-letter topic: events the ledger could not decode or apply.
    pub dlq_topic: String,
    /// Events queued between the auctions and the producer task. Bounded so
    /// a stalled Kafka costs memory up to this and no more; beyond it events
    /// go to the spool.
    pub queue_capacity: usize,
    /// Append-only file where events wait while Kafka is unreachable.
    pub spool_path: PathBuf,
    /// How long the producer tries to deliver one event before giving it to
    /// the spool (librdkafka `message.timeout.ms`).
    pub delivery_timeout_ms: u64,
    /// How often a non-empty spool retries Kafka.
    pub replay_interval_ms: u64,
    /// Partitions of the topics created in the embedded mock cluster.
    pub embedded_partitions: i32,
    /// The largest encoded event sent to Kafka, in bytes: the brokers'
    /// `message.max.bytes` (Kafka's default is 1,000,000). Why a bound of
    /// our own: an event the brokers refuse as too large can never be
    /// delivered, and in the spool it would hold up every event behind it.
    /// Larger events go to `dead_letter_path` instead, counted.
    pub max_message_bytes: usize,
    /// Where events Kafka can never take are kept (the spool's frame
    /// format; opened at the first one, its path logged).
    pub dead_letter_path: PathBuf,
    /// Write every event to the crash journal before the publisher's answer
    /// leaves (see `events::journal`): a process crash loses no answered
    /// event. Why a switch: benchmarks measure its cost against it off.
    pub journal: bool,
    /// The journal's directory. Absent: beside the spool, `spool_path` with
    /// the extension `.journal`.
    pub journal_dir: Option<PathBuf>,
    /// How often the journal is fsynced: what a power loss (not a process
    /// crash) can lose. 100 ms: far below a human-visible window, and one
    /// fsync every tenth of a second costs nothing measurable.
    pub journal_sync_ms: u64,
    /// A journal segment is rotated out past this many bytes (then deleted
    /// once its events are safe).
    pub journal_segment_bytes: u64,
}

impl KafkaConfig {
    /// The journal's directory (`journal_dir`, or derived from `spool_path`).
    pub fn journal_dir(&self) -> PathBuf {
        self.journal_dir
            .clone()
            .unwrap_or_else(|| self.spool_path.with_extension("journal"))
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            brokers: None,
            topic: "auction-results".into(),
            dlq_topic: "auction-results-dlq".into(),
            queue_capacity: 65_536,
            spool_path: PathBuf::from("data/auction-results.spool"),
            delivery_timeout_ms: 5_000,
            replay_interval_ms: 1_000,
            embedded_partitions: 4,
            max_message_bytes: 1_000_000,
            dead_letter_path: PathBuf::from("data/auction-results.dead"),
            journal: true,
            journal_dir: None,
            journal_sync_ms: 100,
            journal_segment_bytes: 16 * 1024 * 1024,
        }
    }
}

/// `ledger.assignment`: how a ledger gets the topic's partitions.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Assignment {
    /// A member of the consumer group `ledger.group_id`: the group's
    /// coordinator shares the partitions among the ledgers running, and
    /// moves them when one goes away.
    Group,
    /// Every partition of the topic, assigned by the ledger itself (no
    /// group membership, no coordinator). For one ledger, or for brokers
    /// whose group coordinator cannot be relied on. Two ledgers in this
    /// mode both read everything; that is safe (offsets and debits are
    /// applied in one transaction, debits keyed), only redundant work.
    All,
}

/// `[ledger]`: the consumer that turns auction results into debits.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// Run the ledger inside `exchange serve`. Absent: true exactly when no
    /// brokers are configured (the embedded, single-process setup).
    pub embedded: Option<bool>,
    /// `postgres://...` to use PostgreSQL; absent: SQLite at `sqlite_path`.
    pub database_url: Option<String>,
    /// SQLite database file, used when `database_url` is absent.
    pub sqlite_path: PathBuf,
    /// Kafka consumer group of the ledgers.
    pub group_id: String,
    /// How the ledger gets its partitions: `"group"` (the consumer group
    /// shares them among the ledgers running) or `"all"` (this ledger
    /// assigns itself every partition of the topic and never joins a group,
    /// so a group coordinator that stops assigning cannot stall it).
    pub assignment: Assignment,
    /// Most messages applied in one database transaction.
    pub batch_max: usize,
    /// Longest a batch waits to fill before it is applied.
    pub batch_ms: u64,
    /// Where `exchange ledger` serves `GET /metrics` and `GET /healthz`
    /// (`host:port`). Not used by the ledger embedded in `exchange serve`,
    /// whose figures stay on the exchange's own listener.
    pub metrics_addr: String,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            embedded: None,
            database_url: None,
            sqlite_path: PathBuf::from("data/ledger.sqlite"),
            group_id: "ledger".into(),
            assignment: Assignment::Group,
            batch_max: 500,
            batch_ms: 100,
            metrics_addr: DEFAULT_METRICS_ADDR.into(),
        }
    }
}

impl LedgerConfig {
    /// Fills `database_url` from `value` (the [`ENV_DATABASE_URL`] variable)
    /// when the file sets none; the file wins. Checked like the file's value.
    pub fn apply_env_database_url(&mut self, value: Option<String>) -> Result<(), ConfigError> {
        if self.database_url.is_none() {
            if let Some(url) = value.filter(|u| !u.is_empty()) {
                check_database_url(ENV_DATABASE_URL, &url)?;
                self.database_url = Some(url);
            }
        }
        Ok(())
    }

    /// Whether `exchange serve` runs the ledger in process.
    pub fn runs_embedded(&self, kafka: &KafkaConfig) -> bool {
        kafka.enabled && self.embedded.unwrap_or(kafka.brokers.is_none())
    }
}

fn invalid(key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

fn check_database_url(key: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(());
    }
    Err(invalid(
        key,
        "must be a postgres:// URL (leave it out for SQLite)",
    ))
}

/// Checks a metrics listener address (`host:port` with an IP host);
/// `key` names it in the error (the file's key or the command-line flag).
pub fn check_metrics_addr(key: &str, addr: &str) -> Result<(), ConfigError> {
    addr.parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|_| invalid(key, "must be an IP address and port, e.g. \"0.0.0.0:9091\""))
}

/// Checks both sections; errors name the key.
pub fn validate(kafka: &KafkaConfig, ledger: &LedgerConfig) -> Result<(), ConfigError> {
    if kafka
        .brokers
        .as_deref()
        .is_some_and(|b| b.trim().is_empty())
    {
        return Err(invalid("kafka.brokers", "must not be empty when present"));
    }
    if kafka.topic.is_empty() {
        return Err(invalid("kafka.topic", "must not be empty"));
    }
    if kafka.dlq_topic.is_empty() || kafka.dlq_topic == kafka.topic {
        return Err(invalid(
            "kafka.dlq_topic",
            "must be non-empty and differ from kafka.topic",
        ));
    }
    if kafka.queue_capacity == 0 {
        return Err(invalid("kafka.queue_capacity", "must be > 0"));
    }
    if kafka.spool_path.as_os_str().is_empty() {
        return Err(invalid("kafka.spool_path", "must not be empty"));
    }
    if kafka.delivery_timeout_ms == 0 {
        return Err(invalid("kafka.delivery_timeout_ms", "must be > 0"));
    }
    if kafka.replay_interval_ms == 0 {
        return Err(invalid("kafka.replay_interval_ms", "must be > 0"));
    }
    if !(1_024..=100_000_000).contains(&kafka.max_message_bytes) {
        return Err(invalid(
            "kafka.max_message_bytes",
            "must be between 1024 and 100000000",
        ));
    }
    if kafka.dead_letter_path.as_os_str().is_empty() || kafka.dead_letter_path == kafka.spool_path {
        return Err(invalid(
            "kafka.dead_letter_path",
            "must be non-empty and differ from kafka.spool_path",
        ));
    }
    if kafka.journal_sync_ms == 0 || kafka.journal_sync_ms > 10_000 {
        return Err(invalid(
            "kafka.journal_sync_ms",
            "must be between 1 and 10000",
        ));
    }
    if kafka.journal_segment_bytes < 4_096 {
        return Err(invalid("kafka.journal_segment_bytes", "must be >= 4096"));
    }
    if kafka.journal_dir() == kafka.spool_path {
        return Err(invalid(
            "kafka.journal_dir",
            "must differ from kafka.spool_path",
        ));
    }
    if kafka.embedded_partitions < 1 {
        return Err(invalid("kafka.embedded_partitions", "must be >= 1"));
    }
    if let Some(url) = &ledger.database_url {
        check_database_url("ledger.database_url", url)?;
    }
    if ledger.group_id.is_empty() {
        return Err(invalid("ledger.group_id", "must not be empty"));
    }
    if ledger.batch_max == 0 {
        return Err(invalid("ledger.batch_max", "must be > 0"));
    }
    if ledger.batch_ms == 0 {
        return Err(invalid("ledger.batch_ms", "must be > 0"));
    }
    check_metrics_addr("ledger.metrics_addr", &ledger.metrics_addr)?;
    Ok(())
}

/// An idempotent producer: retries inside librdkafka cannot duplicate or
/// reorder events within a partition.
pub fn kafka_producer(
    bootstrap: &str,
    cfg: &KafkaConfig,
) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    // librdkafka's own bound on a request (default 1,000,000) must leave
    // room for one event of `max_message_bytes` and its framing.
    let request_max = (cfg.max_message_bytes + 64 * 1024).max(1_000_000);
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", cfg.delivery_timeout_ms.to_string())
        .set("message.max.bytes", request_max.to_string())
        // A few ms of batching trades nothing visible (the auction is already
        // answered) for far fewer requests to the brokers.
        .set("linger.ms", "5")
        .create()
}
