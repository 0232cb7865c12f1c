//! Event timestamps: RFC 3339 or epoch milliseconds on the way in, epoch milliseconds inside.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Earliest accepted timestamp: 2000-01-01T00:00:00Z, in epoch milliseconds.
pub const MIN_MS: i64 = 946_684_800_000;
/// Latest accepted timestamp: 2200-01-01T00:00:00Z, in epoch milliseconds.
pub const MAX_MS: i64 = 7_258_118_400_000;

/// A second, a minute, an hour and a day in milliseconds: the one definition of each.
pub const SECOND_MS: i64 = 1_000;
/// See [`SECOND_MS`].
pub const MINUTE_MS: i64 = 60_000;
/// See [`SECOND_MS`].
pub const HOUR_MS: i64 = 3_600_000;
/// See [`SECOND_MS`].
pub const DAY_MS: i64 = 86_400_000;

/// A point in time as milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Timestamp(now_ms())
    }

    /// Parses RFC 3339 text (`2026-11-28T10:00:00Z`, any offset) or decimal epoch milliseconds.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(ms) = text.parse::<i64>() {
            return Self::from_ms(ms);
        }
        let parsed = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| format!("`{text}` is neither RFC 3339 nor epoch milliseconds ({e})"))?;
        Self::from_ms((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Checks that epoch milliseconds fall between the years 2000 and 2200.
    pub fn from_ms(ms: i64) -> Result<Self, String> {
        if (MIN_MS..MAX_MS).contains(&ms) {
            Ok(Timestamp(ms))
        } else {
            Err(format!(
                "{ms} is outside 2000-01-01..2200-01-01 (expected epoch milliseconds)"
            ))
        }
    }

    /// RFC 3339 text in UTC with millisecond precision.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| self.0.to_string())
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

/// Parses a query bound: RFC 3339, epoch milliseconds, `now`, or a duration before `now_ms`
/// (`90m`, `1h`, `7d`). [`MAX_MS`] itself is a bound (an exclusive `to` that includes the latest
/// accepted timestamp), though no event can carry it.
pub fn parse_bound(text: &str, now_ms: i64) -> Result<i64, String> {
    if text.trim() == "now" {
        return Ok(now_ms);
    }
    if let Ok(ts) = Timestamp::parse(text) {
        return Ok(ts.0);
    }
    let end_of_range = text.trim().parse::<i64>().ok().or_else(|| {
        OffsetDateTime::parse(text.trim(), &Rfc3339)
            .ok()
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
    });
    if end_of_range == Some(MAX_MS) {
        return Ok(MAX_MS);
    }
    let ago = humantime::parse_duration(text.trim().trim_start_matches('-')).map_err(|_| {
        format!("`{text}` is not RFC 3339, epoch milliseconds, `now` or a duration like 1h")
    })?;
    Ok(now_ms - ago.as_millis() as i64)
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TimestampVisitor)
    }
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 string or epoch milliseconds")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
        Timestamp::from_ms(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
        let v = i64::try_from(v).map_err(|_| E::custom("timestamp too large"))?;
        Timestamp::from_ms(v).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
        if v.is_finite() && v.fract() == 0.0 {
            Timestamp::from_ms(v as i64).map_err(E::custom)
        } else {
            Err(E::custom(format!("{v} is not whole epoch milliseconds")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
        Timestamp::parse(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_with_offsets_and_epoch_ms() {
        assert_eq!(
            Timestamp::parse("2026-11-28T10:00:00Z").unwrap().0,
            1_795_860_000_000
        );
        assert_eq!(
            Timestamp::parse("2026-11-28T12:00:00+02:00").unwrap().0,
            1_795_860_000_000
        );
        assert_eq!(
            Timestamp::parse("1795860000123").unwrap().0,
            1_795_860_000_123
        );
    }

    #[test]
    fn rejects_out_of_range_and_garbage() {
        assert!(
            Timestamp::parse("1795860000").is_err(),
            "seconds are not ms"
        );
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn json_accepts_both_forms() {
        let a: Timestamp = serde_json::from_str("\"2026-11-28T10:00:00.5Z\"").unwrap();
        let b: Timestamp = serde_json::from_str("1795860000500").unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), "1795860000500");
    }

    #[test]
    fn the_end_of_the_accepted_range_is_a_bound() {
        assert_eq!(parse_bound("7258118400000", 0), Ok(MAX_MS));
        assert_eq!(parse_bound("2200-01-01T00:00:00Z", 0), Ok(MAX_MS));
        assert!(parse_bound("7258118400001", 0).is_err());
        assert!(Timestamp::from_ms(MAX_MS).is_err(), "no event carries it");
    }

    #[test]
    fn bounds_accept_durations() {
        let now = 1_795_860_000_000;
        assert_eq!(parse_bound("1h", now).unwrap(), now - 3_600_000);
        assert_eq!(parse_bound("7d", now).unwrap(), now - 7 * 86_400_000);
        assert_eq!(parse_bound("1795860000000", now).unwrap(), now);
        assert!(parse_bound("soon", now).is_err());
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(
            Timestamp(1_795_860_000_000).to_rfc3339(),
            "2026-11-28T10:00:00Z"
        );
    }
}
