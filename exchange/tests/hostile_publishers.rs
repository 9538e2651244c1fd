//! The hostile-publisher suite: slowloris before the first byte, on headers
//! and on the body, idle and capped connections, HTTP/2 stream floods and
//! rapid reset, huge headers, deep nesting, huge imp lists and gzip bombs,
//! each against a real exchange on 127.0.0.1:0, with a well-behaved
//! publisher running at the same time that must still get its answers
//! within tmax, and no auction slot left held afterwards.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::StatusCode;
use rtb_exchange::config::Config;
use rtb_exchange::server::RunningExchange;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The well-behaved publisher's tmax: generous, because the test machine is
/// shared, but far below what any attack here could hold things for.
const TMAX_MS: u64 = 300;

type Exchange = &'static RunningExchange;

/// An exchange with one instant bidder and limits small enough to see them
/// act within a test. Leaked: it must outlive the tasks a test spawns, and
/// the test process ends soon after.
async fn hostile_target(tweak: impl FnOnce(&mut Config)) -> Exchange {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let ex = exchange(&[("alpha", &a)], |c| {
        c.server.body_timeout_ms = 100;
        c.server.first_request_timeout_ms = 300;
        c.server.header_read_timeout_ms = 500;
        c.server.idle_timeout_ms = 400;
        tweak(c);
    })
    .await;
    std::mem::forget(a);
    Box::leak(Box::new(ex))
}

/// A publisher sending valid requests one after another (HTTP/1.1 and h2c
/// alternately) until `stop`; returns how many it sent and the slowest
/// answer. Panics on any answer that is not a 200.
async fn good_publisher(ex: Exchange, stop: Arc<AtomicBool>) -> (usize, Duration) {
    let (h1, h2) = (client(false), client(true));
    let mut n = 0;
    let mut slowest = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) || n < 5 {
        let body = serde_json::to_vec(&request(&format!("good-{n}"), 0.5, TMAX_MS)).unwrap();
        let c = if n % 2 == 0 { &h1 } else { &h2 };
        let started = Instant::now();
        let answer = post_raw(c, ex, body, &[]).await;
        let took = started.elapsed();
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "good request {n}: {}",
            answer.text()
        );
        slowest = slowest.max(took);
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (n, slowest)
}

/// Runs `attack` while a good publisher is at work; asserts the publisher
/// got every answer within tmax and that no auction slot is left held.
async fn under_attack<F: std::future::Future<Output = ()>>(ex: Exchange, attack: F) {
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = tokio::spawn(good_publisher(ex, stop.clone()));
    attack.await;
    stop.store(true, Ordering::Relaxed);
    let (n, slowest) = publisher.await.unwrap();
    assert!(
        slowest < Duration::from_millis(TMAX_MS),
        "a good publisher waited {slowest:?} (tmax {TMAX_MS} ms) over {n} requests"
    );
    assert_no_slot_held(ex).await;
}

async fn assert_no_slot_held(ex: Exchange) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while ex.app().in_flight() != 0 {
        assert!(
            Instant::now() < deadline,
            "{} auction slots still held",
            ex.app().in_flight()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn connect(ex: Exchange) -> TcpStream {
    let s = TcpStream::connect(ex.addr()).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads until EOF or `within`: whether the server closed the connection,
/// and what it sent before.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> (bool, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Err(_) => return (false, got),
            Ok(Ok(0)) | Ok(Err(_)) => return (true, got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn head(path: &str, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra}\r\n")
}

/// Eight HTTP/1.1 bodies that announce 100 bytes and send one, against
/// eight auction slots: each ends with 408 once `body_timeout_ms` is up, its
/// slot is freed, and publishers get answers again at once (before the fix
/// every later request got 503 for as long as the sockets stayed open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_end_at_their_timeout_and_free_their_slots() {
    let ex = hostile_target(|c| c.server.max_in_flight = 8).await;
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut s = connect(ex).await;
        let req = head("/openrtb2/auction", "content-length: 100\r\n");
        s.write_all(format!("{req}{{").as_bytes()).await.unwrap();
        slow.push(s);
    }
    let started = Instant::now();
    for s in &mut slow {
        let (_, got) = read_until_closed(s, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("body"), "{text}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "slow bodies held for {:?}",
        started.elapsed()
    );
    assert_no_slot_held(ex).await;
    // The attack goes on, one slow body after another, while a publisher works.
    under_attack(ex, async {
        for _ in 0..20 {
            let mut s = connect(ex).await;
            let req = head("/openrtb2/auction", "content-length: 1000\r\n");
            s.write_all(format!("{req}{{\"id\"").as_bytes())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// h2c streams that send their headers and never their bodies: each stream
/// ends with 408 at the body timeout, and the slots are free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_without_bodies_are_ended() {
    let ex = hostile_target(|c| c.server.max_in_flight = 16).await;
    let tcp = connect(ex).await;
    let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut pending = Vec::new();
    for _ in 0..16 {
        h2 = h2.ready().await.unwrap();
        let req = http::Request::post(format!("{}/openrtb2/auction", ex.url()))
            .body(())
            .unwrap();
        // end_of_stream = false and no data: a body that never comes.
        let (resp, stream) = h2.send_request(req, false).unwrap();
        pending.push((resp, stream));
    }
    under_attack(ex, async {
        for (resp, _stream) in pending {
            let resp = tokio::time::timeout(Duration::from_secs(3), resp)
                .await
                .expect("a bodiless stream was never answered")
                .unwrap();
            assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
        }
    })
    .await;
}

/// A socket that never sends a byte is closed after
/// `first_request_timeout_ms`; one that trickles its headers is closed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_connections_are_closed() {
    let ex = hostile_target(|_| {}).await;
    under_attack(ex, async {
        let mut silent = connect(ex).await;
        let mut trickle = connect(ex).await;
        let mut h2_silent = connect(ex).await;
        // Half of the HTTP/2 preface, then nothing.
        h2_silent.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        let started = Instant::now();
        let trickler = async {
            for b in head("/openrtb2/auction", "content-length: 2\r\n").bytes() {
                if trickle.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let (silent_closed, trickle_closed, h2_closed) = tokio::join!(
            read_until_closed(&mut silent, Duration::from_secs(5)),
            async {
                trickler.await;
                true
            },
            read_until_closed(&mut h2_silent, Duration::from_secs(5)),
        );
        assert!(silent_closed.0, "a silent socket stayed open");
        assert!(trickle_closed);
        assert!(h2_closed.0, "a half preface stayed open");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "closed after {:?}",
            started.elapsed()
        );
    })
    .await;
    let closed = metric(ex, "rtb_connections_closed_total").await;
    assert!(closed >= 2.0, "connections closed: {closed}");
}

/// An h2c connection that served a request and then went quiet is closed
/// after `idle_timeout_ms` (GOAWAY, then EOF).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2_connections_are_closed() {
    let ex = hostile_target(|_| {}).await;
    let tcp = connect(ex).await;
    let (h2, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut h2 = h2.ready().await.unwrap();
    let body = serde_json::to_vec(&request("idle-1", 0.5, TMAX_MS)).unwrap();
    let req = http::Request::post(format!("{}/openrtb2/auction", ex.url()))
        .body(())
        .unwrap();
    let (resp, mut stream) = h2.send_request(req, false).unwrap();
    stream.send_data(Bytes::from(body), true).unwrap();
    assert_eq!(resp.await.unwrap().status(), StatusCode::OK);
    let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(ended.is_ok(), "an idle h2 connection stayed open");
}

/// With `max_connections` open, the next connection is closed at once and
/// counted; once they go, new connections are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let ex = hostile_target(|c| {
        c.server.max_connections = 4;
        // Its own listener (and connection cap) for reading the counters.
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c.server.first_request_timeout_ms = 10_000;
        c.server.idle_timeout_ms = 10_000;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(ex).await);
    }
    // Accepting happens in the background: give the server a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = connect(ex).await;
    let (closed, _) = read_until_closed(&mut extra, Duration::from_secs(2)).await;
    assert!(closed, "a fifth connection was kept");
    assert!(metric(ex, "rtb_connections_refused_total").await >= 1.0);
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = post(ex, &request("after-cap", 0.5, TMAX_MS)).await;
    assert_eq!(answer.status, StatusCode::OK);
}

/// Rapid reset (CVE-2023-44487) and a stream flood on one h2c connection:
/// thousands of streams opened and cancelled at once. The attacker's
/// connection may be closed; publishers are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_rapid_reset_and_stream_floods_do_not_starve_publishers() {
    let ex = hostile_target(|c| c.server.max_concurrent_streams = 32).await;
    under_attack(ex, async {
        let tcp = connect(ex).await;
        let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let body = serde_json::to_vec(&request("reset", 0.5, TMAX_MS)).unwrap();
        for _ in 0..5_000 {
            h2 = match h2.ready().await {
                Ok(h) => h,
                Err(_) => return, // the server closed the attacker: fine
            };
            let req = http::Request::post(format!("{}/openrtb2/auction", ex.url()))
                .body(())
                .unwrap();
            let Ok((_resp, mut stream)) = h2.send_request(req, false) else {
                return;
            };
            let _ = stream.send_data(Bytes::from(body.clone()), false);
            stream.send_reset(h2::Reason::CANCEL);
        }
    })
    .await;
}

/// A 1 MB header on HTTP/1.1 gets 431 (or a close) and a 1 MB header list
/// on HTTP/2 is refused; publishers are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_headers_are_refused() {
    let ex = hostile_target(|_| {}).await;
    under_attack(ex, async {
        let mut s = connect(ex).await;
        let big = "a".repeat(1 << 20);
        let req = head(
            "/openrtb2/auction",
            &format!("x-big: {big}\r\ncontent-length: 2\r\n"),
        );
        let _ = s.write_all(req.as_bytes()).await;
        let (closed, got) = read_until_closed(&mut s, Duration::from_secs(3)).await;
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 431") || (closed && text.is_empty()),
            "{closed} {text}"
        );
        // Many small headers, past the count limit.
        let mut s = connect(ex).await;
        let many: String = (0..500).map(|i| format!("x-h{i}: v\r\n")).collect();
        let _ = s
            .write_all(
                head("/openrtb2/auction", &format!("{many}content-length: 2\r\n")).as_bytes(),
            )
            .await;
        let (closed, got) = read_until_closed(&mut s, Duration::from_secs(3)).await;
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 431") || (closed && text.is_empty()),
            "{closed} {text}"
        );
        let tcp = connect(ex).await;
        let (h2, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut h2 = h2.ready().await.unwrap();
        let req = http::Request::post(format!("{}/openrtb2/auction", ex.url()))
            .header("x-big", "b".repeat(1 << 20))
            .body(())
            .unwrap();
        match h2.send_request(req, true) {
            Err(_) => {}
            Ok((resp, _)) => {
                let r = tokio::time::timeout(Duration::from_secs(3), resp)
                    .await
                    .expect("a huge h2 header list hung");
                if let Ok(r) = r {
                    assert_ne!(r.status(), StatusCode::OK);
                }
            }
        }
    })
    .await;
}

/// Bodies built to cost: 10,000 imps, JSON nested 50,000 deep, and a gzip
/// bomb (256 MB of zeros in a few hundred kB). Each is refused with a clear
/// 4xx, nothing crashes, and publishers are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_bodies_are_refused_cheaply() {
    let ex = hostile_target(|c| c.server.max_body_bytes = 1 << 20).await;
    under_attack(ex, async {
        let c = client(false);
        let mut many = request("many-imps", 0.5, TMAX_MS);
        many["imp"] = serde_json::Value::Array(
            (0..10_000)
                .map(|i| serde_json::json!({"id": i.to_string(), "banner": {"w": 300, "h": 250}}))
                .collect(),
        );
        let answer = post_raw(&c, ex, serde_json::to_vec(&many).unwrap(), &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
        assert!(answer.text().contains("imp"), "{}", answer.text());

        let depth = 50_000;
        let mut deep = String::from(r#"{"id":"deep","imp":[{"id":"1","banner":{}}],"ext":{"x":"#);
        deep.push_str(&"[".repeat(depth));
        deep.push_str(&"]".repeat(depth));
        deep.push_str("}}");
        let answer = post_raw(&c, ex, deep.into_bytes(), &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "bomb is {} bytes", bomb.len());
        let answer = post_raw(&c, ex, bomb, &[("content-encoding", "gzip")]).await;
        assert_eq!(
            answer.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            answer.text()
        );
    })
    .await;
}

/// With `metrics_listen` set, `/metrics` and `/v1/stats/latency` are served
/// there and not on the publisher port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operational_routes_move_to_metrics_listen() {
    let ex = hostile_target(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let ops = ex.metrics_url().expect("metrics listener");
    for path in ["/metrics", "/v1/stats/latency"] {
        let (status, _) = get(format!("{}{path}", ex.url())).await;
        assert_eq!(status, 404, "{path} on the publisher port");
        let (status, body) = get(format!("{ops}{path}")).await;
        assert_eq!(status, 200, "{path} on metrics_listen");
        assert!(!body.is_empty());
    }
    assert_eq!(get(format!("{ops}/healthz")).await.0, 200);
    assert_eq!(get(format!("{}/healthz", ex.url())).await.0, 200);
}

/// The value of a metric (summed over its series) from `/metrics`.
async fn metric(ex: Exchange, name: &str) -> f64 {
    let url = ex.metrics_url().unwrap_or_else(|| ex.url());
    let (_, text) = get(format!("{url}/metrics")).await;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
