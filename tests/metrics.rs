//! Metrics and seasonality on hand-checked cases (GluonTS semantics; see src/metrics.rs).

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use chronos::data::{infer_freq, Freq};
use chronos::metrics::{
    quantile_loss, seasonal_error, seasonality, Evaluator, Forecast, MetricError,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + b.abs())
}

#[test]
fn seasonal_error_is_the_mean_absolute_seasonal_difference_over_valid_pairs() {
    let y = [1.0, 2.0, 4.0, 7.0];
    assert!(close(seasonal_error(&y, 1), 2.0)); // |1|, |2|, |3|
    assert!(close(seasonal_error(&y, 2), 4.0)); // |4 - 1|, |7 - 2|
    assert!(close(seasonal_error(&y, 3), 6.0)); // |7 - 1|
                                                // A season longer than the context falls back to 1.
    assert!(close(seasonal_error(&y, 5), 2.0));
    // Pairs touching a missing value are dropped: only (4, 7) is left.
    assert!(close(seasonal_error(&[1.0, f64::NAN, 4.0, 7.0], 1), 3.0));
    assert!(close(
        seasonal_error(&[1.0, f64::INFINITY, 4.0, 6.0], 1),
        2.0
    ));
    // No valid pair (a single value, or no two consecutive finite values) gives 0.
    assert_eq!(seasonal_error(&[5.0], 1), 0.0);
    assert_eq!(seasonal_error(&[1.0, f64::NAN, 3.0, f64::NAN], 1), 0.0);
    assert_eq!(seasonal_error(&[], 12), 0.0);
}

#[test]
fn quantile_loss_weights_under_and_over_forecasts() {
    assert!(close(quantile_loss(10.0, 8.0, 0.9), 3.6)); // 2 * 2 * 0.9
    assert!(close(quantile_loss(10.0, 12.0, 0.9), 0.4)); // 2 * 2 * 0.1
    assert!(close(quantile_loss(10.0, 8.0, 0.1), 0.4));
    assert!(close(quantile_loss(10.0, 12.0, 0.1), 3.6));
    assert_eq!(quantile_loss(10.0, 10.0, 0.3), 0.0);
    // At the median it is the absolute error.
    assert!(close(quantile_loss(-3.0, 4.0, 0.5), 7.0));
}

#[test]
fn sample_forecast_quantiles_are_order_statistics_rounded_half_to_even() {
    // Two steps; the samples of step 0 are 3, 1, 4, 2 and of step 1 are 40, 10, 30, 20.
    let f = Forecast::from_samples(4, 2, vec![3.0, 40.0, 1.0, 10.0, 4.0, 30.0, 2.0, 20.0]).unwrap();
    assert_eq!(f.horizon(), 2);
    // index round((4 - 1) q): 0.1 -> 0, 0.3 -> 1, 0.5 -> 2 (1.5 to even), 0.9 -> 3
    assert_eq!(f.quantile(0.1).unwrap(), &[1.0, 10.0]);
    assert_eq!(f.quantile(0.3).unwrap(), &[2.0, 20.0]);
    assert_eq!(f.quantile(0.5).unwrap(), &[3.0, 30.0]);
    assert_eq!(f.quantile(0.9).unwrap(), &[4.0, 40.0]);
    // Two samples: (2 - 1) * 0.5 = 0.5 rounds to 0, the smaller one.
    let two = Forecast::from_samples(2, 1, vec![7.0, 5.0]).unwrap();
    assert_eq!(two.quantile(0.5).unwrap(), &[5.0]);
    assert_eq!(two.quantile(0.6).unwrap(), &[7.0]);
    // One sample answers every level with itself.
    let one = Forecast::from_samples(1, 3, vec![1.0, 2.0, 3.0]).unwrap();
    assert_eq!(one.quantile(0.1).unwrap(), one.quantile(0.9).unwrap());
}

#[test]
fn forecasts_reject_bad_shapes_and_levels() {
    assert!(matches!(
        Forecast::from_samples(2, 3, vec![0.0; 5]),
        Err(MetricError::Shape {
            expected: 6,
            found: 5,
            ..
        })
    ));
    assert!(Forecast::from_samples(0, 3, vec![]).is_err());
    assert!(matches!(
        Forecast::from_quantiles(&[0.5, 1.5], 1, vec![0.0, 0.0]),
        Err(MetricError::InvalidLevel(_))
    ));
    let f = Forecast::from_quantiles(&[0.1, 0.5], 2, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(f.quantile(0.5).unwrap(), &[3.0, 4.0]);
    assert!(matches!(
        f.quantile(0.9),
        Err(MetricError::MissingLevel { level, .. }) if level == 0.9
    ));
}

#[test]
fn evaluator_matches_hand_computed_mase_and_wql_with_masking() {
    let levels = [0.1, 0.5, 0.9];
    let mut ev = Evaluator::new(&levels);
    // Window 1: seasonal error of [1, 2, 3, 4] at 1 is 1; labels 5, 7.
    let f1 = Forecast::from_quantiles(&levels, 2, vec![4.0, 4.0, 5.0, 5.0, 6.0, 6.0]).unwrap();
    ev.add(&[1.0, 2.0, 3.0, 4.0], &[5.0, 7.0], &f1, 1).unwrap();
    // MASE: (|5 - 5| + |7 - 5|) / 1 / 2 steps = 1.
    // Quantile losses: q0.1: 0.2 + 0.6 = 0.8; q0.5: 0 + 2 = 2; q0.9: 0.2 + 1.8 = 2; |y| sum 12.
    let s = ev.scores();
    assert!(close(s.mase, 1.0), "{s:?}");
    assert!(close(s.wql, (0.8 + 2.0 + 2.0) / 12.0 / 3.0), "{s:?}");

    // Window 2: a constant context (seasonal error 0: no MASE term) and a missing first label.
    let f2 = Forecast::from_quantiles(&levels, 2, vec![9.0, 8.0, 9.0, 10.0, 9.0, 12.0]).unwrap();
    ev.add(&[3.0, 3.0, 3.0], &[f64::NAN, 10.0], &f2, 1).unwrap();
    // Only step 2 counts for WQL: losses q0.1: 2 * 2 * 0.1 = 0.4, q0.5: 0, q0.9: 2 * 2 * 0.1.
    let s = ev.scores();
    assert!(close(s.mase, 1.0), "{s:?}");
    assert!(close(s.wql, (1.2 + 2.0 + 2.4) / 22.0 / 3.0), "{s:?}");

    // Window 3: seasonality 2 over [0, 10, 2, 14] gives (2 + 4) / 2 = 3; errors 3 and 6.
    let f3 = Forecast::from_samples(1, 2, vec![1.0, 2.0]).unwrap();
    ev.add(&[0.0, 10.0, 2.0, 14.0], &[4.0, 8.0], &f3, 2)
        .unwrap();
    // MASE over the 4 defined terms: (0 + 2 + 1 + 2) / 4.
    assert!(close(ev.scores().mase, 5.0 / 4.0));
}

#[test]
fn evaluator_refuses_nan_forecasts_and_wrong_horizons_without_changing_its_sums() {
    let mut ev = Evaluator::new(&[0.5]);
    let good = Forecast::from_samples(1, 2, vec![1.0, 1.0]).unwrap();
    ev.add(&[0.0, 1.0], &[2.0, 3.0], &good, 1).unwrap();
    let before = ev.scores();
    let nan = Forecast::from_samples(1, 2, vec![1.0, f64::NAN]).unwrap();
    assert!(matches!(
        ev.add(&[0.0, 1.0], &[2.0, 3.0], &nan, 1),
        Err(MetricError::NanForecast { .. })
    ));
    assert!(matches!(
        ev.add(&[0.0, 1.0], &[2.0, 3.0, 4.0], &good, 1),
        Err(MetricError::HorizonMismatch {
            label: 3,
            forecast: 2
        })
    ));
    let missing = Forecast::from_quantiles(&[0.1], 2, vec![1.0, 1.0]).unwrap();
    assert!(ev.add(&[0.0, 1.0], &[2.0, 3.0], &missing, 1).is_err());
    assert_eq!(ev.scores(), before);
    // No defined MASE term at all gives NaN (as GluonTS' 0 / 0).
    let mut empty = Evaluator::new(&[0.5]);
    empty
        .add(
            &[1.0, 1.0],
            &[1.0],
            &Forecast::from_samples(1, 1, vec![1.0]).unwrap(),
            1,
        )
        .unwrap();
    assert!(empty.scores().mase.is_nan());
}

/// Seasonality of pandas aliases, checked against gluonts 0.16 `get_seasonality` of the period
/// alias that upstream derives (`DatetimeIndex.to_period().freqstr`).
#[test]
fn seasonality_follows_gluonts_get_seasonality() {
    let cases = [
        ("h", 24),
        ("2h", 12),
        ("5h", 1),
        ("15min", 96),
        ("7min", 1),
        ("30s", 120),
        ("s", 3600),
        ("ms", 1),
        ("D", 1),
        ("3D", 1),
        ("B", 5),
        ("W-SUN", 1),
        ("2W-SUN", 1),
        ("W-WED", 1),
        ("MS", 12),
        ("ME", 12),
        ("BME", 12),
        ("QE-DEC", 4),
        ("QS-OCT", 4),
        ("BQS-OCT", 4),
        ("YS-JAN", 1),
        ("YE-DEC", 1),
    ];
    for (alias, expected) in cases {
        let freq: Freq = alias.parse().unwrap();
        assert_eq!(seasonality(&freq), expected, "{alias}");
    }
}

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, min, 0)
        .unwrap()
}

fn every(start: NaiveDateTime, step: TimeDelta, n: i32) -> Vec<NaiveDateTime> {
    (0..n).map(|k| start + step * k).collect()
}

/// Frequencies inferred from timestamps as the benchmark datasets have them, and their
/// seasonality (pandas `infer_freq` + gluonts `get_seasonality`).
#[test]
fn inferred_frequencies_of_benchmark_like_timestamps() {
    let hourly = every(at(2017, 1, 1, 0, 0), TimeDelta::hours(1), 48);
    let quarter_hours = every(at(2012, 1, 1, 0, 15), TimeDelta::minutes(15), 10);
    let half_hours = every(at(2015, 1, 1, 0, 0), TimeDelta::minutes(30), 10);
    let daily = every(at(2020, 1, 22, 0, 0), TimeDelta::days(1), 10);
    let weekly_sundays = every(at(1965, 1, 3, 0, 0), TimeDelta::weeks(1), 10);
    // Business days: Friday 1990-01-05 then Monday.
    let business: Vec<_> = [1, 2, 3, 4, 5, 8, 9, 10, 11, 12]
        .iter()
        .map(|&d| at(1990, 1, d, 0, 0))
        .collect();
    let month_starts: Vec<_> = (0..14)
        .map(|k| at(1998 + k / 12, 1 + (k % 12) as u32, 1, 0, 0))
        .collect();
    let quarter_starts: Vec<_> = (0..8)
        .map(|k| at(2000 + k / 4, 1 + 3 * (k % 4) as u32, 1, 0, 0))
        .collect();
    let year_starts: Vec<_> = (0..6).map(|k| at(1950 + k, 1, 1, 0, 0)).collect();
    let cases: [(&[NaiveDateTime], &str, usize); 9] = [
        (&hourly, "h", 24),
        (&quarter_hours, "15min", 96),
        (&half_hours, "30min", 48),
        (&daily, "D", 1),
        (&weekly_sundays, "W-SUN", 1),
        (&business, "B", 5),
        (&month_starts, "MS", 12),
        (&quarter_starts, "QS-OCT", 4),
        (&year_starts, "YS-JAN", 1),
    ];
    for (ts, alias, season) in cases {
        let freq = infer_freq(ts).unwrap_or_else(|| panic!("no frequency for {alias}"));
        assert_eq!(freq.name(), alias);
        assert_eq!(seasonality(&freq), season, "{alias}");
    }
}
