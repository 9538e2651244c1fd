//! The baseline: a bare hyper HTTP/2 fan-out with no OpenRTB logic.
//!
//! It receives a body, posts it unchanged to one instance of every bidder over
//! pooled h2c, waits for all answers or a fixed timeout, and returns the first
//! 200 body it got (or 204). No decoding, validation, auction or metrics. The
//! exchange's throughput and CPU are reported as ratios to this, measured in
//! the same run on the same machine, so a figure says what the OpenRTB logic
//! costs rather than what the box can do.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long the baseline waits for bidders: the exchange's default tmax
/// (120 ms) less its default response margin (10 ms), so both wait alike.
const WAIT: Duration = Duration::from_millis(110);

struct State {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Per bidder, its instance URLs.
    bidders: Vec<Vec<http::Uri>>,
    /// Round-robin cursor over instances.
    next: AtomicUsize,
}

/// A baseline server on its own runtime (threads named like the exchange's,
/// so CPU is measured the same way).
pub struct DedicatedBaseline {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    stop_tx: watch::Sender<bool>,
}

impl DedicatedBaseline {
    /// Starts the baseline, fanning out to `bidders` (instance URLs per bidder).
    pub fn start(
        bidders: Vec<Vec<String>>,
        workers: usize,
        thread_name: &str,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name(thread_name)
            .enable_all()
            .build()?;
        let bidders = bidders
            .into_iter()
            .map(|urls| {
                urls.iter()
                    .map(|u| u.parse())
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let addr = runtime.block_on(async move {
            let mut builder = Client::builder(TokioExecutor::new());
            builder.http2_only(true);
            let state = Arc::new(State {
                client: builder.build(HttpConnector::new()),
                bidders,
                next: AtomicUsize::new(0),
            });
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            tokio::spawn(serve(listener, state, stop_rx));
            anyhow::Ok(addr)
        })?;
        Ok(Self {
            runtime,
            addr,
            stop_tx,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it. Blocking: call from outside any runtime.
    pub fn shutdown(self) {
        let _ = self.stop_tx.send(true);
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

async fn serve(listener: TcpListener, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            Ok((stream, _)) = listener.accept() => {
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let builder = builder.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}

async fn handle(
    state: Arc<State>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status(400)),
    };
    let turn = state.next.fetch_add(1, Ordering::Relaxed);
    let calls = state.bidders.iter().map(|instances| {
        let uri = instances[turn % instances.len()].clone();
        let req = http::Request::post(uri)
            .header("content-type", "application/json")
            .body(Full::new(body.clone()));
        let client = state.client.clone();
        async move {
            let req = req.ok()?;
            let call = async {
                let resp = client.request(req).await.ok()?;
                let ok = resp.status() == 200;
                let bytes = resp.into_body().collect().await.ok()?.to_bytes();
                ok.then_some(bytes)
            };
            tokio::time::timeout(WAIT, call).await.ok().flatten()
        }
    });
    let answers = join_all(calls).await;
    Ok(match answers.into_iter().flatten().next() {
        Some(bytes) => http::Response::new(Full::new(bytes)),
        None => status(204),
    })
}

fn status(code: u16) -> http::Response<Full<Bytes>> {
    let mut resp = http::Response::new(Full::default());
    *resp.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
    resp
}
