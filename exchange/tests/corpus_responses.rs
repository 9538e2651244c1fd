//! Every bidder response of the shared OpenRTB corpus, served by a stub
//! bidder to a live exchange: valid answers with bids are auctioned, the
//! no-bid forms are no-bids, and invalid answers become seat-non-bids with
//! loss reason 3 while a healthy bidder still wins.

mod common;

use bytes::Bytes;
use common::*;
use serde_json::{json, Value};

/// A request the response could be an answer to: same id, one banner imp per
/// impid the response bids on (offering the deals its bids name), its
/// currency allowed, no floor.
fn matching_request(resp: &Value) -> Value {
    let mut imps: Vec<Value> = Vec::new();
    for sb in resp["seatbid"].as_array().into_iter().flatten() {
        for bid in sb["bid"].as_array().into_iter().flatten() {
            let Some(id) = bid["impid"].as_str() else {
                continue;
            };
            let pos = match imps.iter().position(|i| i["id"] == id) {
                Some(p) => p,
                None => {
                    imps.push(json!({"id": id, "banner": {"w": 300, "h": 250}}));
                    imps.len() - 1
                }
            };
            if let Some(deal) = bid["dealid"].as_str() {
                imps[pos]["pmp"] = json!({"deals": [{"id": deal}]});
            }
        }
    }
    if imps.is_empty() {
        imps.push(json!({"id": "1", "banner": {}}));
    }
    let id = resp["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("corpus-request");
    json!({"id": id, "tmax": 500, "cur": [resp["cur"].as_str().unwrap_or("USD")], "imp": imps})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_response_through_a_live_exchange() {
    let Some(dir) = corpus_dir() else { return };
    let index = std::fs::read_to_string(dir.join("index.tsv")).unwrap();
    let mut seen = 0;
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (path, expectation) = (cols[0], cols[3]);
        if !path.starts_with("responses/") {
            continue;
        }
        let body = std::fs::read(dir.join(path)).unwrap();
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let body = Bytes::from(body);
        let stub = raw_bidder(move |_| body.clone()).await;
        // A healthy bidder bids 0.01 on imp "1" so the answer carries ext.
        let healthy = bidder("healthy", 0.01, |_| {}).await;
        let ex = exchange(&[("healthy", &healthy)], |c| {
            c.bidders.push(rtb_exchange::config::BidderEntry::new(
                "stub",
                vec![stub.clone()],
                rtb_exchange::config::Protocol::H2c,
            ));
        })
        .await;
        let mut request = match &parsed {
            Some(p) => matching_request(p),
            None => {
                json!({"id": "corpus-request", "tmax": 500, "imp": [{"id": "1", "banner": {}}]})
            }
        };
        if expectation != "valid" {
            // The healthy bidder answers in USD: it must be able to win.
            request["cur"] = json!(["USD"]);
        }
        // Make sure imp "1" exists for the healthy bidder.
        if !request["imp"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == "1")
        {
            request["imp"]
                .as_array_mut()
                .unwrap()
                .push(json!({"id": "1", "banner": {}}));
        }
        let answer = post(&ex, &request).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        let v = answer.json();
        let stub_wins = winners(&v)
            .iter()
            .filter(|(seat, _)| seat == "stub")
            .count();
        let stub_nonbids = nonbids(&v, "stub");
        match expectation {
            "valid" => {
                let has_bids = parsed.as_ref().is_some_and(|p| {
                    p["seatbid"].as_array().is_some_and(|s| {
                        s.iter()
                            .any(|sb| !sb["bid"].as_array().is_none_or(|b| b.is_empty()))
                    })
                });
                assert!(
                    stub_nonbids.iter().all(|n| n["statuscode"] != 3),
                    "{path}: a valid answer was treated as invalid: {v}"
                );
                if has_bids {
                    assert!(stub_wins > 0, "{path}: valid bids did not win: {v}");
                } else {
                    assert_eq!(stub_wins, 0, "{path}");
                }
            }
            _ => {
                assert_eq!(stub_wins, 0, "{path}: an invalid answer won: {v}");
                assert_eq!(stub_nonbids[0]["statuscode"], 3, "{path}: {v}");
                assert!(
                    stub_nonbids[0]["reason"]
                        .as_str()
                        .unwrap()
                        .contains("invalid"),
                    "{path}: {v}"
                );
            }
        }
        // The healthy bidder is unaffected either way.
        assert!(
            winners(&v).iter().any(|(seat, _)| seat == "healthy") || stub_wins > 0,
            "{path}: {v}"
        );
        ex.shutdown().await;
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} corpus responses");
}
