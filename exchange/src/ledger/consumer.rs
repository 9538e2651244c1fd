//! The ledger's Kafka consumer: a group member that positions itself at the
//! offsets stored in the database, never at Kafka's committed offsets.
//!
//! The rebalance callback replaces librdkafka's default assignment with one
//! carrying explicit offsets: the database's next offset for each partition
//! (the beginning when it has none). The callback runs inside the consumer's
//! poll and must not wait on the database, so it reads a cache that the
//! ledger refreshes from the database after every committed batch; a stale
//! cache only means re-reading messages that the transaction then skips.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;

use super::LedgerError;
use crate::events::{KafkaConfig, LedgerConfig};

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

/// Creates the consumer and subscribes to the events topic.
pub(super) fn subscribe(
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
    consumer.subscribe(&[&kafka.topic])?;
    Ok(consumer)
}
