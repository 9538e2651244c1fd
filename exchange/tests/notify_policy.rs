//! Win notices go only where the endpoint policy allows: a nurl pointing at
//! a private address (literal, or a name resolving to one) is not fetched
//! when `deny_private_networks` is set, the allow-lists apply, only http(s)
//! is fetched, response bodies are read up to a cap, and every refusal is
//! counted in `rtb_win_notices_total{result}`. Macros in notice URLs are
//! percent-encoded, so a hostile request id cannot add query parameters or
//! make the nurl unparseable.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{exchange, get, post, request, winners};
use rtb_exchange::config::RegistryConfig;
use rtb_exchange::metrics::{Metrics, DEFAULT_BUCKETS_MS};
use rtb_exchange::notify::{NoticeResult, Notifier, MAX_NOTICE_BODY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP/1.1 listener on `ip:0` that answers every request `200 ok` and
/// counts the requests it saw.
struct Target {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
}

async fn target(ip: &str) -> Target {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        h.fetch_add(1, Ordering::SeqCst);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if sock.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Target { addr, hits }
}

fn notifier(registry: RegistryConfig) -> (Notifier, Metrics) {
    let metrics = Metrics::new(&[], DEFAULT_BUCKETS_MS);
    let n = Notifier::spawn(&registry, &metrics.win_notices);
    (n, metrics)
}

fn total(n: &Notifier) -> u64 {
    NoticeResult::ALL.iter().map(|r| n.counters.get(*r)).sum()
}

/// Waits (bounded) until `count` notices have a result.
async fn settled(n: &Notifier, count: u64) {
    for _ in 0..1000 {
        if total(n) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "only {} of {count} notices settled: {:?}",
        total(n),
        NoticeResult::ALL.map(|r| (r.name(), n.counters.get(r)))
    );
}

fn deny_private() -> RegistryConfig {
    RegistryConfig {
        deny_private_networks: true,
        ..RegistryConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nurls_to_private_addresses_are_not_fetched() {
    let t = target("127.0.0.1").await;
    let port = t.addr.port();
    let (n, metrics) = notifier(deny_private());
    let urls = [
        format!("http://127.0.0.1:{port}/win?price=1"),
        // A name that resolves to loopback: refused after DNS, at connect time.
        format!("http://localhost:{port}/win"),
        format!("http://LocalHost:{port}/win"),
        // 2130706433 is 127.0.0.1 to getaddrinfo: not an IP literal to the URL parser.
        format!("http://2130706433:{port}/win"),
        format!("http://[::ffff:127.0.0.1]:{port}/win"),
        format!("https://127.0.0.1:{port}/win"),
        "http://[::1]:9/win".to_owned(),
        "http://10.0.0.5/admin".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://100.64.0.1/".to_owned(),
    ];
    for u in &urls {
        n.notify(u.clone());
    }
    settled(&n, urls.len() as u64).await;
    // Give a wrongly sent notice time to arrive before counting hits.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        t.hits.load(Ordering::SeqCst),
        0,
        "a private nurl was fetched"
    );
    assert_eq!(
        n.counters.get(NoticeResult::RefusedPrivate),
        urls.len() as u64
    );
    let text = metrics.encode();
    assert!(
        text.contains(&format!(
            "rtb_win_notices_total{{result=\"refused_private\"}} {}\n",
            urls.len()
        )),
        "{text}"
    );
    assert!(
        text.contains("rtb_win_notices_total{result=\"sent\"} 0\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_nurls_are_fetched_and_allow_lists_apply() {
    let t = target("127.0.0.1").await;
    let port = t.addr.port();
    // The default policy (as the other tests run): loopback is fine.
    let (open, _m) = notifier(RegistryConfig::default());
    open.notify(format!("http://127.0.0.1:{port}/win"));
    open.notify(format!("http://localhost:{port}/win"));
    settled(&open, 2).await;
    assert_eq!(open.counters.get(NoticeResult::Sent), 2);
    assert_eq!(t.hits.load(Ordering::SeqCst), 2);

    // Networks listed: a literal inside is fetched; one outside, and a name
    // (names need allowed_hosts), are not.
    let (listed, _m) = notifier(RegistryConfig {
        allowed_networks: vec!["127.0.0.1/32".into()],
        ..RegistryConfig::default()
    });
    let other = target("127.0.0.2").await;
    listed.notify(format!("http://127.0.0.1:{port}/win"));
    listed.notify(format!("http://127.0.0.2:{}/win", other.addr.port()));
    listed.notify(format!("http://localhost:{port}/win"));
    settled(&listed, 3).await;
    assert_eq!(listed.counters.get(NoticeResult::Sent), 1);
    assert_eq!(listed.counters.get(NoticeResult::RefusedNotAllowed), 2);
    assert_eq!(t.hits.load(Ordering::SeqCst), 3);
    assert_eq!(other.hits.load(Ordering::SeqCst), 0);

    // A listed host that resolves to a private address is still refused
    // when private networks are denied.
    let (hosts, _m) = notifier(RegistryConfig {
        allowed_hosts: vec!["localhost".into()],
        deny_private_networks: true,
        ..RegistryConfig::default()
    });
    hosts.notify(format!("http://localhost:{port}/win"));
    hosts.notify("http://bidder.example/win".to_owned());
    settled(&hosts, 2).await;
    assert_eq!(hosts.counters.get(NoticeResult::RefusedPrivate), 1);
    assert_eq!(hosts.counters.get(NoticeResult::RefusedNotAllowed), 1);
    assert_eq!(t.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_schemes_and_broken_urls_are_refused_and_counted() {
    let t = target("127.0.0.1").await;
    let port = t.addr.port();
    let (n, metrics) = notifier(RegistryConfig::default());
    n.notify(format!("ftp://127.0.0.1:{port}/win"));
    n.notify(format!("gopher://127.0.0.1:{port}/_GET%20/"));
    n.notify(format!("/relative?port={port}"));
    n.notify(format!("http://127.0.0.1:{port}/win?auction=a b"));
    n.notify("http://exa\nmple/".to_owned());
    settled(&n, 5).await;
    assert_eq!(n.counters.get(NoticeResult::RefusedScheme), 3);
    assert_eq!(n.counters.get(NoticeResult::RefusedInvalidUrl), 2);
    assert_eq!(t.hits.load(Ordering::SeqCst), 0);
    let text = metrics.encode();
    for line in [
        "rtb_win_notices_total{result=\"refused_scheme\"} 3\n",
        "rtb_win_notices_total{result=\"refused_invalid_url\"} 2\n",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_notice_body_is_not_read_to_the_end() {
    // Answers 200 with a body of a terabyte, written until the client hangs up.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let written = Arc::new(AtomicU64::new(0));
    let hung_up = Arc::new(AtomicBool::new(false));
    let (w, h) = (written.clone(), hung_up.clone());
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match sock.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&b[..n]),
            }
        }
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000000\r\n\r\n";
        sock.write_all(head).await.unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        while sock.write_all(&chunk).await.is_ok() {
            w.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        h.store(true, Ordering::SeqCst);
    });
    let (n, _m) = notifier(RegistryConfig::default());
    n.notify(format!("http://127.0.0.1:{port}/win"));
    settled(&n, 1).await;
    // It arrived (2xx): counted as sent, not as a timeout after reading on.
    assert_eq!(n.counters.get(NoticeResult::Sent), 1);
    for _ in 0..500 {
        if hung_up.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        hung_up.load(Ordering::SeqCst),
        "the exchange kept the huge body's connection open"
    );
    // What was written is the cap plus what the sockets buffer, far from a terabyte.
    let w = written.load(Ordering::SeqCst);
    assert!(
        w < 256 * 1024 * 1024,
        "{w} bytes written (cap {MAX_NOTICE_BODY})"
    );
}

/// The exchange itself: with `deny_private_networks`, a winning bidder's
/// nurl at 127.0.0.1 is not fetched, and /metrics says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exchange_refuses_private_nurls_when_configured() {
    let a = common::bidder("alpha", 2.0, |_| {}).await;
    let ex = exchange(&[("alpha", &a)], |c| {
        c.registry.deny_private_networks = true;
    })
    .await;
    let answer = post(&ex, &request("auction-1", 0.5, 300)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(winners(&answer.json()).len(), 1);
    let mut text = String::new();
    for _ in 0..300 {
        text = get(format!("{}/metrics", ex.url())).await.1;
        if text.contains("rtb_win_notices_total{result=\"refused_private\"} 1\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        text.contains("rtb_win_notices_total{result=\"refused_private\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE rtb_win_notices_total counter\n"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.stats().wins, 0, "the private nurl was fetched");
}

/// A request id with `&`, `=` and a space: percent-encoded in the nurl
/// (fired, and the DSP reads back the id and the real price) and in the
/// burl, raw in the markup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macros_in_notice_urls_are_percent_encoded() {
    let a = common::bidder("alpha", 2.0, |_| {}).await;
    let b = common::bidder("beta", 1.0, |_| {}).await;
    let ex = exchange(&[("alpha", &a), ("beta", &b)], |_| {}).await;
    let id = "x&price=9 y";
    let answer = post(&ex, &request(id, 0.5, 300)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let won = winners(&answer.json());
    assert_eq!(won.len(), 1);
    let bid = &won[0].1;
    let burl = bid["burl"].as_str().unwrap();
    assert!(
        burl.contains("auction=x%26price%3D9%20y&"),
        "burl not encoded: {burl}"
    );
    assert!(burl.parse::<http::Uri>().is_ok(), "{burl}");
    let adm = bid["adm"].as_str().unwrap();
    assert!(
        adm.contains("data-auction=\"x&price=9 y\""),
        "adm not raw: {adm}"
    );
    let stats = common::eventually(&a, |s| s.wins == 1).await;
    assert_eq!(stats.wins, 1, "the nurl was not fired");
    assert_eq!(stats.win_auction_ids, vec!["x%26price%3D9%20y"]);
    // Second price: beta's 1.00 + 0.01, not the injected 9.
    assert_eq!(stats.win_prices, vec!["1.01"]);
}
