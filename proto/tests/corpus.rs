//! Runs the codecs and validators against every file of the shared OpenRTB corpus, and the
//! forwarding patch against every valid request.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use rtb_proto::{decode_request, decode_response, validate_request, validate_response};

fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/openrtb");
    if dir.join("index.tsv").is_file() {
        return Some(dir);
    }
    let msg = format!("corpus not found at {}", dir.display());
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg} (required in CI)");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

struct Entry {
    path: String,
    expectation: String,
    reason: String,
}

fn read_index(dir: &Path) -> Vec<Entry> {
    let text = fs::read_to_string(dir.join("index.tsv")).expect("read index.tsv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("index.tsv has a header")
        .split('\t')
        .collect();
    assert_eq!(
        header,
        ["path", "source", "licence", "expectation", "reason"],
        "index.tsv columns"
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 5, "index.tsv row has 5 columns: {l}");
            Entry {
                path: cols[0].to_string(),
                expectation: cols[3].to_string(),
                reason: cols[4].to_string(),
            }
        })
        .collect()
}

fn list_json(dir: &Path, sub: &str, out: &mut BTreeSet<String>) {
    let Ok(rd) = fs::read_dir(dir.join(sub)) else {
        return;
    };
    for entry in rd {
        let entry = entry.expect("read corpus dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{sub}/{name}");
        if entry.file_type().expect("file type").is_dir() {
            list_json(dir, &rel, out);
        } else {
            out.insert(rel);
        }
    }
}

fn check(kind: &str, body: &[u8]) -> Result<(), String> {
    match kind {
        "requests" => {
            let req = decode_request(body).map_err(|e| format!("decode: {e}"))?;
            validate_request(&req).map_err(|e| format!("validate: {e}"))
        }
        "responses" => {
            let resp = decode_response(body).map_err(|e| format!("decode: {e}"))?;
            validate_response(&resp).map_err(|e| format!("validate: {e}"))
        }
        other => panic!("unexpected corpus folder {other}"),
    }
}

#[test]
fn corpus_files_land_on_the_expected_side() {
    let Some(dir) = corpus_dir() else { return };
    let index = read_index(&dir);
    let indexed: BTreeSet<String> = index.iter().map(|e| e.path.clone()).collect();
    assert_eq!(indexed.len(), index.len(), "index.tsv lists a file twice");
    let mut on_disk = BTreeSet::new();
    list_json(&dir, "requests", &mut on_disk);
    list_json(&dir, "responses", &mut on_disk);
    assert_eq!(
        indexed, on_disk,
        "index.tsv and the corpus folders must list the same files"
    );

    let mut failures = Vec::new();
    for entry in &index {
        let body = fs::read(dir.join(&entry.path)).expect("read corpus file");
        let mut parts = entry.path.split('/');
        let kind = parts.next().unwrap_or_default();
        let folder = parts.next().unwrap_or_default();
        assert_eq!(
            folder, entry.expectation,
            "{}: folder and expectation disagree",
            entry.path
        );
        let outcome = check(kind, &body);
        match (entry.expectation.as_str(), outcome) {
            ("valid", Ok(())) => {}
            ("valid", Err(e)) => failures.push(format!("{}: expected valid, got {e}", entry.path)),
            ("invalid", Ok(())) => failures.push(format!(
                "{}: expected invalid ({}), but it passed",
                entry.path, entry.reason
            )),
            ("invalid", Err(e)) => {
                eprintln!("ok {} rejected: {e} (reason: {})", entry.path, entry.reason)
            }
            (other, _) => failures.push(format!("{}: unknown expectation {other}", entry.path)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What the exchange forwards: every valid corpus request, its `tmax`
/// patched, reads (serde_json) as the publisher's request with only `tmax`
/// changed, and still decodes and validates with that tmax.
#[test]
fn valid_corpus_requests_patch_to_themselves_but_for_tmax() {
    let Some(dir) = corpus_dir() else { return };
    let mut seen = 0;
    for entry in read_index(&dir) {
        if !entry.path.starts_with("requests/") || entry.expectation != "valid" {
            continue;
        }
        let body = fs::read(dir.join(&entry.path)).expect("read corpus file");
        let mut out = Vec::with_capacity(body.len() + rtb_proto::PATCH_HEADROOM);
        rtb_proto::patch_tmax(&body, 77, &mut out)
            .unwrap_or_else(|e| panic!("{}: {e}", entry.path));
        let mut expected: serde_json::Value = serde_json::from_slice(&body).unwrap();
        expected["tmax"] = 77.into();
        let got: serde_json::Value = serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("{}: patched body is not JSON: {e}", entry.path));
        assert_eq!(got, expected, "{}", entry.path);
        let req = decode_request(&out).unwrap_or_else(|e| panic!("{}: {e}", entry.path));
        assert_eq!(req.tmax, Some(77), "{}", entry.path);
        validate_request(&req).unwrap_or_else(|e| panic!("{}: {e}", entry.path));
        seen += 1;
    }
    assert!(seen > 0, "no valid requests in the corpus");
}
