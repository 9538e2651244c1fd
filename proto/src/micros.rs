//! Money as integer micros of a currency unit, so prices compare and add exactly.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const PER_UNIT: i64 = 1_000_000;

/// An amount in millionths of a currency unit: 1.0 (e.g. one USD CPM) is `Micros(1_000_000)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Micros(pub i64);

impl Micros {
    /// Zero.
    pub const ZERO: Micros = Micros(0);

    /// Converts a decimal amount, rounding to the nearest micro.
    ///
    /// Returns `None` for NaN, infinities and amounts outside the `i64` micros range.
    pub fn from_decimal(x: f64) -> Option<Micros> {
        if !x.is_finite() {
            return None;
        }
        let scaled = (x * PER_UNIT as f64).round();
        // i64::MAX as f64 rounds up to 2^63, which itself does not fit: compare strictly.
        if scaled >= i64::MAX as f64 || scaled < i64::MIN as f64 {
            return None;
        }
        Some(Micros(scaled as i64))
    }

    /// The amount as a decimal number of currency units (may lose precision past 2^53 micros).
    pub fn to_decimal(self) -> f64 {
        self.0 as f64 / PER_UNIT as f64
    }

    /// True for a zero amount (used to omit zero floors when encoding).
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Micros {
    /// Shortest exact decimal, computed with integers so macro substitution never shows float noise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.0 < 0;
        let abs = self.0.unsigned_abs();
        let units = abs / PER_UNIT as u64;
        let frac = abs % PER_UNIT as u64;
        if neg {
            f.write_str("-")?;
        }
        write!(f, "{units}")?;
        if frac != 0 {
            let digits = format!("{frac:06}");
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        Ok(())
    }
}

impl Serialize for Micros {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % PER_UNIT == 0 {
            // Whole amounts stay integers in JSON ("3", not "3.0") and stay exact beyond 2^53.
            serializer.serialize_i64(self.0 / PER_UNIT)
        } else {
            serializer.serialize_f64(self.to_decimal())
        }
    }
}

struct MicrosVisitor;

impl Visitor<'_> for MicrosVisitor {
    type Value = Micros;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Micros, E> {
        v.checked_mul(PER_UNIT)
            .map(Micros)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &"an amount within range"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Micros, E> {
        i64::try_from(v)
            .ok()
            .and_then(|v| v.checked_mul(PER_UNIT))
            .map(Micros)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &"an amount within range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Micros, E> {
        Micros::from_decimal(v)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &"an amount within range"))
    }
}

impl<'de> Deserialize<'de> for Micros {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Micros, D::Error> {
        // deserialize_any so strings, bools and null reach the visitor and get a type error.
        deserializer.deserialize_any(MicrosVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_decimal_rounds_to_nearest_micro() {
        assert_eq!(Micros::from_decimal(9.43), Some(Micros(9_430_000)));
        assert_eq!(Micros::from_decimal(0.03), Some(Micros(30_000)));
        assert_eq!(Micros::from_decimal(2.01), Some(Micros(2_010_000)));
        assert_eq!(Micros::from_decimal(0.0000004), Some(Micros(0)));
        assert_eq!(Micros::from_decimal(0.0000006), Some(Micros(1)));
        assert_eq!(Micros::from_decimal(-1.5), Some(Micros(-1_500_000)));
        assert_eq!(Micros::from_decimal(2.942808), Some(Micros(2_942_808)));
    }

    #[test]
    fn from_decimal_rejects_non_finite_and_out_of_range() {
        assert_eq!(Micros::from_decimal(f64::NAN), None);
        assert_eq!(Micros::from_decimal(f64::INFINITY), None);
        assert_eq!(Micros::from_decimal(f64::NEG_INFINITY), None);
        assert_eq!(Micros::from_decimal(1e13), None);
        assert_eq!(Micros::from_decimal(-1e13), None);
        assert!(Micros::from_decimal(9e12).is_some());
    }

    #[test]
    fn to_decimal_inverts_from_decimal() {
        assert_eq!(Micros(2_010_000).to_decimal(), 2.01);
        assert_eq!(
            Micros::from_decimal(Micros(123_456_789).to_decimal()),
            Some(Micros(123_456_789))
        );
    }

    #[test]
    fn display_is_shortest_exact_decimal() {
        let cases = [
            (2_010_000, "2.01"),
            (2_510_000, "2.51"),
            (3_000_000, "3"),
            (1, "0.000001"),
            (0, "0"),
            (500_000, "0.5"),
            (-1, "-0.000001"),
            (-2_010_000, "-2.01"),
            (-3_000_000, "-3"),
            (123_456_789_012_345_678, "123456789012.345678"),
            (i64::MAX, "9223372036854.775807"),
            (i64::MIN, "-9223372036854.775808"),
        ];
        for (m, s) in cases {
            assert_eq!(Micros(m).to_string(), s, "Micros({m})");
        }
    }

    #[test]
    fn serializes_as_json_number() {
        assert_eq!(serde_json::to_string(&Micros(2_010_000)).unwrap(), "2.01");
        assert_eq!(serde_json::to_string(&Micros(9_430_000)).unwrap(), "9.43");
        assert_eq!(serde_json::to_string(&Micros(3_000_000)).unwrap(), "3");
        assert_eq!(serde_json::to_string(&Micros(1)).unwrap(), "1e-6");
    }

    #[test]
    fn deserializes_integers_and_floats() {
        let m: Micros = serde_json::from_str("3").unwrap();
        assert_eq!(m, Micros(3_000_000));
        let m: Micros = serde_json::from_str("-2").unwrap();
        assert_eq!(m, Micros(-2_000_000));
        let m: Micros = serde_json::from_str("9.43").unwrap();
        assert_eq!(m, Micros(9_430_000));
        let mut buf = b"2.51".to_vec();
        let m: Micros = simd_json::serde::from_slice(&mut buf).unwrap();
        assert_eq!(m, Micros(2_510_000));
        let mut buf = b"7".to_vec();
        let m: Micros = simd_json::serde::from_slice(&mut buf).unwrap();
        assert_eq!(m, Micros(7_000_000));
    }

    #[test]
    fn rejects_strings_bools_null_and_overflow() {
        let err = serde_json::from_str::<Micros>("\"0.500000\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid type: string \"0.500000\", expected a number"),
            "{err}"
        );
        assert!(serde_json::from_str::<Micros>("true").is_err());
        assert!(serde_json::from_str::<Micros>("null").is_err());
        assert!(serde_json::from_str::<Micros>("18446744073709551615").is_err());
        assert!(serde_json::from_str::<Micros>("1e300").is_err());
        let mut buf = b"\"1.0\"".to_vec();
        assert!(simd_json::serde::from_slice::<Micros>(&mut buf).is_err());
    }
}
