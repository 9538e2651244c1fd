//! The two ways to run a scenario: `perf local` (simulated bidders and the
//! exchange started in this process, then load against it) and `perf run`
//! (load against an exchange that is already running).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use rtb_bidder::{BidderConfig, BidderHandle};
use rtb_exchange::config::{BidderEntry, Config, Protocol};

use crate::cpu::{threads_cpu, EXCHANGE_THREAD_PREFIX};
use crate::load::{self, Live, LoadResult};
use crate::progress;
use crate::report::{self, Report, RunInfo, Written};
use crate::scenario::{Overrides, Scenario};

/// Options shared by `perf local` and `perf run`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Command-line replacements.
    pub overrides: Overrides,
    /// Output directory; default `perf/out/<scenario>-<timestamp>`.
    pub out: Option<PathBuf>,
    /// Print the table to stdout.
    pub print: bool,
    /// Load the bare hyper fan-out baseline instead of the exchange.
    pub baseline: bool,
}

/// What a finished run left behind.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// Where its files are.
    pub written: Written,
}

/// Default parent of run directories: `perf/out` of this crate.
pub fn default_out_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("out")
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("rtb-perf")
        .enable_all()
        .build()
        .context("starting the load generator runtime")
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn load_scenario(opts: &Options) -> anyhow::Result<Scenario> {
    let mut s = Scenario::load(&opts.scenario)?;
    s.apply(&opts.overrides)
        .context("after command-line overrides")?;
    Ok(s)
}

/// `perf run`: load against `target` (a full auction URL); bidders in the
/// scenario are ignored and exchange CPU is not known. Blocking, like
/// [`run_local`].
pub fn run_external(opts: &Options, target: &str) -> anyhow::Result<Outcome> {
    let scenario = load_scenario(opts)?;
    let pool = scenario.body_pool()?;
    let rt = runtime()?;
    let started = now_unix();
    let result = rt.block_on(drive(&scenario, target.to_owned(), &pool))?;
    finish(
        opts,
        &scenario,
        "run",
        target,
        pool.source(),
        started,
        None,
        None,
        None,
        &result,
    )
}

/// `perf local`: starts the scenario's bidders and an exchange in this
/// process, runs the load against it, shuts everything down and reports,
/// including the exchange's CPU time per answered auction. Blocking: call it
/// from a plain thread, not from inside an async runtime.
pub fn run_local(opts: &Options) -> anyhow::Result<Outcome> {
    let scenario = load_scenario(opts)?;
    if scenario.bidders.is_empty() {
        return Err(anyhow!(
            "bidders: perf local needs at least one [[bidders]] entry"
        ));
    }
    let pool = scenario.body_pool()?;
    let rt = runtime()?;
    let (handles, entries) = rt.block_on(start_bidders(&scenario))?;
    let mut config = match &scenario.exchange.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_toml_str(&text)
                .map_err(|e| anyhow!("exchange.config {}: {e}", path.display()))?
        }
        None => {
            let mut c = Config::default();
            c.kafka.enabled = scenario.exchange.events && !opts.baseline;
            c
        }
    };
    // The embedded pipeline's files live in a temp dir for the run: the
    // mock cluster's data goes with the process anyway.
    let data = tempfile::tempdir().context("creating a temp dir for the ledger")?;
    if scenario.exchange.config.is_none() {
        config.kafka.spool_path = data.path().join("events.spool");
        config.ledger.sqlite_path = data.path().join("ledger.sqlite");
    }
    let ledger = (config.kafka.enabled && config.ledger.runs_embedded(&config.kafka))
        .then(|| config.ledger.clone());
    config.listen = ([127, 0, 0, 1], 0).into();
    // A config file's own setting stands unless the command line says.
    if scenario.exchange.config.is_none() || opts.overrides.adaptive_wait.is_some() {
        config.auction.adaptive_wait.enabled = scenario.exchange.adaptive_wait;
    }
    // The dedicated runtime blocks while starting and stopping, so both happen
    // outside the load generator's runtime.
    let server = if opts.baseline {
        let urls = entries.into_iter().map(|e| e.endpoints).collect();
        Server::Baseline(crate::baseline::DedicatedBaseline::start(
            urls,
            scenario.exchange.workers,
            EXCHANGE_THREAD_PREFIX,
        )?)
    } else {
        config.bidders = entries;
        Server::Exchange(Box::new(
            rtb_exchange::server::start_dedicated(config, scenario.exchange.workers)
                .map_err(|e| anyhow!("starting the exchange: {e}"))?,
        ))
    };
    let addr = match &server {
        Server::Exchange(e) => e.addr(),
        Server::Baseline(b) => b.addr(),
    };
    let target = format!("http://{addr}{}", scenario.exchange.path);
    let started = now_unix();
    let cpu_before = threads_cpu(EXCHANGE_THREAD_PREFIX);
    let result = rt.block_on(drive(&scenario, target.clone(), &pool));
    let cpu_after = threads_cpu(EXCHANGE_THREAD_PREFIX);
    let stages = match &server {
        Server::Exchange(_) => rt.block_on(exchange_stages(addr)),
        Server::Baseline(_) => None,
    };
    match server {
        Server::Exchange(e) => e.shutdown(),
        Server::Baseline(b) => b.shutdown(),
    }
    // The shutdown let the embedded ledger apply what was produced.
    let debits = match &ledger {
        Some(cfg) => rt.block_on(ledger_totals(cfg)),
        None => None,
    };
    rt.block_on(async {
        for h in handles {
            // A hanging bidder's connections are closed by its shutdown.
            let _ = tokio::time::timeout(Duration::from_secs(5), h.shutdown()).await;
        }
    });
    let result = result?;
    let cpu = cpu_before
        .zip(cpu_after)
        .map(|(b, a)| a.saturating_sub(b).as_secs_f64());
    finish(
        opts,
        &scenario,
        if opts.baseline {
            "local-baseline"
        } else {
            "local"
        },
        &target,
        pool.source(),
        started,
        cpu,
        stages,
        debits,
        &result,
    )
}

/// Debits and their sum in the embedded ledger's database.
async fn ledger_totals(cfg: &rtb_exchange::events::LedgerConfig) -> Option<(i64, i64)> {
    let store = rtb_ledger::Store::open(cfg).await.ok()?;
    let totals = store.debit_totals().await.ok();
    store.close().await;
    totals
}

/// The exchange's own stage percentiles (`GET /v1/stats/latency`), if it answers.
async fn exchange_stages(addr: std::net::SocketAddr) -> Option<serde_json::Value> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri = format!("http://{addr}/v1/stats/latency").parse().ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
        .await
        .ok()?
        .ok()?;
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    Some(v["stages"].clone())
}

/// What `perf local` loads: the exchange, or the bare fan-out baseline.
enum Server {
    Exchange(Box<rtb_exchange::server::DedicatedExchange>),
    Baseline(crate::baseline::DedicatedBaseline),
}

async fn start_bidders(s: &Scenario) -> anyhow::Result<(Vec<BidderHandle>, Vec<BidderEntry>)> {
    let mut handles = Vec::new();
    let mut entries = Vec::new();
    for (i, b) in s.bidders.iter().enumerate() {
        let mut endpoints = Vec::with_capacity(b.instances);
        for n in 0..b.instances {
            let config = BidderConfig {
                seat: b.name.clone(),
                price: b.price,
                price_spread: b.price_spread,
                bid_rate: b.bid_rate,
                latency: b.parsed_latency()?,
                fault: b.parsed_fault()?,
                // Distinct, reproducible streams per bidder and instance.
                seed: Some(
                    s.requests
                        .seed
                        .wrapping_add((i as u64) << 16)
                        .wrapping_add(n as u64),
                ),
                ..BidderConfig::default()
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding a bidder")?;
            let handle = rtb_bidder::spawn(listener, config)
                .await
                .with_context(|| format!("starting bidder {} instance {n}", b.name))?;
            endpoints.push(format!("{}/openrtb2/bid", handle.url()));
            handles.push(handle);
        }
        let mut entry = BidderEntry::new(b.name.clone(), endpoints, Protocol::H2c);
        entry.tmax_deduction_ms = b.tmax_deduction_ms;
        entry.secondary = b.secondary;
        entries.push(entry);
    }
    Ok((handles, entries))
}

async fn drive(
    s: &Scenario,
    target: String,
    pool: &crate::requests::BodyPool,
) -> anyhow::Result<LoadResult> {
    let config = s.load_config(target);
    let live = Arc::new(Live::default());
    let bar = progress::start(live.clone(), config.schedule.expected_requests());
    let result = load::run(&config, pool, live).await;
    bar.finish();
    result
}

#[allow(clippy::too_many_arguments)]
fn finish(
    opts: &Options,
    s: &Scenario,
    mode: &str,
    target: &str,
    source: &str,
    started: u64,
    exchange_cpu_s: Option<f64>,
    exchange_stages: Option<serde_json::Value>,
    debits: Option<(i64, i64)>,
    result: &LoadResult,
) -> anyhow::Result<Outcome> {
    let schedule = s.schedule();
    let info = RunInfo {
        scenario: s.name.clone(),
        description: s.description.clone(),
        goal: s.goal.clone(),
        goal_p99_ms: s.goal_p99_ms,
        mode: mode.to_owned(),
        target: target.to_owned(),
        protocol: s.load.protocol.to_string(),
        connections: s.load.connections,
        process: format!("{:?}", s.load.process).to_lowercase(),
        requests_source: source.to_owned(),
        started_unix_s: started,
        planned_duration_s: schedule.duration().as_secs_f64(),
        planned_requests: schedule.expected_requests(),
        exchange_cpu_s,
        exchange_stages,
    };
    let report = Report::new(info, result);
    let dir = opts
        .out
        .clone()
        .unwrap_or_else(|| default_out_root().join(report::run_dir_name(&s.name, started)));
    let written = report::write(&dir, &report, &result.recorder.all)?;
    if opts.print {
        print!("{}", report.table());
        if let Some((n, micros)) = debits {
            println!(
                "ledger       {n} debits, {:.2} spent (embedded Kafka mock cluster + SQLite)",
                micros as f64 / 1e6
            );
        }
        println!("files        {}", written.dir.display());
    }
    Ok(Outcome { report, written })
}
