//! The publisher-facing HTTP server: HTTP/1.1 and h2c on one port, graceful drain.
//!
//! Shutdown, in order: `/readyz` turns 503, the listener closes, in-flight
//! requests finish (each is bounded by its own deadline) within
//! `server.drain_timeout_ms`, then the server returns; [`RunningExchange::shutdown`]
//! then flushes the auction events (producer, spool, embedded ledger).

pub mod auctions;
mod conn;
pub mod ingress;
pub mod overload;
mod pace;
pub mod router;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::config::{Config, ConfigError, EndpointPolicy};
use crate::events::EventSystem;
use crate::fanout::ClientError;
use crate::pipeline::Exchange;
use crate::registry::RegistryError;
pub use router::{handle, App, AUCTION_PATH};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A bidder's client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The event pipeline (Kafka, spool, embedded ledger) could not start.
    #[error(transparent)]
    Events(#[from] crate::events::EventsError),
    /// The dedicated runtime or the auction runtime could not start.
    #[error("cannot start runtime: {0}")]
    Runtime(std::io::Error),
    /// The bidder registry could not start (database, clients).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The configuration cannot start what it asks for (admin API without a token).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The budget database could not be opened or read.
    #[error("budgets: {0}")]
    Budgets(#[from] rtb_ledger::LedgerError),
}

/// An exchange serving on the current runtime.
#[derive(Debug)]
pub struct RunningExchange {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    app: Arc<App>,
    shutdown_tx: watch::Sender<bool>,
    task: JoinHandle<()>,
    admin_task: Option<JoinHandle<()>>,
    /// The operational listener's task (`metrics_listen`).
    metrics_task: Option<JoinHandle<()>>,
    /// The budget refill task and its stop switch: stopped after the drain,
    /// it records what was awarded and gives the rest of the leases back.
    budgets: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    /// Flushed after the drain (`None` when `[kafka] enabled = false`).
    events: Option<EventSystem>,
}

impl RunningExchange {
    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The admin API's bound address, when `admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The admin API's base URL, when `admin_listen` is set.
    pub fn admin_url(&self) -> Option<String> {
        self.admin_addr.map(|a| format!("http://{a}"))
    }

    /// The operational listener's base URL, when `metrics_listen` is set.
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics_addr.map(|a| format!("http://{a}"))
    }

    /// Shared state (bidders, readiness, counters).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// The event pipeline, when enabled.
    pub fn events(&self) -> Option<&EventSystem> {
        self.events.as_ref()
    }

    /// Drains, then flushes the events; returns when both are done.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let _ = self.task.await;
        if let Some(t) = self.admin_task {
            let _ = t.await;
        }
        if let Some(t) = self.metrics_task {
            let _ = t.await;
        }
        if let Some((stop, task)) = self.budgets {
            let _ = stop.send(true);
            let _ = task.await;
        }
        if let Some(events) = self.events {
            events.shutdown().await;
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok((listener, addr))
}

/// Binds `config.listen` (and `admin_listen`, if set) and serves on the
/// current tokio runtime. Environment overrides are the caller's
/// ([`Config::apply_env`]); this only checks that an admin API has a token.
pub async fn start(config: Config) -> Result<RunningExchange, ServeError> {
    start_with_clock(config, Arc::new(crate::budget::SystemClock)).await
}

/// [`start`] with the clock days, lease expiry and event times are read
/// from (tests move it to the next day).
pub async fn start_with_clock(
    config: Config,
    clock: Arc<dyn crate::budget::Clock>,
) -> Result<RunningExchange, ServeError> {
    config.check_admin()?;
    let policy = EndpointPolicy::new(&config.registry)
        .map_err(|(key, message)| ServeError::Config(ConfigError::Invalid { key, message }))?;
    let (listener, addr) = bind(config.listen).await?;
    let admin = match config.admin_listen {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let ops = match config.metrics_listen {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let token = config.admin_token.clone().unwrap_or_default();
    let events = match config.kafka.enabled {
        true => Some(EventSystem::start(&config.kafka, &config.ledger).await?),
        false => None,
    };
    // Budgets live in the ledger's database and are debited from the
    // events: they need both.
    let budgets = match config.kafka.enabled && config.budget.enabled {
        true => {
            let store = rtb_ledger::Store::open(&config.ledger).await?;
            let b = crate::budget::Budgets::start(
                store,
                crate::pipeline::instance_id(),
                clock.clone(),
                config.budget.clone(),
            )
            .await?;
            Some(b)
        }
        false => None,
    };
    let mut exchange = Exchange::new(config).await?.with_clock(clock);
    if let Some(events) = &events {
        exchange = exchange.with_events(events.sink());
    }
    let budget_task = budgets.as_ref().map(|b| {
        let (tx, rx) = watch::channel(false);
        (tx, b.spawn_refill(rx))
    });
    if let Some(b) = &budgets {
        exchange = exchange.with_budgets(b.clone());
    }
    let app = Arc::new(App::new(exchange).map_err(ServeError::Runtime)?);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let task = tokio::spawn(serve(listener, app.clone(), stopped(shutdown_rx.clone())));
    let (metrics_addr, metrics_task) = match ops {
        Some((listener, a)) => {
            let t = tokio::spawn(serve_ops(
                listener,
                app.clone(),
                stopped(shutdown_rx.clone()),
            ));
            (Some(a), Some(t))
        }
        None => (None, None),
    };
    let (admin_addr, admin_task) = match admin {
        Some((listener, admin_addr)) => {
            let state = Arc::new(
                AdminState::new(app.exchange.registry().clone(), token, policy)
                    .with_budgets(budgets.clone()),
            );
            let t = tokio::spawn(admin::serve(listener, state, stopped(shutdown_rx)));
            (Some(admin_addr), Some(t))
        }
        None => (None, None),
    };
    Ok(RunningExchange {
        addr,
        admin_addr,
        metrics_addr,
        app,
        shutdown_tx,
        task,
        admin_task,
        metrics_task,
        budgets: budget_task,
        events,
    })
}

/// Serves connections from `listener` until `shutdown` completes, then drains.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let app2 = app.clone();
    serve_with(listener, app, shutdown, move |req| {
        router::handle(app2.clone(), req)
    })
    .await;
}

/// Serves the operational routes (`metrics_listen`) until `shutdown` completes.
pub async fn serve_ops(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let app2 = app.clone();
    serve_with(listener, app, shutdown, move |req| {
        router::handle_ops(app2.clone(), req)
    })
    .await;
}

/// The accept loop behind [`serve`] and [`serve_ops`]: connection cap,
/// per-connection timeouts (see `conn.rs`), graceful drain.
async fn serve_with<H, F>(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
    handler: H,
) where
    H: Fn(http::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<
            Output = Result<
                http::Response<http_body_util::Full<bytes::Bytes>>,
                std::convert::Infallible,
            >,
        > + Send
        + 'static,
{
    let s = &app.exchange.config.server;
    let limits = Arc::new(conn::Limits::from_config(s));
    let builder = Arc::new(conn::builder(s));
    // One permit per open connection: the cap, and what the drain waits for.
    let max = s.max_connections;
    let connections = Arc::new(Semaphore::new(max));
    let (closing_tx, closing_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let serve_one = |stream: tokio::net::TcpStream| {
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            // Over the cap: close at once rather than queue.
            app.exchange.metrics().connections_refused.inc();
            drop(stream);
            return;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(conn::serve_connection(
            stream,
            builder.clone(),
            limits.clone(),
            handler.clone(),
            closing_rx.clone(),
            app.exchange.shared_metrics(),
            permit,
        ));
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => serve_one(stream),
                Err(e) => {
                    // Out of file descriptors and the like: back off
                    // briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    app.ready.store(false, Ordering::Relaxed);
    // Connections the kernel already completed are waiting in the backlog;
    // closing the listener would reset them after their clients sent a
    // request. Serve every one that is already there, then close.
    while let Some(Ok((stream, _))) = listener.accept().now_or_never() {
        serve_one(stream);
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drain = Duration::from_millis(app.exchange.config.server.drain_timeout_ms);
    let all_closed = connections.acquire_many(max as u32);
    if tokio::time::timeout(drain, all_closed).await.is_err() {
        tracing::warn!(?drain, "drain timed out; closing remaining connections");
    }
}

/// An exchange on its own multi-thread runtime, whose worker threads are
/// named `rtb-exchange` so its CPU time can be told apart from a load
/// generator's in the same process (`/proc/self/task/*/stat`).
#[derive(Debug)]
pub struct DedicatedExchange {
    runtime: tokio::runtime::Runtime,
    running: RunningExchange,
}

/// Thread name of the dedicated runtime's workers.
pub const DEDICATED_THREAD_NAME: &str = "rtb-exchange";

/// Starts the exchange on a dedicated runtime with `worker_threads` workers.
pub fn start_dedicated(
    config: Config,
    worker_threads: usize,
) -> Result<DedicatedExchange, ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads.max(1))
        .thread_name(DEDICATED_THREAD_NAME)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let running = runtime.block_on(start(config))?;
    Ok(DedicatedExchange { runtime, running })
}

impl DedicatedExchange {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    /// Shared state.
    pub fn app(&self) -> &Arc<App> {
        self.running.app()
    }

    /// Drains, stops, and shuts the runtime down. Must not be called from
    /// inside an async context (it blocks).
    pub fn shutdown(self) {
        let Self { runtime, running } = self;
        runtime.block_on(running.shutdown());
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}
