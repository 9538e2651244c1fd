//! The admin API and the bidder registry, in process: real exchanges with a
//! SQLite registry in a temp dir, real simulated bidders, real auctions.

mod common;

use common::*;
use serde_json::{json, Value};

fn alpha_spec(url: &str) -> Value {
    json!({"name": "alpha", "endpoints": [url], "protocol": "h2c"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_change_pause_and_delete_take_effect_on_the_next_auction() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let a2 = bidder("alpha", 4.0, |_| {}).await;
    let b = bidder("beta", 2.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let ex = registry_exchange(&dir.path().join("reg.db"), |_| {}).await;
    let url = ex.url();
    // Nobody registered yet: nothing can win.
    assert_eq!(post_url(&url, &request("r0", 0.5, 300)).await.status, 204);

    let created = admin(&ex, "POST", "/v1/bidders", Some(&alpha_spec(&a.url()))).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let v = created.json();
    assert_eq!(v["name"], "alpha");
    assert_eq!(v["enabled"], true);
    assert_eq!(v["max_concurrency"], 1024);
    assert_eq!(v["state"]["circuit"], "closed");
    let r = post_url(&url, &request("r1", 0.5, 300)).await;
    assert_eq!(winning_seats(&r), ["alpha"], "{}", r.text());
    assert_eq!(a.stats().requests, 1);

    let spec = json!({"name": "beta", "endpoints": [b.url()], "protocol": "h2c"});
    assert_eq!(
        admin(&ex, "POST", "/v1/bidders", Some(&spec)).await.status,
        201
    );
    let r = post_url(&url, &request("r2", 0.5, 300)).await.json();
    assert_eq!(winners(&r)[0].0, "alpha");
    assert_eq!(winners(&r)[0].1["price"], json!(2.01), "{r}");

    // A change of limits keeps the bidder's runtime state (pooled client,
    // counters): its instance still counts the two calls made before.
    let limited = admin(
        &ex,
        "PATCH",
        "/v1/bidders/alpha",
        Some(&json!({"max_concurrency": 100, "qps_limit": 5000})),
    )
    .await
    .json();
    assert_eq!(limited["max_concurrency"], 100);
    assert_eq!(limited["state"]["instances"][0]["sent"], 2, "{limited}");

    // Pause alpha: beta wins the next auction and alpha is not called.
    let paused = admin(
        &ex,
        "PATCH",
        "/v1/bidders/alpha",
        Some(&json!({"enabled": false})),
    )
    .await;
    assert_eq!(paused.status, 200, "{}", paused.text());
    assert_eq!(paused.json()["enabled"], false);
    let before = a.stats().requests;
    let r = post_url(&url, &request("r3", 0.5, 300)).await;
    assert_eq!(winning_seats(&r), ["beta"]);
    assert_eq!(a.stats().requests, before);

    // Resume it on a new endpoint: the new instance gets the call.
    let moved = json!({"enabled": true, "endpoints": [a2.url()]});
    assert_eq!(
        admin(&ex, "PATCH", "/v1/bidders/alpha", Some(&moved))
            .await
            .status,
        200
    );
    let r = post_url(&url, &request("r4", 0.5, 300)).await.json();
    assert_eq!(winners(&r)[0].0, "alpha");
    assert_eq!(winners(&r)[0].1["price"], json!(2.01));
    assert_eq!(a2.stats().requests, 1);
    assert_eq!(a.stats().requests, before);

    let got = admin(&ex, "GET", "/v1/bidders/alpha", None).await.json();
    assert_eq!(got["endpoints"], json!([a2.url()]));
    assert_eq!(got["state"]["instances"][0]["sent"], 1, "{got}");
    let list = admin(&ex, "GET", "/v1/bidders", None).await.json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);

    // Delete it: gone from the next auction and from the API.
    assert_eq!(
        admin(&ex, "DELETE", "/v1/bidders/alpha", None).await.status,
        204
    );
    let r = post_url(&url, &request("r5", 0.5, 300)).await.json();
    assert_eq!(winners(&r)[0].0, "beta");
    assert!(r["ext"]["responsetimemillis"].get("alpha").is_none(), "{r}");
    assert_eq!(
        admin(&ex, "GET", "/v1/bidders/alpha", None).await.status,
        404
    );
    assert_eq!(
        admin(&ex, "DELETE", "/v1/bidders/alpha", None).await.status,
        404
    );
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_required_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let ex = registry_exchange(&dir.path().join("reg.db"), |_| {}).await;
    let base = ex.admin_url().unwrap();
    for (method, path) in [
        ("GET", "/v1/bidders"),
        ("POST", "/v1/bidders"),
        ("GET", "/v1/bidders/x"),
        ("PATCH", "/v1/bidders/x"),
        ("DELETE", "/v1/bidders/x"),
        ("GET", "/v1/openapi.json"),
    ] {
        let url = format!("{base}{path}");
        let none = admin_call(method, &url, None, None).await;
        assert_eq!(none.status, 401, "{method} {path}");
        assert_eq!(none.json()["error"], "missing bearer token");
        let wrong = admin_call(method, &url, None, Some("nope")).await;
        assert_eq!(wrong.status, 403, "{method} {path}");
        assert_eq!(wrong.json()["error"], "wrong bearer token");
    }
    let ok = admin_call("GET", &format!("{base}/v1/bidders"), None, Some(TOKEN)).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json(), json!([]));
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validation_error_names_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let ex = registry_exchange(&dir.path().join("reg.db"), |_| {}).await;
    let ok = json!({"name": "alpha", "endpoints": ["http://127.0.0.1:9"], "protocol": "h2c"});
    let with = |key: &str, value: Value| {
        let mut v = ok.clone();
        v[key] = value;
        v
    };
    let cases = [
        (with("endpoints", json!(["not a url"])), "endpoints[0]"),
        (
            with("endpoints", json!(["ftp://127.0.0.1/x"])),
            "endpoints[0]",
        ),
        (
            with("endpoints", json!(["https://127.0.0.1"])),
            "endpoints[0]",
        ),
        (
            with("endpoints", json!(["http://127.0.0.1:9", "http:///x"])),
            "endpoints[1]",
        ),
        (with("endpoints", json!([])), "endpoints"),
        (with("endpoints", json!([3])), "endpoints[0]"),
        (with("protocol", json!("spdy")), "protocol"),
        (with("surprise", json!(1)), "surprise"),
        (with("name", json!("bad name!")), "name"),
        (with("name", json!("")), "name"),
        (with("max_concurrency", json!(0)), "max_concurrency"),
        (with("qps_limit", json!(-1)), "qps_limit"),
        (
            with("circuit", json!({"cooldown_ms": 0})),
            "circuit.cooldown_ms",
        ),
        (with("circuit", json!({"typo": 1})), "circuit.typo"),
        (
            json!({"endpoints": ["http://a"], "protocol": "h2c"}),
            "name",
        ),
        (json!([1, 2]), "body"),
    ];
    for (body, field) in cases {
        let r = admin(&ex, "POST", "/v1/bidders", Some(&body)).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["field"], field, "{body}: {}", r.text());
        assert!(!r.json()["error"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        admin(&ex, "POST", "/v1/bidders", Some(&ok)).await.status,
        201
    );
    let dup = admin(&ex, "POST", "/v1/bidders", Some(&ok)).await;
    assert_eq!(dup.status, 409, "{}", dup.text());
    let r = admin(
        &ex,
        "PATCH",
        "/v1/bidders/alpha",
        Some(&json!({"protocol": "h2"})),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.json()["field"].clone()),
        (400, json!("endpoints[0]"))
    );
    let r = admin(
        &ex,
        "PATCH",
        "/v1/bidders/alpha",
        Some(&json!({"name": "x"})),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.json()["field"].clone()),
        (400, json!("name"))
    );
    let r = admin(
        &ex,
        "PATCH",
        "/v1/bidders/ghost",
        Some(&json!({"enabled": false})),
    )
    .await;
    assert_eq!(r.status, 404);
    // A failed change left the bidder as it was.
    let got = admin(&ex, "GET", "/v1/bidders/alpha", None).await.json();
    assert_eq!(got["protocol"], "h2c");
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_list_keeps_the_api_off_internal_networks() {
    let dir = tempfile::tempdir().unwrap();
    let ex = registry_exchange(&dir.path().join("reg.db"), |c| {
        c.registry.deny_private_networks = true;
        c.registry.allowed_networks = vec!["192.0.2.0/24".into(), "10.0.0.0/8".into()];
    })
    .await;
    for e in [
        "http://127.0.0.1:9",
        "http://10.1.2.3",
        "http://[::1]:80",
        "http://198.51.100.7",
    ] {
        let body = json!({"name": "x", "endpoints": [e], "protocol": "h2c"});
        let r = admin(&ex, "POST", "/v1/bidders", Some(&body)).await;
        assert_eq!(r.status, 400, "{e}: {}", r.text());
        assert_eq!(r.json()["field"], "endpoints[0]");
    }
    let body = json!({"name": "x", "endpoints": ["http://192.0.2.7:8080"], "protocol": "h2c"});
    assert_eq!(
        admin(&ex, "POST", "/v1/bidders", Some(&body)).await.status,
        201
    );
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_registrations_and_seeds_only_once() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let s = bidder("seeded", 1.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("reg.db");
    let seed = |c: &mut rtb_exchange::Config| {
        c.bidders.push(rtb_exchange::config::BidderEntry::new(
            "seeded",
            vec![s.url()],
            rtb_exchange::config::Protocol::H2c,
        ));
    };
    let ex = registry_exchange(&db, seed).await;
    let names = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(admin(&ex, "GET", "/v1/bidders", None).await.json()),
        ["seeded"]
    );
    let spec =
        json!({"name": "alpha", "endpoints": [a.url()], "protocol": "h2c", "qps_limit": 1000});
    assert_eq!(
        admin(&ex, "POST", "/v1/bidders", Some(&spec)).await.status,
        201
    );
    assert_eq!(
        admin(&ex, "DELETE", "/v1/bidders/seeded", None)
            .await
            .status,
        204
    );
    ex.shutdown().await;

    // Same file, same config: alpha is back, the deleted seed is not.
    let ex = registry_exchange(&db, seed).await;
    let list = admin(&ex, "GET", "/v1/bidders", None).await.json();
    assert_eq!(names(list.clone()), ["alpha"]);
    assert_eq!(list[0]["qps_limit"], 1000);
    let r = post_url(&ex.url(), &request("after-restart", 0.5, 300)).await;
    assert_eq!(winning_seats(&r), ["alpha"], "{}", r.text());
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let ex = registry_exchange(&dir.path().join("reg.db"), |_| {}).await;
    let doc = admin(&ex, "GET", "/v1/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let v = doc.json();
    assert!(v["openapi"].as_str().unwrap().starts_with("3."), "{v}");
    for path in ["/v1/bidders", "/v1/bidders/{name}", "/v1/openapi.json"] {
        assert!(v["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(v["paths"]["/v1/bidders"]["post"]["responses"]
        .get("409")
        .is_some());
    assert!(v["components"]["schemas"].get("NewBidder").is_some());
    assert_eq!(
        v["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    ex.shutdown().await;
}

/// A bidder registered through the API is checked against the endpoint
/// policy again at every connect, after DNS, not only when it was
/// registered: replica A (no policy) registers a bidder on 127.0.0.1, and
/// replica B, on the same registry with `deny_private_networks`, never
/// connects to it (as after a DNS name is re-pointed at a private address).
/// A config-file bidder on 127.0.0.1 is the operator's own and is still
/// called by B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_endpoint_is_checked_again_when_connecting() {
    let a = bidder("alpha", 3.0, |_| {}).await;
    let own = bidder("own", 1.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("reg.db");
    let no_events = |c: &mut rtb_exchange::Config| c.kafka.enabled = false;
    let ex_a = registry_exchange(&db, no_events).await;
    let created = admin(&ex_a, "POST", "/v1/bidders", Some(&alpha_spec(&a.url()))).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let own_url = own.url();
    let ex_b = registry_exchange(&db, move |c| {
        c.kafka.enabled = false;
        c.registry.deny_private_networks = true;
        // Trusted by name and transport: the same entry as in the database.
        let own = rtb_exchange::config::BidderEntry::new(
            "own",
            vec![own_url],
            rtb_exchange::config::Protocol::H2c,
        );
        c.bidders.push(own);
    })
    .await;
    // B did not seed (A did, with nothing): register "own" as B's file says.
    let own_spec = json!({"name": "own", "endpoints": [own.url()], "protocol": "h2c"});
    let r = admin(&ex_a, "POST", "/v1/bidders", Some(&own_spec)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    // B picks both up from the database within a few polls.
    let mut seen = Value::Null;
    for i in 0..100 {
        let r = post_url(&ex_b.url(), &request(&format!("w{i}"), 0.5, 300)).await;
        if r.status == 200 {
            seen = r.json();
            if !nonbids(&seen, "alpha").is_empty() {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !nonbids(&seen, "alpha").is_empty(),
        "B never tried alpha: {seen}"
    );
    let before = a.stats().requests;
    for i in 0..5 {
        let r = post_url(&ex_b.url(), &request(&format!("b{i}"), 0.5, 300)).await;
        assert_eq!(winning_seats(&r), ["own"], "{}", r.text());
        let v = r.json();
        let nb = nonbids(&v, "alpha");
        assert_eq!(nb.len(), 1, "alpha is reported as not answering: {v}");
    }
    assert_eq!(
        a.stats().requests,
        before,
        "B connected to a private address"
    );
    // A, without the policy, calls it as usual.
    let r = post_url(&ex_a.url(), &request("a1", 0.5, 300)).await;
    assert_eq!(winning_seats(&r), ["alpha"], "{}", r.text());
    assert!(a.stats().requests > before);
    ex_b.shutdown().await;
    ex_a.shutdown().await;
}
