//! End-to-end tests of each injected fault, on real sockets.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{bid_request, bids, h1, h2, post, start};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use rtb_bidder::{BidderConfig, Fault, OVERSIZED_ADM_BYTES, TRICKLE_INTERVAL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn faulty(fault: Fault) -> BidderConfig {
    BidderConfig {
        seat: "faulty".to_owned(),
        price: 0.75,
        fault: Some(fault),
        ..BidderConfig::default()
    }
}

#[tokio::test]
async fn hang_never_answers_and_shutdown_still_completes() {
    let bidder = start(faulty(Fault::Hang)).await;
    let url = format!("{}/openrtb2/bid", bidder.url());
    let body = bid_request("req-h", &[("1", 0.0)]);
    for client in [h1(), h2()] {
        let req = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let res = tokio::time::timeout(Duration::from_millis(300), client.request(req)).await;
        assert!(res.is_err(), "the client timeout fires");
    }

    // A raw connection with a request still hanging when the bidder shuts down.
    let mut raw = tokio::net::TcpStream::connect(bidder.addr()).await.unwrap();
    let head = format!(
        "POST /openrtb2/bid HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    raw.write_all(head.as_bytes()).await.unwrap();
    raw.write_all(body.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bidder.stats().requests, 3);

    tokio::time::timeout(Duration::from_secs(5), bidder.shutdown())
        .await
        .expect("shutdown completes despite hanging requests");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut buf))
        .await
        .expect("the hanging connection is closed");
    // Closed without an answer: EOF or a reset, never a response.
    assert!(
        read.is_err() || buf.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
}

#[tokio::test]
async fn http500_answers_500() {
    let bidder = start(faulty(Fault::Http500)).await;
    let body = bid_request("req-5", &[("1", 0.0)]);
    for client in [h1(), h2()] {
        let r = post(&client, &bidder.url(), &body).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    bidder.shutdown().await;
}

#[tokio::test]
async fn malformed_answers_200_with_a_body_that_is_not_json() {
    let bidder = start(faulty(Fault::Malformed)).await;
    let r = post(&h1(), &bidder.url(), &bid_request("req-m", &[("1", 0.0)])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.body.is_empty());
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
    bidder.shutdown().await;
}

#[tokio::test]
async fn wrong_impid_bids_on_imps_not_in_the_request() {
    let bidder = start(faulty(Fault::WrongImpid)).await;
    let r = post(
        &h2(),
        &bidder.url(),
        &bid_request("req-w", &[("1", 0.0), ("2", 0.0)]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let bids = bids(&r.json());
    assert_eq!(bids.len(), 2);
    let requested: HashSet<&str> = ["1", "2"].into();
    for bid in &bids {
        let impid = bid["impid"].as_str().unwrap();
        assert!(
            !requested.contains(impid),
            "{impid} must not be a requested imp id"
        );
    }
    bidder.shutdown().await;
}

#[tokio::test]
async fn trickle_sends_a_complete_body_slowly() {
    let bidder = start(faulty(Fault::Trickle)).await;
    let body = bid_request("req-t", &[("1", 0.0)]);
    let req = Request::builder()
        .method(Method::POST)
        .uri(bidder.url())
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let started = Instant::now();
    let resp = h1().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let (mut bytes, mut frames) = (Vec::new(), 0usize);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            frames += 1;
            bytes.extend_from_slice(&data);
        }
    }
    let elapsed = started.elapsed();
    let json: serde_json::Value = serde_json::from_slice(&bytes).expect("complete, valid JSON");
    assert_eq!(json["id"], "req-t");
    assert_eq!(bids(&json).len(), 1);
    assert!(
        frames > bytes.len() / 2,
        "{frames} frames for {} bytes",
        bytes.len()
    );
    let minimum = TRICKLE_INTERVAL * (bytes.len() as u32 - 1);
    assert!(elapsed >= minimum, "{elapsed:?} < {minimum:?}");
    bidder.shutdown().await;
}

#[tokio::test]
async fn oversized_sends_more_than_10_mb() {
    let bidder = start(faulty(Fault::Oversized)).await;
    let r = post(&h1(), &bidder.url(), &bid_request("req-o", &[("1", 0.0)])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.len() >= 10_000_000, "{} bytes", r.body.len());
    let json = r.json();
    let adm = bids(&json)[0]["adm"].as_str().unwrap().len();
    assert!(adm >= OVERSIZED_ADM_BYTES, "{adm}");
    bidder.shutdown().await;
}
