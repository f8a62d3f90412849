//! Units in the config file: byte sizes (`"64MiB"`) and durations (`"10s"`, `"1m30s"`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A number of bytes, written in the config as `"512B"`, `"64KiB"`, `"256MiB"`, `"4GiB"`,
/// `"1TiB"` (powers of 1024), `"500KB"`, `"10MB"`, `"1GB"`, `"1TB"` (powers of 1000), a bare
/// integer string, or a TOML integer (bytes). Units are case-insensitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Suffixes other than `B`; on a tie `Display` takes the first, so binary ones come first.
const UNITS: [(&str, u64); 8] = [
    ("TiB", TIB),
    ("GiB", GIB),
    ("MiB", MIB),
    ("KiB", KIB),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
];

const VALID_SIZES: &str = "write a whole number with one of the units B, KiB, MiB, GiB, TiB \
     (powers of 1024) or KB, MB, GB, TB (powers of 1000), e.g. \"64MiB\"";

impl ByteSize {
    /// `n` bytes.
    pub const fn b(n: u64) -> Self {
        Self(n)
    }

    /// `n` × 1024 bytes (saturating).
    pub const fn kib(n: u64) -> Self {
        Self(n.saturating_mul(KIB))
    }

    /// `n` × 1024² bytes (saturating).
    pub const fn mib(n: u64) -> Self {
        Self(n.saturating_mul(MIB))
    }

    /// `n` × 1024³ bytes (saturating).
    pub const fn gib(n: u64) -> Self {
        Self(n.saturating_mul(GIB))
    }

    /// The number of bytes.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The number of bytes, saturating at `usize::MAX` on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl fmt::Display for ByteSize {
    /// The unit that divides the size exactly with the smallest number, binary on a tie
    /// (`"64MiB"`, `"2GB"`), else bytes (`"1500B"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        let mut best = (n, "B");
        for (suffix, factor) in UNITS {
            if n != 0 && n.is_multiple_of(factor) && n / factor < best.0 {
                best = (n / factor, suffix);
            }
        }
        write!(f, "{}{}", best.0, best.1)
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err(format!("empty size; {VALID_SIZES}"));
        }
        if s.starts_with('-') {
            return Err(format!("negative size \"{s}\"; {VALID_SIZES}"));
        }
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, rest) = s.split_at(digits_end);
        if digits.is_empty() {
            return Err(format!("\"{s}\" does not start with a number; {VALID_SIZES}"));
        }
        if rest.starts_with(['.', ',']) {
            return Err(format!(
                "fractions are not supported in \"{s}\"; use a smaller unit, e.g. \"1536KiB\" for 1.5MiB"
            ));
        }
        let factor = unit_factor(rest.trim_start())
            .ok_or_else(|| format!("unknown unit \"{}\" in \"{s}\"; {VALID_SIZES}", rest.trim()))?;
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .map(ByteSize)
            .ok_or_else(|| format!("\"{s}\" is too large; the maximum is {} bytes", u64::MAX))
    }
}

fn unit_factor(unit: &str) -> Option<u64> {
    if unit.is_empty() || unit.eq_ignore_ascii_case("b") {
        return Some(1);
    }
    UNITS.iter().find(|(suffix, _)| suffix.eq_ignore_ascii_case(unit)).map(|&(_, factor)| factor)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as \"64MiB\" or a whole number of bytes")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v).map(ByteSize).map_err(|_| E::custom(format!("negative size {v}; {VALID_SIZES}")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
        Err(E::custom(format!("fractional size {v}; {VALID_SIZES}")))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The longest duration the config accepts: 3650 days. Keeps `Instant + duration` far from
/// overflow wherever a duration is added to a clock reading.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// Units from largest to smallest: suffix and length in nanoseconds.
const DURATION_UNITS: [(&str, u128); 7] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

const VALID_DURATIONS: &str = "write a whole number with a unit (d, h, m, s, ms), e.g. \"10s\", \"250ms\" or \"1m30s\"";

/// Parses `"250ms"`, `"10s"`, `"5m"`, `"2h"`, `"1d"` and combinations from the largest unit to
/// the smallest such as `"1m30s"` or `"1h30m"`. Also `us` and `ns`. Bare numbers, fractions,
/// negative values and anything above [`MAX_DURATION`] are rejected; the error says what to
/// write instead.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty duration; {VALID_DURATIONS}"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("\"{s}\" has no unit; write \"{s}s\" for seconds ({VALID_DURATIONS})"));
    }
    if s.starts_with('-') {
        return Err(format!("negative duration \"{s}\"; {VALID_DURATIONS}"));
    }
    let mut rest = s;
    let mut total: u128 = 0;
    let mut previous_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        if digits.is_empty() && rest.len() == s.len() {
            return Err(format!("\"{s}\" is not a duration; {VALID_DURATIONS}"));
        }
        if digits.is_empty() {
            return Err(format!("\"{s}\": expected a number at \"{rest}\"; {VALID_DURATIONS}"));
        }
        if after.starts_with(['.', ',']) {
            return Err(format!(
                "fractions are not supported in \"{s}\"; use a smaller unit, e.g. \"1500ms\" for 1.5s"
            ));
        }
        let unit_end = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(format!("\"{s}\": expected a unit right after \"{digits}\"; {VALID_DURATIONS}"));
        }
        let Some(index) = DURATION_UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!("unknown unit \"{unit}\" in \"{s}\"; {VALID_DURATIONS}"));
        };
        if previous_unit.is_some_and(|previous| previous >= index) {
            return Err(format!("\"{s}\": units must go from the largest to the smallest, each once, as in \"1h30m\""));
        }
        previous_unit = Some(index);
        let n: u128 = digits.parse().map_err(|_| too_long(s))?;
        total = n
            .checked_mul(DURATION_UNITS[index].1)
            .and_then(|nanos| total.checked_add(nanos))
            .ok_or_else(|| too_long(s))?;
        rest = after;
    }
    if total > MAX_DURATION.as_nanos() {
        return Err(too_long(s));
    }
    // Fits: total <= MAX_DURATION, whose seconds fit in u64.
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| too_long(s))?;
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| too_long(s))?;
    Ok(Duration::new(secs, nanos))
}

fn too_long(s: &str) -> String {
    format!("\"{s}\" is too long; the maximum is \"3650d\"")
}

/// Formats a duration the way [`parse_duration`] reads it: `"1m30s"`, `"250ms"`, `"0s"`.
pub fn format_duration(duration: Duration) -> String {
    let mut rest = duration.as_nanos();
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, nanos) in DURATION_UNITS {
        let n = rest / nanos;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
            rest -= n * nanos;
        }
    }
    out
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"10s\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(format!("a bare number is not a duration; write \"{v}s\" (units: d, h, m, s, ms)")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!("negative duration {v}; {VALID_DURATIONS}"))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(format!("a bare number ({v}) is not a duration; {VALID_DURATIONS}")))
    }
}

/// Serde helper for `Duration` fields: `#[serde(with = "outpost_config::units::duration")]`.
pub mod duration {
    use super::*;

    /// Reads a duration string such as `"10s"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }

    /// Writes the duration as [`format_duration`] does.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(*value))
    }
}

/// Serde helper for `Option<Duration>` fields; combine with `#[serde(default)]` so that an
/// absent field is `None`.
pub mod option_duration {
    use super::*;

    /// Reads a duration string such as `"10s"` as `Some`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        deserializer.deserialize_any(DurationVisitor).map(Some)
    }

    /// Writes `Some` as [`format_duration`] does and `None` as none.
    pub fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => serializer.serialize_some(&format_duration(*d)),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("0", Ok(0)),
            ("512", Ok(512)),
            ("512B", Ok(512)),
            ("512b", Ok(512)),
            ("64KiB", Ok(64 * 1024)),
            ("64 KiB", Ok(64 * 1024)),
            ("256MiB", Ok(256 << 20)),
            ("256mib", Ok(256 << 20)),
            ("4GiB", Ok(4 << 30)),
            ("1TiB", Ok(1 << 40)),
            ("10KB", Ok(10_000)),
            ("10kB", Ok(10_000)),
            ("10MB", Ok(10_000_000)),
            ("2GB", Ok(2_000_000_000)),
            ("3TB", Ok(3_000_000_000_000)),
            (" 8MiB ", Ok(8 << 20)),
            ("18446744073709551615", Ok(u64::MAX)),
            ("", Err("empty size")),
            ("-1MiB", Err("negative size")),
            ("1.5MiB", Err("fractions are not supported")),
            ("MiB", Err("does not start with a number")),
            ("64M", Err("unknown unit \"M\"")),
            ("64 potatoes", Err("unknown unit \"potatoes\"")),
            ("64MiBs", Err("KiB, MiB, GiB, TiB")),
            ("18446744073709551616", Err("too large")),
            ("16777216TiB", Err("too large")),
            ("99999999999999999999999999999GB", Err("too large")),
            ("1\u{e9}", Err("unknown unit")),
        ];
        for (input, expected) in cases {
            match (input.parse::<ByteSize>(), expected) {
                (Ok(size), Ok(bytes)) => assert_eq!(size.as_u64(), *bytes, "{input}"),
                (Err(message), Err(fragment)) => {
                    assert!(message.contains(fragment), "{input}: {message}")
                }
                (got, _) => panic!("{input}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn byte_sizes_display_in_the_largest_exact_unit() {
        let cases = [
            (0, "0B"),
            (1, "1B"),
            (1500, "1500B"),
            (1000, "1KB"),
            (1024, "1KiB"),
            (64 << 20, "64MiB"),
            (3 << 30, "3GiB"),
            (1 << 40, "1TiB"),
            (2_000_000, "2MB"),
            (2_000_000_000, "2GB"),
            (1_024_000, "1000KiB"),
            (u64::MAX, "18446744073709551615B"),
        ];
        for (bytes, text) in cases {
            assert_eq!(ByteSize(bytes).to_string(), text);
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "round trip {text}");
        }
    }

    #[test]
    fn byte_size_constructors_and_conversions() {
        assert_eq!(ByteSize::kib(32), ByteSize(32 * 1024));
        assert_eq!(ByteSize::mib(1), ByteSize(1 << 20));
        assert_eq!(ByteSize::gib(1), ByteSize(1 << 30));
        assert_eq!(ByteSize::gib(u64::MAX), ByteSize(u64::MAX));
        assert_eq!(ByteSize::b(7).as_usize(), 7);
    }

    #[derive(Debug, Deserialize)]
    struct Sized {
        size: ByteSize,
    }

    #[test]
    fn byte_sizes_deserialize_from_strings_and_integers() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("size = \"64KiB\"", Ok(64 * 1024)),
            ("size = 4096", Ok(4096)),
            ("size = 0", Ok(0)),
            ("size = -1", Err("negative size -1")),
            ("size = 1.5", Err("fractional size")),
            ("size = \"1 parsec\"", Err("unknown unit")),
            ("size = true", Err("a size such as")),
        ];
        for (input, expected) in cases {
            match (toml::from_str::<Sized>(input), expected) {
                (Ok(got), Ok(bytes)) => assert_eq!(got.size.as_u64(), *bytes, "{input}"),
                (Err(e), Err(fragment)) => assert!(e.message().contains(fragment), "{input}: {e}"),
                (got, _) => panic!("{input}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn durations_parse() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        let cases: &[(&str, Result<Duration, &str>)] = &[
            ("250ms", Ok(ms(250))),
            ("0s", Ok(s(0))),
            ("0ms", Ok(s(0))),
            ("10s", Ok(s(10))),
            ("5m", Ok(s(300))),
            ("2h", Ok(s(7200))),
            ("1d", Ok(s(86_400))),
            ("1m30s", Ok(s(90))),
            ("1h30m", Ok(s(5400))),
            ("1d2h3m4s5ms", Ok(s(93_784) + ms(5))),
            ("1s500ms", Ok(ms(1500))),
            ("7us", Ok(Duration::from_micros(7))),
            ("9ns", Ok(Duration::from_nanos(9))),
            (" 10s ", Ok(s(10))),
            ("3650d", Ok(MAX_DURATION)),
            ("10", Err("write \"10s\"")),
            ("", Err("empty duration")),
            ("-5s", Err("negative duration")),
            ("1.5s", Err("fractions are not supported")),
            ("10 s", Err("expected a unit right after \"10\"")),
            ("10sec", Err("unknown unit \"sec\"")),
            ("10S", Err("unknown unit \"S\"")),
            ("s", Err("\"s\" is not a duration")),
            ("30s1m", Err("largest to the smallest")),
            ("1m1m", Err("largest to the smallest")),
            ("3651d", Err("too long")),
            ("99999999999999999999999999999999999999999d", Err("too long")),
            ("1d\u{e9}", Err("expected a number")),
        ];
        for (input, expected) in cases {
            match (parse_duration(input), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{input}"),
                (Err(message), Err(fragment)) => {
                    assert!(message.contains(fragment), "{input}: {message}")
                }
                (got, _) => panic!("{input}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn durations_format_as_they_parse() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_millis(1500), "1s500ms"),
            (Duration::new(1, 1), "1s1ns"),
            (Duration::from_secs(30 * 86_400), "30d"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration), "round trip {text}");
        }
        // Longer than the config accepts, still formatted without panicking.
        assert_eq!(format_duration(Duration::MAX), "213503982334601d7h15s999ms999us999ns");
    }

    #[derive(Debug, Deserialize)]
    struct Timed {
        #[serde(with = "duration")]
        timeout: Duration,
        #[serde(default, with = "option_duration")]
        ttl: Option<Duration>,
    }

    #[test]
    fn durations_deserialize_from_strings_only() {
        type Expected = Result<(u64, Option<u64>), &'static str>;
        let cases: &[(&str, Expected)] = &[
            ("timeout = \"10s\"", Ok((10, None))),
            ("timeout = \"1m\"\nttl = \"1h\"", Ok((60, Some(3600)))),
            ("timeout = 10", Err("write \"10s\"")),
            ("timeout = -3", Err("negative duration -3")),
            ("timeout = 1.5", Err("bare number (1.5)")),
            ("timeout = \"soon\"", Err("\"soon\" is not a duration")),
            ("timeout = \"1s\"\nttl = 5", Err("write \"5s\"")),
        ];
        for (input, expected) in cases {
            let parsed = toml::from_str::<Timed>(input);
            match (parsed, expected) {
                (Ok(got), Ok((timeout, ttl))) => {
                    assert_eq!(got.timeout, Duration::from_secs(*timeout), "{input}");
                    assert_eq!(got.ttl, ttl.map(Duration::from_secs), "{input}");
                }
                (Err(e), Err(fragment)) => assert!(e.message().contains(fragment), "{input}: {e}"),
                (got, _) => panic!("{input}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
