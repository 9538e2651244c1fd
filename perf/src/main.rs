//! `perf`: parses the command line and hands over to the `rtb_perf` library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rtb_perf::load::HttpVersion;
use rtb_perf::local::Options;
use rtb_perf::scenario::Overrides;

/// Simulated publisher traffic and latency reports for the exchange.
#[derive(Debug, Parser)]
#[command(name = "perf", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the scenario's simulated bidders and an exchange in this process, load it, report.
    Local(RunArgs),
    /// Load an exchange that is already running (the scenario's bidders are ignored).
    Run {
        /// Full auction URL, e.g. http://127.0.0.1:8080/openrtb2/auction.
        #[arg(long)]
        target: String,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Print per-percentile differences between two report.json files (B - A).
    Compare {
        /// Baseline report.json.
        a: PathBuf,
        /// Candidate report.json.
        b: PathBuf,
    },
    /// Auction-event pipeline: producer → Kafka → ledger → PostgreSQL
    /// throughput and commit lag (see `perf/events_bench.sh`).
    Events(EventsArgs),
    /// Parse and validate scenario files.
    Check {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct EventsArgs {
    /// Kafka bootstrap servers (host:port).
    #[arg(long)]
    brokers: String,
    /// PostgreSQL URL of the ledger's database.
    #[arg(long)]
    database_url: String,
    /// Events to send.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events per second (pipeline mode); 0 = unpaced.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// `[ledger] batch_max`; in insert mode, rows per transaction.
    #[arg(long, default_value_t = 500)]
    batch_max: usize,
    /// `[ledger] batch_ms`.
    #[arg(long, default_value_t = 100)]
    batch_ms: u64,
    /// Partitions of the scratch topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// pipeline, backlog, producer or insert.
    #[arg(long, value_enum, default_value = "pipeline")]
    mode: rtb_perf::events::Mode,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Scenario file (perf/scenarios/*.toml).
    #[arg(long)]
    scenario: PathBuf,
    /// Replace the arrival plan with this flat rate (requests/s).
    #[arg(long)]
    rate: Option<f64>,
    /// Replace the run length (seconds).
    #[arg(long)]
    duration: Option<f64>,
    /// Replace the protocol: http1 or http2.
    #[arg(long)]
    protocol: Option<HttpVersion>,
    /// Replace the number of HTTP/2 connections.
    #[arg(long)]
    connections: Option<usize>,
    /// perf local only: the exchange's adaptive wait on (true) or off (false).
    #[arg(long)]
    adaptive_wait: Option<bool>,
    /// Output directory (default perf/out/<scenario>-<timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Exit with status 2 when the scenario's goal_p99_ms is not met.
    #[arg(long)]
    check_goal: bool,
    /// perf local only: load a bare hyper HTTP/2 fan-out (no OpenRTB logic)
    /// instead of the exchange, as the baseline for ratios.
    #[arg(long)]
    baseline: bool,
}

impl RunArgs {
    fn options(&self) -> Options {
        Options {
            scenario: self.scenario.clone(),
            overrides: Overrides {
                rate: self.rate,
                duration_s: self.duration,
                protocol: self.protocol,
                connections: self.connections,
                adaptive_wait: self.adaptive_wait,
            },
            out: self.out.clone(),
            print: true,
            baseline: self.baseline,
        }
    }
}

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,h2=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let (outcome, check) = match cli.command {
        Command::Local(args) => (
            rtb_perf::local::run_local(&args.options())?,
            args.check_goal,
        ),
        Command::Run { target, args } => (
            rtb_perf::local::run_external(&args.options(), &target)?,
            args.check_goal,
        ),
        Command::Compare { a, b } => {
            print!(
                "{}",
                rtb_perf::report::compare(
                    &rtb_perf::report::read(&a)?,
                    &rtb_perf::report::read(&b)?
                )
            );
            return Ok(ExitCode::SUCCESS);
        }
        Command::Events(a) => {
            rtb_perf::events::run(&rtb_perf::events::Options {
                brokers: a.brokers,
                database_url: a.database_url,
                events: a.events,
                rate: a.rate,
                batch_max: a.batch_max,
                batch_ms: a.batch_ms,
                partitions: a.partitions,
                mode: a.mode,
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Check { files } => {
            for f in files {
                let s = rtb_perf::scenario::Scenario::load(&f)?;
                println!("{}: ok ({})", f.display(), s.name);
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    Ok(if check && outcome.report.goal_met == Some(false) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
