//! `exchange`: the command line. Parses arguments and calls the library.
//!
//! Signals: SIGTERM and SIGINT start a graceful drain (see `server`); the
//! process exits 0 once in-flight auctions are answered. A bad config exits
//! with code 64 before any port is bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rtb_exchange::config::{Config, ENV_LISTEN, EXIT_CONFIG};
use rtb_exchange::server;

#[derive(Parser)]
#[command(name = "exchange", version, about = "OpenRTB 2.6 ad exchange")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve publisher traffic.
    Serve {
        /// TOML configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Listen address; overrides `listen` in the file (and EXCHANGE_LISTEN).
        #[arg(long, env = ENV_LISTEN)]
        listen: Option<SocketAddr>,
        /// Worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Run the ledger: consume auction results and apply debits exactly once
    /// (needs `[kafka] brokers`; the embedded setup runs it inside `serve`).
    Ledger {
        /// TOML configuration file (`[kafka]` and `[ledger]` are read).
        #[arg(long)]
        config: PathBuf,
        /// Where to serve /metrics and /healthz; overrides `[ledger] metrics_addr`.
        #[arg(long)]
        metrics_addr: Option<String>,
    },
    /// Check a configuration file and exit (0 when valid, 64 when not).
    CheckConfig {
        /// TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EXIT_CONFIG as u8)
            }
        },
        Command::Ledger {
            config,
            metrics_addr,
        } => rtb_exchange::ledger_cli::main(&config, metrics_addr),
        Command::Serve {
            config,
            listen,
            workers,
        } => {
            let mut cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(EXIT_CONFIG as u8);
                }
            };
            if let Some(addr) = listen {
                cfg.listen = addr;
            }
            // EXCHANGE_ADMIN_TOKEN and DATABASE_URL win over the file.
            if let Err(e) = cfg.apply_env() {
                eprintln!("{e}");
                return ExitCode::from(EXIT_CONFIG as u8);
            }
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = workers {
                rt.worker_threads(n.max(1));
            }
            let rt = match rt.enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    let bidders = cfg.bidders.len();
    // Handlers first: a SIGTERM that arrives as soon as the port is announced
    // must drain, not kill the process.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let running = server::start(cfg).await?;
    // Scripts and tests read this line to learn the port when listening on :0.
    println!("exchange listening on {}", running.url());
    if let Some(admin) = running.admin_url() {
        // The second line, for the same readers.
        println!("admin listening on {admin}");
    }
    tracing::info!(addr = %running.addr(), bidders, "exchange serving");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("signal received: draining");
    running.shutdown().await;
    tracing::info!("drained; exiting");
    Ok(())
}
