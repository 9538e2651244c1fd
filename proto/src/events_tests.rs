//! Round trips and compatibility of the auction-result schema.

use super::*;

fn sample() -> AuctionResult {
    AuctionResult {
        schema_version: AUCTION_RESULT_SCHEMA_VERSION,
        auction_id: "auc-1".into(),
        request_id: Some("req-1".into()),
        exchange_instance: Some("ex-1".into()),
        ts_ms: 1_795_000_000_000,
        publisher_id: Some("pub-1".into()),
        site_id: Some("site-1".into()),
        app_id: None,
        currency: "USD".into(),
        account: Some("alpha/c1".into()),
        imps: vec![
            ImpResult {
                imp_id: "1".into(),
                winner: Some(Winner {
                    seat: "alpha".into(),
                    cid: Some("c1".into()),
                    crid: Some("cr".into()),
                    account: account_key("alpha", Some("c1")),
                    bid_micros: Micros(3_000_000),
                    clearing_micros: Micros(2_010_000),
                    leased: Some(Leased {
                        seat: true,
                        campaign: false,
                    }),
                }),
                bids: vec![BidResult {
                    seat: "alpha".into(),
                    price_micros: Micros(3_000_000),
                    loss_reason: 0,
                }],
            },
            ImpResult {
                imp_id: "2".into(),
                winner: None,
                bids: vec![],
            },
        ],
        bidders: vec![BidderResult {
            seat: "beta".into(),
            status: BidderCallStatus::Timeout,
            latency_ms: 95,
            nonbid_code: Some(101),
        }],
    }
}

#[test]
fn round_trips_with_integer_micros() {
    let e = sample();
    let json = e.to_json();
    let text = String::from_utf8(json.clone()).unwrap();
    // Amounts are integers on the wire, never decimals.
    assert!(text.contains("\"clearing_micros\":2010000"), "{text}");
    assert_eq!(AuctionResult::from_json(&json).unwrap(), e);
}

#[test]
fn account_key_uses_campaign_when_present() {
    assert_eq!(account_key("alpha", Some("c1")), "alpha/c1");
    assert_eq!(account_key("alpha", Some("")), "alpha");
    assert_eq!(account_key("alpha", None), "alpha");
    assert_eq!(sample().key(), "alpha/c1");
    let mut none = sample();
    none.account = None;
    assert_eq!(none.key(), "auc-1");
}

/// This reader (version 3) reads a version-4 event: unknown fields are
/// ignored and an unknown bidder status reads as `Unknown`.
#[test]
fn v3_reader_reads_v4_event() {
    let v4 = include_bytes!("../tests/data/auction_result_v4.json");
    let e = AuctionResult::from_json(v4).unwrap();
    assert_eq!(e.schema_version, 4);
    assert_eq!(e.exchange_instance.as_deref(), Some("exchange-7f9c"));
    assert_eq!(e.request_id.as_deref(), Some("req-42"));
    assert_eq!(e.auction_id, "auc-42");
    let w = e.imps[0].winner.as_ref().unwrap();
    assert_eq!(w.account, "alpha/camp-7");
    assert_eq!(w.clearing_micros, Micros(2_010_000));
    assert_eq!(
        w.leased,
        Some(Leased {
            seat: true,
            campaign: true
        })
    );
    assert_eq!(e.imps[0].bids[1].loss_reason, 102);
    assert_eq!(e.bidders[2].status, BidderCallStatus::Unknown);
    assert_eq!(e.bidders[2].nonbid_code, Some(503));
}

/// Version-1 events (no `request_id`, no `exchange_instance`) still read:
/// a ledger upgraded before the exchanges keeps working.
#[test]
fn v3_reader_reads_v1_event() {
    let v1 = br#"{"schema_version":1,"auction_id":"r-1","ts_ms":5,"currency":"USD","imps":[{"imp_id":"1",
        "winner":{"seat":"a","account":"a","bid_micros":2,"clearing_micros":1}}]}"#;
    let e = AuctionResult::from_json(v1).unwrap();
    assert_eq!(e.schema_version, 1);
    assert_eq!(e.request_id, None);
    assert_eq!(e.exchange_instance, None);
    let w = e.imps[0].winner.as_ref().unwrap();
    assert_eq!(w.clearing_micros, Micros(1));
    assert_eq!(w.leased, None, "older events say nothing of leases");
}

#[test]
fn broken_events_are_errors_naming_the_field() {
    let cases: [(&[u8], &str); 4] = [
        (b"not json", "invalid auction-result event"),
        (br#"{"schema_version":0,"auction_id":"a","ts_ms":1,"currency":"USD","imps":[]}"#, "schema_version"),
        (br#"{"schema_version":1,"auction_id":"","ts_ms":1,"currency":"USD","imps":[]}"#, "auction_id"),
        (
            br#"{"schema_version":1,"auction_id":"a","ts_ms":1,"currency":"USD","imps":[{"imp_id":"1",
                "winner":{"seat":"s","account":"s","bid_micros":1,"clearing_micros":-5}}]}"#,
            "imps[0].winner.clearing_micros",
        ),
    ];
    for (bytes, needle) in cases {
        let err = AuctionResult::from_json(bytes).unwrap_err().to_string();
        assert!(err.contains(needle), "expected {needle} in {err}");
    }
}
