//! The OpenRTB 2.6 exchange: a publisher-facing HTTP server that fans bid
//! requests out to bidders over pooled HTTP/2 under a hard deadline and runs
//! a second-price auction per impression.
//!
//! Modules, from the edge inward: [`server`] (HTTP front, tower stack,
//! drain), [`pipeline`] (one auction end to end), [`fanout`] (bidder clients,
//! instance choice, deadline), [`auction`] and [`macros`] (pure logic),
//! [`outcome`] (the publisher's response), [`notify`] (win notices), [`metrics`] (Prometheus and HDR latency),
//! [`registry`] (bidders changed at run time, persisted), [`admin`] (its HTTP API),
//! [`events`] (auction results to Kafka, with a spool), [`budget`] (leases
//! that keep wins within budget) and [`ledger_cli`] (`exchange ledger`).
//!
//! The database is out of this crate's reach: the ledger (debits, exactly
//! once), the budget and lease store and the registry's table live in
//! `rtb-ledger`, and this crate does not depend on sqlx. The hot path reads
//! budgets from memory ([`budget::Budgets`]); only background tasks call the
//! lease store.
//! See ARCHITECTURE.md for the request path and the invariants.

pub mod admin;
pub mod auction;
pub mod budget;
pub mod config;
pub mod events;
pub mod fanout;
pub mod guard;
pub mod ledger_cli;
pub mod macros;
pub mod metrics;
pub mod notify;
pub mod outcome;
pub mod pipeline;
pub mod registry;
pub mod server;

pub use config::Config;
pub use pipeline::Exchange;
