//! The fuzz targets of `fuzz/` (request, forward, response, event, spool, config), run
//! briefly on the stable toolchain as part of `cargo test`: every seed (the
//! shared OpenRTB corpus, the event sample, spool files, the repository's
//! TOML configs) and a fixed number of mutants of them go through each
//! target's body, the same code libFuzzer runs in `fuzz/run.sh`.
//!
//! Not coverage-guided: the coverage-guided runs (millions of inputs, see
//! FUZZING.md) need the instrumented build, which takes far longer than a CI
//! run should. This keeps the targets compiling and their invariants true on
//! every change. `FUZZ_SMOKE_INPUTS` sets the inputs per target (default
//! 10,000); `FUZZ_SMOKE_SEED` the mutation seed. A failing input is written
//! to `target/fuzz-smoke/<target>.input` for `cargo fuzz run <target> FILE`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../../fuzz/targets/request.rs"]
mod request;

#[path = "../../fuzz/targets/forward.rs"]
mod forward;

#[path = "../../fuzz/targets/response.rs"]
mod response;

#[path = "../../fuzz/targets/event.rs"]
mod event;

#[path = "../../fuzz/targets/spool.rs"]
mod spool;

#[path = "../../fuzz/targets/config.rs"]
mod config;

/// xorshift64*: a fixed, dependency-free stream of mutation choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens a JSON or TOML mutation splices in: structure, extreme numbers,
/// escapes, and the keys whose values the exchange reads.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\"",
    b"null",
    b"true",
    b"false",
    b"-1",
    b"1e308",
    b"-0",
    b"18446744073709551616",
    b"0.0000001",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\"imp\":",
    b"\"id\":",
    b"\"price\":",
    b"\"tmax\":",
    b"\"t\\u006dax\":",
    b"\"TMAX\":",
    b"\"bidfloor\":",
    b"\"seatbid\":",
    b"\"bid\":",
    b"\"ext\":{",
    b"[[",
    b"]]",
    b"=",
    b"\n[auction]\n",
    b"inf",
    b"nan",
];

/// One mutant of `seed`: one to four edits (flip, insert, delete, splice a
/// token, duplicate a range, truncate).
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.insert(at, rng.next() as u8),
            2 if at < out.len() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            3 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, t.iter().copied());
            }
            4 if at < out.len() => {
                let end = (at + 1 + rng.below(64)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(end..end, copy);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// How many inputs each target gets.
fn budget() -> usize {
    std::env::var("FUZZ_SMOKE_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// Runs `target` on every seed, then on mutants until `budget()` inputs;
/// panics naming the input (saved under target/fuzz-smoke/) that broke it.
fn smoke(name: &str, seeds: &[Vec<u8>], target: fn(&[u8])) {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let seed = std::env::var("FUZZ_SMOKE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f00d_u64);
    let mut rng = Rng(seed | 1);
    let total = budget().max(seeds.len());
    // The targets' assertions panic on a broken invariant: caught here to
    // keep the input, and reported below.
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failure = None;
    for n in 0..total {
        let input = match seeds.get(n) {
            Some(s) => s.clone(),
            None => mutate(&seeds[rng.below(seeds.len())], &mut rng),
        };
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            let what = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failure = Some((n, input, what));
            break;
        }
    }
    std::panic::set_hook(quiet);
    if let Some((n, input, what)) = failure {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-smoke");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}.input"));
        std::fs::write(&file, &input).unwrap();
        panic!(
            "fuzz target {name} failed on input {n} (seed {seed}), saved to {}: {what}",
            file.display()
        );
    }
    eprintln!("fuzz smoke {name}: {total} inputs, {} seeds", seeds.len());
}

/// Every file directly under `dir` (sorted), empty when there is none.
fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .iter()
        .filter(|p| p.is_file())
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// The shared corpus files under `kind` (`requests` or `responses`, valid
/// and invalid), plus `minimal`, so a machine without the corpus still runs.
fn corpus_seeds(kind: &str, minimal: &[u8]) -> Vec<Vec<u8>> {
    let mut seeds = vec![minimal.to_vec()];
    if let Some(dir) = common::corpus_dir() {
        for class in ["valid", "invalid"] {
            seeds.extend(files_in(&dir.join(kind).join(class)));
        }
        assert!(
            seeds.len() > 1,
            "no {kind} in the corpus at {}",
            dir.display()
        );
    }
    seeds
}

#[test]
fn request_target() {
    let min = br#"{"id":"r1","imp":[{"id":"1","banner":{"w":300,"h":250},"bidfloor":0.5}],"site":{"id":"s1"},"tmax":120}"#;
    smoke("request", &corpus_seeds("requests", min), request::run);
}

#[test]
fn forward_target() {
    let min =
        br#"{"id":"r1","imp":[{"id":"1","banner":{}}],"t\u006dax":120,"TMAX":5,"ext":{"tmax":1}}"#;
    smoke("forward", &corpus_seeds("requests", min), forward::run);
}

#[test]
fn response_target() {
    let min = br#"{"id":"r1","seatbid":[{"seat":"a","bid":[{"id":"b1","impid":"1","price":1.25,"adm":"<a/>","nurl":"http://x/${AUCTION_PRICE}","cid":"c1"}]}],"cur":"USD"}"#;
    smoke("response", &corpus_seeds("responses", min), response::run);
}

#[test]
fn event_target() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let seeds = vec![
        std::fs::read(root.join("proto/tests/data/auction_result_v4.json")).unwrap(),
        br#"{"schema_version":1,"auction_id":"r-1","ts_ms":5,"currency":"USD","imps":[{"imp_id":"1","winner":{"seat":"a","account":"a","bid_micros":2,"clearing_micros":1}}]}"#.to_vec(),
        br#"{"schema_version":2,"auction_id":"a","request_id":"q","ts_ms":1,"currency":"USD","imps":[{"imp_id":"1","bids":[{"seat":"s","price_micros":5,"loss_reason":102}]}],"bidders":[{"seat":"s","status":"timeout","latency_ms":9,"nonbid_code":101}]}"#.to_vec(),
    ];
    smoke("event", &seeds, event::run);
}

/// One spool frame: len | crc32(body) | body, body = key_len | key | value
/// (little-endian), as `events::spool` writes it.
fn frame(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut body = (key.len() as u32).to_le_bytes().to_vec();
    body.extend_from_slice(key);
    body.extend_from_slice(value);
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend(body);
    out
}

#[test]
fn spool_target() {
    let two = [frame(b"alpha/camp-7", b"{\"n\":1}"), frame(b"beta", b"{}")].concat();
    let mut torn = two.clone();
    torn.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, b'x']);
    let mut bad = two.clone();
    *bad.last_mut().unwrap() ^= 1;
    let files = [
        Vec::new(),
        frame(b"alpha", b"{}"),
        two,
        torn,
        bad,
        frame(b"", b""),
    ];
    // The target's first byte is its mode: 1 = the file as is, 0 = with
    // every complete frame's checksum fixed up.
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .flat_map(|f| [0u8, 1].map(|mode| [&[mode][..], f].concat()))
        .collect();
    smoke("spool", &seeds, spool::run);
}

#[test]
fn config_target() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seeds = Vec::new();
    for dir in ["config", "k8s/base/config"] {
        seeds.extend(
            files_in(&root.join(dir))
                .into_iter()
                .filter(|f| !f.is_empty()),
        );
    }
    seeds.push(b"listen = \"127.0.0.1:0\"\n[auction]\ndefault_tmax_ms = 100\n".to_vec());
    smoke("config", &seeds, config::run);
}
