//! Elasticsearch dates: parsing document values, date math, durations.
//!
//! Everything is in epoch milliseconds, UTC, as Elasticsearch stores `date` fields. Nothing here
//! reads the clock: date math takes `now` from the caller.
//!
//! - [`parse_date`]: the default `date` mapping format, `strict_date_optional_time||epoch_millis`.
//! - [`parse_date_math`] / [`parse_date_math_round_up`]: range bounds such as `now-7d/d` or
//!   `2024-01-01||+1M/d`. Use the round-up variant for `lte` and `gt` bounds, as Elasticsearch does.
//! - [`parse_duration`]: rule intervals (`5m`).
//! - [`format_millis`]: RFC 3339 output with millisecond precision.

use chrono::{
    DateTime, Datelike, Months, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeDelta, Timelike, Utc,
};

use crate::ValueRef;

/// Parse a date in the default Elasticsearch `date` format, `strict_date_optional_time||epoch_millis`,
/// into epoch milliseconds (UTC).
///
/// `strict_date_optional_time`: `yyyy`, `yyyy-MM` or `yyyy-MM-dd`, then optionally `T` and `HH`,
/// `HH:mm`, `HH:mm:ss`, `HH:mm:ss.S` (1 to 9 fraction digits, `.` or `,`; truncated to
/// milliseconds); after the minutes an optional zone `Z`, `+HH`, `+HH:mm` or `+HHmm`. No zone means
/// UTC. Every field has exactly its width and must be valid (no month 13, no February 30, no hour
/// 24). `epoch_millis`: an optional `-`, digits and an optional fraction of up to 6 digits.
pub fn parse_date(s: &str) -> Option<i64> {
    match parse_iso(s.as_bytes()) {
        Some(p) => p.to_millis(false),
        None => parse_epoch_millis(s),
    }
}

/// The epoch milliseconds of a document value of a `date` field: numbers are epoch milliseconds
/// (fractions floored, as Elasticsearch does), strings are parsed with [`parse_date`].
pub fn value_to_millis(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::I64(n) => Some(n),
        ValueRef::U64(n) => i64::try_from(n).ok(),
        ValueRef::F64(f) => {
            let f = f.floor();
            // `i64::MAX as f64` rounds up to 2^63, which is out of range.
            (f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
        }
        ValueRef::Str(s) => parse_date(s),
        ValueRef::Bool(_) => None,
    }
}

/// An invalid date-math expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateMathError {
    #[error("date math `{expr}`: cannot parse the date `{date}` (expected strict_date_optional_time or epoch_millis)")]
    BadDate { expr: String, date: String },
    #[error("date math `{expr}`: expected `+`, `-` or `/` at offset {offset}, found `{found}`")]
    ExpectedOperator { expr: String, offset: usize, found: char },
    #[error("date math `{expr}`: missing unit at offset {offset} (expected one of y M w d h H m s)")]
    MissingUnit { expr: String, offset: usize },
    #[error("date math `{expr}`: unknown unit `{unit}` at offset {offset} (expected one of y M w d h H m s)")]
    UnknownUnit { expr: String, offset: usize, unit: char },
    #[error("date math `{expr}`: rounding `/` takes a unit without a number, at offset {offset}")]
    RoundingWithNumber { expr: String, offset: usize },
    #[error("date math `{expr}`: number too large at offset {offset}")]
    NumberTooLarge { expr: String, offset: usize },
    #[error("date math `{expr}`: the date leaves the supported range at offset {offset}")]
    OutOfRange { expr: String, offset: usize },
}

/// Evaluate Elasticsearch date math, rounding down (for `gte` and `lt` bounds and general use).
///
/// The expression is `now` or `<date>||` followed by any sequence of `+N<unit>`, `-N<unit>`
/// (`N` defaults to 1) and `/<unit>` (round down to the start of the unit, UTC), or a plain date.
/// Units: `y` years, `M` months, `w` weeks, `d` days, `h`/`H` hours, `m` minutes, `s` seconds
/// (Elasticsearch date math has no `ms`). Years and months are calendar units (`2024-01-31||+1M`
/// is February 29th). Weeks start on Monday.
pub fn parse_date_math(expr: &str, now_millis: i64) -> Result<i64, DateMathError> {
    eval_date_math(expr, now_millis, false)
}

/// Evaluate date math for an inclusive upper (`lte`) or exclusive lower (`gt`) bound: rounding
/// `/<unit>` goes to the last millisecond of the unit (`now/d` -> `23:59:59.999`), and a plain
/// date without `||` has its missing time components filled with their maximum
/// (`2024-05-01` -> `2024-05-01T23:59:59.999Z`; month and day still default to 01), as
/// Elasticsearch does.
pub fn parse_date_math_round_up(expr: &str, now_millis: i64) -> Result<i64, DateMathError> {
    eval_date_math(expr, now_millis, true)
}

fn eval_date_math(expr: &str, now_millis: i64, round_up: bool) -> Result<i64, DateMathError> {
    let bad_date = |date: &str| DateMathError::BadDate { expr: expr.to_string(), date: date.to_string() };
    let (anchor, math, math_offset) = if let Some(rest) = expr.strip_prefix("now") {
        (now_millis, rest, 3)
    } else if let Some(idx) = expr.find("||") {
        let date = &expr[..idx];
        (parse_date(date).ok_or_else(|| bad_date(date))?, &expr[idx + 2..], idx + 2)
    } else {
        let ms = match parse_iso(expr.as_bytes()) {
            Some(p) => p.to_millis(round_up),
            None => parse_epoch_millis(expr),
        };
        return ms.ok_or_else(|| bad_date(expr));
    };
    let mut t = DateTime::<Utc>::from_timestamp_millis(anchor)
        .ok_or(DateMathError::OutOfRange { expr: expr.to_string(), offset: 0 })?;
    let b = math.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let op_at = math_offset + i;
        let op = b[i];
        if !matches!(op, b'+' | b'-' | b'/') {
            let found = math[i..].chars().next().unwrap_or('?');
            return Err(DateMathError::ExpectedOperator { expr: expr.to_string(), offset: op_at, found });
        }
        i += 1;
        let num_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let has_num = i > num_start;
        let num: i64 = if has_num {
            math[num_start..i].parse().map_err(|_| DateMathError::NumberTooLarge {
                expr: expr.to_string(),
                offset: math_offset + num_start,
            })?
        } else {
            1
        };
        let unit_at = math_offset + i;
        let Some(&u) = b.get(i) else {
            return Err(DateMathError::MissingUnit { expr: expr.to_string(), offset: unit_at });
        };
        let unit = match u {
            b'y' => Unit::Year,
            b'M' => Unit::Month,
            b'w' => Unit::Week,
            b'd' => Unit::Day,
            b'h' | b'H' => Unit::Hour,
            b'm' => Unit::Minute,
            b's' => Unit::Second,
            b'+' | b'-' | b'/' => return Err(DateMathError::MissingUnit { expr: expr.to_string(), offset: unit_at }),
            _ => {
                let unit = math[i..].chars().next().unwrap_or('?');
                return Err(DateMathError::UnknownUnit { expr: expr.to_string(), offset: unit_at, unit });
            }
        };
        i += 1;
        let out_of_range = || DateMathError::OutOfRange { expr: expr.to_string(), offset: op_at };
        t = if op == b'/' {
            if has_num {
                return Err(DateMathError::RoundingWithNumber { expr: expr.to_string(), offset: op_at });
            }
            round(t, unit, round_up).ok_or_else(out_of_range)?
        } else {
            let n = if op == b'-' { num.checked_neg().ok_or_else(out_of_range)? } else { num };
            add(t, unit, n).ok_or_else(out_of_range)?
        };
    }
    Ok(t.timestamp_millis())
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
}

fn add_months(t: DateTime<Utc>, months: i64) -> Option<DateTime<Utc>> {
    let m = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    if months >= 0 {
        t.checked_add_months(m)
    } else {
        t.checked_sub_months(m)
    }
}

fn add(t: DateTime<Utc>, unit: Unit, n: i64) -> Option<DateTime<Utc>> {
    let delta = match unit {
        Unit::Year => return add_months(t, n.checked_mul(12)?),
        Unit::Month => return add_months(t, n),
        Unit::Week => TimeDelta::try_weeks(n)?,
        Unit::Day => TimeDelta::try_days(n)?,
        Unit::Hour => TimeDelta::try_hours(n)?,
        Unit::Minute => TimeDelta::try_minutes(n)?,
        Unit::Second => TimeDelta::try_seconds(n)?,
    };
    t.checked_add_signed(delta)
}

/// Round down to the start of `unit`, or with `up` to its last millisecond.
fn round(t: DateTime<Utc>, unit: Unit, up: bool) -> Option<DateTime<Utc>> {
    let n = t.naive_utc();
    let date = n.date();
    let start_date = match unit {
        Unit::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1)?,
        Unit::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?,
        Unit::Week => date.checked_sub_signed(TimeDelta::days(i64::from(date.weekday().num_days_from_monday())))?,
        _ => date,
    };
    let (h, m, s) = (n.time().hour(), n.time().minute(), n.time().second());
    let start_time = match unit {
        Unit::Year | Unit::Month | Unit::Week | Unit::Day => NaiveTime::MIN,
        Unit::Hour => NaiveTime::from_hms_opt(h, 0, 0)?,
        Unit::Minute => NaiveTime::from_hms_opt(h, m, 0)?,
        Unit::Second => NaiveTime::from_hms_opt(h, m, s)?,
    };
    let start = NaiveDateTime::new(start_date, start_time).and_utc();
    if up {
        add(start, unit, 1)?.checked_sub_signed(TimeDelta::milliseconds(1))
    } else {
        Some(start)
    }
}

/// Parse a rule interval such as `30s`, `5m`, `1h`, `1d`, `2w` or `500ms` into milliseconds.
/// Digits then one unit, nothing else; `None` when malformed or too large.
pub fn parse_duration(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    if split == 0 {
        return None;
    }
    let n: i64 = s[..split].parse().ok()?;
    let unit_ms: i64 = match &s[split..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

/// Format epoch milliseconds as RFC 3339 UTC with millisecond precision
/// (`2024-05-01T12:00:00.000Z`). Values outside chrono's range (beyond ±262,000 years) are
/// returned as the plain number.
pub fn format_millis(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => ms.to_string(),
    }
}

/// Format epoch microseconds as RFC 3339 UTC with microsecond precision
/// (`2026-05-01T01:46:40.004000Z`), as Packetbeat writes event times.
pub fn format_micros(us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => us.to_string(),
    }
}

/// The calendar parts of a UTC instant (epoch ms): year, month (1-12), day (1-31), hour, minute
/// and ISO 8601 week number; `None` outside chrono's range.
pub fn utc_parts(ms: i64) -> Option<UtcParts> {
    use chrono::{Datelike, Timelike};
    let t = DateTime::<Utc>::from_timestamp_millis(ms)?;
    Some(UtcParts {
        year: i64::from(t.year()),
        month: i64::from(t.month()),
        day: i64::from(t.day()),
        hour: i64::from(t.hour()),
        minute: i64::from(t.minute()),
        iso_week: i64::from(t.iso_week().week()),
    })
}

/// See [`utc_parts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcParts {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub iso_week: i64,
}

/// The components of a `strict_date_optional_time` value; `None` where absent.
#[derive(Debug, Clone, Copy)]
struct IsoParts {
    year: i32,
    month: Option<u32>,
    day: Option<u32>,
    hour: Option<u32>,
    minute: Option<u32>,
    second: Option<u32>,
    nanos: Option<u32>,
    offset_secs: i32,
}

impl IsoParts {
    /// Epoch millis; with `round_up`, missing time components take their maximum.
    fn to_millis(self, round_up: bool) -> Option<i64> {
        let date = NaiveDate::from_ymd_opt(self.year, self.month.unwrap_or(1), self.day.unwrap_or(1))?;
        let (h, m, s, ns) = if round_up { (23, 59, 59, 999_999_999) } else { (0, 0, 0, 0) };
        let time = NaiveTime::from_hms_nano_opt(
            self.hour.unwrap_or(h),
            self.minute.unwrap_or(m),
            self.second.unwrap_or(s),
            self.nanos.unwrap_or(ns),
        )?;
        let local = NaiveDateTime::new(date, time).and_utc().timestamp_millis();
        local.checked_sub(i64::from(self.offset_secs) * 1000)
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0u32, |acc, c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
}

fn parse_iso(b: &[u8]) -> Option<IsoParts> {
    let year = i32::try_from(digits(b, 0, 4)?).ok()?;
    let mut p =
        IsoParts { year, month: None, day: None, hour: None, minute: None, second: None, nanos: None, offset_secs: 0 };
    let mut i = 4;
    if i == b.len() {
        return Some(p);
    }
    if b[i] != b'-' {
        return None;
    }
    p.month = Some(digits(b, i + 1, 2)?);
    i += 3;
    if i == b.len() {
        return valid_date(p);
    }
    if b[i] != b'-' {
        return None;
    }
    p.day = Some(digits(b, i + 1, 2)?);
    i += 3;
    if i == b.len() {
        return valid_date(p);
    }
    if b[i] != b'T' {
        return None;
    }
    i += 1;
    if i == b.len() {
        return valid_date(p);
    }
    p.hour = Some(digits(b, i, 2)?);
    i += 2;
    if i == b.len() {
        return valid_date(p);
    }
    if b[i] != b':' {
        return None;
    }
    p.minute = Some(digits(b, i + 1, 2)?);
    i += 3;
    if b.get(i) == Some(&b':') {
        p.second = Some(digits(b, i + 1, 2)?);
        i += 3;
        if matches!(b.get(i), Some(b'.' | b',')) {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let n = i - start;
            if n == 0 || n > 9 {
                return None;
            }
            let frac = digits(b, start, n)?;
            p.nanos = Some(frac * 10u32.pow(9 - u32::try_from(n).ok()?));
        }
    }
    if i < b.len() {
        p.offset_secs = parse_offset(&b[i..])?;
    }
    valid_date(p)
}

/// `Z`, `+HH`, `+HH:mm`, `+HHmm` (or `-`), the whole remaining input.
fn parse_offset(b: &[u8]) -> Option<i32> {
    if b == b"Z" {
        return Some(0);
    }
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h = digits(b, 1, 2)?;
    let m = match b.len() {
        3 => 0,
        5 => digits(b, 3, 2)?,
        6 if b[3] == b':' => digits(b, 4, 2)?,
        _ => return None,
    };
    if h > 18 || m > 59 || (h == 18 && m > 0) {
        return None;
    }
    Some(sign * i32::try_from(h * 3600 + m * 60).ok()?)
}

fn valid_date(p: IsoParts) -> Option<IsoParts> {
    // Range-check every present component (round-up fills must not hide an invalid input).
    NaiveDate::from_ymd_opt(p.year, p.month.unwrap_or(1), p.day.unwrap_or(1))?;
    NaiveTime::from_hms_nano_opt(
        p.hour.unwrap_or(0),
        p.minute.unwrap_or(0),
        p.second.unwrap_or(0),
        p.nanos.unwrap_or(0),
    )?;
    // `from_hms_nano_opt` accepts leap-second nanos above 1e9 only for second 59; we never build those.
    Some(p)
}

/// `epoch_millis`: `-?\d+(\.\d{1,6})?`, fractions floored to the millisecond.
fn parse_epoch_millis(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    if int.is_empty() || !int.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut ms: i64 = int.parse().ok()?;
    let mut frac_nonzero = false;
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 6 || !f.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        frac_nonzero = f.bytes().any(|c| c != b'0');
    }
    if neg {
        ms = -ms;
        if frac_nonzero {
            ms = ms.checked_sub(1)?;
        }
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_714_564_800_000; // 2024-05-01T12:00:00.000Z (a Wednesday)

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).map(|d| d.timestamp_millis()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_dates() {
        let cases: &[(&str, Option<&str>)] = &[
            ("2024", Some("2024-01-01T00:00:00Z")),
            ("2024-05", Some("2024-05-01T00:00:00Z")),
            ("2024-05-01", Some("2024-05-01T00:00:00Z")),
            ("2024-05-01T", Some("2024-05-01T00:00:00Z")),
            ("2024-05-01T12", Some("2024-05-01T12:00:00Z")),
            ("2024-05-01T12:34", Some("2024-05-01T12:34:00Z")),
            ("2024-05-01T12:34:56", Some("2024-05-01T12:34:56Z")),
            ("2024-05-01T12:34:56Z", Some("2024-05-01T12:34:56Z")),
            ("2024-05-01T12:34:56.7", Some("2024-05-01T12:34:56.700Z")),
            ("2024-05-01T12:34:56.789", Some("2024-05-01T12:34:56.789Z")),
            ("2024-05-01T12:34:56.123456789Z", Some("2024-05-01T12:34:56.123Z")),
            ("2024-05-01T12:34:56,5Z", Some("2024-05-01T12:34:56.500Z")),
            ("2024-05-01T12:34:56+02:00", Some("2024-05-01T10:34:56Z")),
            ("2024-05-01T12:34:56+0200", Some("2024-05-01T10:34:56Z")),
            ("2024-05-01T12:34:56+02", Some("2024-05-01T10:34:56Z")),
            ("2024-05-01T12:34:56-05:30", Some("2024-05-01T18:04:56Z")),
            ("2024-05-01T12:34Z", Some("2024-05-01T12:34:00Z")),
            ("2024-05-01T00:00:00.000-01:00", Some("2024-05-01T01:00:00Z")),
            ("2024-02-29", Some("2024-02-29T00:00:00Z")),
            ("1969-12-31T23:59:59.999Z", Some("1969-12-31T23:59:59.999Z")),
            ("0000-01-01", Some("0000-01-01T00:00:00Z")),
            // epoch_millis
            ("1714564800000", Some("2024-05-01T12:00:00Z")),
            ("1714564800000.9", Some("2024-05-01T12:00:00Z")),
            ("0", Some("1970-01-01T00:00:00Z")),
            ("-1", Some("1969-12-31T23:59:59.999Z")),
            ("-1.5", Some("1969-12-31T23:59:59.998Z")),
            // invalid
            ("", None),
            ("2024-13-01", None),
            ("2023-02-29", None),
            ("2024-04-31", None),
            ("2024-05-01T24:00", None),
            ("2024-05-01T12:60", None),
            ("2024-05-01T12:34:60", None),
            ("2024-5-1", None),
            ("2024-05-01 12:00:00", None),
            ("2024-05-01T12:34:56.", None),
            ("2024-05-01T12:34:56.1234567890", None),
            ("2024-05-01T12:34:56+19:00", None),
            ("2024-05-01T12:34:56+02:0", None),
            ("2024-05-01T12:34:56z", None),
            ("2024-05-01Z", None),
            ("2024-05-01T12Z", None),
            ("2024-05-01T12:34:56ZZ", None),
            ("1.", None),
            ("1.1234567", None),
            ("--1", None),
            ("+1", None),
            (" 2024", None),
            ("99999999999999999999", None),
            ("2024-05-01T12:34:56.789Z\u{e9}", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_date(input), want.map(ms), "{input:?}");
        }
        // A 4-digit number is a year, as in Elasticsearch; longer ones are epoch millis.
        assert_eq!(parse_date("20240501"), Some(20_240_501));
    }

    #[test]
    fn document_values() {
        assert_eq!(value_to_millis(ValueRef::I64(T0)), Some(T0));
        assert_eq!(value_to_millis(ValueRef::U64(5)), Some(5));
        assert_eq!(value_to_millis(ValueRef::U64(u64::MAX)), None);
        assert_eq!(value_to_millis(ValueRef::F64(1.9)), Some(1));
        assert_eq!(value_to_millis(ValueRef::F64(-1.5)), Some(-2));
        assert_eq!(value_to_millis(ValueRef::F64(f64::NAN)), None);
        assert_eq!(value_to_millis(ValueRef::F64(1e300)), None);
        assert_eq!(value_to_millis(ValueRef::Str("2024-05-01T12:00:00Z")), Some(T0));
        assert_eq!(value_to_millis(ValueRef::Str("nope")), None);
        assert_eq!(value_to_millis(ValueRef::Bool(true)), None);
    }

    #[test]
    fn date_math_round_down() {
        let cases: &[(&str, &str)] = &[
            ("now", "2024-05-01T12:00:00Z"),
            ("now-7d", "2024-04-24T12:00:00Z"),
            ("now-9m", "2024-05-01T11:51:00Z"),
            ("now+1h", "2024-05-01T13:00:00Z"),
            ("now+1H", "2024-05-01T13:00:00Z"),
            ("now-30s", "2024-05-01T11:59:30Z"),
            ("now+d", "2024-05-02T12:00:00Z"),
            ("now/d", "2024-05-01T00:00:00Z"),
            ("now/M", "2024-05-01T00:00:00Z"),
            ("now/y", "2024-01-01T00:00:00Z"),
            ("now/w", "2024-04-29T00:00:00Z"),
            ("now/h", "2024-05-01T12:00:00Z"),
            ("now-1y/y", "2023-01-01T00:00:00Z"),
            ("now-1d/d", "2024-04-30T00:00:00Z"),
            ("now/d+1h", "2024-05-01T01:00:00Z"),
            ("now-1M", "2024-04-01T12:00:00Z"),
            ("now-2w", "2024-04-17T12:00:00Z"),
            ("2024-01-01||+1M/d", "2024-02-01T00:00:00Z"),
            ("2024-01-31||+1M", "2024-02-29T00:00:00Z"),
            ("2024-02-29||+1y", "2025-02-28T00:00:00Z"),
            ("2024-03-01||-1M", "2024-02-01T00:00:00Z"),
            ("2024-05-01T12:34:56.789Z||/s", "2024-05-01T12:34:56Z"),
            ("2024-05-01T12:34:56.789Z||/m", "2024-05-01T12:34:00Z"),
            ("2024-05-01T12:34:56.789Z||", "2024-05-01T12:34:56.789Z"),
            ("1714564800000||-1h", "2024-05-01T11:00:00Z"),
            ("2024-05-01", "2024-05-01T00:00:00Z"),
            ("2024-05-01T10:00:00+02:00", "2024-05-01T08:00:00Z"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_date_math(input, T0), Ok(ms(want)), "{input}");
        }
    }

    #[test]
    fn date_math_round_up() {
        let cases: &[(&str, &str)] = &[
            ("now", "2024-05-01T12:00:00Z"),
            ("now/d", "2024-05-01T23:59:59.999Z"),
            ("now-1d/d", "2024-04-30T23:59:59.999Z"),
            ("now/M", "2024-05-31T23:59:59.999Z"),
            ("now/y", "2024-12-31T23:59:59.999Z"),
            ("now/w", "2024-05-05T23:59:59.999Z"),
            ("now/h", "2024-05-01T12:59:59.999Z"),
            ("now/m", "2024-05-01T12:00:59.999Z"),
            ("now/s", "2024-05-01T12:00:00.999Z"),
            ("2014-11-18||/M", "2014-11-30T23:59:59.999Z"),
            ("2024-02-10||/M", "2024-02-29T23:59:59.999Z"),
            // Missing components of a plain date: time parts take their maximum, month/day 01.
            ("2024-05-01", "2024-05-01T23:59:59.999Z"),
            ("2099-12", "2099-12-01T23:59:59.999Z"),
            ("2024-05-01T10", "2024-05-01T10:59:59.999Z"),
            ("2024-05-01T10:00:00", "2024-05-01T10:00:00.999Z"),
            ("2024-05-01T10:00:00.5", "2024-05-01T10:00:00.500Z"),
            ("2024-05-01T10:00+02:00", "2024-05-01T08:00:59.999Z"),
            // ...but not an anchor before `||`.
            ("2024-05-01||", "2024-05-01T00:00:00Z"),
            ("1714564800000", "2024-05-01T12:00:00Z"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_date_math_round_up(input, T0), Ok(ms(want)), "{input}");
        }
    }

    #[test]
    fn date_math_errors() {
        let e = |s: &str| parse_date_math(s, T0).expect_err(s);
        let x = |s: &str| s.to_string();
        assert_eq!(e("now-7x"), DateMathError::UnknownUnit { expr: x("now-7x"), offset: 5, unit: 'x' });
        assert_eq!(e("now-7ms"), DateMathError::ExpectedOperator { expr: x("now-7ms"), offset: 6, found: 's' });
        assert_eq!(e("now-7"), DateMathError::MissingUnit { expr: x("now-7"), offset: 5 });
        assert_eq!(e("now-+1d"), DateMathError::MissingUnit { expr: x("now-+1d"), offset: 4 });
        assert_eq!(e("now*2d"), DateMathError::ExpectedOperator { expr: x("now*2d"), offset: 3, found: '*' });
        assert_eq!(e("now/2d"), DateMathError::RoundingWithNumber { expr: x("now/2d"), offset: 3 });
        assert_eq!(e("now-1d "), DateMathError::ExpectedOperator { expr: x("now-1d "), offset: 6, found: ' ' });
        assert_eq!(e("2024-13-01||+1d"), DateMathError::BadDate { expr: x("2024-13-01||+1d"), date: x("2024-13-01") });
        assert_eq!(e("yesterday"), DateMathError::BadDate { expr: x("yesterday"), date: x("yesterday") });
        assert_eq!(e(""), DateMathError::BadDate { expr: x(""), date: x("") });
        assert_eq!(
            e("now+99999999999999999999d"),
            DateMathError::NumberTooLarge { expr: x("now+99999999999999999999d"), offset: 4 }
        );
        assert!(matches!(e("now+9999999999y"), DateMathError::OutOfRange { offset: 3, .. }));
        assert!(matches!(e("now+9223372036854775807s"), DateMathError::OutOfRange { .. }));
        assert!(matches!(e("now-é"), DateMathError::UnknownUnit { unit: 'é', .. }));
        assert!(matches!(parse_date_math("now", i64::MAX), Err(DateMathError::OutOfRange { .. })));
        assert_eq!(
            e("now-7x").to_string(),
            "date math `now-7x`: unknown unit `x` at offset 5 (expected one of y M w d h H m s)"
        );
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<i64>)] = &[
            ("5m", Some(300_000)),
            ("1h", Some(3_600_000)),
            ("30s", Some(30_000)),
            ("1d", Some(86_400_000)),
            ("2w", Some(1_209_600_000)),
            ("250ms", Some(250)),
            ("0s", Some(0)),
            ("", None),
            ("m", None),
            ("5", None),
            ("-5m", None),
            ("5 m", None),
            ("5M", None),
            ("1.5h", None),
            ("5mm", None),
            ("99999999999999999d", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), *want, "{input:?}");
        }
    }

    #[test]
    fn formatting() {
        assert_eq!(format_millis(T0), "2024-05-01T12:00:00.000Z");
        assert_eq!(format_millis(T0 + 7), "2024-05-01T12:00:00.007Z");
        assert_eq!(format_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_millis(i64::MAX), i64::MAX.to_string());
        for s in ["2024-05-01T12:34:56.789Z", "1999-12-31T23:59:59.000Z"] {
            assert_eq!(format_millis(parse_date(s).expect(s)), s);
        }
    }
}
