//! `exchange ledger --config FILE`: the ledger as its own process.
//!
//! Lives in the library so `main.rs` only dispatches. SIGTERM/SIGINT stop it
//! after the batch in progress commits; a bad config exits with code 64.
//! `DATABASE_URL` sets `[ledger] database_url` when the file has none.

use std::path::Path;
use std::process::ExitCode;

use tokio::sync::watch;

use super::Ledger;
use crate::config::{Config, EXIT_CONFIG};
use crate::events::config::ENV_DATABASE_URL;

/// Runs the ledger until a signal; returns the process exit code.
pub fn main(path: &Path) -> ExitCode {
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
        let ledger = Ledger::connect(&brokers, &cfg.kafka, &cfg.ledger).await?;
        tracing::info!(%brokers, topic = %cfg.kafka.topic, "ledger running");
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(ledger.run(stop_rx));
        shutdown_signal().await;
        tracing::info!("signal received: finishing the batch in progress");
        let _ = stop_tx.send(true);
        match task.await {
            Ok(r) => r,
            Err(e) => Err(super::LedgerError::Config(format!("ledger task: {e}"))),
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
