//! [`Timestamp`]: a point in time as the control plane's JSON writes it, RFC 3339 in UTC with
//! milliseconds (`"2026-11-23T14:53:20.123Z"`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch; in JSON an RFC 3339 string in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `at` to the millisecond; a time before 1970 (a broken clock) counts as the epoch.
    pub fn from_system(at: SystemTime) -> Self {
        let millis = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis();
        Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` (RFC 3339 in UTC, at most millisecond precision,
    /// from 1970 on: what [`Display`](fmt::Display) writes).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("\"{text}\" is not a UTC time such as \"2026-11-23T14:53:20.123Z\"");
        let body = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')).ok_or_else(bad)?;
        let (date, time) = body.split_once(['T', 't']).ok_or_else(bad)?;
        let mut date_parts = date.splitn(3, '-');
        let mut time_parts = time.splitn(3, ':');
        let next = |it: &mut std::str::SplitN<'_, char>, digits: usize| -> Result<u64, String> {
            let part = it.next().filter(|p| p.len() == digits && p.bytes().all(|b| b.is_ascii_digit()));
            part.and_then(|p| p.parse().ok()).ok_or_else(bad)
        };
        let (year, month, day) = (next(&mut date_parts, 4)?, next(&mut date_parts, 2)?, next(&mut date_parts, 2)?);
        let (hour, minute) = (next(&mut time_parts, 2)?, next(&mut time_parts, 2)?);
        let seconds = time_parts.next().ok_or_else(bad)?;
        let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.len() != 2 || !digits(whole) || fraction.len() > 3 || !digits(fraction) {
            return Err(bad());
        }
        let second: u64 = whole.parse().map_err(|_| bad())?;
        let millis: u64 = format!("{fraction:0<3}").parse().map_err(|_| bad())?;
        let in_range = (1970..=9999).contains(&year)
            && (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day)
            && hour <= 23
            && minute <= 59
            && second <= 59;
        if !in_range {
            return Err(bad());
        }
        let days = days_from_civil(year, month, day);
        Ok(Timestamp((((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, millis) = (self.0 / 1000, self.0 % 1000);
        let (days, rest) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(days);
        let (hour, minute, second) = (rest / 3600, rest / 60 % 60, rest % 60);
        write!(f, "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date from 1970 on (H. Hinnant's
/// `days_from_civil`, unsigned because nothing here is older than the epoch).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year.saturating_sub(1) } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).saturating_sub(719_468)
}

/// The inverse of [`days_from_civil`] (H. Hinnant's `civil_from_days`): (year, month 1-12, day
/// 1-31) of a day count since 1970-01-01. Also formats the edges' access-log time.
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_rfc3339_utc() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_795_445_600_123, "2026-11-23T14:53:20.123Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
        ];
        for (millis, text) in cases {
            assert_eq!(Timestamp(millis).to_string(), text);
            assert_eq!(Timestamp::parse(text), Ok(Timestamp(millis)), "{text}");
        }
        assert_eq!(Timestamp::parse("2026-11-23T14:53:20Z"), Ok(Timestamp(1_795_445_600_000)));
        assert_eq!(Timestamp::parse("2026-11-23T14:53:20.1Z"), Ok(Timestamp(1_795_445_600_100)));
    }

    #[test]
    fn rejects_what_it_does_not_write() {
        for text in [
            "",
            "2026-11-23",
            "2026-11-23T14:53:20",
            "2026-11-23T14:53:20+01:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T14:60:00Z",
            "2026-11-23T14:53:61Z",
            "2026-11-23T14:53:20.1234Z",
            "26-11-23T14:53:20Z",
            "1969-12-31T23:59:59Z",
            "2026-11-23T14:53:2xZ",
        ] {
            assert!(Timestamp::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn round_trips_through_json() {
        let at = Timestamp(1_795_445_600_123);
        let json = serde_json::to_string(&at).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json, "\"2026-11-23T14:53:20.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).ok(), Some(at));
    }
}
