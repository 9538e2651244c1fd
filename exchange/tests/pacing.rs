//! Refusal pacing through the real server: past `server.max_refusals_per_sec`
//! a refused connection is not read again until its turn, while answers
//! already made on it still leave at once; with pacing off nothing waits.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use rtb_bidder::Latency;
use rtb_exchange::server::RunningExchange;

/// An exchange with one auction slot and one slow bidder, so every request
/// but the first is refused while the first is in flight.
async fn one_slot(pace: Option<u64>, bidder: &rtb_bidder::BidderHandle) -> RunningExchange {
    exchange(&[("slow", bidder)], |c| {
        c.server.max_in_flight = 1;
        // The holder's auction may last its whole tmax of 2.9 s.
        c.auction.max_tmax_ms = 3_000;
        c.server.pace_refusals = pace.is_some();
        c.server.max_refusals_per_sec = pace.unwrap_or(0);
    })
    .await
}

/// Sends `n` requests one after the other on `client`; returns how many were
/// refused and how long they took.
async fn refusals(
    client: &Client<HttpConnector, Full<Bytes>>,
    ex: &RunningExchange,
    n: usize,
) -> (usize, Duration) {
    let body = serde_json::to_vec(&request("r", 0.1, 2_000)).unwrap();
    let started = Instant::now();
    let mut refused = 0;
    for _ in 0..n {
        let a = post_raw(client, ex, body.clone(), &[]).await;
        if a.status == 503 {
            refused += 1;
        }
    }
    (refused, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_past_the_pace_wait_their_turn_and_answers_in_flight_still_leave() {
    // The slot holder's bidder answers after 2.6 s: every request sent
    // meanwhile is refused (the 25 below take about 1.3 s, so a slow
    // machine has twice that).
    let slow = bidder("slow", 1.0, |c| {
        c.latency = Latency::Fixed(Duration::from_millis(2_600))
    })
    .await;
    // 20 refusals a second: a slot every 50 ms, the first within the burst.
    let ex = one_slot(Some(20), &slow).await;
    let h2 = client(true);
    let hold = serde_json::to_vec(&request("hold", 0.1, 2_900)).unwrap();
    let holder = async {
        let started = Instant::now();
        let a = post_raw(&h2, &ex, hold, &[]).await;
        (a, started.elapsed())
    };
    // 25 refusals on the same h2 connection, one after the other: the 24
    // paced ones wait a slot each, at least 24 × 50 ms in all, so the
    // connection is being paced when the holder's answer is made.
    let paced = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        refusals(&h2, &ex, 25).await
    };
    let ((a, waited), (refused, took)) = tokio::join!(holder, paced);
    assert_eq!(refused, 25, "every request but the holder's is refused");
    assert!(
        took >= Duration::from_millis(1_150),
        "25 refusals paced at 20/s took only {took:?}"
    );
    // The holder's answer was made while its connection was paused: it
    // still left (won, within its deadline).
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(winning_seats(&a), ["slow"]);
    assert!(waited < Duration::from_millis(2_900), "{waited:?}");
    let (_, m) = get(format!("{}/metrics", ex.url())).await;
    assert!(counter(&m, "rtb_refusals_paced_total") >= 24, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pacing_off_refusals_do_not_wait() {
    let slow = bidder("slow", 1.0, |c| {
        c.latency = Latency::Fixed(Duration::from_millis(2_600))
    })
    .await;
    let ex = one_slot(None, &slow).await;
    let h2 = client(true);
    let hold = serde_json::to_vec(&request("hold", 0.1, 2_900)).unwrap();
    let holder = post_raw(&h2, &ex, hold, &[]);
    let refused = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        refusals(&h2, &ex, 11).await
    };
    let (a, (refused, _)) = tokio::join!(holder, refused);
    assert_eq!(refused, 11);
    assert_eq!(a.status, 200);
    let (_, m) = get(format!("{}/metrics", ex.url())).await;
    assert_eq!(counter(&m, "rtb_refusals_paced_total"), 0, "{m}");
}
