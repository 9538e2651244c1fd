//! An in-process Kafka: librdkafka's mock cluster, for a single-binary setup
//! and for tests.
//!
//! The mock cluster is not `Send`, so it lives on a thread of its own that
//! owns it from creation to drop; this handle talks to that thread over a
//! channel. Its data lives in memory and goes away with the process: every
//! start is a new log that begins at offset 0 again, so each start gets a
//! random [`log_epoch`](EmbeddedKafka::log_epoch) and the ledger keeps its
//! stored offsets per epoch (offsets of an earlier run would skip the new
//! run's events).

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use super::EventsError;

/// Brokers in the embedded cluster; ids start at 1.
const BROKERS: i32 = 1;

enum Command {
    BrokerDown(i32, mpsc::Sender<Result<(), String>>),
    BrokerUp(i32, mpsc::Sender<Result<(), String>>),
    Refuse(RDKafkaApiKey, usize, mpsc::Sender<Result<(), String>>),
}

/// A running mock cluster with its topics created.
#[derive(Debug)]
pub struct EmbeddedKafka {
    bootstrap: String,
    epoch: String,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl EmbeddedKafka {
    /// Starts the cluster and creates `topics` with `partitions` each.
    pub fn start(partitions: i32, topics: &[&str]) -> Result<Self, EventsError> {
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (commands, command_rx) = mpsc::channel::<Command>();
        let thread = std::thread::Builder::new()
            .name("kafka-mock".into())
            .spawn(move || {
                let cluster = match MockCluster::new(BROKERS) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                for t in &topics {
                    if let Err(e) = cluster.create_topic(t, partitions, 1) {
                        let _ = ready_tx.send(Err(format!("cannot create topic {t}: {e}")));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Serves commands until the handle is dropped.
                while let Ok(cmd) = command_rx.recv() {
                    let (result, reply) = match cmd {
                        Command::BrokerDown(id, reply) => (cluster.broker_down(id), reply),
                        Command::BrokerUp(id, reply) => (cluster.broker_up(id), reply),
                        Command::Refuse(api, count, reply) => {
                            let errors = vec![
                                RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE;
                                count
                            ];
                            cluster.request_errors(api, &errors);
                            (Ok(()), reply)
                        }
                    };
                    let _ = reply.send(result.map_err(|e| e.to_string()));
                }
            })
            .map_err(|e| EventsError::Embedded(e.to_string()))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| EventsError::Embedded("mock cluster thread ended".into()))?
            .map_err(EventsError::Embedded)?;
        // 128 random bits: two starts never share an epoch.
        let epoch = format!("mock-{:032x}", rand::random::<u128>());
        tracing::info!(%bootstrap, %epoch, "embedded kafka (mock cluster, in memory) started");
        Ok(Self {
            bootstrap,
            epoch,
            commands: Some(commands),
            thread: Some(thread),
        })
    }

    /// Bootstrap servers of the mock cluster.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// This start's identity: the ledger scopes its stored offsets to it.
    pub fn log_epoch(&self) -> &str {
        &self.epoch
    }

    /// Ids of the cluster's brokers.
    pub fn broker_ids(&self) -> std::ops::RangeInclusive<i32> {
        1..=BROKERS
    }

    /// Takes a broker down (an outage, for tests).
    pub fn set_broker_down(&self, id: i32) -> Result<(), EventsError> {
        self.command(|reply| Command::BrokerDown(id, reply))
    }

    /// Brings a broker back.
    pub fn set_broker_up(&self, id: i32) -> Result<(), EventsError> {
        self.command(|reply| Command::BrokerUp(id, reply))
    }

    /// Answers the next `count` requests of kind `api` with "coordinator not
    /// available" (a fault, for tests: `FindCoordinator` and `JoinGroup`
    /// make a consumer group that never gets its partitions).
    pub fn refuse_requests(&self, api: RDKafkaApiKey, count: usize) -> Result<(), EventsError> {
        self.command(|reply| Command::Refuse(api, count, reply))
    }

    fn command(
        &self,
        make: impl FnOnce(mpsc::Sender<Result<(), String>>) -> Command,
    ) -> Result<(), EventsError> {
        let (tx, rx) = mpsc::channel();
        let gone = || EventsError::Embedded("mock cluster thread ended".into());
        self.commands
            .as_ref()
            .ok_or_else(gone)?
            .send(make(tx))
            .map_err(|_| gone())?;
        rx.recv()
            .map_err(|_| gone())?
            .map_err(EventsError::Embedded)
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        // Closing the channel ends the thread, which drops the cluster.
        drop(self.commands.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
