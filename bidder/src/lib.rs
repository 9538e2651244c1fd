//! A simulated DSP (demand-side platform) for the exchange: it answers OpenRTB 2.6 bid
//! requests over HTTP/1.1 and h2c with configurable prices, bid rate, latency and faults,
//! and counts what it saw (requests, bids, win notices) for tests and load runs.
//!
//! Start one in-process with [`spawn`], or run the `bidder serve` binary.

mod body;
pub mod cli;
mod config;
mod openrtb;
mod plan;
mod server;
mod stats;

pub use body::TRICKLE_INTERVAL;
pub use config::{BidderConfig, ConfigError, Fault, Latency, ParseError};
pub use openrtb::OVERSIZED_ADM_BYTES;
pub use server::{spawn, BidderHandle, MAX_REQUEST_BYTES};
pub use stats::{Stats, MAX_RECORDED_WINS};
