//! Pandas-compatible time-series frequencies.
//!
//! [`infer_freq`] reproduces `pandas.infer_freq` (pandas 2.x, `_FrequencyInferer`) for naive,
//! strictly increasing timestamps, and [`Freq::advance`] reproduces `timestamp + k * offset` for
//! the matching pandas `DateOffset` (`Tick`, `Week`, `BusinessDay`, `MonthBegin`/`MonthEnd`,
//! `QuarterBegin`/`QuarterEnd`, `YearBegin`/`YearEnd`, their business-day variants and
//! `WeekOfMonth`). [`Freq::name`] gives the pandas alias (`"h"`, `"15min"`, `"W-SUN"`, `"QS-OCT"`,
//! ...), which is also what [`Freq`]'s `FromStr` accepts.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta, Weekday};

use super::DataError;

const NS_PER_SEC: i128 = 1_000_000_000;
const NS_PER_DAY: i128 = 86_400 * NS_PER_SEC;

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("MON", Weekday::Mon),
    ("TUE", Weekday::Tue),
    ("WED", Weekday::Wed),
    ("THU", Weekday::Thu),
    ("FRI", Weekday::Fri),
    ("SAT", Weekday::Sat),
    ("SUN", Weekday::Sun),
];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Unit of a fixed-duration frequency (pandas `Tick`; pandas 2.x treats `D` as 24 hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickUnit {
    Day,
    Hour,
    Minute,
    Second,
    Milli,
    Micro,
    Nano,
}

impl TickUnit {
    /// Largest unit first, as pandas tries them.
    const ALL: [TickUnit; 7] = [
        TickUnit::Day,
        TickUnit::Hour,
        TickUnit::Minute,
        TickUnit::Second,
        TickUnit::Milli,
        TickUnit::Micro,
        TickUnit::Nano,
    ];

    fn nanos(self) -> i128 {
        match self {
            TickUnit::Day => NS_PER_DAY,
            TickUnit::Hour => 3_600 * NS_PER_SEC,
            TickUnit::Minute => 60 * NS_PER_SEC,
            TickUnit::Second => NS_PER_SEC,
            TickUnit::Milli => 1_000_000,
            TickUnit::Micro => 1_000,
            TickUnit::Nano => 1,
        }
    }

    /// Current pandas aliases and their deprecated uppercase spellings.
    fn from_alias(alias: &str) -> Option<Self> {
        Some(match alias {
            "D" | "d" => TickUnit::Day,
            "h" | "H" => TickUnit::Hour,
            "min" | "T" => TickUnit::Minute,
            "s" | "S" => TickUnit::Second,
            "ms" | "L" => TickUnit::Milli,
            "us" | "U" => TickUnit::Micro,
            "ns" | "N" => TickUnit::Nano,
            _ => return None,
        })
    }

    fn alias(self) -> &'static str {
        match self {
            TickUnit::Day => "D",
            TickUnit::Hour => "h",
            TickUnit::Minute => "min",
            TickUnit::Second => "s",
            TickUnit::Milli => "ms",
            TickUnit::Micro => "us",
            TickUnit::Nano => "ns",
        }
    }
}

/// Which day of the month a month/quarter/year offset lands on (pandas `_day_opt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// First calendar day (`MS`, `QS`, `YS`).
    Start,
    /// Last calendar day (`ME`, `QE`, `YE`).
    End,
    /// First weekday (`BMS`, `BQS`, `BYS`).
    BusinessStart,
    /// Last weekday (`BME`, `BQE`, `BYE`).
    BusinessEnd,
}

impl Anchor {
    fn prefix(self) -> &'static str {
        match self {
            Anchor::Start => "S",
            Anchor::End => "E",
            Anchor::BusinessStart => "BS",
            Anchor::BusinessEnd => "BE",
        }
    }

    /// Day of `year`-`month` this anchor designates (pandas `get_day_of_month`).
    fn day(self, year: i32, month: u32) -> u32 {
        let dim = days_in_month(year, month);
        match self {
            Anchor::Start => 1,
            Anchor::End => dim,
            Anchor::BusinessStart => match weekday_of(year, month, 1) {
                5 => 3,
                6 => 2,
                _ => 1,
            },
            Anchor::BusinessEnd => dim - weekday_of(year, month, dim).saturating_sub(4),
        }
    }
}

/// A pandas frequency: a `DateOffset` with its multiple `n`.
///
/// `n` is the count prefix of the alias (`"15min"` is `Tick { n: 15, unit: Minute }`); values
/// produced by [`infer_freq`] and `FromStr` always have `n >= 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freq {
    /// Fixed duration: `D`, `h`, `min`, `s`, `ms`, `us`, `ns`.
    Tick { n: i64, unit: TickUnit },
    /// `W-<DAY>`: weeks anchored on a weekday (`W` is `W-SUN`).
    Week { n: i64, weekday: Weekday },
    /// `B`: business days (Monday to Friday).
    BusinessDay { n: i64 },
    /// `MS`, `ME`, `BMS`, `BME`.
    Month { n: i64, anchor: Anchor },
    /// `QS-<MON>`, `QE-<MON>`, `BQS-<MON>`, `BQE-<MON>`; `month` (1..=12) is pandas'
    /// `startingMonth`.
    Quarter { n: i64, anchor: Anchor, month: u32 },
    /// `YS-<MON>`, `YE-<MON>`, `BYS-<MON>`, `BYE-<MON>`; `month` in 1..=12.
    Year { n: i64, anchor: Anchor, month: u32 },
    /// `WOM-<week><DAY>`: the given weekday of the given week (0..=3) of each month.
    WeekOfMonth { n: i64, week: u32, weekday: Weekday },
}

impl Freq {
    /// The pandas alias of this frequency, e.g. `"h"`, `"15min"`, `"W-SUN"`, `"B"`, `"MS"`,
    /// `"QE-DEC"`, `"YS-JAN"`, `"WOM-1MON"`.
    pub fn name(&self) -> String {
        let (n, base) = match *self {
            Freq::Tick { n, unit } => (n, unit.alias().to_string()),
            Freq::Week { n, weekday } => (n, format!("W-{}", weekday_name(weekday))),
            Freq::BusinessDay { n } => (n, "B".to_string()),
            Freq::Month { n, anchor } => (n, period_alias("M", anchor)),
            Freq::Quarter { n, anchor, month } => (
                n,
                format!(
                    "{}-{}",
                    period_alias("Q", anchor),
                    MONTHS[month as usize - 1]
                ),
            ),
            Freq::Year { n, anchor, month } => (
                n,
                format!(
                    "{}-{}",
                    period_alias("Y", anchor),
                    MONTHS[month as usize - 1]
                ),
            ),
            Freq::WeekOfMonth { n, week, weekday } => {
                (n, format!("WOM-{}{}", week + 1, weekday_name(weekday)))
            }
        };
        if n == 1 {
            base
        } else {
            format!("{n}{base}")
        }
    }

    /// `t + k * offset` with pandas `DateOffset` semantics (time of day is kept). Returns `None`
    /// when the result leaves chrono's date range.
    pub fn advance(&self, t: NaiveDateTime, k: i64) -> Option<NaiveDateTime> {
        match *self {
            Freq::Tick { n, unit } => {
                let total = i128::from(n.checked_mul(k)?) * unit.nanos();
                let secs = i64::try_from(total.div_euclid(NS_PER_SEC)).ok()?;
                let nanos = total.rem_euclid(NS_PER_SEC) as u32;
                t.checked_add_signed(TimeDelta::new(secs, nanos)?)
            }
            Freq::Week { n, weekday } => {
                // pandas Week._apply: roll forward to the anchor day (which uses up one
                // week when moving forward), then move whole weeks.
                let mut weeks = n.checked_mul(k)?;
                let mut t = t;
                let current = t.weekday().num_days_from_monday() as i64;
                let target = weekday.num_days_from_monday() as i64;
                if current != target {
                    t = t.checked_add_signed(TimeDelta::days((target - current).rem_euclid(7)))?;
                    if weeks > 0 {
                        weeks -= 1;
                    }
                }
                t.checked_add_signed(TimeDelta::try_weeks(weeks)?)
            }
            Freq::BusinessDay { n } => shift_business_days(t, n.checked_mul(k)?),
            Freq::Month { n, anchor } => {
                let compare = anchor.day(t.year(), t.month());
                let months = roll_convention(t.day(), n.checked_mul(k)?, compare);
                shift_month(t, months, Some(anchor))
            }
            Freq::Quarter { n, anchor, month } => {
                let months_since = i64::from(t.month() % 3) - i64::from(month % 3);
                let quarters = roll_qtrday(t, n.checked_mul(k)?, month, anchor, 3);
                shift_month(t, quarters.checked_mul(3)? - months_since, Some(anchor))
            }
            Freq::Year { n, anchor, month } => {
                let years = roll_qtrday(t, n.checked_mul(k)?, month, anchor, 12);
                let months = years.checked_mul(12)? + i64::from(month) - i64::from(t.month());
                shift_month(t, months, Some(anchor))
            }
            Freq::WeekOfMonth { n, week, weekday } => {
                let compare = week_of_month_day(t.year(), t.month(), week, weekday);
                let months = roll_convention(t.day(), n.checked_mul(k)?, compare);
                let shifted = shift_month(t, months, Some(Anchor::Start))?;
                let day = week_of_month_day(shifted.year(), shifted.month(), week, weekday);
                shifted.with_day(day)
            }
        }
    }
}

impl fmt::Display for Freq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Freq {
    type Err = DataError;

    /// Parses a pandas alias with an optional positive count prefix: `D`, `3D`, `h`, `15min`,
    /// `s`, `ms`, `us`, `ns`, `W`, `W-MON`, `B`, `MS`, `ME`, `BMS`, `BME`, `QS[-MON]`,
    /// `QE[-MON]`, `BQS[-MON]`, `BQE[-MON]`, `YS[-MON]`, `YE[-MON]`, `BYS[-MON]`, `BYE[-MON]`,
    /// `WOM-<1..4><DAY>`, plus pandas' deprecated spellings (`H`, `T`, `S`, `L`, `U`, `N`, `M`,
    /// `Q`, `A`, `Y`, `AS`, `BM`, `BQ`, `BA`, `BY`, `BAS`).
    fn from_str(s: &str) -> Result<Self, DataError> {
        let invalid = || DataError::InvalidFrequency {
            freq: s.to_string(),
        };
        let trimmed = s.trim();
        let digits = trimmed.len()
            - trimmed
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        let n = match digits {
            0 => 1,
            _ => trimmed[..digits].parse::<i64>().map_err(|_| invalid())?,
        };
        if n < 1 {
            return Err(invalid());
        }
        let rest = &trimmed[digits..];
        let (base, suffix) = match rest.split_once('-') {
            Some((base, suffix)) => (base, Some(suffix)),
            None => (rest, None),
        };
        let month_suffix = |default: u32| match suffix {
            None => Some(default),
            Some(name) => MONTHS.iter().position(|m| *m == name).map(|i| i as u32 + 1),
        };
        if let (Some(unit), None) = (TickUnit::from_alias(base), suffix) {
            return Ok(Freq::Tick { n, unit });
        }
        let freq = match (base, suffix) {
            ("B", None) => Freq::BusinessDay { n },
            ("W", None) => Freq::Week {
                n,
                weekday: Weekday::Sun,
            },
            ("W", Some(day)) => Freq::Week {
                n,
                weekday: parse_weekday(day).ok_or_else(invalid)?,
            },
            ("WOM", Some(spec)) => {
                let week = spec
                    .get(..1)
                    .and_then(|w| w.parse::<u32>().ok())
                    .filter(|w| (1..=4).contains(w))
                    .ok_or_else(invalid)?;
                let weekday = spec.get(1..).and_then(parse_weekday).ok_or_else(invalid)?;
                Freq::WeekOfMonth {
                    n,
                    week: week - 1,
                    weekday,
                }
            }
            ("MS", None) => Freq::Month {
                n,
                anchor: Anchor::Start,
            },
            ("ME" | "M", None) => Freq::Month {
                n,
                anchor: Anchor::End,
            },
            ("BMS", None) => Freq::Month {
                n,
                anchor: Anchor::BusinessStart,
            },
            ("BME" | "BM", None) => Freq::Month {
                n,
                anchor: Anchor::BusinessEnd,
            },
            (base, _) => {
                let (anchor, quarterly, default_month) = match base {
                    "QS" => (Anchor::Start, true, 1),
                    "QE" | "Q" => (Anchor::End, true, 12),
                    "BQS" => (Anchor::BusinessStart, true, 1),
                    "BQE" | "BQ" => (Anchor::BusinessEnd, true, 12),
                    "YS" | "AS" => (Anchor::Start, false, 1),
                    "YE" | "Y" | "A" => (Anchor::End, false, 12),
                    "BYS" | "BAS" => (Anchor::BusinessStart, false, 1),
                    "BYE" | "BY" | "BA" => (Anchor::BusinessEnd, false, 12),
                    _ => return Err(invalid()),
                };
                let month = month_suffix(default_month).ok_or_else(invalid)?;
                if quarterly {
                    Freq::Quarter { n, anchor, month }
                } else {
                    Freq::Year { n, anchor, month }
                }
            }
        };
        Ok(freq)
    }
}

/// Infers the frequency of `ts` like `pandas.infer_freq`.
///
/// Returns `None` when pandas would (irregular spacing, fewer than 3 timestamps) and also when
/// `ts` is not strictly increasing, when pandas would answer business-hour `bh` (unsupported
/// here), or when pandas would produce a zero count such as `0MS` (only possible for degenerate
/// business-anchored inputs).
pub fn infer_freq(ts: &[NaiveDateTime]) -> Option<Freq> {
    if ts.len() < 3 {
        return None;
    }
    let ns: Vec<i128> = ts.iter().map(|t| to_nanos(*t)).collect();
    let diffs: Vec<i128> = ns.windows(2).map(|w| w[1] - w[0]).collect();
    if diffs.iter().any(|d| *d <= 0) {
        return None;
    }
    let deltas = unique_sorted(diffs.clone());
    let delta = deltas[0];
    if delta % NS_PER_DAY == 0 {
        return infer_daily_rule(ts, &diffs, &deltas);
    }
    if deltas.len() != 1 {
        return None;
    }
    let unit = TickUnit::ALL[1..]
        .iter()
        .copied()
        .find(|u| delta % u.nanos() == 0)?;
    Some(Freq::Tick {
        n: i64::try_from(delta / unit.nanos()).ok()?,
        unit,
    })
}

/// pandas `_FrequencyInferer._infer_daily_rule`: the smallest gap is a whole number of days.
fn infer_daily_rule(ts: &[NaiveDateTime], diffs: &[i128], deltas: &[i128]) -> Option<Freq> {
    let ydiffs = unique_sorted(
        ts.windows(2)
            .map(|w| i64::from(w[1].year() - w[0].year()))
            .collect(),
    );
    let mdiffs = unique_sorted(
        ts.windows(2)
            .map(|w| month_index(w[1]) - month_index(w[0]))
            .collect(),
    );
    let position = month_position_check(ts);

    // Annual: constant year step, a single calendar month.
    if ydiffs.len() == 1 && ts.iter().all(|t| t.month() == ts[0].month()) {
        if let Some(anchor) = position {
            return positive(ydiffs[0]).map(|n| Freq::Year {
                n,
                anchor,
                month: ts[0].month(),
            });
        }
    }
    if mdiffs.len() == 1 {
        if let Some(anchor) = position {
            // Quarterly: pandas names the anchor by `month % 3` of the first timestamp
            // (so January-based quarter starts come out as QS-OCT).
            if mdiffs[0] % 3 == 0 {
                let month = [12, 10, 11][(ts[0].month() % 3) as usize];
                return positive(mdiffs[0] / 3).map(|n| Freq::Quarter { n, anchor, month });
            }
            return positive(mdiffs[0]).map(|n| Freq::Month { n, anchor });
        }
    }
    if deltas.len() == 1 {
        let days = i64::try_from(deltas[0] / NS_PER_DAY).ok()?;
        return Some(if days % 7 == 0 {
            Freq::Week {
                n: days / 7,
                weekday: ts[0].weekday(),
            }
        } else {
            Freq::Tick {
                n: days,
                unit: TickUnit::Day,
            }
        });
    }
    if is_business_daily(ts[0], diffs, deltas) {
        return Some(Freq::BusinessDay { n: 1 });
    }
    week_of_month_rule(ts)
}

/// pandas `_is_business_daily`: gaps are exactly 1 and 3 days, 3-day gaps land on Mondays and
/// 1-day gaps on Tuesday to Friday.
fn is_business_daily(first: NaiveDateTime, diffs: &[i128], deltas: &[i128]) -> bool {
    if deltas != [NS_PER_DAY, 3 * NS_PER_DAY] {
        return false;
    }
    let mut weekday = i128::from(first.weekday().num_days_from_monday());
    diffs.iter().all(|d| {
        let shift = d.div_euclid(NS_PER_DAY);
        weekday = (weekday + shift).rem_euclid(7);
        (weekday == 0 && shift == 3) || ((1..=4).contains(&weekday) && shift == 1)
    })
}

/// pandas `_get_wom_rule`: a single weekday, all in the same week of the month (weeks 1 to 4;
/// days in a fifth week are ignored, as in pandas).
fn week_of_month_rule(ts: &[NaiveDateTime]) -> Option<Freq> {
    let weekday = ts[0].weekday();
    if ts.iter().any(|t| t.weekday() != weekday) {
        return None;
    }
    let weeks = unique_sorted(
        ts.iter()
            .map(|t| (t.day() - 1) / 7)
            .filter(|w| *w < 4)
            .collect(),
    );
    match weeks[..] {
        [week] => Some(Freq::WeekOfMonth {
            n: 1,
            week,
            weekday,
        }),
        _ => None,
    }
}

/// pandas `month_position_check`: whether every timestamp is on a calendar/business month
/// start/end (calendar end wins over business end, over calendar start, over business start).
fn month_position_check(ts: &[NaiveDateTime]) -> Option<Anchor> {
    let (mut cal_start, mut bus_start, mut cal_end, mut bus_end) = (true, true, true, true);
    for t in ts {
        let (d, wd) = (t.day(), t.weekday().num_days_from_monday());
        let dim = days_in_month(t.year(), t.month());
        cal_start &= d == 1;
        bus_start &= d == 1 || (d <= 3 && wd == 0);
        cal_end &= d == dim;
        bus_end &= d == dim || (dim - d < 3 && wd == 4);
    }
    if cal_end {
        Some(Anchor::End)
    } else if bus_end {
        Some(Anchor::BusinessEnd)
    } else if cal_start {
        Some(Anchor::Start)
    } else if bus_start {
        Some(Anchor::BusinessStart)
    } else {
        None
    }
}

/// pandas `BusinessDay._apply` / `shift_bdays` (weekend inputs roll to a weekday first).
fn shift_business_days(t: NaiveDateTime, n: i64) -> Option<NaiveDateTime> {
    let wday = i64::from(t.weekday().num_days_from_monday());
    let weeks = n.div_euclid(5);
    let mut n = n;
    if n <= 0 && wday > 4 {
        n += 1;
    }
    n -= 5 * weeks;
    let days = if n == 0 && wday > 4 {
        4 - wday
    } else if wday > 4 {
        (7 - wday) + (n - 1)
    } else if wday + n <= 4 {
        n
    } else {
        n + 2
    };
    t.checked_add_signed(TimeDelta::try_days(
        weeks.checked_mul(7)?.checked_add(days)?,
    )?)
}

/// pandas `roll_convention`: the first step of a month-based offset is "used up" by rolling
/// onto the anchor day when starting before (n > 0) or after (n <= 0) it.
fn roll_convention(day: u32, n: i64, compare: u32) -> i64 {
    if n > 0 && day < compare {
        n - 1
    } else if n <= 0 && day > compare {
        n + 1
    } else {
        n
    }
}

/// pandas `roll_qtrday` for quarter (`modby = 3`) and year (`modby = 12`) offsets.
fn roll_qtrday(t: NaiveDateTime, n: i64, month: u32, anchor: Anchor, modby: u32) -> i64 {
    let months_since = match modby {
        12 => i64::from(t.month()) - i64::from(month),
        _ => i64::from(t.month() % modby) - i64::from(month % modby),
    };
    let compare = anchor.day(t.year(), t.month());
    if n > 0 {
        if months_since < 0 || (months_since == 0 && t.day() < compare) {
            return n - 1;
        }
    } else if months_since > 0 || (months_since == 0 && t.day() > compare) {
        return n + 1;
    }
    n
}

/// pandas `shift_month`: move `months` calendar months, landing on the anchor day (or the
/// same day clipped to the month length when `anchor` is `None`), keeping the time of day.
fn shift_month(t: NaiveDateTime, months: i64, anchor: Option<Anchor>) -> Option<NaiveDateTime> {
    let total = month_index(t).checked_add(months)?;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = total.rem_euclid(12) as u32 + 1;
    let day = match anchor {
        Some(anchor) => anchor.day(year, month),
        None => t.day().min(days_in_month(year, month)),
    };
    Some(NaiveDate::from_ymd_opt(year, month, day)?.and_time(t.time()))
}

/// Day of the month of the `week`-th (0-based) `weekday` (pandas `WeekOfMonth._get_offset_day`).
fn week_of_month_day(year: i32, month: u32, week: u32, weekday: Weekday) -> u32 {
    let first = weekday_of(year, month, 1);
    1 + (weekday.num_days_from_monday() + 7 - first) % 7 + 7 * week
}

fn month_index(t: NaiveDateTime) -> i64 {
    i64::from(t.year()) * 12 + i64::from(t.month0())
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day())
}

/// Monday = 0, as in Python.
fn weekday_of(year: i32, month: u32, day: u32) -> u32 {
    NaiveDate::from_ymd_opt(year, month, day).map_or(0, |d| d.weekday().num_days_from_monday())
}

fn weekday_name(weekday: Weekday) -> &'static str {
    WEEKDAYS[weekday.num_days_from_monday() as usize].0
}

fn parse_weekday(name: &str) -> Option<Weekday> {
    WEEKDAYS.iter().find(|(n, _)| *n == name).map(|(_, w)| *w)
}

fn period_alias(period: &str, anchor: Anchor) -> String {
    let prefix = anchor.prefix();
    match prefix.strip_prefix('B') {
        Some(end) => format!("B{period}{end}"),
        None => format!("{period}{prefix}"),
    }
}

fn positive(count: i64) -> Option<i64> {
    (count > 0).then_some(count)
}

fn unique_sorted<T: Ord>(mut values: Vec<T>) -> Vec<T> {
    values.sort_unstable();
    values.dedup();
    values
}

/// Nanoseconds since the Unix epoch, without overflow for any `NaiveDateTime`.
fn to_nanos(t: NaiveDateTime) -> i128 {
    let utc = t.and_utc();
    i128::from(utc.timestamp()) * NS_PER_SEC + i128::from(utc.timestamp_subsec_nanos())
}

/// The `h` timestamps following `last` at frequency `freq` (`last + k * offset` for
/// `k = 1..=h`, as upstream's `make_future_dataframe`); `None` if they leave chrono's date range.
pub fn future_timestamps(last: NaiveDateTime, freq: &Freq, h: usize) -> Option<Vec<NaiveDateTime>> {
    (1..=h as i64).map(|k| freq.advance(last, k)).collect()
}
