//! Per-bidder protection through real auctions: a hanging bidder's circuit
//! opens and the others are unaffected; concurrency and QPS limits skip a
//! bidder instead of queueing; a failing instance is ejected from its pool.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rtb_bidder::{Fault, Latency};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_bidder_opens_its_circuit_and_costs_the_others_nothing() {
    let hang = bidder("hang", 9.0, |c| c.fault = Some(Fault::Hang)).await;
    let a = bidder("alpha", 3.0, |_| {}).await;
    let b = bidder("beta", 2.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let ex = registry_exchange(&dir.path().join("reg.db"), |_| {}).await;
    for (name, h) in [("alpha", &a), ("beta", &b)] {
        let spec = json!({"name": name, "endpoints": [h.url()], "protocol": "h2c"});
        assert_eq!(
            admin(&ex, "POST", "/v1/bidders", Some(&spec)).await.status,
            201
        );
    }
    let spec = json!({"name": "hang", "endpoints": [hang.url()], "protocol": "h2c",
                      "circuit": {"failure_threshold": 2, "cooldown_ms": 600000}});
    assert_eq!(
        admin(&ex, "POST", "/v1/bidders", Some(&spec)).await.status,
        201
    );
    let tmax = 500;
    // Two auctions wait for the hanging bidder until the deadline…
    for i in 0..2 {
        let r = post_url(&ex.url(), &request(&format!("h{i}"), 0.5, tmax))
            .await
            .json();
        assert_eq!(winners(&r)[0].0, "alpha");
        assert_eq!(nonbids(&r, "hang")[0]["statuscode"], 101, "{r}");
    }
    let state = admin(&ex, "GET", "/v1/bidders/hang", None).await.json();
    assert_eq!(state["state"]["circuit"], "open", "{state}");
    assert_eq!(state["state"]["recent_timeout_rate"], 1.0, "{state}");
    let calls = hang.stats().requests;
    assert_eq!(calls, 2);
    // …then the circuit is open: it is not called, the others answer as
    // before, and auctions no longer wait for the deadline.
    for i in 0..5 {
        let started = Instant::now();
        let r = post_url(&ex.url(), &request(&format!("o{i}"), 0.5, tmax))
            .await
            .json();
        let took = started.elapsed();
        let (seat, bid) = &winners(&r)[0];
        assert_eq!(
            (seat.as_str(), bid["price"].clone()),
            ("alpha", json!(2.01))
        );
        let nb = nonbids(&r, "hang");
        assert_eq!(nb[0]["statuscode"], 500, "{r}");
        assert_eq!(nb[0]["reason"], "circuit open");
        assert!(r["ext"]["responsetimemillis"].get("hang").is_none(), "{r}");
        assert!(r["ext"]["responsetimemillis"]["beta"].is_u64(), "{r}");
        assert!(
            took < Duration::from_millis(tmax - 50),
            "auction {i} still waited for the deadline ({took:?})"
        );
    }
    assert_eq!(hang.stats().requests, calls);
    let metrics = reqwest_metrics(&ex.url()).await;
    assert!(
        metrics.contains(r#"rtb_bidder_errors_total{bidder="hang",kind="not_called"} 5"#),
        "{metrics}"
    );
    ex.shutdown().await;
}

async fn reqwest_metrics(url: &str) -> String {
    use http_body_util::BodyExt;
    let req = http::Request::get(format!("{url}/metrics"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = client(false).request(req).await.unwrap();
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_and_qps_limits_skip_the_bidder_instead_of_queueing() {
    let slow = bidder("slow", 3.0, |c| {
        c.latency = Latency::Fixed(Duration::from_millis(300))
    })
    .await;
    let capped = bidder("capped", 2.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let ex = registry_exchange(&dir.path().join("reg.db"), |_| {}).await;
    let spec =
        json!({"name": "slow", "endpoints": [slow.url()], "protocol": "h2c", "max_concurrency": 1});
    assert_eq!(
        admin(&ex, "POST", "/v1/bidders", Some(&spec)).await.status,
        201
    );
    let spec =
        json!({"name": "capped", "endpoints": [capped.url()], "protocol": "h2c", "qps_limit": 1});
    assert_eq!(
        admin(&ex, "POST", "/v1/bidders", Some(&spec)).await.status,
        201
    );
    // A bidder without limits, so every auction has a winner and a 200
    // answer that carries the others' seat-non-bids.
    let steady = bidder("steady", 1.0, |_| {}).await;
    let spec = json!({"name": "steady", "endpoints": [steady.url()], "protocol": "h2c"});
    assert_eq!(
        admin(&ex, "POST", "/v1/bidders", Some(&spec)).await.status,
        201
    );
    // Four auctions at once: one call to `slow` fits its limit of one.
    let url = ex.url();
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move { post_url(&url, &request(&format!("c{i}"), 0.5, 500)).await })
        })
        .collect();
    let mut reasons = Vec::new();
    for t in tasks {
        let r = t.await.unwrap().json();
        for seat in ["slow", "capped"] {
            for nb in nonbids(&r, seat) {
                reasons.push((
                    seat,
                    nb["statuscode"].as_u64().unwrap(),
                    nb["reason"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
    }
    let count = |seat: &str, reason: &str| {
        reasons
            .iter()
            .filter(|(s, c, r)| *s == seat && *c == 500 && r == reason)
            .count()
    };
    assert_eq!(count("slow", "concurrency limit"), 3, "{reasons:?}");
    assert_eq!(slow.stats().requests, 1);
    // At most a couple of seconds' worth of calls passed the QPS cap of one.
    assert!(count("capped", "qps limit") >= 2, "{reasons:?}");
    assert!(capped.stats().requests <= 2);
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_instance_is_ejected_from_its_pool() {
    let good = bidder("alpha", 3.0, |_| {}).await;
    let broken = bidder("alpha", 3.0, |c| c.fault = Some(Fault::Http500)).await;
    let dir = tempfile::tempdir().unwrap();
    let ex = registry_exchange(&dir.path().join("reg.db"), |_| {}).await;
    let spec = json!({"name": "alpha", "endpoints": [good.url(), broken.url()], "protocol": "h2c",
                      "circuit": {"failure_threshold": 1000, "eject_after": 2, "eject_ms": 600000}});
    assert_eq!(
        admin(&ex, "POST", "/v1/bidders", Some(&spec)).await.status,
        201
    );
    let mut i = 0;
    while broken.stats().requests < 2 {
        i += 1;
        assert!(i < 200, "the broken instance was never picked");
        post_url(&ex.url(), &request(&format!("e{i}"), 0.5, 300)).await;
    }
    let state = admin(&ex, "GET", "/v1/bidders/alpha", None).await.json();
    let instances = state["state"]["instances"].as_array().unwrap().clone();
    assert!(instances[0].get("ejected_until").is_none(), "{state}");
    assert!(
        instances[1]["ejected_until"].as_u64().unwrap() > 0,
        "{state}"
    );
    // From now on only the good instance is called.
    let before = broken.stats().requests;
    for j in 0..10 {
        let r = post_url(&ex.url(), &request(&format!("g{j}"), 0.5, 300)).await;
        assert_eq!(winning_seats(&r), ["alpha"]);
    }
    assert_eq!(broken.stats().requests, before);
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_cooldown_one_probe_closes_the_circuit_of_a_recovered_bidder() {
    // A port with nothing behind it yet: calls are refused until the bidder
    // "recovers" on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let a = bidder("alpha", 3.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let ex = registry_exchange(&dir.path().join("reg.db"), |_| {}).await;
    let spec = json!({"name": "alpha", "endpoints": [a.url()], "protocol": "h2c"});
    assert_eq!(
        admin(&ex, "POST", "/v1/bidders", Some(&spec)).await.status,
        201
    );
    let spec = json!({"name": "phoenix", "endpoints": [format!("http://{port}")], "protocol": "h2c",
                      "circuit": {"failure_threshold": 2, "cooldown_ms": 1000}});
    assert_eq!(
        admin(&ex, "POST", "/v1/bidders", Some(&spec)).await.status,
        201
    );
    for i in 0..2 {
        let r = post_url(&ex.url(), &request(&format!("p{i}"), 0.5, 300))
            .await
            .json();
        assert_eq!(nonbids(&r, "phoenix")[0]["statuscode"], 1, "{r}");
    }
    let state = admin(&ex, "GET", "/v1/bidders/phoenix", None).await.json();
    assert_eq!(state["state"]["circuit"], "open", "{state}");
    assert_eq!(state["state"]["consecutive_failures"], 2, "{state}");

    let phoenix = bidder_at(port, "phoenix", 9.0).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The cooldown is over: the next auction carries the probe, which
    // succeeds and closes the circuit.
    let r = post_url(&ex.url(), &request("probe", 0.5, 300)).await;
    assert_eq!(winning_seats(&r), ["phoenix"], "{}", r.text());
    assert_eq!(phoenix.stats().requests, 1);
    let state = admin(&ex, "GET", "/v1/bidders/phoenix", None).await.json();
    assert_eq!(state["state"]["circuit"], "closed", "{state}");
    let r = post_url(&ex.url(), &request("after", 0.5, 300)).await;
    assert_eq!(winning_seats(&r), ["phoenix"]);
    ex.shutdown().await;
}
