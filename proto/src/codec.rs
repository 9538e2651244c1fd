//! JSON codecs: simd-json on the hot path, serde_json with field paths to explain failures.

use std::cell::RefCell;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::openrtb::{BidRequest, BidResponse};
use crate::strict::Strict;

/// Scratch kept per thread above this size is released, so one huge body does not pin memory.
const SCRATCH_KEEP_BYTES: usize = 1 << 20;

/// Nesting limit for simd-json (its default is 1024) chosen so it accepts exactly the nesting
/// serde_json's recursion limit of 128 accepts; the two count levels differently, hence 127.
const MAX_DEPTH: usize = 127;

thread_local! {
    // simd-json parses in place, so the body must be copied into a mutable buffer; reusing
    // it (and the parser's internal buffers) avoids allocating per call once warm.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

struct Scratch {
    input: Vec<u8>,
    buffers: simd_json::Buffers,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            input: Vec::new(),
            buffers: simd_json::Buffers::with_max_depth(4096, MAX_DEPTH),
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DecodeError {
    /// Path of the offending field, e.g. `imp[0].banner.w`; empty when the body as a whole is bad.
    pub path: String,
    /// What is wrong, e.g. "invalid value: integer `-1`, expected u32".
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Decodes a bid request from a JSON body.
///
/// Every OpenRTB object must be a JSON object: serde's positional form of a
/// struct (an array of its fields, `"site":["s1"]`) is refused, because the
/// exchange forwards the publisher's bytes and a bidder would not read such
/// an array as the object the exchange validated (see [`crate::patch_tmax`]).
/// A key seen twice in one object is refused too (serde's derived decoders
/// read a field once); inside `ext`, which is free-form, the last copy wins.
pub fn decode_request(body: &[u8]) -> Result<BidRequest, DecodeError> {
    decode(body, true)
}

/// Decodes a bid response from a JSON body (answers are not forwarded:
/// serde's positional form of structs is still read).
pub fn decode_response(body: &[u8]) -> Result<BidResponse, DecodeError> {
    decode(body, false)
}

/// Appends the JSON encoding of a bid request to `out`.
pub fn encode_request(req: &BidRequest, out: &mut Vec<u8>) {
    encode(req, out);
}

/// Appends the JSON encoding of a bid response to `out`.
pub fn encode_response(resp: &BidResponse, out: &mut Vec<u8>) {
    encode(resp, out);
}

fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    // Writing to a Vec has no I/O errors, every map key is a string and no Serialize impl
    // in the model fails, so an error here is a bug in this crate.
    serde_json::to_writer(out, value).expect("encoding the openrtb model cannot fail");
}

/// Decodes `body`; `strict` refuses structs written as arrays ([`Strict`]).
fn decode<T: DeserializeOwned>(body: &[u8], strict: bool) -> Result<T, DecodeError> {
    let fast = SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let Scratch { input, buffers } = &mut *scratch;
        input.clear();
        input.extend_from_slice(body);
        let result =
            simd_json::Deserializer::from_slice_with_buffers(input, buffers).and_then(|mut de| {
                if strict {
                    T::deserialize(Strict(&mut de))
                } else {
                    T::deserialize(&mut de)
                }
            });
        if input.capacity() > SCRATCH_KEEP_BYTES {
            *scratch = Scratch::new();
        }
        result
    });
    fast.map_err(|err| explain::<T>(body, strict, &err))
}

/// Cold path: re-decodes with serde_json to find the failing field's path.
fn explain<T: DeserializeOwned>(
    body: &[u8],
    strict: bool,
    fast_err: &simd_json::Error,
) -> DecodeError {
    let mut de = serde_json::Deserializer::from_slice(body);
    let slow = if strict {
        serde_path_to_error::deserialize::<_, T>(Strict(&mut de))
    } else {
        serde_path_to_error::deserialize::<_, T>(&mut de)
    };
    let slow = slow
        .map_err(|e| {
            let path = e.path().to_string();
            (path, e.into_inner())
        })
        .and_then(|_| de.end().map_err(|e| (String::new(), e)));
    match slow {
        Err((_, err)) if err.is_syntax() || err.is_eof() => DecodeError {
            path: String::new(),
            message: format!("body is not valid JSON: {err}"),
        },
        Err((path, err)) => {
            let path = if path == "." { String::new() } else { path };
            let full = err.to_string();
            let position = format!(" at line {} column {}", err.line(), err.column());
            let message = full.strip_suffix(&position).unwrap_or(&full).to_string();
            DecodeError { path, message }
        }
        // The parsers disagree; simd-json is the one that decides on the hot path.
        Ok(()) => DecodeError {
            path: String::new(),
            message: format!("body rejected by the json parser: {fast_err}"),
        },
    }
}
