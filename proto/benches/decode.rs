//! Decode throughput on the corpus's valid requests: this crate's simd-json path, plain
//! serde_json into the same model, and the `openrtb26` crate.
//!
//! `openrtb26` cannot decode every valid corpus file (e.g. it models `banner.format` as a
//! single object, not an array), so the three-way comparison runs on the files it can decode;
//! a second group runs this crate's two paths on the whole valid set.

use std::fs;
use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rtb_proto::decode_request;
use rtb_proto::openrtb::BidRequest;

fn load_valid_requests() -> Option<Vec<(String, Vec<u8>)>> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/openrtb/requests/valid");
    let Ok(entries) = fs::read_dir(&dir) else {
        eprintln!(
            "SKIPPED: corpus not found at {}, benching nothing",
            dir.display()
        );
        return None;
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let body = fs::read(e.path()).expect("read corpus file");
            (name, body)
        })
        .collect();
    files.sort();
    Some(files)
}

fn total_bytes(files: &[&[u8]]) -> u64 {
    files.iter().map(|f| f.len() as u64).sum()
}

fn bench_set(c: &mut Criterion, group_name: &str, files: &[&[u8]], with_openrtb26: bool) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Bytes(total_bytes(files)));
    group.bench_function("rtb_proto_simd_json", |b| {
        b.iter(|| {
            for body in files {
                black_box(decode_request(black_box(body)).expect("valid corpus request decodes"));
            }
        });
    });
    group.bench_function("rtb_proto_serde_json", |b| {
        b.iter(|| {
            for body in files {
                black_box(
                    serde_json::from_slice::<BidRequest>(black_box(body))
                        .expect("valid corpus request decodes"),
                );
            }
        });
    });
    if with_openrtb26 {
        group.bench_function("openrtb26_serde_json", |b| {
            b.iter(|| {
                for body in files {
                    black_box(
                        serde_json::from_slice::<openrtb26::BidRequest>(black_box(body))
                            .expect("subset decodes"),
                    );
                }
            });
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let Some(files) = load_valid_requests() else {
        return;
    };
    let (subset, skipped): (Vec<_>, Vec<_>) = files
        .iter()
        .partition(|(_, body)| serde_json::from_slice::<openrtb26::BidRequest>(body).is_ok());
    eprintln!(
        "decode bench: {} valid requests, openrtb26 decodes {} of them (skipped: {})",
        files.len(),
        subset.len(),
        skipped
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let subset: Vec<&[u8]> = subset.iter().map(|(_, body)| body.as_slice()).collect();
    let all: Vec<&[u8]> = files.iter().map(|(_, body)| body.as_slice()).collect();
    if !subset.is_empty() {
        bench_set(c, "decode_openrtb26_subset", &subset, true);
    }
    bench_set(c, "decode_all_valid", &all, false);
}

criterion_group!(benches, decode);
criterion_main!(benches);
