//! Forwarding a publisher's bid request: the fields the exchange sets, patched
//! into the publisher's own bytes instead of re-encoding the typed model.
//!
//! The typed model ([`crate::openrtb`]) knows OpenRTB 2.6; a publisher's
//! request may carry more (2.6-202x additions, vendors' extensions). The
//! exchange validates the typed model but sends bidders the publisher's bytes,
//! so nothing the model does not know is lost; the only field it changes is
//! the top-level `tmax` (the time left for bidders), see [`patch_tmax`].
//!
//! The scanner reads only the top-level object: keys are decoded (escapes
//! included) to be compared, values are skipped (nested objects and arrays by
//! counting depth, strings by their escapes). One pass, no recursion, no
//! allocation but the output buffer; any input returns (an error for what is
//! not a JSON object), none panics.

use std::fmt;

/// Bytes [`patch_tmax`] may add to a body whose top-level keys include at
/// most one that reads as `tmax` (the typed decoder refuses a second), and
/// that one `tmax` itself: `"tmax":` (7), ten digits and a comma when it is
/// inserted, at most nine when its value is replaced. An output buffer of
/// `body.len() + PATCH_HEADROOM` is then never grown; each case variant
/// (`"TMAX"`, which the decoder ignores) may add ten bytes more.
pub const PATCH_HEADROOM: usize = 18;

/// The key [`patch_tmax`] sets.
const TMAX: &[u8; 4] = b"tmax";

/// Why a body could not be patched: it is not one JSON object (what
/// [`crate::decode_request`] accepts always is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct PatchError {
    /// Byte offset in the body where the scanner gave up.
    pub at: usize,
    /// What it expected or found there.
    pub what: &'static str,
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.at, self.what)
    }
}

/// Appends to `out` the JSON object `body` with its top-level `tmax` set to
/// `tmax`; everything else is the publisher's bytes, unchanged (whitespace,
/// key order, number spellings, unknown fields).
///
/// - Every top-level key that *decodes* to `tmax` has its value (whatever it
///   is: a number, `null`, a string, an object) replaced by the decimal
///   `tmax`: a key written with escapes (`"t\u006dax"`) is the same key to
///   any JSON parser. Nested `tmax` keys (in `ext`, in an imp) are not touched.
/// - So are the top-level keys equal to `tmax` but for ASCII case (`"TMAX"`):
///   the typed model ignores them, but parsers that match keys
///   case-insensitively (Go's `encoding/json`, where the last match wins)
///   would read them as `tmax`, and a publisher could otherwise hand such a
///   bidder a budget the exchange did not grant.
/// - When no key decodes to exactly `tmax`, `"tmax":N` is inserted right
///   after the opening `{` (with a comma when the object has members).
///
/// Duplicate keys: [`crate::decode_request`] rejects a body with two `tmax`
/// keys (escaped or not; serde's derived decoders refuse a field seen twice),
/// so a body the exchange accepted has at most one; this replaces every copy
/// anyway, so no parser, first- or last-wins, can read a `tmax` the exchange
/// did not write.
///
/// On error `out` is left as it was. Linear in `body.len()`.
pub fn patch_tmax(body: &[u8], tmax: u32, out: &mut Vec<u8>) -> Result<(), PatchError> {
    let start = out.len();
    let result = patch_into(body, tmax, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn patch_into(body: &[u8], tmax: u32, out: &mut Vec<u8>) -> Result<(), PatchError> {
    out.reserve(body.len().saturating_add(PATCH_HEADROOM));
    let start = out.len();
    let mut digits = [0u8; 10];
    let value = decimal(tmax, &mut digits);
    let mut s = Scanner { b: body, i: 0 };
    s.skip_ws();
    if s.peek() != Some(b'{') {
        return Err(s.err("expected a JSON object"));
    }
    s.i += 1;
    // Just after the `{`: where an absent tmax is inserted.
    let open = s.i;
    // body[..copied] is in `out` (patched).
    let mut copied = 0;
    let mut exact = false;
    s.skip_ws();
    let empty = s.peek() == Some(b'}');
    if empty {
        s.i += 1;
    } else {
        loop {
            let key = s.key()?;
            s.skip_ws();
            s.expect(b':', "expected ':' after a key")?;
            s.skip_ws();
            let value_start = s.i;
            s.value()?;
            if key.folded {
                out.extend_from_slice(&body[copied..value_start]);
                out.extend_from_slice(value);
                copied = s.i;
                exact |= key.exact;
            }
            s.skip_ws();
            match s.peek() {
                Some(b',') => {
                    s.i += 1;
                    s.skip_ws();
                }
                Some(b'}') => {
                    s.i += 1;
                    break;
                }
                _ => return Err(s.err("expected ',' or '}' after a value")),
            }
        }
    }
    s.skip_ws();
    if s.i != body.len() {
        return Err(s.err("unexpected bytes after the object"));
    }
    out.extend_from_slice(&body[copied..]);
    if !exact {
        // body[..open] was copied unchanged (every replaced value lies after
        // it), so the `{` is at the same offset in `out`.
        let at = start + open;
        let len = TMAX.len() + 3 + value.len() + usize::from(!empty);
        let end = out.len();
        out.resize(end + len, 0);
        out.copy_within(at..end, at + len);
        let mut w = at;
        for part in [
            &b"\""[..],
            TMAX,
            b"\":",
            value,
            if empty { b"" } else { b"," },
        ] {
            out[w..w + part.len()].copy_from_slice(part);
            w += part.len();
        }
    }
    Ok(())
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// How a key compares to `tmax`.
struct Key {
    /// It decodes to exactly `tmax`.
    exact: bool,
    /// It decodes to `tmax` but for ASCII case.
    folded: bool,
}

/// A cursor over the body.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn err(&self, what: &'static str) -> PatchError {
        PatchError { at: self.i, what }
    }

    /// An error at the byte just read.
    fn err_before(&self, what: &'static str) -> PatchError {
        PatchError {
            at: self.i.saturating_sub(1),
            what,
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), PatchError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// A member's key, decoded only as far as comparing it to `tmax` needs.
    fn key(&mut self) -> Result<Key, PatchError> {
        self.expect(b'"', "expected a string key")?;
        let mut n = 0usize;
        let mut exact = true;
        let mut folded = true;
        loop {
            let unit = match self.next() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => self.escape()?,
                Some(c) => u32::from(c),
            };
            match TMAX.get(n) {
                Some(&t) => {
                    exact &= unit == u32::from(t);
                    folded &= u8::try_from(unit).is_ok_and(|u| u.eq_ignore_ascii_case(&t));
                }
                None => {
                    exact = false;
                    folded = false;
                }
            }
            n = n.saturating_add(1);
        }
        let whole = n == TMAX.len();
        Ok(Key {
            exact: exact && whole,
            folded: folded && whole,
        })
    }

    /// The code unit an escape (after its backslash) stands for. A `\uXXXX`
    /// is one UTF-16 unit: a surrogate never equals an ASCII letter, so
    /// pairs need not be joined to compare keys.
    fn escape(&mut self) -> Result<u32, PatchError> {
        let unit = match self.next() {
            None => return Err(self.err("unterminated string")),
            Some(b'"') => u32::from(b'"'),
            Some(b'\\') => u32::from(b'\\'),
            Some(b'/') => u32::from(b'/'),
            Some(b'b') => 0x08,
            Some(b'f') => 0x0c,
            Some(b'n') => u32::from(b'\n'),
            Some(b'r') => u32::from(b'\r'),
            Some(b't') => u32::from(b'\t'),
            Some(b'u') => {
                let mut unit = 0;
                for _ in 0..4 {
                    let digit = match self.next() {
                        None => return Err(self.err("unterminated string")),
                        Some(c) => char::from(c)
                            .to_digit(16)
                            .ok_or_else(|| self.err_before("invalid \\u escape"))?,
                    };
                    unit = unit * 16 + digit;
                }
                unit
            }
            _ => return Err(self.err_before("invalid escape")),
        };
        Ok(unit)
    }

    /// Skips a string whose opening quote was read.
    fn skip_string(&mut self) -> Result<(), PatchError> {
        loop {
            let rest = self.b.get(self.i..).unwrap_or_default();
            match rest.iter().position(|&c| c == b'"' || c == b'\\') {
                None => {
                    self.i = self.b.len();
                    return Err(self.err("unterminated string"));
                }
                Some(p) => {
                    self.i += p + 1;
                    if rest[p] == b'"' {
                        return Ok(());
                    }
                    // The escaped byte cannot end the string; a bad escape
                    // is the decoder's to refuse.
                    if self.next().is_none() {
                        return Err(self.err("unterminated string"));
                    }
                }
            }
        }
    }

    /// Skips one value: a string, a nested object or array (by depth, with
    /// the strings inside it skipped), or a scalar.
    fn value(&mut self) -> Result<(), PatchError> {
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                self.skip_string()
            }
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.next() {
                        None => return Err(self.err("unterminated object or array")),
                        Some(b'"') => self.skip_string()?,
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(());
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
            Some(c) if is_scalar(c) => {
                while self.peek().is_some_and(is_scalar) {
                    self.i += 1;
                }
                Ok(())
            }
            _ => Err(self.err("expected a value")),
        }
    }
}

/// Bytes of a number, `true`, `false` or `null`.
fn is_scalar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patched(body: &str, tmax: u32) -> String {
        let mut out = Vec::new();
        patch_tmax(body.as_bytes(), tmax, &mut out).unwrap_or_else(|e| panic!("{body:?}: {e}"));
        String::from_utf8(out).unwrap()
    }

    fn refused(body: &[u8]) -> PatchError {
        let mut out = b"kept".to_vec();
        let err = patch_tmax(body, 7, &mut out).expect_err(&String::from_utf8_lossy(body));
        assert_eq!(out, b"kept", "out is left as it was on error");
        err
    }

    #[test]
    fn the_value_of_a_top_level_tmax_is_replaced_in_place() {
        assert_eq!(
            patched(r#"{"id":"a","tmax":500,"imp":[]}"#, 87),
            r#"{"id":"a","tmax":87,"imp":[]}"#
        );
        assert_eq!(patched(r#"{"tmax":5}"#, 4_000), r#"{"tmax":4000}"#);
        assert_eq!(patched(r#"{"tmax":5}"#, 0), r#"{"tmax":0}"#);
        assert_eq!(patched(r#"{"tmax":5}"#, u32::MAX), r#"{"tmax":4294967295}"#);
    }

    #[test]
    fn whitespace_anywhere_is_kept() {
        assert_eq!(
            patched(" \r\n\t{ \"tmax\" :\n 500 ,\t\"a\" : [ 1 , 2 ] }\n ", 87),
            " \r\n\t{ \"tmax\" :\n 87 ,\t\"a\" : [ 1 , 2 ] }\n "
        );
    }

    #[test]
    fn an_absent_tmax_is_inserted_after_the_brace() {
        assert_eq!(patched("{}", 87), r#"{"tmax":87}"#);
        assert_eq!(patched("{ \n}", 87), "{\"tmax\":87 \n}");
        assert_eq!(patched(r#"{"a":1}"#, 87), r#"{"tmax":87,"a":1}"#);
        assert_eq!(
            patched(r#" { "a" : 1 , "b":{}} "#, 87),
            r#" {"tmax":87, "a" : 1 , "b":{}} "#
        );
    }

    #[test]
    fn nested_tmax_keys_are_not_touched() {
        let body = r#"{"ext":{"tmax":1},"imp":[{"tmax":2},["tmax",{"tmax":3}]],"tmax":4}"#;
        assert_eq!(
            patched(body, 9),
            r#"{"ext":{"tmax":1},"imp":[{"tmax":2},["tmax",{"tmax":3}]],"tmax":9}"#
        );
        assert_eq!(
            patched(r#"{"ext":{"tmax":1}}"#, 9),
            r#"{"tmax":9,"ext":{"tmax":1}}"#
        );
    }

    #[test]
    fn strings_with_escapes_and_brackets_are_skipped_whole() {
        let body = r#"{"a":"}\"{[\\","b":{"c":"\"}]\\\"","tmax":1},"tmax":2}"#;
        assert_eq!(
            patched(body, 9),
            r#"{"a":"}\"{[\\","b":{"c":"\"}]\\\"","tmax":1},"tmax":9}"#
        );
        // A key that contains `tmax` is not `tmax`.
        assert_eq!(
            patched(r#"{"\"tmax\"":1,"tmax ":2,"xtmax":3,"tma":4}"#, 9),
            r#"{"tmax":9,"\"tmax\"":1,"tmax ":2,"xtmax":3,"tma":4}"#
        );
    }

    #[test]
    fn an_escaped_tmax_key_is_the_same_key() {
        assert_eq!(patched(r#"{"t\u006dax":500}"#, 9), r#"{"t\u006dax":9}"#);
        assert_eq!(
            patched(r#"{"\u0074\u006D\u0061\u0078":500,"a":1}"#, 9),
            r#"{"\u0074\u006D\u0061\u0078":9,"a":1}"#
        );
        // An escape that is not one of tmax's letters.
        assert_eq!(
            patched(r#"{"t\u006eax":500}"#, 9),
            r#"{"tmax":9,"t\u006eax":500}"#
        );
        assert_eq!(
            patched(r#"{"tma\nx":500,"tmax\u0000":1}"#, 9),
            r#"{"tmax":9,"tma\nx":500,"tmax\u0000":1}"#
        );
    }

    #[test]
    fn case_variants_of_tmax_get_the_same_value() {
        assert_eq!(
            patched(r#"{"TMAX":5000,"id":"x"}"#, 9),
            r#"{"tmax":9,"TMAX":9,"id":"x"}"#
        );
        assert_eq!(
            patched(r#"{"tmax":100,"TMax":5000}"#, 9),
            r#"{"tmax":9,"TMax":9}"#
        );
        assert_eq!(
            patched(r#"{"T\u004dAX":5000}"#, 9),
            r#"{"tmax":9,"T\u004dAX":9}"#
        );
    }

    #[test]
    fn every_copy_of_a_duplicated_tmax_is_replaced() {
        assert_eq!(
            patched(r#"{"tmax":1,"a":2,"tmax":3,"t\u006dax":4}"#, 9),
            r#"{"tmax":9,"a":2,"tmax":9,"t\u006dax":9}"#
        );
    }

    #[test]
    fn a_tmax_of_any_type_is_replaced_whole() {
        for v in [
            "null",
            "\"500\"",
            "\"a}\\\"b\"",
            "{\"a\":[1,{}]}",
            "[[]]",
            "-1.5e3",
            "true",
        ] {
            assert_eq!(
                patched(&format!("{{\"tmax\":{v},\"z\":0}}"), 9),
                r#"{"tmax":9,"z":0}"#,
                "{v}"
            );
        }
    }

    #[test]
    fn the_output_is_appended() {
        let mut out = b"prefix".to_vec();
        patch_tmax(b"{\"a\":1}", 5, &mut out).unwrap();
        assert_eq!(out, b"prefix{\"tmax\":5,\"a\":1}");
        let mut out = b"prefix".to_vec();
        patch_tmax(b"{\"tmax\":1}", 5, &mut out).unwrap();
        assert_eq!(out, b"prefix{\"tmax\":5}");
    }

    #[test]
    fn a_buffer_with_the_headroom_is_never_grown() {
        for body in [
            &b"{}"[..],
            b"{\"a\":1}",
            b"{\"tmax\":1}",
            b"{\"tmax\":null,\"a\":[]}",
        ] {
            let mut out = Vec::with_capacity(body.len() + PATCH_HEADROOM);
            let (ptr, cap) = (out.as_ptr(), out.capacity());
            patch_tmax(body, u32::MAX, &mut out).unwrap();
            assert_eq!((out.as_ptr(), out.capacity()), (ptr, cap));
            assert!(out.len() <= body.len() + PATCH_HEADROOM);
        }
    }

    #[test]
    fn what_is_not_one_json_object_is_refused() {
        for (body, at) in [
            (&b""[..], 0),
            (b"  ", 2),
            (b"[]", 0),
            (b"1", 0),
            (b"\"{}\"", 0),
            (b"\xef\xbb\xbf{}", 0),
            (b"{", 1),
            (b"{ ", 2),
            (b"{\"a\":1", 6),
            (b"{\"a\":1 ", 7),
            (b"{\"a\"}", 4),
            (b"{\"a\":}", 5),
            (b"{\"a\":,}", 5),
            (b"{a:1}", 1),
            (b"{\"a\":1,}", 7),
            (b"{\"a\":1,,\"b\":2}", 7),
            (b"{\"a\":1 \"b\":2}", 7),
            (b"{\"a\":1}x", 7),
            (b"{\"a\":1}{}", 7),
            (b"{\"a\":1}}", 7),
            (b"{\"a", 3),
            (b"{\"a\\", 4),
            (b"{\"a\\\"", 5),
            (b"{\"t\\x\":1}", 4),
            (b"{\"t\\u00\":1}", 7),
            (b"{\"t\\u00g0\":1}", 7),
            (b"{\"a\":\"x", 7),
            (b"{\"a\":\"x\\", 8),
            (b"{\"a\":[1,2}", 10),
            (b"{\"a\":{\"b\":[}", 12),
            (b"{\"a\":[\"]\"}", 10),
        ] {
            let err = refused(body);
            assert_eq!(err.at, at, "{:?}: {err}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn decimal_writes_every_digit() {
        let mut buf = [0u8; 10];
        for n in [0, 7, 10, 99, 100, 65_535, 1_000_000_000, u32::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }
}
