//! The open-loop generator against real servers on 127.0.0.1: a target that
//! stalls must not slow the send rate, and the stall must show in latencies.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rtb_perf::load::{self, HttpVersion, Live, LoadConfig};
use rtb_perf::requests::{BodyPool, RequestMix};
use rtb_perf::schedule::{Phase, Process, Schedule};

/// Serves HTTP/1.1 and h2c; every request sleeps `stall` then answers `status`.
async fn stalling_server(stall: Duration, status: u16) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let counter = counter.clone();
                    async move {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let _ = req.into_body().collect().await;
                        tokio::time::sleep(stall).await;
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"{}")));
                        *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}/openrtb2/auction"), seen)
}

fn config(target: String, protocol: HttpVersion, rate: f64) -> LoadConfig {
    LoadConfig {
        target,
        protocol,
        connections: 2,
        timeout: Duration::from_secs(5),
        schedule: Schedule {
            phases: vec![Phase::flat(rate, 1.0)],
            process: Process::Constant,
            seed: 1,
        },
    }
}

async fn stall_keeps_rate(protocol: HttpVersion) {
    let stall = Duration::from_millis(300);
    let (target, seen) = stalling_server(stall, 200).await;
    let pool = BodyPool::generate(&RequestMix {
        pool: 16,
        ..RequestMix::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let result = load::run(
        &config(target, protocol, 200.0),
        &pool,
        Arc::new(Live::default()),
    )
    .await
    .unwrap();
    let wall = started.elapsed();
    // All 200 leave within about a second although none returns for 300 ms:
    // a closed-loop client with a few connections would manage far fewer.
    assert!(result.sent >= 150, "{protocol}: sent {}", result.sent);
    assert!(
        result.send_window < Duration::from_millis(1500),
        "{protocol}: window {:?}",
        result.send_window
    );
    assert!(wall < Duration::from_secs(4), "{protocol}: wall {wall:?}");
    assert_eq!(
        result.recorder.counts.ok_200, result.sent,
        "{protocol}: {:?}",
        result.recorder.counts
    );
    assert_eq!(seen.load(Ordering::Relaxed), result.sent);
    // The stall is in every latency, not hidden.
    let min_ms = result.recorder.all.min() as f64 / 1000.0;
    assert!(min_ms >= 299.0, "{protocol}: min latency {min_ms} ms");
    assert_eq!(result.recorder.all.len(), result.sent);
    assert_eq!(result.recorder.per_second.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_its_rate_when_the_target_stalls_http1() {
    stall_keeps_rate(HttpVersion::Http1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_its_rate_when_the_target_stalls_http2() {
    stall_keeps_rate(HttpVersion::Http2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_statuses_are_counted() {
    let (target, _) = stalling_server(Duration::from_millis(500), 200).await;
    let pool = BodyPool::generate(&RequestMix {
        pool: 4,
        ..RequestMix::default()
    })
    .unwrap();
    let mut cfg = config(target, HttpVersion::Http2, 20.0);
    cfg.timeout = Duration::from_millis(100);
    let result = load::run(&cfg, &pool, Arc::new(Live::default()))
        .await
        .unwrap();
    assert_eq!(result.recorder.counts.timeouts, result.sent);
    // Timeouts are recorded at their elapsed time, a lower bound.
    assert!(result.recorder.all.min() >= 100_000);

    let (target, _) = stalling_server(Duration::ZERO, 503).await;
    let result = load::run(
        &config(target, HttpVersion::Http1, 20.0),
        &pool,
        Arc::new(Live::default()),
    )
    .await
    .unwrap();
    assert_eq!(result.recorder.counts.shed_503, result.sent);
    assert_eq!(result.recorder.counts.answered(), 0);
}

#[tokio::test]
async fn connection_refused_is_an_error_not_a_hang() {
    // Bind then drop to get a port with nothing listening.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let pool = BodyPool::generate(&RequestMix {
        pool: 4,
        ..RequestMix::default()
    })
    .unwrap();
    let target = format!("http://{addr}/openrtb2/auction");
    let result = load::run(
        &config(target.clone(), HttpVersion::Http1, 10.0),
        &pool,
        Arc::new(Live::default()),
    )
    .await
    .unwrap();
    assert_eq!(result.recorder.counts.errors, result.sent);
    // HTTP/2 dials up front, so a dead target fails the run at once.
    assert!(load::run(
        &config(target, HttpVersion::Http2, 10.0),
        &pool,
        Arc::new(Live::default())
    )
    .await
    .is_err());
}
