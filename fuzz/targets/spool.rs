//! The outbox spool's frame reader on any file content (a torn or corrupt
//! spool after a crash): it must return the intact prefix, never panic, and
//! reading that prefix again must give the same records.
//!
//! The first byte picks a mode. Odd: the rest is the file as is, so nearly
//! every mutation dies at the checksum. Even: the checksum of every complete
//! frame is fixed up first, so the fuzzer reaches what lies behind it (key
//! lengths past the body, empty and non-UTF-8 keys, frames at the size cap).
//!
//! The body of the fuzz target; `fuzz_targets/spool.rs` hands it libFuzzer's
//! inputs, and `exchange/tests/fuzz_smoke.rs` runs it on stable in CI.

use rtb_exchange::events::spool::{FrameReader, Record};

/// One input: must return, never panic (the checks above).
pub(crate) fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode & 1 == 1 {
        rest.to_vec()
    } else {
        with_checksums_fixed(rest)
    };
    let (records, good_len) = parse_frames(&file);
    let good_len = usize::try_from(good_len).expect("prefix length fits in usize");
    assert!(good_len <= file.len(), "intact prefix is within the file");
    let (again, again_len) = parse_frames(&file[..good_len]);
    assert_eq!(again_len as usize, good_len, "the intact prefix is intact");
    assert_eq!(again, records, "the intact prefix holds the same records");
}

/// Every intact frame of `bytes` through the spool's streaming reader, and
/// the length of the intact prefix.
fn parse_frames(bytes: &[u8]) -> (Vec<Record>, u64) {
    let mut reader = FrameReader::new(bytes);
    let mut records = Vec::new();
    // Reading a byte slice cannot fail.
    while let Ok(Some(r)) = reader.next_record() {
        records.push(r);
    }
    (records, reader.position())
}

/// Rewrites the crc32 field of every frame whose body is complete.
fn with_checksums_fixed(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 0usize;
    while let Some(header) = out.get(at..at + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let Some(body) = out.get(at + 8..at + 8 + len) else {
            break;
        };
        let crc = crc32fast::hash(body);
        out[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at += 8 + len;
    }
    out
}
