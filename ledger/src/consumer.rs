//! The ledger's Kafka consumer, positioned at the offsets stored in the
//! database, never at Kafka's committed offsets. With `ledger.assignment =
//! "group"` it is a consumer-group member; with `"all"` it joins no group
//! and [`assign_new`] gives it every partition of the topic.
//!
//! The rebalance callback replaces librdkafka's default assignment with one
//! carrying explicit offsets: the database's next offset for each partition
//! (the beginning when it has none). The callback runs inside the consumer's
//! poll and must not wait on the database, so it reads a cache that the
//! ledger refreshes from the database after every committed batch; a stale
//! cache only means re-reading messages that the transaction then skips.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;

use super::LedgerError;
use crate::config::{Assignment, KafkaConfig, LedgerConfig};

/// Positions assigned partitions at the stored offsets.
pub(super) struct LedgerContext {
    /// Partition → next offset to apply, as stored in the database.
    offsets: Arc<Mutex<HashMap<i32, i64>>>,
}

impl ClientContext for LedgerContext {}

impl ConsumerContext for LedgerContext {
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let stored = self.offsets.lock().unwrap_or_else(|p| p.into_inner());
                let mut assignment = TopicPartitionList::new();
                for e in tpl.elements() {
                    let offset = stored
                        .get(&e.partition())
                        .map_or(Offset::Beginning, |n| Offset::Offset(*n));
                    // Adding a partition we were just given cannot fail.
                    let _ = assignment.add_partition_offset(e.topic(), e.partition(), offset);
                }
                tracing::info!(?assignment, "ledger: partitions assigned at stored offsets");
                if let Err(e) = base_consumer.assign(&assignment) {
                    tracing::error!(error = %e, "ledger: assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!("ledger: partitions revoked");
                if let Err(e) = base_consumer.unassign() {
                    tracing::error!(error = %e, "ledger: unassign failed");
                }
            }
            other => {
                tracing::error!(?other, "ledger: rebalance error");
                let _ = base_consumer.unassign();
            }
        }
    }
}

/// How long a metadata request for the topic's partitions may take: a
/// broker that does not answer in this time is asked again at the next
/// check (the ledger reads on meanwhile).
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates the consumer; in group mode it subscribes to the events topic,
/// in `all` mode it waits for [`assign_new`].
pub(super) fn connect(
    bootstrap: &str,
    kafka: &KafkaConfig,
    cfg: &LedgerConfig,
    offsets: Arc<Mutex<HashMap<i32, i64>>>,
) -> Result<StreamConsumer<LedgerContext>, LedgerError> {
    let consumer: StreamConsumer<LedgerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &cfg.group_id)
        // Offsets live in the database, committed with the debits.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Eager rebalancing: the callback above assigns whole assignments
        // (the cooperative protocol would need incremental assignment).
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", "6000")
        .create_with_context(LedgerContext { offsets })?;
    if cfg.assignment == Assignment::Group {
        consumer.subscribe(&[&kafka.topic])?;
    }
    Ok(consumer)
}

/// `all` mode: assigns the topic's partitions not in `assigned` yet, each at
/// its stored offset (the beginning when none is stored), and adds them to
/// `assigned`. Asks the brokers for the partition list on the blocking pool
/// (librdkafka's metadata call blocks). A broker that does not answer, or a
/// topic that does not exist yet, is logged and left to the next call.
pub(super) async fn assign_new(
    consumer: &Arc<StreamConsumer<LedgerContext>>,
    topic: &str,
    offsets: &Mutex<HashMap<i32, i64>>,
    assigned: &mut BTreeSet<i32>,
) {
    let (c, t) = (consumer.clone(), topic.to_owned());
    let partitions = tokio::task::spawn_blocking(move || {
        let md = c.fetch_metadata(Some(&t), METADATA_TIMEOUT)?;
        Ok::<_, rdkafka::error::KafkaError>(
            md.topics()
                .iter()
                .filter(|m| m.name() == t && m.error().is_none())
                .flat_map(|m| m.partitions().iter().map(|p| p.id()))
                .collect::<Vec<i32>>(),
        )
    })
    .await;
    let partitions = match partitions {
        Ok(Ok(p)) if !p.is_empty() => p,
        Ok(Ok(_)) => {
            tracing::warn!(
                topic,
                "ledger: the topic has no partitions yet; asking again later"
            );
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(topic, error = %e, "ledger: cannot read the topic's partitions; asking again later");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "ledger: partition lookup task failed");
            return;
        }
    };
    let stored = offsets.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut new = TopicPartitionList::new();
    for p in partitions.iter().filter(|p| !assigned.contains(p)) {
        let offset = stored
            .get(p)
            .map_or(Offset::Beginning, |n| Offset::Offset(*n));
        let _ = new.add_partition_offset(topic, *p, offset);
    }
    if new.count() == 0 {
        return;
    }
    match consumer.incremental_assign(&new) {
        Ok(()) => {
            tracing::info!(assignment = ?new, "ledger: every partition assigned (no group) at stored offsets");
            assigned.extend(partitions);
        }
        Err(e) => tracing::error!(error = %e, "ledger: assign failed; trying again later"),
    }
}
