//! The publisher edge: protocols, bad input, body limits, gzip, shedding,
//! health routes, and every request file of the shared OpenRTB corpus.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use http::StatusCode;
use rtb_bidder::Latency;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_can_use_http1_and_h2c() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let ex = exchange(&[("alpha", &a)], |_| {}).await;
    let body = serde_json::to_vec(&request("p", 0.5, 300)).unwrap();
    let h1 = post_raw(&client(false), &ex, body.clone(), &[]).await;
    assert_eq!(
        (h1.status, h1.version),
        (StatusCode::OK, http::Version::HTTP_11)
    );
    let h2 = post_raw(&client(true), &ex, body, &[]).await;
    assert_eq!(
        (h2.status, h2.version),
        (StatusCode::OK, http::Version::HTTP_2)
    );
    assert_eq!(h2.json()["seatbid"][0]["bid"][0]["price"], json!(0.51));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400_naming_the_field() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let ex = exchange(&[("alpha", &a)], |_| {}).await;
    let c = client(false);
    let mut negative = request("bad-1", 0.5, 300);
    negative["imp"][0]["banner"]["w"] = json!(-1);
    let mut dup = request("bad-2", 0.5, 300);
    dup["imp"] = json!([{"id": "1", "banner": {}}, {"id": "1", "banner": {}}]);
    let mut both = request("bad-3", 0.5, 300);
    both["app"] = json!({"id": "app"});
    let mut eur = request("bad-4", 0.5, 300);
    eur["imp"][0]["bidfloorcur"] = json!("EUR");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (serde_json::to_vec(&negative).unwrap(), "imp[0].banner.w"),
        (serde_json::to_vec(&dup).unwrap(), "imp[1].id"),
        (serde_json::to_vec(&both).unwrap(), "app"),
        (serde_json::to_vec(&eur).unwrap(), "imp[0].bidfloorcur"),
        (b"{\"id\": \"x\", \"imp\": ".to_vec(), "not valid JSON"),
        (b"null".to_vec(), ""),
    ];
    for (body, field) in cases {
        let answer = post_raw(&c, &ex, body, &[]).await;
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert!(
            answer.text().contains(field),
            "{field:?} not named in {:?}",
            answer.text()
        );
    }
    assert_eq!(a.stats().requests, 0, "bad requests never reach bidders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_and_gzip() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let ex = exchange(&[("alpha", &a)], |c| c.server.max_body_bytes = 4096).await;
    let c = client(false);
    let mut big = request("big", 0.5, 300);
    big["ext"] = json!({"pad": "x".repeat(5000)});
    let answer = post_raw(&c, &ex, serde_json::to_vec(&big).unwrap(), &[]).await;
    assert_eq!(answer.status, 413, "{}", answer.text());
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let ok = gz(&serde_json::to_vec(&request("gz", 0.5, 300)).unwrap());
    let answer = post_raw(&c, &ex, ok, &[("content-encoding", "gzip")]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["id"], "gz");
    // Small on the wire, too large once inflated.
    let bomb = gz(&serde_json::to_vec(&big).unwrap());
    assert!(bomb.len() < 4096);
    let answer = post_raw(&c, &ex, bomb, &[("content-encoding", "gzip")]).await;
    assert_eq!(answer.status, 413);
    let answer = post_raw(&c, &ex, b"{}".to_vec(), &[("content-encoding", "br")]).await;
    assert_eq!(answer.status, 415);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_capacity_requests_are_shed_with_503_at_once() {
    let slow = bidder("slow", 3.0, |c| {
        c.latency = Latency::Fixed(Duration::from_millis(400))
    })
    .await;
    let ex = exchange(&[("slow", &slow)], |c| c.server.max_in_flight = 2).await;
    let c = client(true);
    let body = serde_json::to_vec(&request("shed", 0.5, 300)).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (c, body, url) = (c.clone(), body.clone(), ex.url());
        tasks.push(tokio::spawn(async move {
            let req = http::Request::post(format!("{url}/openrtb2/auction"))
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap();
            let started = std::time::Instant::now();
            let status = c.request(req).await.unwrap().status();
            (status, started.elapsed())
        }));
    }
    let mut shed = 0;
    for t in tasks {
        let (status, elapsed) = t.await.unwrap();
        if status == 503 {
            shed += 1;
            assert!(
                elapsed < Duration::from_millis(250),
                "shed after {elapsed:?}"
            );
        } else {
            assert_eq!(status, 204, "the slow bidder misses tmax, so a no-bid");
        }
    }
    assert!(shed >= 3, "only {shed} of 6 shed with 2 slots");
    // Health probes bypass the limit.
    let health = c
        .request(
            http::Request::get(format!("{}/healthz", ex.url()))
                .body(Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_unknown_routes() {
    let ex = exchange(&[], |_| {}).await;
    let c = client(false);
    let get = |path: &str| {
        let c = c.clone();
        let url = format!("{}{path}", ex.url());
        async move {
            c.request(http::Request::get(url).body(Default::default()).unwrap())
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(get("/healthz").await, 200);
    assert_eq!(get("/readyz").await, 200);
    assert_eq!(get("/nope").await, 404);
    assert_eq!(get("/openrtb2/auction").await, 405);
    // With no bidders every valid request is a no-bid.
    assert_eq!(post(&ex, &request("none", 0.0, 100)).await.status, 204);
    ex.app()
        .ready
        .store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(get("/readyz").await, 503);
}

/// Every corpus request goes through a live exchange: valid ones are
/// auctioned (200 or 204), invalid ones get 400 with a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_request_through_a_live_exchange() {
    let Some(dir) = corpus_dir() else { return };
    let a = bidder("alpha", 50.0, |_| {}).await;
    let ex = exchange(&[("alpha", &a)], |_| {}).await;
    let c = client(true);
    let index = std::fs::read_to_string(dir.join("index.tsv")).unwrap();
    let mut seen = 0;
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (path, expectation) = (cols[0], cols[3]);
        if !path.starts_with("requests/") {
            continue;
        }
        let body = std::fs::read(dir.join(path)).unwrap();
        let answer = post_raw(&c, &ex, body, &[]).await;
        match expectation {
            "valid" => assert!(
                answer.status == 200 || answer.status == 204,
                "{path}: {} {}",
                answer.status,
                answer.text()
            ),
            _ => {
                assert_eq!(answer.status, 400, "{path}: {}", answer.text());
                assert!(
                    !answer.text().trim().is_empty(),
                    "{path}: 400 without a reason"
                );
            }
        }
        seen += 1;
    }
    assert!(seen >= 60, "only {seen} corpus requests");
    assert!(a.stats().requests > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidder_that_refuses_connections_is_an_error_not_a_delay() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    // Bind then drop: nothing listens on this port any more.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ex = exchange(&[("alpha", &a)], |c| {
        c.bidders.push(rtb_exchange::config::BidderEntry::new(
            "dead",
            vec![format!("http://{dead}")],
            rtb_exchange::config::Protocol::H2c,
        ));
    })
    .await;
    let v = post(&ex, &request("dead", 0.5, 300)).await.json();
    assert_eq!(winners(&v)[0].0, "alpha");
    let nb = nonbids(&v, "dead");
    assert_eq!(nb[0]["statuscode"], 1, "{v}");
}

/// Auctions that answer after their deadline (here: the runtime's two
/// workers blocked for 250 ms while 20 auctions with tmax 100 are in
/// flight, so their timers fire late) cut the adaptive admission limit,
/// shown on /metrics; auctions in time raise it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_answers_cut_the_admission_limit() {
    // Answers after 50 ms: the auctions are still in flight when the
    // workers stall.
    let fast = bidder("fast", 2.0, |c| {
        c.latency = Latency::Fixed(Duration::from_millis(50))
    })
    .await;
    let ex = exchange(&[("fast", &fast)], |_| {}).await;
    let start = ex.app().capacity.limit();
    assert_eq!(start, 256);
    let c = client(true);
    let body = serde_json::to_vec(&request("late", 0.5, 100)).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, body, url) = (c.clone(), body.clone(), ex.url());
        tasks.push(tokio::spawn(async move {
            let req = http::Request::post(format!("{url}/openrtb2/auction"))
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap();
            c.request(req).await.map(|r| r.status())
        }));
    }
    // Both workers stall: a starved CPU, as past saturation.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..2 {
        tokio::spawn(async { std::thread::sleep(Duration::from_millis(250)) });
    }
    for t in tasks {
        let _ = t.await.unwrap();
    }
    let cut = ex.app().capacity.limit();
    assert!(cut < start, "limit {cut} after late answers");
    let (_, metrics) = get(format!("{}/metrics", ex.url())).await;
    assert!(
        metrics.contains(&format!("\nrtb_admission_limit {cut}\n")),
        "{metrics}"
    );
    // Answers in time raise it again, one slot per eighth of the limit.
    for i in 0..(cut / 8 + 2) {
        post_raw(
            &c,
            &ex,
            serde_json::to_vec(&request(&format!("ok{i}"), 0.5, 300)).unwrap(),
            &[],
        )
        .await;
    }
    assert!(ex.app().capacity.limit() > cut);
    ex.shutdown().await;
}
