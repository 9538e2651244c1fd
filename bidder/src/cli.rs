//! The `bidder` command line: argument definitions and the `serve` command.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use tracing::info;

use crate::config::{BidderConfig, Fault, Latency};

/// Command line of the `bidder` binary.
#[derive(Parser, Debug)]
#[command(
    name = "bidder",
    version,
    about = "A simulated OpenRTB 2.6 DSP for exercising the exchange"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `bidder` subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve bid requests over HTTP/1.1 and h2c until SIGTERM or ctrl-c.
    Serve(ServeArgs),
}

/// Arguments of `bidder serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the real one is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9001")]
    pub listen: String,
    /// Seat name written into seatbid[].seat.
    #[arg(long, value_name = "NAME", default_value = "bidder")]
    pub seat: String,
    /// Base bid price (CPM).
    #[arg(long, value_name = "P", default_value = "1.0", value_parser = parse_price, allow_negative_numbers = true)]
    pub price: f64,
    /// Misbehave: hang, http500, malformed, wrong-impid, trickle or oversized.
    #[arg(long, value_name = "KIND")]
    pub fault: Option<Fault>,
    /// Relative price spread per imp, 0..=1 (0.2 draws within ±20%).
    #[arg(long, value_name = "F", default_value = "0", value_parser = parse_unit, allow_negative_numbers = true)]
    pub price_spread: f64,
    /// Probability of bidding on each imp, 0..=1.
    #[arg(long, value_name = "F", default_value = "1", value_parser = parse_unit, allow_negative_numbers = true)]
    pub bid_rate: f64,
    /// Think time: none, fixed:MS, uniform:MIN_MS:MAX_MS, lognormal:MEDIAN_MS:SIGMA or bimodal:FAST_MS:LATE_MS:P_LATE.
    #[arg(long, value_name = "PROFILE", default_value = "none")]
    pub latency: Latency,
    /// Campaign id (bid.cid).
    #[arg(long, value_name = "ID", default_value = "campaign-1")]
    pub cid: String,
    /// Creative id (bid.crid).
    #[arg(long, value_name = "ID", default_value = "creative-1")]
    pub crid: String,
    /// Advertiser domain (bid.adomain).
    #[arg(long, value_name = "DOMAIN", default_value = "advertiser.example")]
    pub adomain: String,
    /// Seed for reproducible prices, bid decisions and latencies.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub seed: Option<u64>,
}

fn parse_price(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected a finite non-negative number, got {s:?}")),
    }
}

fn parse_unit(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a number between 0 and 1, got {s:?}")),
    }
}

impl ServeArgs {
    /// The bidder configuration these arguments describe.
    pub fn config(&self) -> BidderConfig {
        BidderConfig {
            seat: self.seat.clone(),
            price: self.price,
            price_spread: self.price_spread,
            bid_rate: self.bid_rate,
            latency: self.latency,
            fault: self.fault,
            cid: self.cid.clone(),
            crid: self.crid.clone(),
            adomain: self.adomain.clone(),
            seed: self.seed,
        }
    }
}

/// Sends log output to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Ignore the error: a subscriber already installed (e.g. by an embedding test) is fine.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}

/// Runs a parsed command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let signals = ShutdownSignals::register().context("cannot listen for shutdown signals")?;
    let config = args.config();
    config.validate().context("invalid bidder configuration")?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let fault = config.fault;
    let latency = config.latency;
    let handle = crate::spawn(listener, config).await?;
    // Tests and scripts wait for this exact line to learn the bound address.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "bidder {} listening on {}", args.seat, handle.url())?;
    stdout.flush()?;
    info!(seat = %args.seat, url = %handle.url(), %latency, fault = ?fault, "bidder ready");
    signals
        .recv()
        .await
        .context("cannot wait for shutdown signals")?;
    info!("shutting down");
    handle.shutdown().await;
    Ok(())
}

/// Shutdown signals, registered up front: a signal that arrives after the "listening" line
/// is printed but before anyone waits for it must still be caught, not kill the process.
struct ShutdownSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Resolves on SIGTERM or SIGINT (ctrl-c).
    async fn recv(mut self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
            Ok(())
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await
        }
    }
}
