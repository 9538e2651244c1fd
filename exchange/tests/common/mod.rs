//! Shared helpers for the exchange's integration tests: simulated bidders,
//! scripted bidders (any answer to the exact bytes received) and a capturing
//! one, an exchange on 127.0.0.1:0, and a publisher client speaking HTTP/1.1
//! or h2c.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rtb_bidder::{BidderConfig, BidderHandle};
use rtb_exchange::config::{BidderEntry, Config, Protocol};
use rtb_exchange::server::{self, RunningExchange};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The simulated bidders run on their own runtime, as they would in their own
/// process: a bidder's CPU work (a 10 MB body, say) must not stall the
/// exchange under test, which would make deadline assertions meaningless.
fn bidder_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    own_runtime(&RT, "test-bidders", 2)
}

/// The runtime in `cell`, built on first use with `threads` workers.
fn own_runtime(
    cell: &'static std::sync::OnceLock<tokio::runtime::Runtime>,
    name: &str,
    threads: usize,
) -> &'static tokio::runtime::Runtime {
    cell.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Starts a simulated bidder on 127.0.0.1:0, on the bidders' runtime.
pub async fn bidder(seat: &str, price: f64, tweak: impl FnOnce(&mut BidderConfig)) -> BidderHandle {
    let mut config = BidderConfig {
        seat: seat.to_owned(),
        price,
        adomain: format!("{seat}.example"),
        ..BidderConfig::default()
    };
    tweak(&mut config);
    bidder_runtime()
        .spawn(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            rtb_bidder::spawn(listener, config).await.unwrap()
        })
        .await
        .unwrap()
}

/// Starts a simulated bidder on a given address (a port reserved earlier).
pub async fn bidder_at(addr: std::net::SocketAddr, seat: &str, price: f64) -> BidderHandle {
    let config = BidderConfig {
        seat: seat.to_owned(),
        price,
        adomain: format!("{seat}.example"),
        ..BidderConfig::default()
    };
    bidder_runtime()
        .spawn(async move {
            let listener = TcpListener::bind(addr).await.unwrap();
            rtb_bidder::spawn(listener, config).await.unwrap()
        })
        .await
        .unwrap()
}

/// The scripted bidders run on their own runtime, like the simulated ones
/// (see `common`): their CPU work must not stall the exchange under test.
fn scripted_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    own_runtime(&RT, "test-scripted-bidders", 1)
}

/// A bidder that answers each bid request with whatever `answer` builds from
/// its body (status 200), over h2c or HTTP/1.1; returns its base URL.
pub async fn raw_bidder(answer: impl Fn(&[u8]) -> Bytes + Send + Sync + 'static) -> String {
    let answer = Arc::new(answer);
    scripted_runtime()
        .spawn(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let answer = answer.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                            let answer = answer.clone();
                            async move {
                                let body: hyper::body::Incoming = req.into_body();
                                let bytes = body.collect().await.map(|b| b.to_bytes());
                                let out = answer(&bytes.unwrap_or_default());
                                Ok::<_, Infallible>(http::Response::new(Full::new(out)))
                            }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                    });
                }
            });
            format!("http://{addr}")
        })
        .await
        .unwrap()
}

/// The request bodies a [`capturing_bidder`] received, in arrival order.
pub type Captured = std::sync::Arc<std::sync::Mutex<Vec<Bytes>>>;

/// A bidder that keeps every bid request body it receives (exactly the
/// bytes on the wire) and never bids (an empty 200); returns its base URL.
pub async fn capturing_bidder() -> (String, Captured) {
    let captured = Captured::default();
    let keep = captured.clone();
    let url = raw_bidder(move |body| {
        keep.lock().unwrap().push(Bytes::copy_from_slice(body));
        Bytes::new()
    })
    .await;
    (url, captured)
}

/// Starts an exchange on 127.0.0.1:0 with one h2c bidder entry per handle.
pub async fn exchange(
    bidders: &[(&str, &BidderHandle)],
    tweak: impl FnOnce(&mut Config),
) -> RunningExchange {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    // Tests about events turn them on in `tweak`, with their own temp paths.
    config.kafka.enabled = false;
    for (name, handle) in bidders {
        config
            .bidders
            .push(BidderEntry::new(*name, vec![handle.url()], Protocol::H2c));
    }
    // Tests share two cores with each other: scheduling-lag shedding would
    // make unrelated assertions flaky. Its own test turns it back on.
    config.server.max_scheduling_lag_ms = 0;
    tweak(&mut config);
    config.validate().unwrap();
    server::start(config).await.unwrap()
}

/// A publisher's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub version: http::Version,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A publisher client: HTTP/1.1 or h2c with prior knowledge. It sends its
/// frames at once (TCP_NODELAY, as a real publisher's client does): with
/// Nagle, a request written in two parts waits for the exchange's delayed
/// ACK, 40 ms per request.
pub fn client(http2: bool) -> Client<HttpConnector, Full<Bytes>> {
    let mut b = Client::builder(TokioExecutor::new());
    b.http2_only(http2);
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    b.build(http)
}

/// POSTs `body` to the exchange's auction endpoint.
pub async fn post_raw(
    client: &Client<HttpConnector, Full<Bytes>>,
    ex: &RunningExchange,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::post(format!("{}/openrtb2/auction", ex.url()))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).unwrap();
    send(client, req, "exchange").await
}

/// POSTs a JSON request over HTTP/1.1.
pub async fn post(ex: &RunningExchange, request: &Value) -> Answer {
    post_raw(
        &client(false),
        ex,
        serde_json::to_vec(request).unwrap(),
        &[],
    )
    .await
}

/// A one-imp banner request with a floor and tmax.
pub fn request(id: &str, floor: f64, tmax: u64) -> Value {
    json!({
        "id": id,
        "at": 2,
        "tmax": tmax,
        "cur": ["USD"],
        "imp": [{"id": "1", "bidfloor": floor, "bidfloorcur": "USD",
                 "banner": {"w": 300, "h": 250}}],
        "site": {"id": "site-1", "domain": "publisher.example", "page": "https://publisher.example/a",
                 "publisher": {"id": "pub-1"}},
        "device": {"ua": "test", "ip": "192.0.2.1"},
        "user": {"id": "user-1"}
    })
}

/// The winning bids of a 200 answer, as (seat, bid) pairs.
pub fn winners(v: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for sb in v["seatbid"].as_array().into_iter().flatten() {
        for bid in sb["bid"].as_array().into_iter().flatten() {
            out.push((sb["seat"].as_str().unwrap_or("").to_owned(), bid.clone()));
        }
    }
    out
}

/// The seat-non-bid entries of one seat.
pub fn nonbids(v: &Value, seat: &str) -> Vec<Value> {
    v["ext"]["seatnonbid"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["seat"] == seat)
        .flat_map(|s| s["nonbid"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Waits (up to 3 s) until `cond` holds on the bidder's stats.
pub async fn eventually(
    handle: &BidderHandle,
    cond: impl Fn(&rtb_bidder::Stats) -> bool,
) -> rtb_bidder::Stats {
    for _ in 0..300 {
        let s = handle.stats();
        if cond(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.stats()
}

/// The admin token the registry tests use.
pub const TOKEN: &str = "test-admin-token";

/// Starts an exchange with the admin API on 127.0.0.1:0 and a registry in
/// the SQLite file `db` (no config-file bidders unless `tweak` adds some).
pub async fn registry_exchange(
    db: &std::path::Path,
    tweak: impl FnOnce(&mut Config),
) -> RunningExchange {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        admin_token: Some(TOKEN.to_owned()),
        sqlite_path: Some(db.to_owned()),
        ..Config::default()
    };
    // The event pipeline's state files go beside `db`: their defaults are
    // relative to the working directory, which the tests of one binary
    // share, and two exchanges on one spool or ledger file interfere
    // (SQLite's "database is locked" at start, spooled events mixed).
    let dir = db.parent().unwrap_or(std::path::Path::new("."));
    config.kafka.spool_path = dir.join("events.spool");
    config.kafka.dead_letter_path = dir.join("events.dead");
    config.ledger.sqlite_path = dir.join("ledger.sqlite");
    tweak(&mut config);
    config.validate().unwrap();
    server::start(config).await.unwrap()
}

/// An admin API call: method, URL, optional JSON body, optional token.
pub async fn admin_call(
    method: &str,
    url: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(serde_json::to_vec(b).unwrap()));
    send(
        &client(false),
        req.body(Full::new(body)).unwrap(),
        "admin API",
    )
    .await
}

/// An authenticated admin call to the exchange's admin listener.
pub async fn admin(ex: &RunningExchange, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let url = format!("{}{path}", ex.admin_url().expect("admin API is on"));
    admin_call(method, &url, body, Some(TOKEN)).await
}

/// POSTs an auction to the exchange at `url` (a base URL), over HTTP/1.1.
pub async fn post_url(url: &str, request: &Value) -> Answer {
    let req = Request::post(format!("{url}/openrtb2/auction"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(request).unwrap())))
        .unwrap();
    send(&client(false), req, "exchange").await
}

/// The seats that won in an answer (empty for a 204).
pub fn winning_seats(a: &Answer) -> Vec<String> {
    if a.status == StatusCode::NO_CONTENT {
        return Vec::new();
    }
    winners(&a.json()).into_iter().map(|(s, _)| s).collect()
}

/// The value of the unlabelled counter `name` in a /metrics exposition
/// (panics naming it when it is missing).
pub fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
        .parse()
        .unwrap()
}

/// The shared OpenRTB corpus, or `None` (with a visible message) when it is
/// missing; under `CI=true` a missing corpus fails the test.
pub fn corpus_dir() -> Option<std::path::PathBuf> {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/openrtb");
    if dir.join("index.tsv").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "OpenRTB corpus not found at {} (required under CI=true)",
            dir.display()
        );
    }
    eprintln!("SKIPPED: OpenRTB corpus not found at {}", dir.display());
    None
}

/// Sends `req` and reads the whole answer (10 s at most; `what` names the
/// server in the panic message).
async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
    what: &str,
) -> Answer {
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .unwrap_or_else(|_| panic!("{what} answered within 10 s"))
        .unwrap_or_else(|e| panic!("{what} request failed: {e}"));
    let status = resp.status();
    let version = resp.version();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        version,
        body,
    }
}

/// A running `exchange serve` process; killed when dropped.
pub struct Replica {
    pub child: std::process::Child,
    /// Publisher-facing base URL.
    pub url: String,
    /// Admin API base URL.
    pub admin: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    /// Starts `exchange serve --config CONFIG` (which must set `listen` and
    /// `admin_listen`) with the test token, and reads the ports it announces.
    pub fn start(config: &std::path::Path, name: &str) -> Replica {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_exchange"))
            .args(["serve", "--config"])
            .arg(config)
            .env("EXCHANGE_ADMIN_TOKEN", TOKEN)
            .env_remove("DATABASE_URL")
            .env_remove("LEDGER_DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let (url, admin) = listening_urls(&mut child, name);
        Replica { child, url, admin }
    }

    /// SIGTERM, then waits for a clean exit (exit status 0).
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exchange exited with {status}");
    }
}

/// GETs `url` over HTTP/1.1: status and body text.
pub async fn get(url: String) -> (u16, String) {
    let req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let a = send(&client(false), req, "GET").await;
    (a.status.as_u16(), a.text())
}

/// The publisher and admin URLs an `exchange serve` child prints first on
/// its stdout (`name` labels a panic on anything else).
pub fn listening_urls(child: &mut std::process::Child, name: &str) -> (String, String) {
    use std::io::{BufRead, BufReader};
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = |prefix: &str| {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        l.trim()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{name}: unexpected line {l:?}"))
            .to_owned()
    };
    let url = line("exchange listening on ");
    let admin = line("admin listening on ");
    (url, admin)
}
