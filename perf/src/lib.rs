//! Simulated publisher traffic for the exchange: an open-loop load generator,
//! seeded OpenRTB 2.6 request mixes, scenario files, the all-in-one local
//! setup (simulated bidders + exchange in one process) and latency reports.

pub mod baseline;
pub mod cpu;
pub mod events;
pub mod load;
pub mod local;
pub mod progress;
pub mod report;
pub mod requests;
pub mod scenario;
pub mod schedule;
pub mod stats;
pub mod svg;
