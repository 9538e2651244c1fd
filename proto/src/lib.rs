//! OpenRTB 2.6 object model, codecs and validation.
//!
//! Decoding goes through simd-json with a serde_json fallback that names the failing field;
//! money is carried as integer [`Micros`]. The exchange forwards the publisher's own bytes to
//! bidders with only `tmax` patched in ([`patch_tmax`]). The crate does no I/O.

mod codec;
pub mod events;
mod micros;
pub mod openrtb;
mod patch;
mod strict;
mod validate;

pub use codec::{decode_request, decode_response, encode_request, encode_response, DecodeError};
pub use micros::Micros;
pub use patch::{patch_tmax, PatchError, PATCH_HEADROOM};
pub use validate::{validate_request, validate_response, Violation, Violations};
