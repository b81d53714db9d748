//! Human-readable quantities used in manifests: CPU (`500m`, `0.5`, `2`), memory and storage
//! (`512Mi`, `1Gi`, `1G`), bandwidth (`5Mbps`, `1Gbps`) and durations (`250ms`, `30s`, `2m`, `1h`).
//!
//! Each quantity is a newtype over an integer in the unit the rest of Cloudless computes with
//! (millicores, MiB, GiB, Mbps, milliseconds). It serializes to a canonical string and
//! deserializes from a string or a plain number; parsing never panics and never overflows.
//!
//! ```rust
//! use cloudless_core::quantity::{Cpu, DurationSpec, Memory};
//!
//! assert_eq!(Cpu::parse("500m")?.millis(), 500);
//! assert_eq!(Cpu::parse("1.5")?.millis(), 1_500);
//! assert_eq!(Memory::parse("1Gi")?.mib(), 1_024);
//! assert_eq!(Memory::parse("2048Mi")?.to_string(), "2Gi"); // canonical form
//! let interval: DurationSpec = "30s".parse()?;
//! assert_eq!(interval, DurationSpec::from_secs(30));
//! assert_eq!(DurationSpec::parse("2m")?.millis(), 120_000);
//!
//! let err = Cpu::parse("lots").unwrap_err();
//! assert_eq!(err.input, "lots");
//! # Ok::<(), cloudless_core::quantity::QuantityError>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct QuantityError {
    /// Which kind of quantity (e.g. "cpu quantity").
    pub what: &'static str,
    /// The rejected input.
    pub input: String,
    /// What was wrong and what is expected.
    pub reason: String,
}

fn qerr(what: &'static str, input: &str, reason: impl Into<String>) -> QuantityError {
    QuantityError {
        what,
        input: input.to_owned(),
        reason: reason.into(),
    }
}

/// Parses a non-negative decimal `int[.frac]` and returns `value * scale` rounded up, checked.
/// `scale` must be a power of ten ≥ 1 when fractional digits are allowed.
fn parse_decimal_scaled(num: &str, scale: u64) -> Option<u64> {
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if num.contains('.') && frac_part.is_empty() {
        return None;
    }
    let int: u64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let mut total = int.checked_mul(scale)?;
    // Fractional digits: value = frac / 10^len; contribute ceil(frac * scale / 10^len).
    if !frac_part.is_empty() {
        let digits = frac_part.trim_end_matches('0');
        if !digits.is_empty() {
            if digits.len() > 18 {
                return None;
            }
            let frac: u128 = digits.parse().ok()?;
            let denom: u128 = 10u128.checked_pow(u32::try_from(digits.len()).ok()?)?;
            let scaled = frac.checked_mul(u128::from(scale))?;
            let add = scaled.div_ceil(denom);
            total = total.checked_add(u64::try_from(add).ok()?)?;
        }
    }
    Some(total)
}

macro_rules! quantity {
    (
        $(#[$doc:meta])* $name:ident, $what:literal, $pattern:literal, $example:literal
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.canonical())
            }
        }

        impl std::str::FromStr for $name {
            type Err = QuantityError;
            fn from_str(s: &str) -> Result<Self, QuantityError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.canonical())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, concat!("a ", $what, " such as {:?}"), $example)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::parse(v).map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        $name::parse(&v.to_string()).map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        $name::parse(&v.to_string()).map_err(E::custom)
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$name, E> {
                        if !v.is_finite() || v < 0.0 {
                            return Err(E::custom(qerr($what, &v.to_string(), "must be a finite, non-negative number")));
                        }
                        $name::parse(&v.to_string()).map_err(E::custom)
                    }
                }
                d.deserialize_any(V)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "description": concat!("A ", $what, ", e.g. ", $example, "."),
                    "anyOf": [
                        { "type": "string", "pattern": $pattern },
                        { "type": "number", "minimum": 0 }
                    ]
                })
            }
        }
    };
}

quantity!(
    /// CPU in millicores: `500m` = 500, `0.5` = 500, `2` = 2000.
    Cpu, "cpu quantity", "^([0-9]+m|[0-9]*\\.?[0-9]+)$", "\"500m\" or 0.5"
);
quantity!(
    /// Memory in MiB: `512Mi`, `1Gi` (= 1024), `1G` (decimal, rounded up to MiB), `1Ti`.
    Memory, "memory quantity", "^[0-9]*\\.?[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$", "\"512Mi\""
);
quantity!(
    /// Storage in GiB: `10Gi`, `1Ti` (= 1024), `500Mi` (rounded up to whole GiB).
    Storage, "storage quantity", "^[0-9]*\\.?[0-9]+(Mi|Gi|Ti|M|G|T)?$", "\"10Gi\""
);
quantity!(
    /// Bandwidth in Mbps: `5Mbps`, `1Gbps` (= 1000), `500Kbps` (rounded up to 1 Mbps).
    Bandwidth, "bandwidth quantity", "^[0-9]*\\.?[0-9]+(Kbps|Mbps|Gbps)$", "\"5Mbps\""
);
quantity!(
    /// A duration in milliseconds: `250ms`, `30s`, `2m`, `1h`, `1.5s`.
    DurationSpec, "duration", "^[0-9]*\\.?[0-9]+(ms|s|m|h)$", "\"30s\""
);

fn split_suffix<'a>(s: &'a str, suffixes: &[&'static str]) -> (&'a str, &'static str) {
    // Longest suffix first so "Mi" wins over "M" and "ms" over "m"/"s".
    let mut best: (&str, &'static str) = (s, "");
    for suf in suffixes {
        if let Some(num) = s.strip_suffix(suf)
            && suf.len() > best.1.len()
        {
            best = (num, suf);
        }
    }
    best
}

impl Cpu {
    /// Parses `500m`, `0.5` or `2`.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let t = s.trim();
        let v = if let Some(m) = t.strip_suffix('m') {
            if m.contains('.') {
                return Err(qerr(
                    "cpu quantity",
                    s,
                    "millicores must be a whole number, e.g. \"500m\"",
                ));
            }
            parse_decimal_scaled(m, 1)
        } else {
            parse_decimal_scaled(t, 1000)
        };
        v.map(Cpu).ok_or_else(|| {
            qerr(
                "cpu quantity",
                s,
                "expected millicores like \"500m\" or cores like 0.5, within range",
            )
        })
    }
    /// Millicores.
    pub const fn millis(self) -> u64 {
        self.0
    }
    fn canonical(self) -> String {
        format!("{}m", self.0)
    }
}

impl Memory {
    /// Parses `512Mi`, `1Gi`, `1G`, `1024Ki`; a bare number is bytes (rounded up to MiB).
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        const MIB: u128 = 1 << 20;
        let t = s.trim();
        let (num, suf) = split_suffix(t, &["Ki", "Mi", "Gi", "Ti", "K", "M", "G", "T"]);
        let bytes_per_unit: u64 = match suf {
            "" => 1,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "K" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            _ => 1_000_000_000_000,
        };
        let bytes = parse_decimal_scaled(num, bytes_per_unit).ok_or_else(|| {
            qerr(
                "memory quantity",
                s,
                "expected a number with a unit like \"512Mi\" or \"1Gi\", within range",
            )
        })?;
        let mib = u64::try_from(u128::from(bytes).div_ceil(MIB))
            .map_err(|_| qerr("memory quantity", s, "too large"))?;
        Ok(Memory(mib))
    }
    /// MiB.
    pub const fn mib(self) -> u64 {
        self.0
    }
    fn canonical(self) -> String {
        if self.0 != 0 && self.0.is_multiple_of(1024) {
            format!("{}Gi", self.0 / 1024)
        } else {
            format!("{}Mi", self.0)
        }
    }
}

impl Storage {
    /// Parses `10Gi`, `1Ti`, `500Mi`; a bare number is GiB.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let t = s.trim();
        let (num, suf) = split_suffix(t, &["Mi", "Gi", "Ti", "M", "G", "T"]);
        // Work in MiB-ish units then round up to GiB.
        let (scale_mib, decimal): (u64, bool) = match suf {
            "Mi" => (1, false),
            "" | "Gi" => (1024, false),
            "Ti" => (1024 * 1024, false),
            "M" => (1_000_000, true),
            "G" => (1_000_000_000, true),
            _ => (1_000_000_000_000, true),
        };
        let err = || {
            qerr(
                "storage quantity",
                s,
                "expected a number with a unit like \"10Gi\", within range",
            )
        };
        let gib = if decimal {
            let bytes = parse_decimal_scaled(num, scale_mib).ok_or_else(err)?;
            bytes.div_ceil(1 << 30)
        } else {
            let mib = parse_decimal_scaled(num, scale_mib).ok_or_else(err)?;
            mib.div_ceil(1024)
        };
        Ok(Storage(gib))
    }
    /// GiB.
    pub const fn gib(self) -> u64 {
        self.0
    }
    fn canonical(self) -> String {
        format!("{}Gi", self.0)
    }
}

impl Bandwidth {
    /// Parses `5Mbps`, `1Gbps`, `500Kbps` (rounded up to whole Mbps).
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let t = s.trim();
        let (num, suf) = split_suffix(t, &["Kbps", "Mbps", "Gbps"]);
        let err = || {
            qerr(
                "bandwidth quantity",
                s,
                "expected a number with a unit like \"5Mbps\" or \"1Gbps\", within range",
            )
        };
        let mbps = match suf {
            "Kbps" => parse_decimal_scaled(num, 1).map(|k| k.div_ceil(1000)),
            "Mbps" => parse_decimal_scaled(num, 1),
            "Gbps" => parse_decimal_scaled(num, 1000),
            _ => None,
        }
        .ok_or_else(err)?;
        Ok(Bandwidth(mbps))
    }
    /// Mbps.
    pub const fn mbps(self) -> u64 {
        self.0
    }
    fn canonical(self) -> String {
        format!("{}Mbps", self.0)
    }
}

impl DurationSpec {
    /// Parses `250ms`, `30s`, `2m`, `1h`, `1.5s`.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let t = s.trim();
        let (num, suf) = split_suffix(t, &["ms", "s", "m", "h"]);
        let scale = match suf {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => {
                return Err(qerr(
                    "duration",
                    s,
                    "expected a number with a unit: ms, s, m or h (e.g. \"30s\")",
                ));
            }
        };
        parse_decimal_scaled(num, scale)
            .map(DurationSpec)
            .ok_or_else(|| {
                qerr(
                    "duration",
                    s,
                    "expected a number with a unit like \"30s\", within range",
                )
            })
    }
    /// Builds a duration from milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }
    /// Builds a duration from seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(s * 1000)
    }
    /// Milliseconds.
    pub const fn millis(self) -> u64 {
        self.0
    }
    /// As a `std::time::Duration`.
    pub const fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
    fn canonical(self) -> String {
        let ms = self.0;
        if ms != 0 && ms.is_multiple_of(3_600_000) {
            format!("{}h", ms / 3_600_000)
        } else if ms != 0 && ms.is_multiple_of(60_000) {
            format!("{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpu() {
        assert_eq!(Cpu::parse("500m").unwrap().millis(), 500);
        assert_eq!(Cpu::parse("0.5").unwrap().millis(), 500);
        assert_eq!(Cpu::parse("2").unwrap().millis(), 2000);
        assert_eq!(Cpu::parse("0.0001").unwrap().millis(), 1, "rounds up");
        for bad in [
            "",
            "m",
            "1.5m",
            "-1",
            "abc",
            "1e3",
            "99999999999999999999",
            "1.",
            ".",
        ] {
            assert!(Cpu::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn memory_and_storage() {
        assert_eq!(Memory::parse("512Mi").unwrap().mib(), 512);
        assert_eq!(Memory::parse("1Gi").unwrap().mib(), 1024);
        assert_eq!(Memory::parse("1.5Gi").unwrap().mib(), 1536);
        assert_eq!(Memory::parse("1G").unwrap().mib(), 954);
        assert_eq!(Memory::parse("1").unwrap().mib(), 1);
        assert!(Memory::parse("12XB").is_err());
        assert!(Memory::parse("99999999999Ti").is_err());
        assert_eq!(Storage::parse("10Gi").unwrap().gib(), 10);
        assert_eq!(Storage::parse("500Mi").unwrap().gib(), 1);
        assert_eq!(Storage::parse("1Ti").unwrap().gib(), 1024);
        assert_eq!(Memory(2048).to_string(), "2Gi");
    }

    #[test]
    fn bandwidth_and_duration() {
        assert_eq!(Bandwidth::parse("5Mbps").unwrap().mbps(), 5);
        assert_eq!(Bandwidth::parse("1Gbps").unwrap().mbps(), 1000);
        assert_eq!(Bandwidth::parse("500Kbps").unwrap().mbps(), 1);
        assert!(Bandwidth::parse("5").is_err());
        assert_eq!(DurationSpec::parse("30s").unwrap().millis(), 30_000);
        assert_eq!(DurationSpec::parse("2m").unwrap().millis(), 120_000);
        assert_eq!(DurationSpec::parse("250ms").unwrap().millis(), 250);
        assert_eq!(DurationSpec::parse("1.5s").unwrap().millis(), 1500);
        assert!(DurationSpec::parse("30").is_err());
        assert_eq!(DurationSpec(90_000).to_string(), "90s");
    }

    #[test]
    fn deserializes_from_numbers_and_strings() {
        let c: Cpu = serde_json::from_str("0.25").unwrap();
        assert_eq!(c.millis(), 250);
        let c: Cpu = serde_json::from_str("\"250m\"").unwrap();
        assert_eq!(c.millis(), 250);
        assert!(serde_json::from_str::<Cpu>("-1").is_err());
        assert!(serde_json::from_str::<Cpu>("true").is_err());
    }

    proptest! {
        #[test]
        fn canonical_forms_round_trip(v in 0u64..1_000_000_000) {
            prop_assert_eq!(Cpu::parse(&Cpu(v).to_string()).unwrap(), Cpu(v));
            prop_assert_eq!(Memory::parse(&Memory(v).to_string()).unwrap(), Memory(v));
            prop_assert_eq!(Storage::parse(&Storage(v).to_string()).unwrap(), Storage(v));
            prop_assert_eq!(Bandwidth::parse(&Bandwidth(v).to_string()).unwrap(), Bandwidth(v));
            prop_assert_eq!(DurationSpec::parse(&DurationSpec(v).to_string()).unwrap(), DurationSpec(v));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,24}") {
            let _ = Cpu::parse(&s);
            let _ = Memory::parse(&s);
            let _ = Storage::parse(&s);
            let _ = Bandwidth::parse(&s);
            let _ = DurationSpec::parse(&s);
        }
    }
}
