//! The auction runtime (`server.auction_runtime`): an admitted auction
//! answers by its deadline on the exchange's own clock while the connection
//! runtime is flooded, and it would not if it ran there.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{bidder, exchange, post_url, request, winning_seats};
use rtb_bidder::Fault;

const TMAX_MS: u64 = 100;

/// 200 tasks that hold the connection runtime's only worker 250 µs at a
/// time (blocking, as a flood of requests being refused does in bulk),
/// until `stop`: a task woken there by its timer waits behind the whole
/// queue (about 60 ms), while a task woken from another runtime (the
/// auction's hand-back) is picked up from the injection queue within a
/// few polls. (Fewer, longer polls delay that pick-up too: the answer is
/// still written on this runtime.)
fn hog(rt: &tokio::runtime::Runtime, stop: &Arc<AtomicBool>) {
    for _ in 0..200 {
        let stop = stop.clone();
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_micros(250));
                tokio::task::yield_now().await;
            }
        });
    }
}

/// Runs three auctions (one bidder hangs, so each waits for its fan-out
/// timer) against an exchange whose connection runtime is hogged; returns
/// the exchange's own largest end-to-end time (ms) and the winning seats.
fn hogged_auctions(separate: bool) -> (f64, Vec<Vec<String>>) {
    let conn = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // The bidders' handles live as long as the rig: dropping one stops it.
    let (ex, _bidders) = conn.block_on(async {
        let hang = bidder("hang", 9.0, |c| c.fault = Some(Fault::Hang)).await;
        let alpha = bidder("alpha", 2.0, |_| {}).await;
        let ex = exchange(&[("hang", &hang), ("alpha", &alpha)], |c| {
            c.server.auction_runtime = separate;
            c.server.auction_threads = 1;
        })
        .await;
        (ex, [hang, alpha])
    });
    let stop = Arc::new(AtomicBool::new(false));
    hog(&conn, &stop);
    // The publisher is elsewhere: its own thread and runtime.
    let url = ex.url();
    let seats = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut seats = Vec::new();
            for i in 0..3 {
                let a = post_url(&url, &request(&format!("hog-{i}"), 0.1, TMAX_MS)).await;
                seats.push(winning_seats(&a));
            }
            seats
        })
    })
    .join()
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let report = ex.app().exchange.metrics().latency_report();
    let e2e = &report.stages["end_to_end"].last_1m;
    assert_eq!(e2e.count, 3, "{e2e:?}");
    let max = e2e.max_ms;
    conn.block_on(ex.shutdown());
    (max, seats)
}

#[test]
fn a_flooded_connection_runtime_does_not_delay_admitted_auctions() {
    // The rig bites: with auctions on the hogged runtime, their fan-out
    // timers fire late and at least one answer is built past tmax.
    let (late, _) = hogged_auctions(false);
    assert!(
        late > TMAX_MS as f64,
        "auctions on the connection runtime: end_to_end max {late} ms"
    );
    // On their own runtime, every one is answered in time, with its bids.
    let (max, seats) = hogged_auctions(true);
    assert!(
        max <= TMAX_MS as f64,
        "auctions on their own runtime: end_to_end max {max} ms"
    );
    assert_eq!(seats, vec![vec!["alpha".to_owned()]; 3]);
}
