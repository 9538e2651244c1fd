//! End-to-end tests of the bidder's normal behaviour over HTTP/1.1 and h2c on real sockets.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{bid_request, bids, get, h1, h2, post, start};
use hyper::StatusCode;
use rtb_bidder::{BidderConfig, Latency, Stats};

fn alpha() -> BidderConfig {
    BidderConfig {
        seat: "alpha".to_owned(),
        price: 1.5,
        cid: "camp-9".to_owned(),
        crid: "cr-9".to_owned(),
        adomain: "alpha.example".to_owned(),
        ..BidderConfig::default()
    }
}

fn check_bid_response(resp: &serde_json::Value, request_id: &str, base_url: &str) {
    assert_eq!(resp["id"], request_id);
    assert_eq!(resp["cur"], "USD");
    assert_eq!(resp["seatbid"][0]["seat"], "alpha");
    let bids = bids(resp);
    let impids: Vec<&str> = bids.iter().map(|b| b["impid"].as_str().unwrap()).collect();
    assert_eq!(impids, ["1", "2"]);
    for bid in &bids {
        assert_eq!(bid["price"], 1.5);
        let adm = bid["adm"].as_str().unwrap();
        assert!(
            adm.contains("${AUCTION_PRICE}") && adm.contains("${AUCTION_ID}"),
            "{adm}"
        );
        assert!(adm.contains(r#"data-seat="alpha""#), "{adm}");
        let nurl = bid["nurl"].as_str().unwrap();
        assert_eq!(
            nurl,
            format!("{base_url}/win?price=${{AUCTION_PRICE}}&auction=${{AUCTION_ID}}&imp=${{AUCTION_IMP_ID}}")
        );
        let burl = bid["burl"].as_str().unwrap();
        assert!(burl.starts_with(&format!("{base_url}/bill?")), "{burl}");
        assert!(burl.contains("${AUCTION_PRICE}"), "{burl}");
        assert_eq!(bid["adomain"], serde_json::json!(["alpha.example"]));
        assert_eq!(bid["cid"], "camp-9");
        assert_eq!(bid["crid"], "cr-9");
        assert_eq!(
            (bid["w"].as_u64(), bid["h"].as_u64()),
            (Some(300), Some(250))
        );
        assert_eq!(bid["mtype"], 1);
    }
    let ids: HashSet<&str> = bids.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), bids.len(), "bid ids are unique");
}

#[tokio::test]
async fn bids_per_imp_over_http1_and_h2c_and_counts_versions() {
    let bidder = start(alpha()).await;
    let url = bidder.url();
    assert_eq!(url, format!("http://{}", bidder.addr()));
    // A floor above the price must not stop the bid: the exchange applies floors.
    let body = bid_request("req-1", &[("1", 0.1), ("2", 9.0)]);

    let r1 = post(&h1(), &format!("{url}/openrtb2/bid"), &body).await;
    assert_eq!(r1.status, StatusCode::OK);
    assert_eq!(r1.headers["content-type"], "application/json");
    check_bid_response(&r1.json(), "req-1", &url);

    // The exchange may post to the bare endpoint URL, i.e. path "/".
    let h2 = h2();
    let r2 = post(&h2, &format!("{url}/"), &body).await;
    assert_eq!(r2.status, StatusCode::OK);
    check_bid_response(&r2.json(), "req-1", &url);
    let r3 = post(&h2, &format!("{url}/anything"), &body).await;
    assert_eq!(r3.status, StatusCode::OK);

    let all_ids: HashSet<String> = [&r1, &r2, &r3]
        .iter()
        .flat_map(|r| bids(&r.json()))
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all_ids.len(), 6, "bid ids are unique across requests");

    let stats = bidder.stats();
    assert_eq!(
        (
            stats.requests,
            stats.http1,
            stats.http2,
            stats.bids,
            stats.no_bids
        ),
        (3, 1, 2, 3, 0)
    );
    assert_eq!(stats.last_tmax, Some(120));
    assert_eq!(stats.last_openrtb_version.as_deref(), Some("2.6"));

    // GET /stats serves the same snapshot and is not itself counted as a bid request.
    let served = get(&h1(), &format!("{url}/stats")).await;
    assert_eq!(served.status, StatusCode::OK);
    let served: Stats = serde_json::from_slice(&served.body).unwrap();
    assert_eq!(served, bidder.stats());

    assert_eq!(
        get(&h2, &format!("{url}/healthz")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&h1(), &format!("{url}/nope")).await.status,
        StatusCode::NOT_FOUND
    );
    bidder.shutdown().await;
}

#[tokio::test]
async fn bid_rate_zero_answers_204() {
    let bidder = start(BidderConfig {
        bid_rate: 0.0,
        ..alpha()
    })
    .await;
    let body = bid_request("req-2", &[("1", 0.0)]);
    for client in [h1(), h2()] {
        let r = post(&client, &format!("{}/openrtb2/bid", bidder.url()), &body).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert!(r.body.is_empty());
    }
    let stats = bidder.stats();
    assert_eq!((stats.requests, stats.bids, stats.no_bids), (2, 0, 2));
    bidder.shutdown().await;
}

#[tokio::test]
async fn undecodable_request_is_400_with_a_message() {
    let bidder = start(alpha()).await;
    let url = format!("{}/openrtb2/bid", bidder.url());
    for body in [
        "not json",
        r#"{"imp": []}"#,
        r#"{"id": "x", "imp": [{"banner": {}}]}"#,
    ] {
        let r = post(&h1(), &url, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let msg = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(msg.starts_with("invalid bid request: "), "{msg}");
    }
    bidder.shutdown().await;
}

#[tokio::test]
async fn win_and_bill_notices_are_recorded() {
    let bidder = start(alpha()).await;
    let url = bidder.url();
    let r = get(&h1(), &format!("{url}/win?price=1.23&auction=auc-7&imp=1")).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get(&h2(), &format!("{url}/win?auction=auc-8&price=0.5")).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get(&h1(), &format!("{url}/bill?price=1.23&auction=auc-7&imp=1")).await;
    assert_eq!(r.status, StatusCode::OK);
    let stats = bidder.stats();
    assert_eq!(stats.wins, 2);
    assert_eq!(stats.bills, 1);
    assert_eq!(stats.win_prices, ["1.23", "0.5"]);
    assert_eq!(stats.win_auction_ids, ["auc-7", "auc-8"]);
    assert_eq!(stats.requests, 0, "notices are not bid requests");
    bidder.shutdown().await;
}

#[tokio::test]
async fn fixed_latency_delays_the_answer() {
    let bidder = start(BidderConfig {
        latency: Latency::Fixed(Duration::from_millis(50)),
        ..alpha()
    })
    .await;
    let body = bid_request("req-3", &[("1", 0.0)]);
    let url = format!("{}/openrtb2/bid", bidder.url());
    for client in [h1(), h2()] {
        let started = Instant::now();
        let r = post(&client, &url, &body).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "{:?}",
            started.elapsed()
        );
    }
    bidder.shutdown().await;
}

async fn seeded_prices(seed: u64) -> Vec<f64> {
    let bidder = start(BidderConfig {
        price: 2.0,
        price_spread: 0.3,
        bid_rate: 0.8,
        seed: Some(seed),
        ..alpha()
    })
    .await;
    let imps: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let imps: Vec<(&str, f64)> = imps.iter().map(|i| (i.as_str(), 0.0)).collect();
    let body = bid_request("req-4", &imps);
    let mut prices = Vec::new();
    for _ in 0..3 {
        let r = post(&h1(), &format!("{}/openrtb2/bid", bidder.url()), &body).await;
        if r.status == StatusCode::OK {
            for b in bids(&r.json()) {
                let price = b["price"].as_f64().unwrap();
                assert!((1.4..=2.6).contains(&price), "{price} within ±30% of 2.0");
                // Rounded to 6 decimals.
                assert!(
                    ((price * 1e6).round() - price * 1e6).abs() < 1e-6,
                    "{price}"
                );
                prices.push(price);
            }
        }
    }
    bidder.shutdown().await;
    prices
}

#[tokio::test]
async fn seeded_bidders_repeat_their_prices() {
    let first = seeded_prices(42).await;
    let second = seeded_prices(42).await;
    assert!(
        first.len() > 20,
        "bid rate 0.8 on 60 imps bids on most of them"
    );
    assert!(
        first.len() < 60,
        "bid rate 0.8 on 60 imps skips some of them"
    );
    assert_eq!(first, second);
    let distinct: HashSet<u64> = first.iter().map(|p| p.to_bits()).collect();
    assert!(distinct.len() > 1, "the spread varies prices");
    assert_ne!(first, seeded_prices(43).await);
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let bidder = start(alpha()).await;
    let addr = bidder.addr();
    // Leave an idle keep-alive connection open: shutdown must close it too.
    let client = h1();
    assert_eq!(
        get(&client, &format!("{}/healthz", bidder.url()))
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::timeout(Duration::from_secs(5), bidder.shutdown())
        .await
        .expect("shutdown completes");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn invalid_config_is_rejected() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = rtb_bidder::spawn(
        listener,
        BidderConfig {
            bid_rate: 2.0,
            ..alpha()
        },
    )
    .await
    .err()
    .expect("bid rate 2 is invalid");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("bid rate"), "{err}");
}
