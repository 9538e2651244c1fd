//! End-to-end auctions: real simulated bidders and a real exchange on
//! 127.0.0.1:0, talking HTTP/2; assertions on what the publisher gets back.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rtb_bidder::{Fault, Latency};
use serde_json::json;

async fn three_bidders() -> [rtb_bidder::BidderHandle; 3] {
    [
        bidder("alpha", 3.0, |_| {}).await,
        bidder("beta", 2.0, |_| {}).await,
        bidder("gamma", 1.0, |_| {}).await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_price_with_floor_below_the_bids() {
    let [a, b, c] = three_bidders().await;
    let ex = exchange(&[("alpha", &a), ("beta", &b), ("gamma", &c)], |_| {}).await;
    let answer = post(&ex, &request("auction-1", 0.5, 300)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let v = answer.json();
    assert_eq!(v["id"], "auction-1");
    let wins = winners(&v);
    assert_eq!(wins.len(), 1, "{v}");
    let (seat, bid) = &wins[0];
    assert_eq!(seat, "alpha");
    assert_eq!(bid["price"], json!(2.01));
    let adm = bid["adm"].as_str().unwrap();
    assert!(adm.contains("data-price=\"2.01\""), "{adm}");
    assert!(adm.contains("data-auction=\"auction-1\""), "{adm}");
    assert!(!adm.contains("${"), "{adm}");
    // The nurl was fired by the exchange with the clearing price, not returned.
    assert!(bid.get("nurl").is_none(), "{bid}");
    let stats = eventually(&a, |s| s.wins == 1).await;
    assert_eq!(stats.win_prices, vec!["2.01"]);
    assert_eq!(stats.win_auction_ids, vec!["auction-1"]);
    // The losers are told why.
    assert_eq!(nonbids(&v, "beta")[0]["statuscode"], 102);
    assert_eq!(nonbids(&v, "gamma")[0]["statuscode"], 102);
    for seat in ["alpha", "beta", "gamma"] {
        assert!(v["ext"]["responsetimemillis"][seat].is_u64(), "{v}");
    }
    assert_eq!(b.stats().wins, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floor_between_the_bids_sets_the_price() {
    let [a, b, c] = three_bidders().await;
    let ex = exchange(&[("alpha", &a), ("beta", &b), ("gamma", &c)], |_| {}).await;
    let v = post(&ex, &request("auction-2", 2.5, 300)).await.json();
    let wins = winners(&v);
    assert_eq!(wins[0].0, "alpha");
    assert_eq!(wins[0].1["price"], json!(2.51));
    assert_eq!(nonbids(&v, "beta")[0]["statuscode"], 100);
    assert_eq!(nonbids(&v, "gamma")[0]["statuscode"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floor_above_every_bid_is_a_no_bid() {
    let [a, b, c] = three_bidders().await;
    let ex = exchange(&[("alpha", &a), ("beta", &b), ("gamma", &c)], |_| {}).await;
    let answer = post(&ex, &request("auction-3", 3.5, 300)).await;
    assert_eq!(answer.status, 204);
    assert!(answer.body.is_empty());
    assert_eq!(a.stats().requests, 1, "the bidders were still asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_price_when_at_is_1() {
    let [a, b, c] = three_bidders().await;
    let ex = exchange(&[("alpha", &a), ("beta", &b), ("gamma", &c)], |_| {}).await;
    let mut req = request("auction-4", 0.5, 300);
    req["at"] = json!(1);
    let v = post(&ex, &req).await.json();
    assert_eq!(winners(&v)[0].1["price"].as_f64(), Some(3.0));
    let stats = eventually(&a, |s| s.wins == 1).await;
    assert_eq!(stats.win_prices, vec!["3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_imp_of_a_multi_imp_request_is_auctioned() {
    let [a, b, c] = three_bidders().await;
    let ex = exchange(&[("alpha", &a), ("beta", &b), ("gamma", &c)], |_| {}).await;
    let mut req = request("auction-5", 0.5, 300);
    req["imp"] = json!([
        {"id": "1", "bidfloor": 0.5, "banner": {"w": 300, "h": 250}},
        {"id": "2", "bidfloor": 2.5, "banner": {"w": 728, "h": 90}},
        {"id": "3", "bidfloor": 9.0, "video": {"mimes": ["video/mp4"], "w": 640, "h": 480}}
    ]);
    let v = post(&ex, &req).await.json();
    let wins = winners(&v);
    assert_eq!(wins.len(), 2, "{v}");
    let price_of = |imp: &str| {
        wins.iter()
            .find(|(_, b)| b["impid"] == imp)
            .map(|(_, b)| b["price"].clone())
    };
    assert_eq!(price_of("1"), Some(json!(2.01)));
    assert_eq!(price_of("2"), Some(json!(2.51)));
    assert_eq!(price_of("3"), None);
    assert!(wins.iter().all(|(seat, _)| seat == "alpha"));
    // One seatbid per seat, holding both of alpha's wins.
    assert_eq!(v["seatbid"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_advertiser_domain_loses_with_reason_205() {
    let [a, b, c] = three_bidders().await;
    let ex = exchange(&[("alpha", &a), ("beta", &b), ("gamma", &c)], |_| {}).await;
    let mut req = request("auction-6", 0.5, 300);
    req["badv"] = json!(["alpha.example"]);
    let v = post(&ex, &req).await.json();
    let wins = winners(&v);
    assert_eq!(wins[0].0, "beta");
    assert_eq!(wins[0].1["price"], json!(1.01));
    assert_eq!(nonbids(&v, "alpha")[0]["statuscode"], 205);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_bidder_does_not_delay_the_answer_past_tmax() {
    let [a, b, _c] = three_bidders().await;
    let hang = bidder("hang", 9.0, |c| c.fault = Some(Fault::Hang)).await;
    // 50 ms of the 200 ms are kept for the auction and the trip back, so a
    // busy test machine's scheduling delays do not eat into the deadline.
    let ex = exchange(&[("alpha", &a), ("beta", &b), ("hang", &hang)], |c| {
        c.auction.response_margin_ms = 50;
    })
    .await;
    // Warm the connections so the measurement is about the deadline, not handshakes.
    post(&ex, &request("warm", 0.5, 200)).await;
    let tmax = 200;
    let started = Instant::now();
    let answer = post(&ex, &request("auction-7", 0.5, tmax)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(tmax),
        "answered after {elapsed:?}"
    );
    let v = answer.json();
    assert_eq!(winners(&v)[0].0, "alpha");
    assert_eq!(winners(&v)[0].1["price"], json!(2.01));
    let nb = nonbids(&v, "hang");
    assert_eq!(nb[0]["statuscode"], 101, "{v}");
    assert_eq!(nb[0]["reason"], "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_are_dropped_with_their_reasons() {
    let good = bidder("good", 1.0, |_| {}).await;
    let malformed = bidder("malformed", 5.0, |c| c.fault = Some(Fault::Malformed)).await;
    let late = bidder("late", 6.0, |c| {
        c.latency = Latency::Fixed(Duration::from_millis(1500))
    })
    .await;
    let wrong = bidder("wrong", 7.0, |c| c.fault = Some(Fault::WrongImpid)).await;
    let e500 = bidder("e500", 8.0, |c| c.fault = Some(Fault::Http500)).await;
    let trickle = bidder("trickle", 9.0, |c| c.fault = Some(Fault::Trickle)).await;
    let big = bidder("big", 9.5, |c| c.fault = Some(Fault::Oversized)).await;
    let ex = exchange(
        &[
            ("good", &good),
            ("malformed", &malformed),
            ("late", &late),
            ("wrong", &wrong),
            ("e500", &e500),
            ("trickle", &trickle),
            ("big", &big),
        ],
        |_| {},
    )
    .await;
    let started = Instant::now();
    // tmax leaves the 10 MB bidder (slow to build in a debug build) time to
    // start sending, so it is dropped for its size rather than its lateness.
    let v = post(&ex, &request("auction-8", 0.1, 800)).await.json();
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    let wins = winners(&v);
    assert_eq!(wins.len(), 1, "{v}");
    assert_eq!(wins[0].0, "good");
    assert_eq!(wins[0].1["price"], json!(0.11));
    let code = |seat: &str| nonbids(&v, seat)[0]["statuscode"].clone();
    assert_eq!(code("malformed"), 3, "{v}");
    assert!(nonbids(&v, "malformed")[0]["reason"]
        .as_str()
        .unwrap()
        .contains("invalid response"));
    assert_eq!(code("late"), 101);
    assert_eq!(code("wrong"), 3);
    assert_eq!(code("e500"), 3);
    assert!(nonbids(&v, "e500")[0]["reason"]
        .as_str()
        .unwrap()
        .contains("500"));
    assert_eq!(code("trickle"), 101);
    assert_eq!(code("big"), 3);
    assert!(nonbids(&v, "big")[0]["reason"]
        .as_str()
        .unwrap()
        .contains("too large"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidders_are_reached_over_http2_with_version_header_and_reduced_tmax() {
    let [a, b, c] = three_bidders().await;
    let ex = exchange(&[("alpha", &a), ("beta", &b), ("gamma", &c)], |_| {}).await;
    for i in 0..5 {
        post(&ex, &request(&format!("h2-{i}"), 0.5, 300)).await;
    }
    for h in [&a, &b, &c] {
        let s = h.stats();
        assert_eq!(s.http2, 5, "{s:?}");
        assert_eq!(s.http1, 0);
        assert_eq!(s.last_openrtb_version.as_deref(), Some("2.6"));
        let tmax = s.last_tmax.unwrap();
        assert!(
            tmax > 0 && tmax < 300,
            "bidders must get a reduced tmax, got {tmax}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_bidders_are_reached_over_http1() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let ex = exchange(&[("alpha", &a)], |c| {
        c.bidders[0].protocol = rtb_exchange::config::Protocol::Http1
    })
    .await;
    let v = post(&ex, &request("h1", 0.5, 300)).await.json();
    assert_eq!(winners(&v)[0].1["price"], json!(0.51));
    let s = a.stats();
    assert_eq!((s.http1, s.http2), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_instances_of_a_bidder_receive_traffic() {
    let one = bidder("alpha", 3.0, |c| {
        c.latency = Latency::Fixed(Duration::from_millis(5))
    })
    .await;
    let two = bidder("alpha", 3.0, |c| {
        c.latency = Latency::Fixed(Duration::from_millis(5))
    })
    .await;
    let ex = exchange(&[("alpha", &one)], |c| {
        c.bidders[0].endpoints.push(two.url())
    })
    .await;
    let client = client(true);
    let body = serde_json::to_vec(&request("multi", 0.5, 300)).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let client = client.clone();
        let body = body.clone();
        let url = ex.url();
        tasks.push(tokio::spawn(async move {
            let req = http::Request::post(format!("{url}/openrtb2/auction"))
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap();
            client.request(req).await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let (n1, n2) = (one.stats().requests, two.stats().requests);
    assert_eq!(n1 + n2, 40);
    assert!(n1 > 0 && n2 > 0, "instance loads {n1} and {n2}");
    let sent: Vec<u64> = ex.app().exchange.bidders().active[0]
        .instances()
        .iter()
        .map(|i| i.sent())
        .collect();
    assert_eq!(sent, vec![n1, n2]);
}
