//! Runs the real `bidder` binary: startup line, a bid over HTTP, flag validation, clean exit.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bid_request, bids, h1, post};
use hyper::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_bidder");

#[tokio::test]
async fn serve_prints_its_address_and_bids() {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--seat",
            "beta",
            "--price",
            "2.5",
        ])
        .args(["--cid", "c-1", "--seed", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("bidder beta listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );

    let r = post(
        &h1(),
        &format!("{url}/openrtb2/bid"),
        &bid_request("req-b", &[("1", 0.0)]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let json = r.json();
    assert_eq!(json["seatbid"][0]["seat"], "beta");
    let bid = &bids(&json)[0];
    assert_eq!(bid["price"], 2.5);
    assert_eq!(bid["cid"], "c-1");
    assert!(bid["nurl"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{url}/win?")));

    // SIGTERM should end it cleanly; fall back to a hard kill so the test never leaks it.
    let termed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    match status {
        Some(status) if termed => assert!(status.success(), "exit status {status}"),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            assert!(!termed, "bidder did not exit on SIGTERM");
        }
    }
}

#[test]
fn bad_flags_exit_non_zero_naming_the_flag() {
    for (flag, value) in [
        ("--bid-rate", "1.5"),
        ("--price", "-1"),
        ("--price-spread", "x"),
        ("--fault", "explode"),
        ("--latency", "fixed:soon"),
        ("--seed", "-3"),
    ] {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{flag}: {stderr}");
        assert!(out.stdout.is_empty(), "{flag}: nothing printed to stdout");
    }
}
