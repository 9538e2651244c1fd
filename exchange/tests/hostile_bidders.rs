//! Bidders that try to game or overload the auction, against a real
//! exchange on 127.0.0.1:0: absurd prices, many bids from one seat on one
//! imp, megabyte campaign ids, creatives the publisher blocked, huge
//! requests, and answers that arrive right at the deadline.
//!
//! Each hostile case also runs a well-behaved publisher at the same time and
//! checks that its auctions are still answered, with a winner, within tmax.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use rtb_bidder::Fault;
use rtb_exchange::config::{BidderEntry, Config, Protocol};
use rtb_exchange::server::RunningExchange;
use serde_json::{json, Value};

/// tmax of the well-behaved publisher's auctions.
const TMAX_MS: u64 = 300;

/// Room, beyond tmax, for the test client's own connection and scheduling
/// on a loaded two-core machine: the exchange answers by its deadline, the
/// client may see it a little later.
const SLACK: Duration = Duration::from_millis(150);

/// One test at a time: each asserts deadlines, and the 10,000-imp auction
/// keeps a core busy for a while in a debug build. (A tokio mutex: each test
/// has its own runtime, and the guard is held across awaits.)
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A bidder that answers each bid request with the JSON `answer` builds
/// from it; returns its base URL.
async fn scripted_bidder(answer: impl Fn(&Value) -> Value + Send + Sync + 'static) -> String {
    raw_bidder(move |body| {
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        Bytes::from(serde_json::to_vec(&answer(&request)).unwrap())
    })
    .await
}

/// A bid response to `request` from `seat` holding `bids` (each a JSON
/// object; `id` and `impid` are filled in when absent).
fn response(request: &Value, seat: &str, bids: Vec<Value>) -> Value {
    let bids: Vec<Value> = bids
        .into_iter()
        .enumerate()
        .map(|(i, mut b)| {
            if b.get("id").is_none() {
                b["id"] = json!(format!("{seat}-{i}"));
            }
            if b.get("impid").is_none() {
                b["impid"] = json!("1");
            }
            if b.get("adm").is_none() {
                b["adm"] = json!("<div>ad</div>");
            }
            b
        })
        .collect();
    json!({"id": request["id"], "cur": "USD", "seatbid": [{"seat": seat, "bid": bids}]})
}

/// Adds a bidder entry (h2c) for a scripted bidder.
fn add_bidder(config: &mut Config, name: &str, url: &str) {
    config
        .bidders
        .push(BidderEntry::new(name, vec![url.to_owned()], Protocol::H2c));
}

/// Runs a well-behaved publisher against `ex` while `hostile` runs: one
/// auction after another until `hostile` is done (at least three). Every
/// one must be a 200 with a winner within tmax + slack.
async fn alongside<T>(ex: &RunningExchange, hostile: impl std::future::Future<Output = T>) -> T {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let url = ex.url();
    let publisher = tokio::spawn(async move {
        let mut n = 0;
        while n < 3 || !flag.load(Ordering::Relaxed) {
            let started = Instant::now();
            let a = post_url(&url, &request(&format!("polite-{n}"), 0.1, TMAX_MS)).await;
            let took = started.elapsed();
            assert_eq!(a.status, 200, "polite auction {n}: {}", a.text());
            assert!(
                !winners(&a.json()).is_empty(),
                "polite auction {n}: {}",
                a.text()
            );
            assert!(
                took < Duration::from_millis(TMAX_MS) + SLACK,
                "polite auction {n} took {took:?}"
            );
            n += 1;
        }
        n
    });
    let out = hostile.await;
    done.store(true, Ordering::Relaxed);
    let n = publisher
        .await
        .expect("the well-behaved publisher's checks");
    assert!(n >= 3);
    out
}

/// Posts `req` and checks that the answer came within tmax + slack.
/// One hostile auction (`req`) while the well-behaved publisher runs
/// ([`alongside`]): it must be answered with a 200; its JSON.
async fn answered_alongside(ex: &RunningExchange, req: &Value) -> Value {
    alongside(ex, async {
        let a = timed_post(ex, req).await;
        assert_eq!(a.status, 200, "{}", a.text());
        a.json()
    })
    .await
}

async fn timed_post(ex: &RunningExchange, req: &Value) -> Answer {
    let tmax = req["tmax"].as_u64().unwrap();
    let started = Instant::now();
    let a = post(ex, req).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(tmax) + SLACK,
        "answered after {took:?} (tmax {tmax} ms)"
    );
    a
}

/// The seat-non-bid entries of `seat` for imp `imp`.
fn nonbids_for(v: &Value, seat: &str, imp: &str) -> Vec<Value> {
    nonbids(v, seat)
        .into_iter()
        .filter(|n| n["impid"] == imp)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_9e12_price_is_an_invalid_bid_with_a_reason() {
    let _serial = SERIAL.lock().await;
    let honest = bidder("honest", 1.0, |_| {}).await;
    let greedy = bidder("greedy", 9e12, |_| {}).await;
    let ex = exchange(&[("honest", &honest), ("greedy", &greedy)], |_| {}).await;
    let v = alongside(&ex, async {
        let mut last = Value::Null;
        for i in 0..3 {
            let a = timed_post(&ex, &request(&format!("greedy-{i}"), 0.1, TMAX_MS)).await;
            assert_eq!(a.status, 200, "{}", a.text());
            last = a.json();
        }
        last
    })
    .await;
    let wins = winners(&v);
    assert_eq!(wins.len(), 1, "{v}");
    assert_eq!(wins[0].0, "honest", "{v}");
    // The honest bid is alone: floor + 0.01, not a price set against 9e12.
    assert_eq!(wins[0].1["price"], json!(0.11), "{v}");
    let nb = nonbids(&v, "greedy");
    assert_eq!(nb[0]["statuscode"], 3, "{v}");
    let reason = nb[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("max_bid_price"), "{v}");
    assert_eq!(greedy.stats().wins, 0);
}

/// Seat "multi" bids ten times on imp 1 (10.0 down to 1.0), "low" bids 2.0:
/// multi wins and pays 2.01, the best bid of another seat plus a cent, not
/// 9.01 set by its own second bid; bids past the per-imp cap are invalid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_bids_from_one_seat_are_capped_and_do_not_set_their_own_price() {
    let _serial = SERIAL.lock().await;
    let low = bidder("low", 2.0, |_| {}).await;
    let multi = scripted_bidder(|req| {
        let bids = (0..10)
            .map(|i| json!({"price": 10.0 - f64::from(i), "adomain": ["multi.example"]}))
            .collect();
        response(req, "multi", bids)
    })
    .await;
    let ex = exchange(&[("low", &low)], |c| add_bidder(c, "multi", &multi)).await;
    let v = answered_alongside(&ex, &request("multi-1", 0.5, TMAX_MS)).await;
    let wins = winners(&v);
    assert_eq!(wins.len(), 1, "{v}");
    assert_eq!(wins[0].0, "multi");
    assert_eq!(wins[0].1["price"], json!(2.01), "{v}");
    let nb = nonbids_for(&v, "multi", "1");
    assert_eq!(nb.len(), 9, "{v}");
    // The default cap is 5 bids per seat per imp: four lose to the winner,
    // five are invalid and say why.
    let invalid: Vec<&Value> = nb.iter().filter(|n| n["statuscode"] == 3).collect();
    assert_eq!(invalid.len(), 5, "{v}");
    for n in invalid {
        let reason = n["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("max_bids_per_seat_per_imp"), "{v}");
    }
    assert_eq!(nb.iter().filter(|n| n["statuscode"] == 102).count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_past_max_bids_per_response_are_dropped_with_a_reason() {
    let _serial = SERIAL.lock().await;
    let flood = scripted_bidder(|req| {
        // One bid on imp 1 and 299 on imps the request does not have.
        let mut bids = vec![json!({"price": 1.0})];
        bids.extend((1..300).map(|i| json!({"price": 1.0, "impid": format!("x{i}")})));
        response(req, "flood", bids)
    })
    .await;
    let honest = bidder("honest", 0.5, |_| {}).await;
    let ex = exchange(&[("honest", &honest)], |c| {
        add_bidder(c, "flood", &flood);
        c.auction.max_bids_per_response = 100;
    })
    .await;
    let v = answered_alongside(&ex, &request("flood-1", 0.1, TMAX_MS)).await;
    assert_eq!(winners(&v)[0].0, "flood", "{v}");
    let nb = nonbids(&v, "flood");
    assert_eq!(nb.len(), 299, "{v}");
    let capped = nb
        .iter()
        .filter(|n| {
            n["statuscode"] == 3
                && n["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("max_bids_per_response")
        })
        .count();
    assert_eq!(capped, 200, "{v}");
}

/// tmax of the auctions with a 1 MB answer: a debug build decodes JSON at a
/// few MB/s, so the answer alone takes it about 300 ms; an optimized build
/// needs about a millisecond.
const BIG_CID_TMAX_MS: u64 = if cfg!(debug_assertions) {
    1_500
} else {
    TMAX_MS
};

/// The `id` of a request the exchange forwarded (the publisher's bytes, so
/// `id` can be anywhere in the object).
fn request_id(body: &[u8]) -> String {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    request["id"].as_str().unwrap_or_default().to_owned()
}

/// Bids 2.0 with a 1 MB `cid` in auctions whose id starts with "cid-", and
/// with a plain one in the others (the well-behaved publisher's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_cid_crashes_nothing() {
    let _serial = SERIAL.lock().await;
    const MB: usize = 1024 * 1024;
    let honest = bidder("honest", 1.0, |_| {}).await;
    let cid = "c".repeat(MB);
    let big = raw_bidder(move |body| {
        let id = request_id(body);
        let cid = if id.starts_with("cid-") {
            &cid[..]
        } else {
            "small"
        };
        Bytes::from(format!(
            r#"{{"id":"{id}","cur":"USD","seatbid":[{{"seat":"bigcid","bid":[
                {{"id":"b1","impid":"1","price":2,"adm":"<div/>","cid":"{cid}"}}]}}]}}"#
        ))
    })
    .await;
    // Default limits: the answer is over max_bidder_response_bytes.
    let ex = exchange(&[("honest", &honest)], |c| add_bidder(c, "bigcid", &big)).await;
    let v = answered_alongside(&ex, &request("cid-1", 0.1, BIG_CID_TMAX_MS)).await;
    assert_eq!(winners(&v)[0].0, "honest", "{v}");
    let nb = nonbids(&v, "bigcid");
    assert_eq!(nb[0]["statuscode"], 3, "{v}");
    assert!(
        nb[0]["reason"].as_str().unwrap().contains("too large"),
        "{v}"
    );
    ex.shutdown().await;
    // With room for the answer, the bid is decoded, and its cid is over the
    // bound: an invalid bid naming bid.cid (a megabyte cid would make an
    // auction-result event Kafka refuses, and a metric label).
    let ex = exchange(&[("honest", &honest)], |c| {
        add_bidder(c, "bigcid", &big);
        c.auction.max_bidder_response_bytes = 4 * MB;
        c.auction.max_tmax_ms = BIG_CID_TMAX_MS;
    })
    .await;
    let v = answered_alongside(&ex, &request("cid-2", 0.1, BIG_CID_TMAX_MS)).await;
    assert_eq!(winners(&v)[0].0, "honest", "{v}");
    let nb = nonbids(&v, "bigcid");
    assert_eq!(nb[0]["statuscode"], 3, "{v}");
    let reason = nb[0]["reason"].as_str().unwrap();
    assert!(reason.contains("bid.cid") && reason.contains("1024"), "{v}");
    ex.shutdown().await;
}

/// Every bounded bid field, just over its bound, is an invalid bid that
/// names it; at the bound the bid wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bid_fields_are_invalid_bids_naming_the_field() {
    let _serial = SERIAL.lock().await;
    let id = "i".repeat(1025);
    let url = format!("http://127.0.0.1:9/{}", "u".repeat(8 * 1024));
    let many: Vec<String> = (0..65).map(|i| format!("d{i}.example")).collect();
    let cases = [
        ("cid", json!(id), "bid.cid"),
        ("crid", json!(id), "bid.crid"),
        ("adid", json!(id), "bid.adid"),
        ("nurl", json!(url), "bid.nurl"),
        ("burl", json!(url), "bid.burl"),
        ("adomain", json!(many), "bid.adomain"),
        ("cat", json!([id]), "bid.cat"),
    ];
    for (field, value, named) in cases {
        let over = value.clone();
        let hostile = scripted_bidder(move |req| {
            let mut bid = json!({"id": "b1", "impid": "1", "price": 5.0, "adm": "<div/>"});
            bid[field] = over.clone();
            response(req, "long", vec![bid])
        })
        .await;
        let honest = bidder("honest", 1.0, |_| {}).await;
        let ex = exchange(&[("honest", &honest)], |c| add_bidder(c, "long", &hostile)).await;
        let v = answered_alongside(&ex, &request("f", 0.1, TMAX_MS)).await;
        assert_eq!(winners(&v)[0].0, "honest", "{field}: {v}");
        let nb = nonbids(&v, "long");
        assert_eq!(nb[0]["statuscode"], 3, "{field}: {v}");
        assert!(
            nb[0]["reason"].as_str().unwrap().contains(named),
            "{field}: {v}"
        );
        ex.shutdown().await;
    }
    // At the bound: the bid is valid and wins, with its cid as sent.
    let cid = "c".repeat(1024);
    let sent = cid.clone();
    let edge = scripted_bidder(move |req| {
        let bid = json!({"id": "b1", "impid": "1", "price": 5.0, "adm": "<div/>", "cid": sent});
        response(req, "edge", vec![bid])
    })
    .await;
    let ex = exchange(&[], |c| add_bidder(c, "edge", &edge)).await;
    let v = timed_post(&ex, &request("e", 0.1, TMAX_MS)).await.json();
    let wins = winners(&v);
    assert_eq!(wins[0].0, "edge", "{v}");
    assert_eq!(wins[0].1["cid"], cid.as_str());
    ex.shutdown().await;
}

/// One scripted bidder per rule, each bidding 5.0 on a creative the
/// publisher excluded; an honest bidder at 1.0 wins at floor + 0.01.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_attributes_seats_and_domains_lose_with_their_codes() {
    let _serial = SERIAL.lock().await;
    let honest = bidder("honest", 1.0, |_| {}).await;
    let attr = scripted_bidder(|req| {
        response(
            req,
            "attr",
            vec![json!({"price": 5.0, "attr": [1, 3], "mtype": 1})],
        )
    })
    .await;
    let blocked =
        scripted_bidder(|req| response(req, "blocked", vec![json!({"price": 5.0})])).await;
    // Names a seat the publisher blocked in seatbid.seat.
    let claims =
        scripted_bidder(|req| response(req, "evil-seat", vec![json!({"price": 5.0})])).await;
    let ex = exchange(&[("honest", &honest)], |c| {
        add_bidder(c, "attr", &attr);
        add_bidder(c, "blocked", &blocked);
        add_bidder(c, "claims", &claims);
    })
    .await;
    let mut req = request("rules-1", 0.1, TMAX_MS);
    req["imp"][0]["banner"]["battr"] = json!([3]);
    req["bseat"] = json!(["blocked", "evil-seat"]);
    let v = answered_alongside(&ex, &req).await;
    let wins = winners(&v);
    assert_eq!(wins.len(), 1, "{v}");
    assert_eq!(wins[0].0, "honest", "{v}");
    assert_eq!(wins[0].1["price"], json!(0.11), "{v}");
    assert_eq!(nonbids(&v, "attr")[0]["statuscode"], 210, "{v}");
    assert_eq!(nonbids(&v, "blocked")[0]["statuscode"], 104, "{v}");
    assert_eq!(nonbids(&v, "claims")[0]["statuscode"], 104, "{v}");

    // wseat: only the listed bidders may win, whatever seat a bid claims.
    let mut req = request("rules-2", 0.1, TMAX_MS);
    req["wseat"] = json!(["honest", "evil-seat"]);
    let v = timed_post(&ex, &req).await.json();
    assert_eq!(winners(&v)[0].0, "honest", "{v}");
    assert_eq!(nonbids(&v, "claims")[0]["statuscode"], 104, "{v}");
    assert_eq!(nonbids(&v, "blocked")[0]["statuscode"], 104, "{v}");
}

/// Deals: wadomain limits the advertisers, at=3 fixes the price at the deal
/// floor, at=1 makes the deal first price, and a deal floor in another
/// currency is the publisher's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deal_rules_are_enforced() {
    let _serial = SERIAL.lock().await;
    let dealer = scripted_bidder(|req| {
        let bids = req["imp"]
            .as_array()
            .unwrap()
            .iter()
            .map(|imp| {
                let id = imp["id"].as_str().unwrap();
                json!({"impid": id, "price": 5.0, "dealid": format!("d{id}"),
                       "adomain": ["dealer.example"]})
            })
            .collect();
        response(req, "dealer", bids)
    })
    .await;
    let low = bidder("low", 1.0, |_| {}).await;
    let ex = exchange(&[("low", &low)], |c| add_bidder(c, "dealer", &dealer)).await;
    let mut req = request("deals-1", 0.5, TMAX_MS);
    let banner = json!({"w": 300, "h": 250});
    req["imp"] = json!([
        {"id": "1", "bidfloor": 0.5, "banner": banner,
         "pmp": {"deals": [{"id": "d1", "bidfloor": 2.0, "wadomain": ["other.example"]}]}},
        {"id": "2", "bidfloor": 0.5, "banner": banner,
         "pmp": {"deals": [{"id": "d2", "bidfloor": 3.0, "at": 3}]}},
        {"id": "3", "bidfloor": 0.5, "banner": banner,
         "pmp": {"deals": [{"id": "d3", "bidfloor": 2.0, "at": 1}]}},
        {"id": "4", "bidfloor": 0.5, "banner": banner,
         "pmp": {"deals": [{"id": "d4", "bidfloor": 2.0, "wadomain": ["dealer.example"]}]}}
    ]);
    let v = answered_alongside(&ex, &req).await;
    let price_of = |imp: &str| {
        winners(&v)
            .into_iter()
            .find(|(_, b)| b["impid"] == imp)
            .map(|(seat, b)| (seat, b["price"].clone()))
    };
    // Imp 1: the deal does not allow dealer.example (213); low wins.
    assert_eq!(price_of("1"), Some(("low".into(), json!(0.51))), "{v}");
    assert_eq!(nonbids_for(&v, "dealer", "1")[0]["statuscode"], 213, "{v}");
    // Imp 2: fixed price, the deal floor.
    assert_eq!(price_of("2"), Some(("dealer".into(), json!(3))), "{v}");
    // Imp 3: first price on the deal.
    assert_eq!(price_of("3"), Some(("dealer".into(), json!(5))), "{v}");
    // Imp 4: allowed domain, second price against the deal floor.
    assert_eq!(price_of("4"), Some(("dealer".into(), json!(2.01))), "{v}");

    let mut req = request("deals-2", 0.5, TMAX_MS);
    req["imp"][0]["pmp"] = json!({"deals": [{"id": "d1", "bidfloor": 2.0, "bidfloorcur": "EUR"}]});
    let a = post(&ex, &req).await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(
        a.text().contains("imp[0].pmp.deals[0].bidfloorcur"),
        "{}",
        a.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_imps_than_max_imps_per_request_is_a_400_naming_imp() {
    let _serial = SERIAL.lock().await;
    let honest = bidder("honest", 1.0, |_| {}).await;
    let ex = exchange(&[("honest", &honest)], |_| {}).await;
    let mut req = request("imps-1", 0.1, TMAX_MS);
    req["imp"] = Value::Array(
        (0..101)
            .map(|i| json!({"id": i.to_string(), "banner": {"w": 300, "h": 250}}))
            .collect(),
    );
    let a = post(&ex, &req).await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.text().starts_with("imp:"), "{}", a.text());
    assert!(a.text().contains("max_imps_per_request"), "{}", a.text());
    assert_eq!(honest.stats().requests, 0, "no bidder was asked");
}

/// A bidder bidding `price` on every imp: for the 10,000-imp auction
/// ("big-1") with an answer built once beforehand, so that what is measured
/// is the exchange, not the bidder; for the others, built per request.
async fn every_imp_bidder(seat: &'static str, price: f64, imps: usize) -> String {
    let bids: Vec<String> = (0..imps)
        .map(|i| format!(r#"{{"id":"{seat}{i}","impid":"{i}","price":{price}}}"#))
        .collect();
    let big = Bytes::from(format!(
        r#"{{"id":"big-1","cur":"USD","seatbid":[{{"seat":"{seat}","bid":[{}]}}]}}"#,
        bids.join(",")
    ));
    raw_bidder(move |body| {
        // The exchange encodes `id` first; the big request is the only large one.
        if body.len() > 64 * 1024 {
            return big.clone();
        }
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let bids = request["imp"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|imp| json!({"impid": imp["id"], "price": price}))
            .collect();
        Bytes::from(serde_json::to_vec(&response(&request, seat, bids)).unwrap())
    })
    .await
}

/// tmax of the 10,000-imp auction. A debug build decodes and encodes JSON
/// at a few MB/s: the request (250 kB), the three answers (400 kB each) and
/// the response take it over a second on a quiet machine, several on a
/// loaded one; an optimized build needs a few milliseconds. (Before the
/// auction was linear, a debug build took over 10 s for this auction.)
const BIG_TMAX_MS: u64 = if cfg!(debug_assertions) { 6_000 } else { 300 };

/// 10,000 imps and three bidders bidding on every one: the auction, the
/// response and the event are linear in imps + bids, so the publisher gets
/// its 200 within tmax while a well-behaved publisher is served too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_imps_times_three_bidders_answer_within_tmax() {
    let _serial = SERIAL.lock().await;
    const IMPS: usize = 10_000;
    let a = every_imp_bidder("alpha", 3.0, IMPS).await;
    let b = every_imp_bidder("beta", 2.0, IMPS).await;
    let g = every_imp_bidder("gamma", 1.0, IMPS).await;
    let ex = exchange(&[], |c| {
        for (name, url) in [("alpha", &a), ("beta", &b), ("gamma", &g)] {
            add_bidder(c, name, url);
        }
        c.auction.max_imps_per_request = IMPS;
        c.auction.max_bids_per_response = IMPS;
        c.auction.max_bidder_response_bytes = 16 * 1024 * 1024;
        c.auction.max_tmax_ms = BIG_TMAX_MS;
        c.server.max_body_bytes = 4 * 1024 * 1024;
    })
    .await;
    let mut req = request("big-1", 0.1, BIG_TMAX_MS);
    req["imp"] = Value::Array(
        (0..IMPS)
            .map(|i| json!({"id": i.to_string(), "banner": {}}))
            .collect(),
    );
    let v = answered_alongside(&ex, &req).await;
    let wins = winners(&v);
    assert_eq!(wins.len(), IMPS);
    assert!(wins
        .iter()
        .all(|(seat, b)| seat == "alpha" && b["price"] == json!(2.01)));
}

/// With no response margin the fan-out ends exactly at the deadline (one
/// bidder hangs), so settlement finds it passed: no winner, no win notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_awarded_after_the_deadline() {
    let _serial = SERIAL.lock().await;
    let fast = bidder("fast", 2.0, |_| {}).await;
    let hang = bidder("hang", 9.0, |c| c.fault = Some(Fault::Hang)).await;
    let ex = exchange(&[("fast", &fast), ("hang", &hang)], |c| {
        c.auction.response_margin_ms = 0;
    })
    .await;
    for i in 0..3 {
        let a = post(&ex, &request(&format!("late-{i}"), 0.1, 100)).await;
        assert_eq!(a.status, 204, "{}", a.text());
    }
    assert_eq!(fast.stats().requests, 3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fast.stats().wins, 0, "no win notice after the deadline");
    // The same bidders with a margin: the fast bidder wins and is notified.
    let ex = exchange(&[("fast", &fast), ("hang", &hang)], |c| {
        c.auction.response_margin_ms = 50;
    })
    .await;
    let a = post(&ex, &request("in-time", 0.1, 100)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(eventually(&fast, |s| s.wins == 1).await.wins, 1);
}
