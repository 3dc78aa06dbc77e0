//! Text cells as pandas' `read_csv` reads them: missing-value tokens, numbers, booleans and
//! timestamps.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// Strings pandas' `read_csv` treats as missing by default (besides the empty field).
const NA_TOKENS: [&str; 18] = [
    "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
    "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// Whether pandas reads the field `s` as missing: the empty field or a default NA token, matched
/// exactly (`" NA"` is text).
pub(super) fn is_missing(s: &str) -> bool {
    s.is_empty() || NA_TOKENS.contains(&s)
}

/// A number as pandas' C parser reads one: decimal or scientific notation with an optional sign,
/// `inf`/`infinity` in any case, surrounding spaces allowed. NaN spellings that are not NA tokens
/// (`NAN`, `+nan`) are text to pandas and `None` here, as are hexadecimal and `1_000`.
pub(super) fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.to_ascii_lowercase().contains("nan") {
        return None;
    }
    s.parse().ok()
}

/// A boolean as pandas' C parser reads one: `true` or `false` in any case, nothing around it.
pub(super) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Parses `YYYY-MM-DD` (or `YYYY/MM/DD`), optionally followed by `T` or a space and
/// `HH:MM[:SS[.fraction]]` and a `Z` / `±HH[:MM]` suffix: the wall time as written, and the
/// suffix's offset east of UTC in seconds (`None` without one). Fractions beyond nanoseconds
/// are truncated.
pub(super) fn parse_timestamp(s: &str) -> Option<(NaiveDateTime, Option<i32>)> {
    let mut p = Cursor {
        bytes: s.trim().as_bytes(),
        pos: 0,
    };
    let year = p.number(4, 4)?;
    let sep = p.one_of(b"-/")?;
    let month = p.number(1, 2)?;
    p.one_of(&[sep])?;
    let day = p.number(1, 2)?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    if p.at_end() {
        return Some((date.and_time(NaiveTime::MIN), None));
    }
    p.one_of(b"T ")?;
    let hour = p.number(1, 2)?;
    p.one_of(b":")?;
    let minute = p.number(2, 2)?;
    let (mut second, mut nano) = (0, 0);
    if p.one_of(b":").is_some() {
        second = p.number(2, 2)?;
        if p.one_of(b".,").is_some() {
            nano = p.fraction()?;
        }
    }
    while p.one_of(b" ").is_some() {}
    let mut offset = None;
    if p.one_of(b"Z").is_some() {
        offset = Some(0);
    } else if let Some(sign) = p.one_of(b"+-") {
        let hours = p.number(2, 2)?;
        let colon = p.one_of(b":").is_some();
        let minutes = match colon || !p.at_end() {
            true => p.number(2, 2)?,
            false => 0,
        };
        let seconds = (hours * 3600 + minutes * 60) as i32;
        offset = Some(if sign == b'-' { -seconds } else { seconds });
    }
    if !p.at_end() {
        return None;
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nano)?;
    Some((date.and_time(time), offset))
}

/// An offset of [`parse_timestamp`] as written in timestamps: `+05:30`, or `none`.
pub(super) fn offset_text(offset: Option<i32>) -> String {
    match offset {
        None => "none".into(),
        Some(s) => format!(
            "{}{:02}:{:02}",
            if s < 0 { '-' } else { '+' },
            s.abs() / 3600,
            s.abs() % 3600 / 60
        ),
    }
}

struct Cursor<'s> {
    bytes: &'s [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    fn one_of(&mut self, options: &[u8]) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        options.contains(&b).then(|| {
            self.pos += 1;
            b
        })
    }

    fn digits(&mut self, max: usize) -> &[u8] {
        let rest = &self.bytes[self.pos..];
        let n = rest
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        self.pos += n;
        &rest[..n]
    }

    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let digits = self.digits(max);
        (digits.len() >= min).then(|| {
            digits
                .iter()
                .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
        })
    }

    /// Fractional seconds as nanoseconds (at least one digit; digits past the ninth are dropped).
    fn fraction(&mut self) -> Option<u32> {
        let digits = self.digits(usize::MAX);
        if digits.is_empty() {
            return None;
        }
        let nanos = digits
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(9)
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'));
        Some(nanos)
    }
}

/// Seconds east of UTC for a fixed-offset Arrow time zone (`+02:00`, `-0530`, `+01`); 0 for UTC
/// and for named zones (which would need a time-zone database).
pub(super) fn fixed_offset_seconds(tz: &str) -> i64 {
    let b = tz.as_bytes();
    let sign = match b.first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return 0,
    };
    let digits: Vec<i64> = b[1..]
        .iter()
        .filter(|c| **c != b':')
        .map(|c| i64::from(c.wrapping_sub(b'0')))
        .collect();
    match digits[..] {
        [h1, h2] if h1 < 10 && h2 < 10 => sign * (h1 * 10 + h2) * 3600,
        [h1, h2, m1, m2] if [h1, h2, m1, m2].iter().all(|d| *d < 10) => {
            sign * ((h1 * 10 + h2) * 3600 + (m1 * 10 + m2) * 60)
        }
        _ => 0,
    }
}
