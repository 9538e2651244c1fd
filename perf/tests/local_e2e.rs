//! `perf local` end to end: two simulated bidders and the exchange in this
//! process, a tiny load, and the report files written and read back.

use rtb_perf::local::{run_local, Options};
use rtb_perf::report;

const TINY: &str = r#"
name = "tiny"
description = "two bidders, 50 req/s for 1 s"
goal = "answers"
goal_p99_ms = 5000.0

[load]
rate = 50
duration_s = 1
protocol = "http2"
connections = 1

[requests]
tmax_ms = [200]
pool = 64

[[bidders]]
name = "alpha"
price = 2.0
latency = "fixed:2"

[[bidders]]
name = "bravo"
price = 1.0
latency = "none"
instances = 2
"#;

#[test]
fn perf_local_runs_a_tiny_scenario_and_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(&scenario, TINY).unwrap();
    let out = dir.path().join("out");
    let outcome = run_local(&Options {
        scenario,
        out: Some(out.clone()),
        ..Options::default()
    })
    .unwrap();
    let r = &outcome.report;
    assert_eq!(r.mode, "local");
    assert!(r.sent >= 45, "sent {}", r.sent);
    // The exchange's own view of the same run: its overhead stage was measured.
    let stages = r.exchange_stages.as_ref().expect("exchange stages fetched");
    assert!(
        stages["overhead"]["last_5m"]["count"].as_u64().unwrap() > 0,
        "{stages}"
    );
    assert!(
        stages["end_to_end"]["last_5m"]["count"].as_u64().unwrap() > 0,
        "{stages}"
    );
    let share = r.within_goal_share.expect("goal_p99_ms is set");
    assert!(share > 0.9 && share <= 1.0, "within-goal share {share}");
    assert!(r.status.ok_200 > 0, "{:?}", r.status);
    assert_eq!(r.status.total(), r.sent);
    assert!(r.exchange_cpu_us_per_auction.is_some());
    assert!(r.latency_ms.p50 > 0.0);

    let back = report::read(&out.join("report.json")).unwrap();
    // serde_json's default float parsing may differ from the written value in
    // the last bit; compare after one more trip, where both sides are parsed.
    let again: report::Report = serde_json::from_str(&serde_json::to_string(r).unwrap()).unwrap();
    assert_eq!(back, again);
    assert_eq!(back.status, r.status);
    assert!(!back.per_second.is_empty());
    let hgrm = std::fs::read_to_string(out.join("latency.hgrm")).unwrap();
    let header: Vec<_> = hgrm.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    assert!(hgrm.contains("#[Max     ="));
    let svg = std::fs::read_to_string(out.join("latency.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(r.table().contains("exchange cpu"));
    assert!(report::compare(r, &back).contains("p99"));
}

#[test]
fn perf_run_loads_an_external_target_without_cpu_figures() {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    // The target lives on its own runtime thread, as an external exchange would.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req| async {
                        let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = hyper::StatusCode::NO_CONTENT;
                        Ok::<_, Infallible>(resp)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
    });
    let addr = rx.recv().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(&scenario, TINY).unwrap();
    let opts = Options {
        scenario,
        out: Some(dir.path().join("out")),
        overrides: rtb_perf::scenario::Overrides {
            protocol: Some(rtb_perf::load::HttpVersion::Http1),
            ..Default::default()
        },
        ..Options::default()
    };
    let outcome =
        rtb_perf::local::run_external(&opts, &format!("http://{addr}/openrtb2/auction")).unwrap();
    let r = &outcome.report;
    assert_eq!(r.mode, "run");
    assert_eq!(r.protocol, "http1");
    assert_eq!(r.status.no_bid_204, r.sent);
    assert_eq!(r.exchange_cpu_us_per_auction, None);
    assert!(r.table().contains("exchange cpu n/a"));
    assert!(outcome.written.json.exists());
}

/// The bare hyper fan-out baseline answers the same traffic with the bidders'
/// bodies, with no OpenRTB logic, and its CPU is measured the same way.
#[test]
fn perf_local_baseline_answers_the_same_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(&scenario, TINY).unwrap();
    let outcome = run_local(&Options {
        scenario,
        out: Some(dir.path().join("out")),
        baseline: true,
        ..Options::default()
    })
    .unwrap();
    let r = &outcome.report;
    assert_eq!(r.mode, "local-baseline");
    assert!(r.status.ok_200 > 0, "{:?}", r.status);
}
