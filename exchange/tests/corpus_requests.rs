//! The bidders receive the publisher's own request, with only `tmax` set by
//! the exchange: every valid bid request of the shared OpenRTB corpus (plain
//! and gzip'd) goes through a live exchange to a bidder that keeps what it
//! receives, and what it receives is the publisher's JSON with `tmax`
//! replaced; fields the typed model does not know survive, byte for byte.

mod common;

use std::io::Write;

use bytes::Bytes;
use common::*;
use rtb_exchange::config::{BidderEntry, Protocol};
use rtb_exchange::server::RunningExchange;
use serde_json::{json, Value};

/// An exchange whose only bidder is a capturing one.
async fn capturing_exchange() -> (RunningExchange, Captured) {
    let (url, captured) = capturing_bidder().await;
    let ex = exchange(&[], |c| {
        c.bidders
            .push(BidderEntry::new("capture", vec![url], Protocol::H2c));
    })
    .await;
    (ex, captured)
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(body).unwrap();
    enc.finish().unwrap()
}

/// POSTs `body` as it is (gzip'd when `gzipped`) and returns the answer's
/// status line, `code: text` (for assertions that show the refusal), and
/// the bodies the bidder received for it.
async fn forward(
    ex: &RunningExchange,
    captured: &Captured,
    body: &[u8],
    gzipped: bool,
) -> (String, Vec<Bytes>) {
    captured.lock().unwrap().clear();
    let answer = if gzipped {
        post_raw(
            &client(false),
            ex,
            gzip(body),
            &[("content-encoding", "gzip")],
        )
        .await
    } else {
        post_raw(&client(false), ex, body.to_vec(), &[]).await
    };
    // The bidder answered before the exchange did: its capture is complete.
    let got = std::mem::take(&mut *captured.lock().unwrap());
    (
        format!("{}: {}", answer.status.as_u16(), answer.text()),
        got,
    )
}

/// `publisher` with every top-level key that reads as `tmax` (ASCII case
/// aside) set to `tmax`, and `tmax` added when absent: all a bidder may see
/// changed.
fn with_tmax(publisher: &Value, tmax: &Value) -> Value {
    let mut map = publisher.as_object().expect("an object").clone();
    for (k, v) in map.iter_mut() {
        if k.eq_ignore_ascii_case("tmax") {
            *v = tmax.clone();
        }
    }
    map.entry("tmax").or_insert_with(|| tmax.clone());
    Value::Object(map)
}

/// Checks one forwarded body against the publisher's; returns the tmax the
/// bidder was told.
fn check_forwarded(what: &str, publisher: &[u8], received: &[u8]) -> u64 {
    let sent: Value = serde_json::from_slice(publisher).unwrap();
    let got: Value = serde_json::from_slice(received).unwrap_or_else(|e| {
        panic!(
            "{what}: the bidder got no JSON ({e}): {}",
            String::from_utf8_lossy(received)
        )
    });
    let tmax = got["tmax"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: no integer tmax for the bidder: {got}"));
    // The time left less the margins: below the publisher's budget (its
    // tmax, else the default 120 ms, at most max_tmax_ms 500), never 0.
    let budget = sent["tmax"].as_u64().filter(|t| *t > 0).unwrap_or(120);
    assert!(
        tmax > 0 && tmax < budget.min(500),
        "{what}: tmax {tmax} for a budget of {budget} ms"
    );
    assert_eq!(
        got,
        with_tmax(&sent, &got["tmax"]),
        "{what}: the bidder's request differs from the publisher's beyond tmax"
    );
    // Not a re-encoding: the publisher's bytes, only tmax's value rewritten.
    let mut expected = Vec::new();
    rtb_proto::patch_tmax(publisher, tmax as u32, &mut expected).unwrap();
    assert_eq!(
        String::from_utf8_lossy(received),
        String::from_utf8_lossy(&expected),
        "{what}: not the publisher's bytes"
    );
    tmax
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_request_reaches_the_bidder_as_the_publisher_sent_it() {
    let Some(dir) = corpus_dir() else { return };
    let index = std::fs::read_to_string(dir.join("index.tsv")).unwrap();
    let (ex, captured) = capturing_exchange().await;
    let mut seen = 0;
    // Requests a re-encoding of the typed model would have changed: the
    // proof that this test tells forwarding from rebuilding.
    let mut lossy = Vec::new();
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (path, expectation) = (cols[0], cols[3]);
        if !path.starts_with("requests/") || expectation != "valid" {
            continue;
        }
        let body = std::fs::read(dir.join(path)).unwrap();
        for gzipped in [false, true] {
            let what = format!("{path} (gzip: {gzipped})");
            let (status, got) = forward(&ex, &captured, &body, gzipped).await;
            assert!(
                status.starts_with("204"),
                "{what}: the capturing bidder never bids: {status}"
            );
            assert_eq!(got.len(), 1, "{what}: one call to the bidder");
            check_forwarded(&what, &body, &got[0]);
        }
        let sent: Value = serde_json::from_slice(&body).unwrap();
        let mut rebuilt = Vec::new();
        rtb_proto::encode_request(&rtb_proto::decode_request(&body).unwrap(), &mut rebuilt);
        let rebuilt: Value = serde_json::from_slice(&rebuilt).unwrap();
        if rebuilt != sent {
            lossy.push(path);
        }
        seen += 1;
    }
    assert!(
        seen > 0,
        "no valid requests in the corpus at {}",
        dir.display()
    );
    assert!(
        !lossy.is_empty(),
        "every corpus request survives re-encoding: the test cannot tell"
    );
    eprintln!(
        "{seen} corpus requests forwarded; {} would have lost or changed fields if rebuilt: {lossy:?}",
        lossy.len()
    );
    ex.shutdown().await;
}

/// Fields the typed model does not know (OpenRTB 2.6-202x additions such as
/// `data.cids`, a vendor's top-level object with numbers a re-encoding
/// would respell), written with whitespace and escapes, and a tmax key
/// written with an escape: all reach the bidder, only tmax's value changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_escapes_and_whitespace_survive() {
    let (ex, captured) = capturing_exchange().await;
    let body = concat!(
        "\n{ \"id\" : \"fwd-1\",\n",
        "  \"imp\": [ {\"id\":\"1\", \"banner\": {\"w\":300,\"h\":250}, \"vendorimp\": {\"tmax\": 9}} ],\n",
        "  \"site\": {\"id\":\"s\", \"content\": {\"gtax\": 9, \"genres\": [\"a\\u00e9\"], \"newfield\": [1,{\"x\":\"}\\\"{\"}]}},\n",
        "  \"user\": {\"data\": [{\"id\":\"d\", \"cids\": [\"c1\",\"c2\"], \"segment\": [{\"id\":\"s1\"}]}],\n",
        "           \"eids\": [{\"source\":\"id.example\", \"inserter\":\"ins.example\", \"matcher\":\"m.example\", \"mm\": 3,",
        " \"uids\": [{\"id\":\"u\", \"atype\":1}], \"future\": true}]},\n",
        "  \"t\\u006dax\" : 250 ,\n",
        "  \"vendor_ext\": {\"big\": 12345678901234567890, \"f\": 1.50, \"e\": 1E2, \"s\": \"\\/x\\n\"},\n",
        "  \"ext\": {\"tmax\": 1, \"a\": 1, \"a\": 2}\n",
        "}\n"
    );
    for gzipped in [false, true] {
        let (status, got) = forward(&ex, &captured, body.as_bytes(), gzipped).await;
        assert!(status.starts_with("204"), "{status}");
        assert_eq!(got.len(), 1);
        let tmax = check_forwarded("synthetic", body.as_bytes(), &got[0]);
        assert!(tmax < 250);
        let v: Value = serde_json::from_slice(&got[0]).unwrap();
        let text = String::from_utf8_lossy(&got[0]);
        assert_eq!(v["user"]["data"][0]["cids"], json!(["c1", "c2"]));
        assert_eq!(v["user"]["eids"][0]["future"], json!(true));
        assert_eq!(v["vendor_ext"]["big"], json!(12_345_678_901_234_567_890u64));
        assert!(
            text.contains(r#""f": 1.50, "e": 1E2"#),
            "spellings kept: {text}"
        );
        assert_eq!(v["imp"][0]["vendorimp"]["tmax"], 9, "nested tmax untouched");
        assert_eq!(v["ext"]["tmax"], 1, "nested tmax untouched");
        assert!(
            text.contains(&format!("\"t\\u006dax\" : {tmax} ,")),
            "the escaped key was patched in place, no second tmax: {text}"
        );
        assert!(
            text.contains("\"a\": 1, \"a\": 2"),
            "ext kept as sent: {text}"
        );
    }
    ex.shutdown().await;
}

/// A request without tmax gets one, the first member; a `TMAX` (which the
/// typed model ignores, but case-insensitive parsers read as tmax) is set to
/// the same value, so no bidder reads the publisher's 5000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_tmax_is_inserted_and_case_variants_are_overwritten() {
    let (ex, captured) = capturing_exchange().await;
    let body = br#"{"id":"fwd-2","imp":[{"id":"1","banner":{}}],"TMAX":5000}"#;
    let (status, got) = forward(&ex, &captured, body, false).await;
    assert!(status.starts_with("204"), "{status}");
    let tmax = check_forwarded("TMAX", body, &got[0]);
    assert!(tmax < 120, "the default budget applies: {tmax}");
    assert_eq!(
        String::from_utf8_lossy(&got[0]),
        format!(
            r#"{{"tmax":{tmax},"id":"fwd-2","imp":[{{"id":"1","banner":{{}}}}],"TMAX":{tmax}}}"#
        )
    );
    ex.shutdown().await;
}

/// Requests the exchange and a bidder could read differently (two tmax keys,
/// one escaped; two imp arrays; an object written as serde's positional
/// array) are refused, and no bidder is called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_a_bidder_could_read_differently_are_refused_not_forwarded() {
    let (ex, captured) = capturing_exchange().await;
    for body in [
        &br#"{"id":"d","imp":[{"id":"1","banner":{}}],"tmax":100,"tmax":5000}"#[..],
        br#"{"id":"d","imp":[{"id":"1","banner":{}}],"tmax":100,"t\u006dax":5000}"#,
        br#"{"id":"d","imp":[{"id":"1","banner":{}}],"imp":[{"id":"2","banner":{}}]}"#,
        br#"{"id":"d","imp":[{"id":"1","banner":{}}],"site":["s1"]}"#,
        br#"["d",[{"id":"1","banner":{}}]]"#,
    ] {
        let (status, got) = forward(&ex, &captured, body, false).await;
        assert!(
            status.starts_with("400"),
            "{}: {status}",
            String::from_utf8_lossy(body)
        );
        assert!(got.is_empty(), "a refused request reached the bidder");
    }
    ex.shutdown().await;
}
