//! Every shipped scenario parses and validates; a bad one names the key.

use std::path::Path;

use rtb_perf::load::HttpVersion;
use rtb_perf::scenario::{Overrides, Scenario};

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            assert!(!s.goal.is_empty());
            assert!(s.schedule().expected_requests() > 0);
            names.push(s.name);
        }
    }
    names.sort();
    for required in ["deadline-hang", "quickstart", "saturation-8-bidders"] {
        assert!(
            names.iter().any(|n| n == required),
            "missing {required}: {names:?}"
        );
    }
}

#[test]
fn quickstart_has_four_bidders_and_a_checkable_goal() {
    let s =
        Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml"))
            .unwrap();
    assert_eq!(s.bidders.len(), 4);
    assert!(s.goal_p99_ms.is_some());
    s.body_pool().unwrap();
}

#[test]
fn a_bad_scenario_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "name = \"bad\"\ndescription = \"d\"\ngoal = \"g\"\n[load]\nrate = 5\nduration_s = 1\n\
         [[bidders]]\nname = \"a\"\n[[bidders]]\nname = \"b\"\nbid_rate = 1.5\n",
    )
    .unwrap();
    let e = format!("{:#}", Scenario::load(&path).unwrap_err());
    assert!(e.contains("bidders[1].bid_rate: "), "{e}");
}

const MINIMAL: &str = r#"
name = "t"
description = "d"
goal = "g"
[load]
rate = 10
duration_s = 1
"#;

#[test]
fn minimal_scenario_gets_defaults() {
    let s = Scenario::parse(MINIMAL).unwrap();
    assert_eq!(s.load.protocol, HttpVersion::Http2);
    assert_eq!(s.load.connections, 4);
    assert_eq!(s.schedule().expected_requests(), 10);
    assert!(s.bidders.is_empty());
}

#[test]
fn errors_name_the_key() {
    let bad = format!(
        "{MINIMAL}\n[[bidders]]\nname = \"a\"\n[[bidders]]\nname = \"b\"\n[[bidders]]\nname = \"c\"\nlatency = \"gaussian:3\"\n"
    );
    let e = Scenario::parse(&bad).unwrap_err().to_string();
    assert!(e.starts_with("bidders[2].latency: "), "{e}");
    let bad = format!("{MINIMAL}\n[[bidders]]\nname = \"a\"\nfault = \"explode\"\n");
    assert!(Scenario::parse(&bad)
        .unwrap_err()
        .to_string()
        .starts_with("bidders[0].fault: "));
    let bad = MINIMAL.replace("rate = 10", "rate = -1");
    assert!(Scenario::parse(&bad)
        .unwrap_err()
        .to_string()
        .starts_with("load.rate: "));
    let bad = format!("{MINIMAL}\n[requests]\ntmax_ms = []\n");
    assert!(Scenario::parse(&bad)
        .unwrap_err()
        .to_string()
        .starts_with("requests.tmax_ms: "));
    let e = Scenario::parse(&MINIMAL.replace("rate = 10", "rate = 10\nrats = 3"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `rats`"), "{e}");
}

#[test]
fn overrides_replace_the_plan() {
    let mut s = Scenario::parse(MINIMAL).unwrap();
    s.apply(&Overrides {
        rate: Some(50.0),
        protocol: Some(HttpVersion::Http1),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(s.schedule().expected_requests(), 50);
    assert_eq!(s.load.protocol, HttpVersion::Http1);
    assert!(s
        .apply(&Overrides {
            duration_s: Some(0.0),
            ..Overrides::default()
        })
        .is_err());
}
