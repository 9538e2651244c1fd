//! `exchange ledger --config FILE`: the ledger as its own process.
//!
//! Lives in the library so `main.rs` only dispatches. SIGTERM/SIGINT stop it
//! after the batch in progress commits; a bad config exits with code 64.
//! `DATABASE_URL` sets `[ledger] database_url` when the file has none.
//! `/metrics` and `/healthz` are served on `[ledger] metrics_addr`
//! (`--metrics-addr` overrides it; see [`rtb_ledger::metrics`]).

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::watch;

use rtb_ledger::config::{check_metrics_addr, ENV_DATABASE_URL};
use rtb_ledger::metrics::{self, LedgerMetrics};
use rtb_ledger::Ledger;

use crate::config::{Config, EXIT_CONFIG};

/// Runs the ledger until a signal; returns the process exit code.
/// `metrics_addr` (the `--metrics-addr` flag) overrides `[ledger] metrics_addr`.
pub fn main(path: &Path, metrics_addr: Option<String>) -> ExitCode {
    let mut cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    // LEDGER_DATABASE_URL wins; DATABASE_URL is the fallback when the file
    // names no ledger database. (Not `Config::apply_env`: the ledger has no
    // admin API and needs no admin token.)
    if let Ok(u) = std::env::var(crate::config::ENV_LEDGER_DATABASE_URL) {
        if !u.is_empty() {
            cfg.ledger.database_url = Some(u);
        }
    }
    let env_url = std::env::var(ENV_DATABASE_URL).ok();
    if let Err(e) = cfg.ledger.apply_env_database_url(env_url) {
        eprintln!("{e}");
        return ExitCode::from(EXIT_CONFIG as u8);
    }
    if let Some(a) = metrics_addr {
        if let Err(e) = check_metrics_addr("--metrics-addr", &a) {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
        cfg.ledger.metrics_addr = a;
    }
    // Validated with the rest of the file (or just above).
    let Ok(metrics_addr) = cfg.ledger.metrics_addr.parse::<SocketAddr>() else {
        eprintln!("config: ledger.metrics_addr: not an address");
        return ExitCode::from(EXIT_CONFIG as u8);
    };
    let Some(brokers) = cfg.kafka.brokers.clone() else {
        eprintln!(
            "config: kafka.brokers: required by `exchange ledger` \
             (without brokers the ledger runs embedded in `exchange serve`)"
        );
        return ExitCode::from(EXIT_CONFIG as u8);
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let listener = metrics::bind(metrics_addr).await.map_err(|e| {
            rtb_ledger::LedgerError::Config(format!(
                "ledger.metrics_addr: cannot listen on {metrics_addr}: {e}"
            ))
        })?;
        let ledger = Ledger::connect(&brokers, &cfg.kafka, &cfg.ledger).await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let figures = Arc::new(LedgerMetrics::new(ledger.stats().clone()));
        let samplers = figures.spawn_samplers(
            &brokers,
            &cfg.kafka.topic,
            ledger.store().clone(),
            stop_rx.clone(),
        )?;
        if let Ok(local) = listener.local_addr() {
            tracing::info!(addr = %local, "ledger metrics on /metrics and /healthz");
        }
        let server = tokio::spawn(metrics::serve(listener, figures, stop_rx.clone()));
        tracing::info!(%brokers, topic = %cfg.kafka.topic, "ledger running");
        let task = tokio::spawn(ledger.run(stop_rx));
        shutdown_signal().await;
        tracing::info!("signal received: finishing the batch in progress");
        let _ = stop_tx.send(true);
        for s in samplers {
            let _ = s.await;
        }
        let _ = server.await;
        match task.await {
            Ok(r) => r,
            Err(e) => Err(rtb_ledger::LedgerError::Config(format!("ledger task: {e}"))),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
