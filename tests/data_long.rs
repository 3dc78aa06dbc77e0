//! Long-format tables: pandas frequency inference and offsets, CSV/Parquet reading and writing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::array::{
    ArrayRef, Date32Array, DictionaryArray, Float32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Int32Type, TimeUnit};
use chrono::{Datelike, NaiveDate, NaiveDateTime};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use chronos::data::{
    common_freq, future_timestamps, infer_freq, read_long, write_forecasts, Anchor, Columns,
    DataError, ForecastTable, Freq, Series, TickUnit,
};

fn ts(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap())
        })
        .unwrap_or_else(|e| panic!("bad test timestamp {s}: {e}"))
}

fn tss(items: &[&str]) -> Vec<NaiveDateTime> {
    items.iter().map(|s| ts(s)).collect()
}

/// `n` timestamps from `start`, each `step(previous)`.
fn generate(start: &str, n: usize, freq: &Freq) -> Vec<NaiveDateTime> {
    let start = ts(start);
    (0..n as i64)
        .map(|k| freq.advance(start, k).unwrap())
        .collect()
}

fn inferred(items: &[&str]) -> Option<String> {
    infer_freq(&tss(items)).map(|f| f.name())
}

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut writer =
        ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn series(id: &str, items: &[&str]) -> Series {
    Series {
        id: id.into(),
        timestamps: tss(items),
        values: vec![0.0; items.len()],
    }
}

fn err_text<T: std::fmt::Debug>(result: Result<T, DataError>) -> String {
    result.unwrap_err().to_string()
}

// ---------------------------------------------------------------- frequency inference

#[test]
fn infers_fixed_ticks() {
    assert_eq!(
        inferred(&[
            "2020-01-01 00:00:00",
            "2020-01-01 01:00:00",
            "2020-01-01 02:00:00"
        ]),
        Some("h".into())
    );
    assert_eq!(
        inferred(&[
            "2020-01-01 00:00:00",
            "2020-01-01 00:15:00",
            "2020-01-01 00:30:00"
        ]),
        Some("15min".into())
    );
    assert_eq!(
        inferred(&[
            "2020-01-01 00:00:00",
            "2020-01-01 02:00:00",
            "2020-01-01 04:00:00"
        ]),
        Some("2h".into())
    );
    assert_eq!(
        inferred(&[
            "2020-01-01 00:00:00",
            "2020-01-01 01:30:00",
            "2020-01-01 03:00:00"
        ]),
        Some("90min".into())
    );
    assert_eq!(
        inferred(&[
            "2020-01-01 00:00:00",
            "2020-01-01 00:00:30",
            "2020-01-01 00:01:00"
        ]),
        Some("30s".into())
    );
    let millis = [0, 250, 500].map(|ms| ts("2020-01-01") + chrono::TimeDelta::milliseconds(ms));
    assert_eq!(infer_freq(&millis).map(|f| f.name()), Some("250ms".into()));
    let nanos = [0, 7, 14].map(|ns| ts("2020-01-01") + chrono::TimeDelta::nanoseconds(ns));
    assert_eq!(infer_freq(&nanos).map(|f| f.name()), Some("7ns".into()));
    // Crossing a month, a year and a leap day changes nothing for fixed ticks.
    assert_eq!(
        inferred(&[
            "2020-02-28 23:00:00",
            "2020-02-29 23:00:00",
            "2020-03-01 23:00:00"
        ]),
        Some("D".into())
    );
}

#[test]
fn infers_daily_and_multiples() {
    // pandas test_day_corner
    assert_eq!(
        inferred(&["2000-01-01", "2000-01-02", "2000-01-03"]),
        Some("D".into())
    );
    assert_eq!(
        inferred(&["2020-12-30", "2021-01-02", "2021-01-05", "2021-01-08"]),
        Some("3D".into())
    );
    assert_eq!(
        infer_freq(&tss(&["2020-12-30", "2021-01-02", "2021-01-05"])),
        Some(Freq::Tick {
            n: 3,
            unit: TickUnit::Day
        })
    );
}

#[test]
fn infers_weekly_anchored_on_first_weekday() {
    // 2024-01-07 is a Sunday, 2024-01-03 a Wednesday; pandas test: W-SAT for Saturdays.
    assert_eq!(
        inferred(&["2024-01-07", "2024-01-14", "2024-01-21", "2024-01-28"]),
        Some("W-SUN".into())
    );
    assert_eq!(
        inferred(&["2024-01-03", "2024-01-10", "2024-01-17"]),
        Some("W-WED".into())
    );
    assert_eq!(
        inferred(&["2010-12-25", "2011-01-01", "2011-01-08"]),
        Some("W-SAT".into())
    );
    assert_eq!(
        inferred(&["2024-01-03", "2024-01-17", "2024-01-31"]),
        Some("2W-WED".into())
    );
}

#[test]
fn infers_business_days_only_with_weekend_gaps_on_mondays() {
    // pandas test_business_daily: Fri, Mon, Tue
    assert_eq!(
        inferred(&["1999-01-01", "1999-01-04", "1999-01-05"]),
        Some("B".into())
    );
    let weekdays = generate("2024-01-03", 20, &Freq::BusinessDay { n: 1 });
    assert_eq!(weekdays[3], ts("2024-01-08"), "Wed, Thu, Fri, then Mon");
    assert_eq!(infer_freq(&weekdays), Some(Freq::BusinessDay { n: 1 }));
    // pandas test_business_daily_look_alike: the 3-day gap ends on a Sunday.
    assert_eq!(inferred(&["1998-12-31", "1999-01-03", "1999-01-04"]), None);
    // A missing Wednesday makes it irregular.
    assert_eq!(
        inferred(&["2024-01-08", "2024-01-09", "2024-01-11", "2024-01-12"]),
        None
    );
}

#[test]
fn infers_month_start_and_end() {
    assert_eq!(
        inferred(&["2020-11-01", "2020-12-01", "2021-01-01", "2021-02-01"]),
        Some("MS".into())
    );
    // Month ends including a leap February (pandas test_monthly_ambiguous).
    assert_eq!(
        inferred(&["2000-01-31", "2000-02-29", "2000-03-31"]),
        Some("ME".into())
    );
    assert_eq!(
        inferred(&["2021-01-31", "2021-02-28", "2021-03-31", "2021-04-30"]),
        Some("ME".into())
    );
    assert_eq!(
        inferred(&["2021-01-01", "2021-03-01", "2021-05-01", "2021-07-01"]),
        Some("2MS".into())
    );
    // The 28th of each month is neither a start nor an end.
    assert_eq!(inferred(&["2021-01-28", "2021-02-28", "2021-03-28"]), None);
    // Time of day does not matter for the month position.
    assert_eq!(
        inferred(&[
            "2021-01-01 06:00:00",
            "2021-02-01 06:00:00",
            "2021-03-01 06:00:00"
        ]),
        Some("MS".into())
    );
    // Business month end: last weekday of each month (2024-03-29 and 2024-06-28 are Fridays).
    assert_eq!(
        inferred(&["2024-03-29", "2024-04-30", "2024-05-31", "2024-06-28"]),
        Some("BME".into())
    );
}

#[test]
fn infers_quarters_with_pandas_anchor_naming() {
    // pandas names quarterly anchors by `month % 3` of the first stamp: Jan/Apr/Jul/Oct -> OCT.
    assert_eq!(
        inferred(&["2020-01-01", "2020-04-01", "2020-07-01", "2020-10-01"]),
        Some("QS-OCT".into())
    );
    assert_eq!(
        inferred(&["2020-03-01", "2020-06-01", "2020-09-01"]),
        Some("QS-DEC".into())
    );
    assert_eq!(
        inferred(&["2020-03-31", "2020-06-30", "2020-09-30", "2020-12-31"]),
        Some("QE-DEC".into())
    );
    assert_eq!(
        inferred(&["2009-01-31", "2009-04-30", "2009-07-31"]),
        Some("QE-OCT".into())
    );
    assert_eq!(
        inferred(&["2020-02-29", "2020-08-31", "2021-02-28"]),
        Some("2QE-NOV".into())
    );
    assert_eq!(
        infer_freq(&tss(&["2020-03-31", "2020-06-30", "2020-09-30"])),
        Some(Freq::Quarter {
            n: 1,
            anchor: Anchor::End,
            month: 12
        })
    );
}

#[test]
fn infers_years_with_anchor_month() {
    assert_eq!(
        inferred(&["2009-01-01", "2010-01-01", "2011-01-01"]),
        Some("YS-JAN".into())
    );
    assert_eq!(
        inferred(&["2018-12-31", "2019-12-31", "2020-12-31"]),
        Some("YE-DEC".into())
    );
    // pandas test_annual_ambiguous
    assert_eq!(
        inferred(&["2000-01-31", "2001-01-31", "2002-01-31"]),
        Some("YE-JAN".into())
    );
    assert_eq!(
        inferred(&["2000-07-01", "2002-07-01", "2004-07-01"]),
        Some("2YS-JUL".into())
    );
    // February ends across leap and common years.
    assert_eq!(
        inferred(&["2019-02-28", "2020-02-29", "2021-02-28"]),
        Some("YE-FEB".into())
    );
}

#[test]
fn infers_week_of_month_like_pandas() {
    // First Monday of each month.
    assert_eq!(
        inferred(&["2024-01-01", "2024-02-05", "2024-03-04", "2024-04-01"]),
        Some("WOM-1MON".into())
    );
    // pandas test_fifth_week_of_month_infer and test_week_of_month_fake
    assert_eq!(inferred(&["2014-03-31", "2014-06-30", "2015-03-30"]), None);
    assert_eq!(
        inferred(&["2013-08-27", "2013-10-01", "2013-10-29", "2013-11-26"]),
        None
    );
}

#[test]
fn irregular_or_short_or_unsorted_series_have_no_frequency() {
    assert_eq!(inferred(&["2020-01-01", "2020-01-02", "2020-01-04"]), None);
    assert_eq!(
        inferred(&[
            "2020-01-01 00:00:00",
            "2020-01-01 01:00:00",
            "2020-01-01 03:00:00"
        ]),
        None
    );
    assert_eq!(inferred(&["2020-01-01", "2020-01-02"]), None);
    assert_eq!(inferred(&["2020-01-03", "2020-01-02", "2020-01-01"]), None);
    assert_eq!(inferred(&["2020-01-01", "2020-01-01", "2020-01-02"]), None);
}

#[test]
fn inference_inverts_generation_for_many_frequencies() {
    let cases = [
        ("2019-12-30 22:00:00", "h"),
        ("2019-12-31 23:45:00", "15min"),
        ("2019-12-28", "D"),
        ("2019-12-29", "W-SUN"),
        ("2020-01-01", "W-WED"),
        ("2019-12-26", "B"),
        ("2019-11-01", "MS"),
        ("2019-11-30", "ME"),
        ("2019-11-29", "BME"),
        ("2019-10-01", "QS-OCT"),
        ("2019-09-30", "QE-DEC"),
        ("2016-01-01", "YS-JAN"),
        ("2016-12-31", "YE-DEC"),
        ("2016-06-30", "YE-JUN"),
        ("2019-12-02", "WOM-1MON"),
        ("2019-11-01", "BMS"),
        ("2021-12-31", "BQE-DEC"),
        ("2016-01-01", "BYS-JAN"),
    ];
    for (start, name) in cases {
        let freq: Freq = name.parse().unwrap();
        assert_eq!(freq.name(), name);
        let stamps = generate(start, 12, &freq);
        assert_eq!(infer_freq(&stamps), Some(freq), "{name} from {start}");
    }
}

// ---------------------------------------------------------------- aliases and offsets

#[test]
fn parses_pandas_aliases() {
    let cases = [
        ("h", "h"),
        ("H", "h"),
        ("15min", "15min"),
        ("15T", "15min"),
        ("s", "s"),
        ("ms", "ms"),
        ("D", "D"),
        ("3D", "3D"),
        ("W", "W-SUN"),
        ("W-MON", "W-MON"),
        ("B", "B"),
        ("MS", "MS"),
        ("M", "ME"),
        ("ME", "ME"),
        ("BM", "BME"),
        ("QS", "QS-JAN"),
        ("Q", "QE-DEC"),
        ("QE-NOV", "QE-NOV"),
        ("2QS-FEB", "2QS-FEB"),
        ("YS", "YS-JAN"),
        ("A", "YE-DEC"),
        ("YE-JUN", "YE-JUN"),
        ("BYS", "BYS-JAN"),
        ("WOM-3FRI", "WOM-3FRI"),
    ];
    for (alias, name) in cases {
        let freq: Freq = alias.parse().unwrap_or_else(|e| panic!("{alias}: {e}"));
        assert_eq!(freq.name(), name, "{alias}");
        assert_eq!(freq.to_string(), name);
    }
    assert_eq!(
        "15min".parse::<Freq>().unwrap(),
        Freq::Tick {
            n: 15,
            unit: TickUnit::Minute
        }
    );
    for bad in [
        "", "0h", "foo", "W-XYZ", "QS-FOO", "WOM-5MON", "-1D", "1.5h",
    ] {
        let err = bad.parse::<Freq>().unwrap_err();
        assert!(
            matches!(&err, DataError::InvalidFrequency { freq } if freq == bad),
            "{bad}: {err}"
        );
    }
}

#[test]
fn future_timestamps_cross_month_and_year_ends() {
    let f = |last: &str, alias: &str, h: usize| {
        future_timestamps(ts(last), &alias.parse().unwrap(), h).unwrap()
    };
    assert_eq!(
        f("2020-12-31 22:00:00", "h", 3),
        tss(&[
            "2020-12-31 23:00:00",
            "2021-01-01 00:00:00",
            "2021-01-01 01:00:00"
        ])
    );
    assert_eq!(
        f("2021-12-31 23:30:00", "15min", 2),
        tss(&["2021-12-31 23:45:00", "2022-01-01 00:00:00"])
    );
    assert_eq!(
        f("2020-02-28", "D", 3),
        tss(&["2020-02-29", "2020-03-01", "2020-03-02"])
    );
    assert_eq!(
        f("2020-12-27", "W-SUN", 2),
        tss(&["2021-01-03", "2021-01-10"])
    );
    assert_eq!(
        f("2020-11-01", "MS", 3),
        tss(&["2020-12-01", "2021-01-01", "2021-02-01"])
    );
    assert_eq!(
        f("2020-01-31", "ME", 3),
        tss(&["2020-02-29", "2020-03-31", "2020-04-30"])
    );
    assert_eq!(f("2021-01-31", "ME", 2), tss(&["2021-02-28", "2021-03-31"]));
    assert_eq!(
        f("2020-10-01", "QS-OCT", 2),
        tss(&["2021-01-01", "2021-04-01"])
    );
    assert_eq!(
        f("2020-12-31", "QE-DEC", 3),
        tss(&["2021-03-31", "2021-06-30", "2021-09-30"])
    );
    assert_eq!(
        f("2020-11-30", "QE-NOV", 2),
        tss(&["2021-02-28", "2021-05-31"])
    );
    assert_eq!(
        f("2020-01-01", "YS-JAN", 2),
        tss(&["2021-01-01", "2022-01-01"])
    );
    assert_eq!(
        f("2019-02-28", "YE-FEB", 2),
        tss(&["2020-02-29", "2021-02-28"])
    );
    // Time of day is kept by calendar offsets.
    assert_eq!(
        f("2020-01-31 12:30:00", "ME", 1),
        tss(&["2020-02-29 12:30:00"])
    );
    assert_eq!(
        f("2024-05-31", "BME", 2),
        tss(&["2024-06-28", "2024-07-31"])
    );
    assert_eq!(
        f("2024-01-01", "WOM-1MON", 2),
        tss(&["2024-02-05", "2024-03-04"])
    );
    assert!(f("2020-01-01", "D", 0).is_empty());
}

#[test]
fn business_day_steps_skip_weekends() {
    let b: Freq = "B".parse().unwrap();
    // Thursday 2024-01-04
    assert_eq!(
        future_timestamps(ts("2024-01-04"), &b, 7).unwrap(),
        tss(&[
            "2024-01-05",
            "2024-01-08",
            "2024-01-09",
            "2024-01-10",
            "2024-01-11",
            "2024-01-12",
            "2024-01-15"
        ])
    );
    // Off-anchor starts roll like pandas: Saturday + 1 business day is Monday.
    assert_eq!(b.advance(ts("2024-01-06"), 1), Some(ts("2024-01-08")));
    assert_eq!(b.advance(ts("2024-01-08"), -1), Some(ts("2024-01-05")));
    assert_eq!(b.advance(ts("2024-01-06"), 0), Some(ts("2024-01-08")));
    assert_eq!(b.advance(ts("2024-01-06"), -1), Some(ts("2024-01-05")));
    assert_eq!(b.advance(ts("2024-01-12"), 6), Some(ts("2024-01-22")));
}

#[test]
fn off_anchor_starts_roll_onto_the_anchor_first() {
    let adv = |alias: &str, t: &str, k: i64| alias.parse::<Freq>().unwrap().advance(ts(t), k);
    assert_eq!(adv("ME", "2020-01-15", 1), Some(ts("2020-01-31")));
    assert_eq!(adv("ME", "2020-01-15", -1), Some(ts("2019-12-31")));
    assert_eq!(adv("MS", "2020-01-15", 1), Some(ts("2020-02-01")));
    assert_eq!(adv("W-SUN", "2024-01-03", 1), Some(ts("2024-01-07")));
    assert_eq!(adv("W-SUN", "2024-01-03", 2), Some(ts("2024-01-14")));
    assert_eq!(adv("QS-JAN", "2020-02-15", 1), Some(ts("2020-04-01")));
    assert_eq!(adv("QS-JAN", "2020-03-15", 1), Some(ts("2020-04-01")));
    assert_eq!(adv("QE-DEC", "2020-05-10", 1), Some(ts("2020-06-30")));
    assert_eq!(adv("YE-DEC", "2020-05-10", 1), Some(ts("2020-12-31")));
    assert_eq!(adv("YS-JUL", "2020-08-01", 1), Some(ts("2021-07-01")));
}

#[test]
fn future_timestamps_report_overflow() {
    let far: Freq = "100000YS".parse().unwrap();
    assert_eq!(far.name(), "100000YS-JAN");
    assert_eq!(future_timestamps(ts("2020-01-01"), &far, 3), None);
    let next = far.advance(ts("2020-01-01"), 1).unwrap();
    assert_eq!((next.year(), next.month(), next.day()), (102020, 1, 1));
}

// ---------------------------------------------------------------- common frequency

#[test]
fn common_freq_skips_short_series_and_requires_agreement() {
    let hourly = series(
        "a",
        &[
            "2020-01-01 00:00:00",
            "2020-01-01 01:00:00",
            "2020-01-01 02:00:00",
        ],
    );
    let short = series("short", &["2020-01-01", "2020-01-05"]);
    assert_eq!(
        common_freq(&[short.clone(), hourly.clone()])
            .unwrap()
            .name(),
        "h"
    );

    let irregular = series("bad-one", &["2020-01-01", "2020-01-02", "2020-01-04"]);
    let err = common_freq(&[hourly.clone(), irregular]).unwrap_err();
    assert!(matches!(err, DataError::IrregularSeries { ref id } if id == "bad-one"));
    assert!(err.to_string().contains("bad-one"), "{err}");

    let daily = series("dd", &["2020-01-01", "2020-01-02", "2020-01-03"]);
    let err = common_freq(&[hourly, daily]).unwrap_err().to_string();
    assert!(
        err.contains("'a'") && err.contains("'dd'") && err.contains("'h'") && err.contains("'D'"),
        "{err}"
    );

    let err = common_freq(&[short]).unwrap_err();
    assert!(matches!(err, DataError::NoFrequency));
    assert!(err.to_string().contains("explicit frequency"), "{err}");
}

// ---------------------------------------------------------------- reading

#[test]
fn reads_csv_grouped_by_first_appearance_and_sorted_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        &dir,
        "input.csv",
        "extra,timestamp,item_id,target\n\
         x,2020-01-02,B,2\n\
         x,2020-01-01,B,1.5\n\
         x,2020-01-01 00:00:00,A,\n\
         x,2020-01-03,B,NaN\n\
         x,2020-01-02T00:00:00,A,-4e2\n\
         x,2020-01-03 00:00:00.000,A,NA\n\
         x,2020-01-04,B, 7 \n",
    );
    let got = read_long(&path, &Columns::default()).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, "B");
    assert_eq!(
        got[0].timestamps,
        tss(&["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04"])
    );
    assert_eq!(got[0].values[..2], [1.5, 2.0]);
    assert!(got[0].values[2].is_nan());
    assert_eq!(got[0].values[3], 7.0);
    assert_eq!(got[1].id, "A");
    assert_eq!(
        got[1].timestamps,
        tss(&["2020-01-01", "2020-01-02", "2020-01-03"])
    );
    assert!(got[1].values[0].is_nan() && got[1].values[2].is_nan());
    assert_eq!(got[1].values[1], -400.0);
    assert_eq!(common_freq(&got).unwrap().name(), "D");
}

#[test]
fn reads_csv_with_custom_columns_quotes_fractions_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        &dir,
        "custom.CSV",
        "\u{feff}ds,\"series, id\",y\n\
         2021-03-01T10:00:00.5Z,\"a,1\",1\n\
         2021-03-01 10:00:01.5+00:00,\"a,1\",2\n\
         2021/03/01 10:00:02.500000001+0000,\"a,1\",3\n",
    );
    let cols = Columns {
        id: "series, id".into(),
        timestamp: "ds".into(),
        target: "y".into(),
    };
    let got = read_long(&path, &cols).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, "a,1");
    let base = ts("2021-03-01 10:00:00");
    assert_eq!(
        got[0].timestamps,
        vec![
            base + chrono::TimeDelta::milliseconds(500),
            base + chrono::TimeDelta::milliseconds(1500),
            base + chrono::TimeDelta::nanoseconds(2_500_000_001),
        ]
    );
    assert_eq!(got[0].values, vec![1.0, 2.0, 3.0]);
    // Z, +00:00 and +0000 are one offset; another one in the column is an error (as pandas).
    let mixed = write_file(
        &dir,
        "mixed.csv",
        "ds,series,y\n2021-03-01T10:00:00Z,a,1\n2021-03-01T11:00:00+02:00,a,2\n",
    );
    let cols = Columns {
        id: "series".into(),
        timestamp: "ds".into(),
        target: "y".into(),
    };
    let err = read_long(&mixed, &cols).unwrap_err().to_string();
    assert!(
        err.contains("row 2") && err.contains("+02:00") && err.contains("+00:00"),
        "{err}"
    );
}

#[test]
fn reads_parquet_with_int_ids_utc_timestamps_and_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.parquet");
    let day = 86_400_000i64;
    let t0 = ts("2020-01-01").and_utc().timestamp_millis();
    write_parquet(
        &path,
        vec![
            (
                "item_id",
                Arc::new(Int64Array::from(vec![7, 3, 7, 3, 7])) as ArrayRef,
            ),
            (
                "timestamp",
                Arc::new(
                    TimestampMillisecondArray::from(vec![t0 + 2 * day, t0, t0, t0 + day, t0 + day])
                        .with_timezone("UTC"),
                ),
            ),
            (
                "target",
                Arc::new(Float32Array::from(vec![
                    Some(3.0),
                    Some(10.0),
                    Some(1.0),
                    None,
                    Some(2.5),
                ])),
            ),
            ("other", Arc::new(StringArray::from(vec!["a"; 5]))),
        ],
    );
    let got = read_long(&path, &Columns::default()).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, "7");
    assert_eq!(
        got[0].timestamps,
        tss(&["2020-01-01", "2020-01-02", "2020-01-03"])
    );
    assert_eq!(got[0].values, vec![1.0, 2.5, 3.0]);
    assert_eq!(got[1].id, "3");
    assert_eq!(got[1].timestamps, tss(&["2020-01-01", "2020-01-02"]));
    assert_eq!(got[1].values[0], 10.0);
    assert!(got[1].values[1].is_nan());
}

#[test]
fn reads_parquet_dates_dictionary_ids_and_fixed_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dates.parquet");
    let epoch_days =
        |s: &str| (ts(s).date() - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
    let ids: DictionaryArray<Int32Type> = vec!["s1", "s1", "s2"].into_iter().collect();
    write_parquet(
        &path,
        vec![
            ("item_id", Arc::new(ids) as ArrayRef),
            (
                "timestamp",
                Arc::new(Date32Array::from(vec![
                    epoch_days("2020-03-01"),
                    epoch_days("2020-02-01"),
                    epoch_days("2020-02-29"),
                ])),
            ),
            ("target", Arc::new(Int64Array::from(vec![1, 2, 3]))),
        ],
    );
    let got = read_long(&path, &Columns::default()).unwrap();
    assert_eq!(got[0].id, "s1");
    assert_eq!(got[0].timestamps, tss(&["2020-02-01", "2020-03-01"]));
    assert_eq!(got[0].values, vec![2.0, 1.0]);
    assert_eq!(got[1].timestamps, tss(&["2020-02-29"]));

    // A fixed-offset zone is read as local wall time.
    let path = dir.path().join("offset.parquet");
    let instant = ts("2020-01-01 00:00:00").and_utc().timestamp_millis();
    write_parquet(
        &path,
        vec![
            (
                "item_id",
                Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
            ),
            (
                "timestamp",
                Arc::new(TimestampMillisecondArray::from(vec![instant]).with_timezone("+02:00")),
            ),
            ("target", Arc::new(Float32Array::from(vec![1.0]))),
        ],
    );
    let got = read_long(&path, &Columns::default()).unwrap();
    assert_eq!(got[0].timestamps, tss(&["2020-01-01 02:00:00"]));
}

// ---------------------------------------------------------------- read errors

#[test]
fn read_errors_name_file_column_row_and_series() {
    let dir = tempfile::tempdir().unwrap();
    let cols = Columns::default();
    let header = "item_id,timestamp,target\n";

    let missing = dir.path().join("nope.csv");
    let err = read_long(&missing, &cols).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("nope.csv"), "{err}");

    let path = write_file(&dir, "data.txt", header);
    let err = err_text(read_long(&path, &cols));
    assert!(
        err.contains("data.txt") && err.contains(".parquet"),
        "{err}"
    );

    let path = write_file(&dir, "cols.csv", "id,timestamp,value\nA,2020-01-01,1\n");
    let err = read_long(&path, &cols).unwrap_err();
    assert!(matches!(err, DataError::MissingColumn { role: "id", .. }));
    let err = err.to_string();
    assert!(
        err.contains("cols.csv")
            && err.contains("'item_id'")
            && err.contains("id, timestamp, value"),
        "{err}"
    );

    let path = write_file(
        &dir,
        "text.csv",
        &format!("{header}A,2020-01-01,1\nB,2020-01-01,abc\n"),
    );
    let err = read_long(&path, &cols).unwrap_err();
    assert!(
        matches!(&err, DataError::NonNumericTarget { row: 2, id, value, .. } if id == "B" && value == "abc")
    );
    let err = err.to_string();
    assert!(
        err.contains("text.csv") && err.contains("'target'") && err.contains("'B'"),
        "{err}"
    );

    let path = write_file(
        &dir,
        "ts.csv",
        &format!("{header}A,2020-01-01,1\nA,2020-13-01,2\n"),
    );
    let err = read_long(&path, &cols).unwrap_err();
    assert!(matches!(&err, DataError::BadTimestamp { row: 2, .. }));
    let err = err.to_string();
    assert!(
        err.contains("ts.csv")
            && err.contains("2020-13-01")
            && err.contains("'A'")
            && err.contains("'timestamp'"),
        "{err}"
    );

    let path = write_file(&dir, "nots.csv", &format!("{header}A,,1\n"));
    let err = err_text(read_long(&path, &cols));
    assert!(
        err.contains("nots.csv") && err.contains("row 1") && err.contains("'A'"),
        "{err}"
    );

    let path = write_file(
        &dir,
        "noid.csv",
        &format!("{header}A,2020-01-01,1\n,2020-01-02,1\n"),
    );
    let err = read_long(&path, &cols).unwrap_err();
    assert!(matches!(err, DataError::MissingId { row: 2, .. }), "{err}");

    let path = write_file(
        &dir,
        "dup.csv",
        &format!(
            "{header}A,2020-01-01,1\nZ,2020-01-02,1\nZ,2020-01-01,1\nZ,2020-01-02 00:00:00,2\n"
        ),
    );
    let err = read_long(&path, &cols).unwrap_err();
    assert!(matches!(&err, DataError::DuplicateTimestamp { id, .. } if id == "Z"));
    let err = err.to_string();
    assert!(
        err.contains("dup.csv") && err.contains("'Z'") && err.contains("2020-01-02"),
        "{err}"
    );

    let path = write_file(&dir, "empty.csv", header);
    let err = read_long(&path, &cols).unwrap_err();
    assert!(matches!(err, DataError::EmptyTable { .. }));
    assert!(err.to_string().contains("empty.csv"));

    let path = write_file(&dir, "ragged.csv", &format!("{header}A,2020-01-01\n"));
    let err = read_long(&path, &cols).unwrap_err();
    assert!(matches!(err, DataError::Arrow { .. }));
    assert!(err.to_string().contains("ragged.csv"), "{err}");

    let path = dir.path().join("strtarget.parquet");
    write_parquet(
        &path,
        vec![
            (
                "item_id",
                Arc::new(StringArray::from(vec!["A"])) as ArrayRef,
            ),
            ("timestamp", Arc::new(StringArray::from(vec!["2020-01-01"]))),
            ("target", Arc::new(StringArray::from(vec!["1.0"]))),
        ],
    );
    let err = read_long(&path, &cols).unwrap_err();
    assert!(matches!(err, DataError::ColumnType { role: "target", .. }));
    let err = err.to_string();
    assert!(
        err.contains("strtarget.parquet") && err.contains("'target'"),
        "{err}"
    );

    let path = write_file(&dir, "garbage.parquet", "not parquet");
    let err = read_long(&path, &cols).unwrap_err();
    assert!(matches!(err, DataError::Parquet { .. }));
    assert!(err.to_string().contains("garbage.parquet"), "{err}");
}

// ---------------------------------------------------------------- writing

/// Two daily series ("B" ends 2020-01-03, "A, Inc." ends 2020-01-02), forecast 2 steps ahead.
fn sample_table() -> ForecastTable {
    let inputs = [
        series("B", &["2020-01-02", "2020-01-03"]),
        series("A, Inc.", &["2020-01-01", "2020-01-02"]),
    ];
    let predictions = [1.5, 0.1, f32::NAN, 1.0 / 3.0];
    let quantiles = [
        [1.0, 1.5, 2.0, 0.5, 0.25],
        [0.0, 0.1, f32::NAN, -1e-7, 3e20],
        [0.0; 5],
        [0.0; 5],
    ];
    ForecastTable::new(
        &inputs,
        &"D".parse().unwrap(),
        2,
        "target",
        predictions.to_vec(),
        &[0.1, 0.5, 0.9, 0.05, 1e-5],
        quantiles.concat(),
    )
    .unwrap()
}

#[test]
fn writes_csv_like_pandas_to_csv() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    write_forecasts(&path, &Columns::default(), &sample_table()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        vec![
            "item_id,timestamp,target_name,predictions,0.1,0.5,0.9,0.05,1e-05",
            "B,2020-01-04,target,1.5,1,1.5,2,0.5,0.25",
            "B,2020-01-05,target,0.1,0,0.1,,-0.0000001,300000000000000000000",
            "\"A, Inc.\",2020-01-03,target,,0,0,0,0,0",
            "\"A, Inc.\",2020-01-04,target,0.33333334,0,0,0,0,0",
        ]
    );
    // Every float parses back to the identical f32.
    assert_eq!("0.33333334".parse::<f32>().unwrap(), 1.0f32 / 3.0);

    // Sub-day timestamps switch the whole column to full precision; custom column names.
    let cols = Columns {
        id: "unique_id".into(),
        timestamp: "ds".into(),
        target: "y".into(),
    };
    let input = [series("s", &["2019-12-31 23:00:00", "2019-12-31 23:30:00"])];
    let table = ForecastTable::new(
        &input,
        &"30min".parse().unwrap(),
        2,
        "y",
        vec![1.0, 2.0],
        &[0.5],
        vec![1.0, 2.0],
    )
    .unwrap();
    write_forecasts(&path, &cols, &table).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "unique_id,ds,target_name,predictions,0.5\n\
         s,2020-01-01 00:00:00,y,1,1\n\
         s,2020-01-01 00:30:00,y,2,2\n"
    );

    let table = ForecastTable::new(
        &input,
        &"1500us".parse().unwrap(),
        1,
        "y",
        vec![1.0],
        &[],
        vec![],
    )
    .unwrap();
    write_forecasts(&path, &cols, &table).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "unique_id,ds,target_name,predictions\ns,2019-12-31 23:30:00.001500,y,1\n"
    );
}

#[test]
fn forecast_csv_and_parquet_round_trip_through_read_long() {
    let dir = tempfile::tempdir().unwrap();
    let table = sample_table();
    for name in ["out.csv", "out.parquet"] {
        let path = dir.path().join(name);
        write_forecasts(&path, &Columns::default(), &table).unwrap();
        let read = |target: &str| {
            let cols = Columns {
                target: target.into(),
                ..Columns::default()
            };
            read_long(&path, &cols).unwrap()
        };
        let as_f32 = |values: &[f64]| values.iter().map(|v| *v as f32).collect::<Vec<_>>();
        let point = read("predictions");
        assert_eq!(point.len(), 2, "{name}");
        assert_eq!(point[0].id, "B");
        assert_eq!(point[1].id, "A, Inc.");
        assert_eq!(point[0].timestamps, tss(&["2020-01-04", "2020-01-05"]));
        assert_eq!(point[1].timestamps, tss(&["2020-01-03", "2020-01-04"]));
        assert_eq!(as_f32(&point[0].values), vec![1.5f32, 0.1], "{name}");
        assert!(point[1].values[0].is_nan());
        assert_eq!(point[1].values[1] as f32, 1.0f32 / 3.0, "{name}");
        let q9 = read("0.9");
        assert_eq!(q9[0].values[0], 2.0);
        assert!(q9[0].values[1].is_nan(), "{name}");
        let tiny = read("1e-05");
        assert_eq!(as_f32(&tiny[0].values), vec![0.25f32, 3e20], "{name}");
    }
}

#[test]
fn writes_parquet_with_expected_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.parquet");
    write_forecasts(&path, &Columns::default(), &sample_table()).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
    let fields: Vec<(String, DataType)> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let mut expected = vec![
        ("item_id".to_string(), DataType::Utf8),
        (
            "timestamp".to_string(),
            DataType::Timestamp(TimeUnit::Nanosecond, None),
        ),
        ("target_name".to_string(), DataType::Utf8),
    ];
    expected.extend(
        ["predictions", "0.1", "0.5", "0.9", "0.05", "1e-05"]
            .map(|n| (n.to_string(), DataType::Float32)),
    );
    assert_eq!(fields, expected);
    let batches: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    let names = batches[0].column(2).as_string::<i32>();
    assert!(names.iter().all(|n| n == Some("target")));
}

#[test]
fn forecast_table_and_write_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = [series("S9", &["2020-01-01"])];
    let daily: Freq = "D".parse().unwrap();
    let err = ForecastTable::new(
        &inputs,
        &daily,
        2,
        "t",
        vec![1.0; 2],
        &[0.1, 0.9],
        vec![1.0; 2],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            DataError::ShapeMismatch {
                what: "quantiles",
                expected: 4,
                found: 2
            }
        ),
        "{err}"
    );
    let err = ForecastTable::new(&inputs, &daily, 2, "t", vec![1.0; 3], &[], vec![]).unwrap_err();
    assert!(err.to_string().contains("predictions"), "{err}");

    let empty = [series("void", &[])];
    let err = ForecastTable::new(&empty, &daily, 1, "t", vec![1.0], &[], vec![]).unwrap_err();
    assert!(err.to_string().contains("'void'"), "{err}");

    let err = ForecastTable::new(
        &inputs,
        &"100000YS".parse().unwrap(),
        3,
        "t",
        vec![0.0; 3],
        &[],
        vec![],
    )
    .unwrap_err();
    assert!(matches!(err, DataError::TimestampOverflow { .. }), "{err}");
    assert!(
        err.to_string().contains("'S9'") && err.to_string().contains("100000YS-JAN"),
        "{err}"
    );

    let table = ForecastTable::new(&inputs, &daily, 1, "t", vec![1.0], &[], vec![]).unwrap();
    let err =
        write_forecasts(&dir.path().join("out.json"), &Columns::default(), &table).unwrap_err();
    assert!(matches!(err, DataError::UnsupportedExtension { .. }));
    assert!(err.to_string().contains("out.json"));

    let err = write_forecasts(
        &dir.path().join("missing-dir").join("out.csv"),
        &Columns::default(),
        &table,
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing-dir"), "{err}");

    // Past 2262-04-11 nanoseconds since 1970 overflow an i64.
    let far = [series("far", &["2262-04-11"])];
    let table = ForecastTable::new(&far, &daily, 1, "t", vec![1.0], &[], vec![]).unwrap();
    let err =
        write_forecasts(&dir.path().join("far.parquet"), &Columns::default(), &table).unwrap_err();
    assert!(
        matches!(&err, DataError::TimestampOutOfRange { id, .. } if id == "far"),
        "{err}"
    );
    write_forecasts(&dir.path().join("far.csv"), &Columns::default(), &table).unwrap();
}
