//! The training data pipeline (`chronos::train::data`) on small GluonTS Arrow files written here:
//! the instance sampler's statistics, the filters, mixing, NaN padding, missing-value
//! injection, seq2seq labels and the causal layout, determinism across thread counts, resuming,
//! sharding, prefetching and errors that name their file.

// For its CPU kernel pin: the fixture's tokenised values come from the reference's kernels.
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use tch::Tensor;

use chronos::data::{GluonEntry, GluonWriteOptions, GluonWriter, IpcCompression, IpcFormat};
use chronos::kernel_synth::SeriesRng;
use chronos::tokenizer::{ChronosConfig, MeanScaleUniformBins, TokenizerKwargs};
use chronos::train::data::{
    gluonts_last_value_imputation, has_enough_observations, split_instance, Batch, BatchBuilder,
    DataOptions, DataState, DropMask, EntryFilter, ExpectedNumInstanceSampler, Mode, Origin, Shard,
    TrainDataError, TrainingData, IGNORE_INDEX,
};

/// Writes `series` as a GluonTS Arrow file, 7 series per record batch (several batches per file).
fn write(dir: &Path, name: &str, series: &[Vec<f64>], compression: IpcCompression) -> PathBuf {
    let path = dir.join(name);
    let options = GluonWriteOptions {
        compression,
        format: IpcFormat::File,
        text_columns: Vec::new(),
    };
    let mut writer = GluonWriter::create(&path, &options).unwrap();
    let start = NaiveDateTime::parse_from_str("2020-01-01 00:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
    for chunk in series.chunks(7) {
        let entries: Vec<GluonEntry> = chunk
            .iter()
            .map(|target| GluonEntry {
                start,
                target: target.clone(),
            })
            .collect();
        writer.write(&entries, &[]).unwrap();
    }
    writer.finish().unwrap();
    path
}

/// `count` random-walk series of length `len` (from `seed`), with a proportion `missing` of NaN.
fn walks(count: usize, len: usize, missing: f64, seed: u64) -> Vec<Vec<f64>> {
    (0..count)
        .map(|i| {
            let mut rng = SeriesRng::new(seed, i as u64);
            let mut level = 10.0 + 5.0 * rng.uniform();
            (0..len)
                .map(|_| {
                    level += rng.uniform() - 0.5;
                    if rng.uniform() < missing {
                        f64::NAN
                    } else {
                        level
                    }
                })
                .collect()
        })
        .collect()
}

fn tokenizer(context: usize, horizon: usize, model_type: &str) -> ChronosConfig {
    ChronosConfig {
        tokenizer_class: "MeanScaleUniformBins".into(),
        tokenizer_kwargs: TokenizerKwargs {
            low_limit: -15.0,
            high_limit: 15.0,
        },
        context_length: context as i64,
        prediction_length: horizon as i64,
        n_tokens: 4096,
        n_special_tokens: 2,
        pad_token_id: 0,
        eos_token_id: 1,
        use_eos_token: true,
        model_type: model_type.into(),
        num_samples: 20,
        temperature: 1.0,
        top_k: 50,
        top_p: 1.0,
    }
}

/// Options with small windows: context `c`, horizon `h`, `min_past`.
fn options(mode: Mode, c: usize, h: usize, min_past: usize) -> DataOptions {
    DataOptions {
        context_length: c,
        prediction_length: h,
        min_past,
        batch_size: 16,
        shuffle_buffer_length: 50,
        seed: 7,
        ..DataOptions::new(mode)
    }
}

fn bolt(drop_prob: f64) -> Mode {
    Mode::Bolt {
        drop_prob,
        skip_constant_past: false,
        max_scaled_future: None,
    }
}

fn take(data: &mut TrainingData, batches: usize) -> Vec<(Batch, Vec<Origin>)> {
    (0..batches)
        .map(|_| data.next_batch_with_origins().unwrap())
        .collect()
}

fn origins(batches: &[(Batch, Vec<Origin>)]) -> Vec<Origin> {
    batches
        .iter()
        .flat_map(|(_, o)| o.iter().copied())
        .collect()
}

fn floats(t: &Tensor) -> Vec<Vec<f32>> {
    Vec::<Vec<f32>>::try_from(t).unwrap()
}

fn ints(t: &Tensor) -> Vec<Vec<i64>> {
    Vec::<Vec<i64>>::try_from(t).unwrap()
}

fn bools(t: &Tensor) -> Vec<Vec<bool>> {
    Vec::<Vec<bool>>::try_from(t).unwrap()
}

/// Every tensor of a batch as integers (floats by their bits), for exact comparisons.
fn bits(batch: &Batch) -> Vec<Vec<Vec<i64>>> {
    match batch {
        Batch::Tokens {
            input_ids,
            attention_mask,
            labels,
        } => vec![ints(input_ids), ints(attention_mask), ints(labels)],
        Batch::Values { context, target } => [context, target]
            .iter()
            .map(|t| {
                floats(t)
                    .iter()
                    .map(|row| row.iter().map(|v| v.to_bits() as i64).collect())
                    .collect()
            })
            .collect(),
    }
}

fn values(batch: &Batch) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    match batch {
        Batch::Values { context, target } => (floats(context), floats(target)),
        Batch::Tokens { .. } => panic!("expected a values batch"),
    }
}

fn same_f32(a: f32, b: f32) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

#[test]
fn sampler_weights_series_by_window_with_at_least_one_instance() {
    // Windows of 10 and 30 alternate: mean 20, p = 1/20, E[max(K, 1)] = E[K] + P(K = 0).
    let mut sampler = ExpectedNumInstanceSampler::new(5, 3);
    let mut rng = SeriesRng::new(1, 0);
    let (mut short, mut long) = (Vec::new(), Vec::new());
    for i in 0..40_000 {
        let (len, out) = match i % 2 {
            0 => (5 + 3 + 9, &mut short), // window 10
            _ => (5 + 3 + 29, &mut long), // window 30
        };
        let points = sampler.sample(len, &mut rng);
        assert!(points.iter().all(|&p| (5..=len - 3).contains(&p)));
        out.push(points.len() as f64);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let expect_short = 0.5 + 0.95f64.powi(10);
    let expect_long = 1.5 + 0.95f64.powi(30);
    assert!(
        (mean(&short) - expect_short).abs() < 0.02,
        "{}",
        mean(&short)
    );
    assert!((mean(&long) - expect_long).abs() < 0.03, "{}", mean(&long));
    assert_eq!((sampler.n, sampler.total_length), (40_000, 20 * 40_000));
    // A window of one position always gives that position.
    let mut one = ExpectedNumInstanceSampler::new(4, 2);
    assert_eq!(one.sample(6, &mut rng), vec![4]);
    assert!(one.sample(5, &mut rng).is_empty(), "empty window");
}

#[test]
fn instance_positions_are_uniform_with_about_1_37_per_series_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "walks.arrow",
        &walks(50, 40, 0.0, 1),
        IpcCompression::Lz4,
    );
    // Window [12, 32]: 21 split points.
    let mut opts = options(bolt(0.0), 16, 8, 12);
    opts.shuffle_buffer_length = 1;
    opts.batch_size = 100;
    let mut data = TrainingData::open(&[path], None, opts).unwrap();
    let got = origins(&take(&mut data, 200));
    let mut hist = [0f64; 21];
    for o in &got {
        assert!((12..=32).contains(&o.split), "split {}", o.split);
        hist[o.split - 12] += 1.0;
    }
    let expected = got.len() as f64 / 21.0;
    let chi2: f64 = hist.iter().map(|c| (c - expected).powi(2) / expected).sum();
    assert!(
        chi2 < 60.0,
        "chi-square {chi2} over 20 degrees of freedom: {hist:?}"
    );

    // Unshuffled, the stream follows the files: (pass, row) never goes back.
    assert!(got
        .windows(2)
        .all(|w| (w[0].pass, w[0].row) <= (w[1].pass, w[1].row)));
    let mut per_occurrence: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for o in &got {
        *per_occurrence.entry((o.pass, o.row)).or_default() += 1;
    }
    let last_pass = got.last().unwrap().pass;
    let complete: Vec<usize> = per_occurrence
        .iter()
        .filter(|((pass, _), _)| *pass < last_pass)
        .map(|(_, &n)| n)
        .collect();
    assert_eq!(
        complete.len() as u64,
        50 * last_pass,
        "every series in every pass"
    );
    let mean = complete.iter().sum::<usize>() as f64 / complete.len() as f64;
    let expect = 1.0 + (20.0f64 / 21.0).powi(21);
    assert!(
        (mean - expect).abs() < 0.03,
        "{mean} instances per series, expected {expect}"
    );
}

#[test]
fn filters_drop_short_and_mostly_missing_series_and_count_them() {
    let dir = tempfile::tempdir().unwrap();
    let nan = f64::NAN;
    let mut mostly_missing = vec![nan; 30];
    mostly_missing[..2].copy_from_slice(&[1.0, 2.0]); // 28/30 missing
    let mut at_limit = vec![nan; 30];
    at_limit[..3].copy_from_slice(&[1.0, 2.0, 3.0]); // 27/30 = 0.9 missing: kept
    let rows = vec![
        walks(1, 19, 0.0, 2)[0].clone(), // too short (min_past 12 + horizon 8)
        walks(1, 20, 0.0, 3)[0].clone(), // exactly long enough
        mostly_missing,
        at_limit,
        Vec::new(),
        walks(1, 40, 0.1, 4)[0].clone(),
    ];
    let path = write(dir.path(), "mixed.arrow", &rows, IpcCompression::None);
    let mut data = TrainingData::open(
        std::slice::from_ref(&path),
        None,
        options(bolt(0.2), 16, 8, 12),
    )
    .unwrap();
    let s = &data.stats()[0];
    assert_eq!(
        (
            s.series,
            s.too_short,
            s.too_many_missing,
            s.kept,
            s.kept_values
        ),
        (6, 2, 1, 3, 90)
    );
    let line = s.to_string();
    assert!(
        line.contains("3 of 6 series kept") && line.contains("2 too short"),
        "{line}"
    );
    let batches = take(&mut data, 40);
    let mut seen = std::collections::BTreeSet::new();
    for (batch, origins) in &batches {
        let (context, _) = values(batch);
        for (row, o) in context.iter().zip(origins) {
            seen.insert(o.row);
            assert!(
                row.iter().any(|v| !v.is_nan()),
                "an instance with an empty past"
            );
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![1, 3, 5]);

    // A file with nothing usable is an error naming it and the counts.
    let bad = write(dir.path(), "short.arrow", &rows[..1], IpcCompression::None);
    let err = TrainingData::open(&[path, bad.clone()], None, options(bolt(0.2), 16, 8, 12))
        .err()
        .unwrap();
    assert!(
        matches!(err, TrainDataError::NoUsableSeries { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&bad.display().to_string()) && msg.contains("1 shorter than 20"),
        "{msg}"
    );
}

#[test]
fn datasets_are_mixed_by_probability() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..4)
        .map(|d| {
            let series = walks(10 + 7 * d, 30 + 5 * d, 0.05, d as u64);
            write(
                dir.path(),
                &format!("d{d}.arrow"),
                &series,
                IpcCompression::Lz4,
            )
        })
        .collect();
    let mut opts = options(bolt(0.2), 16, 4, 8);
    opts.batch_size = 80;
    let mut data = TrainingData::open(&paths, Some(&[6.0, 3.0, 1.0, 0.0]), opts).unwrap();
    let probs: Vec<f64> = data.stats().iter().map(|s| s.probability).collect();
    assert_eq!(probs, vec![0.6, 0.3, 0.1, 0.0]);
    let got = origins(&take(&mut data, 100));
    let mut counts = [0usize; 4];
    for o in &got {
        counts[o.dataset] += 1;
    }
    let n = got.len() as f64;
    for (d, &p) in probs.iter().enumerate() {
        let share = counts[d] as f64 / n;
        // 3.3 standard deviations at n = 8000.
        assert!(
            (share - p).abs() < 0.018,
            "dataset {d}: share {share}, probability {p}"
        );
    }
    assert_eq!(counts[3], 0, "probability 0 is never drawn");
}

#[test]
fn short_series_are_left_padded_with_nan() {
    let dir = tempfile::tempdir().unwrap();
    let mut series = walks(6, 20, 0.0, 5);
    series.extend(walks(3, 100, 0.0, 6));
    let path = write(dir.path(), "short.arrow", &series, IpcCompression::None);
    let (c, h) = (32, 4);
    let mut data = TrainingData::open(&[path], None, options(bolt(0.0), c, h, 4)).unwrap();
    let (mut padded, mut full) = (0, 0);
    for (batch, origins) in take(&mut data, 30) {
        let (context, target) = values(&batch);
        for ((ctx, tgt), o) in context.iter().zip(&target).zip(&origins) {
            let s: Vec<f32> = series[o.row as usize].iter().map(|&v| v as f32).collect();
            let pad = c.saturating_sub(o.split);
            assert!(ctx[..pad].iter().all(|v| v.is_nan()), "left padding");
            assert_eq!(&ctx[pad..], &s[o.split + pad - c..o.split], "past window");
            assert_eq!(tgt.as_slice(), &s[o.split..o.split + h], "future window");
            if pad > 0 {
                padded += 1
            } else {
                full += 1
            }
        }
    }
    assert!(
        padded > 0 && full > 0,
        "{padded} padded, {full} full windows"
    );
}

#[test]
fn missing_values_are_injected_at_up_to_drop_prob() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "walks.arrow",
        &walks(40, 200, 0.0, 7),
        IpcCompression::Lz4,
    );
    let mut opts = options(bolt(0.2), 32, 8, 32);
    opts.batch_size = 100;
    let mut data = TrainingData::open(std::slice::from_ref(&path), None, opts.clone()).unwrap();
    let mut per_occurrence: BTreeMap<(u64, u64), (usize, usize)> = BTreeMap::new();
    for (batch, origins) in take(&mut data, 50) {
        let (context, target) = values(&batch);
        for ((ctx, tgt), o) in context.iter().zip(&target).zip(&origins) {
            // Splits are >= 32 = context length: no padding, every NaN was dropped.
            let entry = per_occurrence.entry((o.pass, o.row)).or_default();
            entry.0 += ctx.iter().chain(tgt).filter(|v| v.is_nan()).count();
            entry.1 += ctx.len() + tgt.len();
        }
    }
    let (dropped, total) = per_occurrence
        .values()
        .fold((0, 0), |(a, b), &(d, t)| (a + d, b + t));
    let rate = dropped as f64 / total as f64;
    assert!(
        (rate - 0.1).abs() < 0.01,
        "mean drop rate {rate}, expected 0.2 / 2"
    );
    let rates: Vec<f64> = per_occurrence
        .values()
        .map(|&(d, t)| d as f64 / t as f64)
        .collect();
    let high = rates.iter().filter(|&&r| r > 0.3).count();
    let low = rates.iter().filter(|&&r| r < 0.02).count();
    assert!(
        high * 100 < rates.len(),
        "{high} of {} occurrences above 0.3",
        rates.len()
    );
    assert!(
        low * 20 > rates.len(),
        "per-occurrence rates spread from 0: {low} low"
    );

    // drop_prob 0 and causal models: nothing dropped.
    opts.mode = bolt(0.0);
    let mut data = TrainingData::open(std::slice::from_ref(&path), None, opts.clone()).unwrap();
    for (batch, _) in take(&mut data, 5) {
        let (context, target) = values(&batch);
        assert!(context.iter().chain(&target).flatten().all(|v| !v.is_nan()));
    }
    opts.mode = Mode::Causal {
        tokenizer: tokenizer(32, 8, "causal"),
    };
    let mut data = TrainingData::open(&[path], None, opts).unwrap();
    for (batch, _) in take(&mut data, 5) {
        let Batch::Tokens { attention_mask, .. } = batch else {
            panic!()
        };
        assert!(bools(&attention_mask).iter().flatten().all(|&m| m));
    }
}

#[test]
fn seq2seq_tokens_match_the_tokenizer_and_labels_are_ignored_where_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut series = walks(20, 60, 0.15, 8);
    series.extend(walks(5, 25, 0.3, 9));
    let path = write(dir.path(), "gappy.arrow", &series, IpcCompression::Lz4);
    let (c, h) = (32, 8);
    let config = tokenizer(c, h, "seq2seq");
    let seq2seq = Mode::Seq2Seq {
        tokenizer: config.clone(),
        drop_prob: 0.2,
    };
    let mut tokens =
        TrainingData::open(std::slice::from_ref(&path), None, options(seq2seq, c, h, 8)).unwrap();
    // The same stream of instances as raw values: the mode changes only the batch format.
    let mut raw = TrainingData::open(&[path], None, options(bolt(0.2), c, h, 8)).unwrap();
    let tok = MeanScaleUniformBins::new(&config);
    let mut missing = 0;
    for _ in 0..20 {
        let (batch, o1) = tokens.next_batch_with_origins().unwrap();
        let (values_batch, o2) = raw.next_batch_with_origins().unwrap();
        assert_eq!(o1, o2);
        let Batch::Values { context, target } = values_batch else {
            panic!()
        };
        let Batch::Tokens {
            input_ids,
            attention_mask,
            labels,
        } = batch
        else {
            panic!("expected tokens")
        };
        let (expected, scale) = tok.context_input_transform(&context);
        assert_eq!(input_ids.size(), [16, c as i64 + 1]);
        assert_eq!(ints(&input_ids), ints(&expected.ids));
        assert_eq!(bools(&attention_mask), bools(&expected.mask));
        let expected_labels = tok.label_input_transform(&target, &scale);
        assert_eq!(labels.size(), [16, h as i64 + 1]);
        for ((lab, want), tgt) in ints(&labels)
            .iter()
            .zip(ints(&expected_labels.ids))
            .zip(floats(&target))
        {
            for j in 0..h {
                if tgt[j].is_nan() {
                    missing += 1;
                    assert_eq!(lab[j], IGNORE_INDEX);
                } else {
                    assert_eq!(lab[j], want[j]);
                    assert!(lab[j] >= 2);
                }
            }
            assert_eq!(lab[h], 1, "EOS is a label");
        }
    }
    assert!(missing > 100, "{missing} missing labels seen");
}

#[test]
fn causal_batches_move_the_padding_right_after_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let mut series = walks(8, 20, 0.1, 10);
    series[0][0] = f64::NAN; // leading gap: filled with the first observation
    series.extend(walks(4, 80, 0.05, 11));
    let path = write(dir.path(), "causal.arrow", &series, IpcCompression::Lz4);
    let (c, h) = (32, 4);
    let config = tokenizer(c, h, "causal");
    let mode = Mode::Causal {
        tokenizer: config.clone(),
    };
    let mut data = TrainingData::open(&[path], None, options(mode, c, h, 4)).unwrap();
    let tok = MeanScaleUniformBins::new(&config);
    let mut padded = 0;
    for (batch, origins) in take(&mut data, 20) {
        let Batch::Tokens {
            input_ids,
            attention_mask,
            labels,
        } = batch
        else {
            panic!("expected tokens")
        };
        assert_eq!(input_ids.size(), [16, (c + h + 1) as i64]);
        let (ids, mask, labels) = (ints(&input_ids), bools(&attention_mask), ints(&labels));
        for (r, o) in origins.iter().enumerate() {
            let mut s: Vec<f32> = series[o.row as usize].iter().map(|&v| v as f32).collect();
            gluonts_last_value_imputation(&mut s);
            assert!(s.iter().all(|v| !v.is_nan()), "imputed");
            let pad = c.saturating_sub(o.split);
            let mut past = vec![f32::NAN; pad];
            past.extend_from_slice(&s[o.split + pad - c..o.split]);
            let past = Tensor::from_slice(&past).view([1, c as i64]);
            let future = Tensor::from_slice(&s[o.split..o.split + h]).view([1, h as i64]);
            let (ctx, scale) = tok.context_input_transform(&past);
            let lab = tok.label_input_transform(&future, &scale);
            let (ctx, lab) = (&ints(&ctx.ids)[0], &ints(&lab.ids)[0]);
            assert_eq!(ctx.len(), c, "no EOS after a causal context");
            let mut want = ctx[pad..].to_vec();
            want.extend_from_slice(lab); // future tokens and EOS
            let observed = want.len();
            want.extend(std::iter::repeat_n(0, pad)); // pad id
            assert_eq!(ids[r], want, "row {r} ({o:?})");
            assert!(
                mask[r][..observed].iter().all(|&m| m) && mask[r][observed..].iter().all(|&m| !m)
            );
            let want_labels: Vec<i64> = (0..want.len())
                .map(|j| if j < observed { want[j] } else { IGNORE_INDEX })
                .collect();
            assert_eq!(labels[r], want_labels);
            assert_eq!(ids[r][observed - 1], 1, "EOS ends the observed part");
            padded += usize::from(pad > 0);
        }
    }
    assert!(padded > 20, "{padded} padded rows");
}

#[test]
fn same_seed_gives_the_same_batches_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let paths = vec![
        write(
            dir.path(),
            "a.arrow",
            &walks(30, 50, 0.1, 12),
            IpcCompression::Lz4,
        ),
        write(
            dir.path(),
            "b.arrow",
            &walks(9, 90, 0.0, 13),
            IpcCompression::None,
        ),
    ];
    let mode = Mode::Seq2Seq {
        tokenizer: tokenizer(32, 8, "seq2seq"),
        drop_prob: 0.2,
    };
    let run = |threads: usize, prefetch: usize, seed: u64| {
        let mut opts = options(mode.clone(), 32, 8, 8);
        (opts.threads, opts.prefetch, opts.seed) = (threads, prefetch, seed);
        let mut data = TrainingData::open(&paths, Some(&[0.7, 0.3]), opts).unwrap();
        take(&mut data, 25)
            .iter()
            .map(|(b, o)| (bits(b), o.clone()))
            .collect::<Vec<_>>()
    };
    let one = run(1, 1, 7);
    assert_eq!(one, run(3, 6, 7), "1 vs 3 threads");
    assert_eq!(one, run(1, 1, 7), "run to run");
    let other = run(2, 2, 8);
    assert_ne!(one[0], other[0], "another seed, another stream");
}

#[test]
fn restored_state_continues_identically() {
    let dir = tempfile::tempdir().unwrap();
    let paths = vec![
        write(
            dir.path(),
            "a.arrow",
            &walks(25, 50, 0.1, 14),
            IpcCompression::Lz4,
        ),
        write(
            dir.path(),
            "b.arrow",
            &walks(12, 70, 0.0, 15),
            IpcCompression::Lz4,
        ),
    ];
    let opts = options(bolt(0.2), 32, 8, 8);
    let mut first = TrainingData::open(&paths, None, opts.clone()).unwrap();
    let mut all = take(&mut first, 5);
    let state = first.state();
    assert_eq!(state.batches, 5);
    all.extend(take(&mut first, 9));

    // Through JSON, into another process with other thread counts.
    let json = serde_json::to_string(&state).unwrap();
    let state: DataState = serde_json::from_str(&json).unwrap();
    let mut other = opts.clone();
    (other.threads, other.prefetch) = (3, 1);
    let mut resumed = TrainingData::open(&paths, None, other).unwrap();
    resumed.restore(&state).unwrap();
    let rest = take(&mut resumed, 9);
    for (i, ((a, oa), (b, ob))) in all[5..].iter().zip(&rest).enumerate() {
        assert_eq!(oa, ob, "batch {} origins", i + 5);
        assert_eq!(bits(a), bits(b), "batch {}", i + 5);
    }
    assert_eq!(resumed.state().batches, 14);

    // Restoring mid-stream rewinds too.
    resumed.restore(&state).unwrap();
    assert_eq!(bits(&resumed.next_batch().unwrap()), bits(&all[5].0));

    // A state of another stream is refused, naming what differs.
    for (change, field) in [
        (
            DataOptions {
                seed: 8,
                ..opts.clone()
            },
            "seed",
        ),
        (
            DataOptions {
                shuffle_buffer_length: 10,
                ..opts.clone()
            },
            "shuffle_buffer_length",
        ),
        (
            DataOptions {
                mode: bolt(0.1),
                ..opts.clone()
            },
            "mode.drop_prob",
        ),
    ] {
        let mut data = TrainingData::open(&paths, None, change).unwrap();
        let err = data.restore(&state).unwrap_err();
        assert!(
            matches!(&err, TrainDataError::StateMismatch { field: f, .. } if f == field),
            "{err}"
        );
    }
    let mut data = TrainingData::open(&paths, Some(&[1.0, 2.0]), opts.clone()).unwrap();
    let err = data.restore(&state).unwrap_err().to_string();
    assert!(err.contains("datasets[0].probability"), "{err}");
    let err = first
        .restore(&DataState {
            format: 99,
            ..state
        })
        .unwrap_err();
    assert!(
        matches!(err, TrainDataError::StateVersion { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn shards_split_each_global_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "a.arrow",
        &walks(20, 60, 0.1, 16),
        IpcCompression::Lz4,
    );
    let opts = options(bolt(0.2), 16, 4, 8);
    let mut whole = opts.clone();
    whole.batch_size = 32;
    let mut whole = TrainingData::open(std::slice::from_ref(&path), None, whole).unwrap();
    let ranks: Vec<Vec<(Batch, Vec<Origin>)>> = (0..2)
        .map(|rank| {
            let mut o = opts.clone();
            o.shard = Shard {
                rank,
                world_size: 2,
            };
            take(
                &mut TrainingData::open(std::slice::from_ref(&path), None, o).unwrap(),
                3,
            )
        })
        .collect();
    for step in 0..3 {
        let (batch, origins) = whole.next_batch_with_origins().unwrap();
        let (context, _) = values(&batch);
        for (rank, parts) in ranks.iter().enumerate() {
            let (part, part_origins) = &parts[step];
            assert_eq!(part.len(), 16);
            assert_eq!(part_origins[..], origins[16 * rank..16 * (rank + 1)]);
            let (pc, _) = values(part);
            for (a, b) in pc.iter().zip(&context[16 * rank..]) {
                assert!(a.iter().zip(b).all(|(x, y)| same_f32(*x, *y)));
            }
        }
    }
}

#[test]
fn batches_are_made_ahead_of_the_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "a.arrow",
        &walks(20, 60, 0.1, 17),
        IpcCompression::Lz4,
    );
    let mut opts = options(bolt(0.2), 16, 4, 8);
    opts.prefetch = 4;
    let mut data = TrainingData::open(&[path], None, opts).unwrap();
    data.next_batch().unwrap();
    // The first call may or may not find the producer's first batch ready.
    let waited = data.waits();
    assert!(waited <= 1);
    // A slow "training step": the producer fills the channel meanwhile.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    for _ in 0..4 {
        data.next_batch().unwrap();
    }
    assert_eq!(data.waits(), waited, "prefetched batches were ready");
    assert_eq!(data.batches(), 5);
}

#[test]
fn a_dataset_without_any_usable_window_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // Observed only where the future goes: every past window is empty.
    let mut target = vec![f64::NAN; 12];
    target.extend([1.0; 8]);
    let path = write(dir.path(), "barren.arrow", &[target], IpcCompression::None);
    let mut opts = options(bolt(0.0), 16, 8, 12);
    opts.max_missing_prop = 1.0;
    let mut data = TrainingData::open(std::slice::from_ref(&path), None, opts).unwrap();
    let err = data.next_batch().unwrap_err();
    assert!(matches!(err, TrainDataError::NoInstances { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    let again = data.next_batch().unwrap_err();
    assert!(matches!(again, TrainDataError::Stopped(_)), "{again}");
}

#[test]
fn errors_name_the_file_or_option() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.arrow",
        &walks(5, 50, 0.0, 18),
        IpcCompression::Lz4,
    );
    let missing = dir.path().join("missing.arrow");
    let garbage = dir.path().join("garbage.arrow");
    std::fs::write(&garbage, b"not an arrow file at all").unwrap();
    let opts = options(bolt(0.2), 16, 4, 8);
    let open_err = |paths: &[PathBuf], probs: Option<&[f64]>, o: DataOptions| {
        TrainingData::open(paths, probs, o)
            .err()
            .unwrap()
            .to_string()
    };
    for bad in [&missing, &garbage] {
        let msg = open_err(&[good.clone(), bad.to_path_buf()], None, opts.clone());
        assert!(msg.contains(&bad.display().to_string()), "{msg}");
    }
    let msg = open_err(std::slice::from_ref(&good), Some(&[0.5, 0.5]), opts.clone());
    assert!(msg.contains("2 probabilities for 1"), "{msg}");
    let msg = open_err(std::slice::from_ref(&good), Some(&[-1.0]), opts.clone());
    assert!(msg.contains("probability 0 is -1"), "{msg}");
    let msg = open_err(&[], None, opts.clone());
    assert!(msg.contains("no training data paths"), "{msg}");
    let msg = open_err(
        std::slice::from_ref(&good),
        None,
        DataOptions {
            batch_size: 0,
            ..opts.clone()
        },
    );
    assert!(msg.contains("batch_size"), "{msg}");
    let shard = Shard {
        rank: 2,
        world_size: 2,
    };
    let msg = open_err(
        std::slice::from_ref(&good),
        None,
        DataOptions {
            shard,
            ..opts.clone()
        },
    );
    assert!(msg.contains("shard.rank"), "{msg}");
    let mode = Mode::Seq2Seq {
        tokenizer: tokenizer(64, 4, "seq2seq"),
        drop_prob: 0.2,
    };
    let msg = open_err(
        std::slice::from_ref(&good),
        None,
        DataOptions {
            mode,
            ..opts.clone()
        },
    );
    assert!(msg.contains("context_length 64"), "{msg}");
    let mode = Mode::Causal {
        tokenizer: tokenizer(16, 4, "seq2seq"),
    };
    let msg = open_err(&[good], None, DataOptions { mode, ..opts });
    assert!(msg.contains("model_type"), "{msg}");
}

#[derive(serde::Deserialize)]
struct Fixture {
    context_length: usize,
    prediction_length: usize,
    tokenizer: serde_json::Map<String, serde_json::Value>,
    entries: Vec<Vec<Option<f64>>>,
    imputed: Vec<Vec<Option<f64>>>,
    filters: Vec<FilterCase>,
    splits: Vec<SplitCase>,
}

#[derive(serde::Deserialize)]
struct FilterCase {
    entry: usize,
    min_length: usize,
    max_missing_prop: f64,
    keep: bool,
}

#[derive(serde::Deserialize)]
struct SplitCase {
    entry: usize,
    split: usize,
    imputed: bool,
    past: Vec<Option<f64>>,
    future: Vec<Option<f64>>,
    past_is_pad: Vec<i64>,
    model_type: String,
    input_ids: Vec<i64>,
    attention_mask: Vec<i64>,
    labels: Vec<i64>,
}

fn f32s(values: &[Option<f64>]) -> Vec<f32> {
    values
        .iter()
        .map(|v| v.map_or(f32::NAN, |v| v as f32))
        .collect()
}

fn assert_same_f32s(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, b)) in actual.iter().zip(expected).enumerate() {
        assert!(same_f32(*a, *b), "{what}[{i}]: {a} != {b}");
    }
}

/// `fixtures/train_data/expected.json` (fixtures/generate_train_data.py): GluonTS'
/// `LastValueImputation` and `InstanceSplitter`, upstream's `has_enough_observations` and
/// `to_hf_format` (seq2seq and causal) on hand-made series, reproduced exactly.
#[test]
fn building_blocks_match_gluonts_and_upstream_train_py() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/train_data/expected.json");
    let fx: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (c, h) = (fx.context_length, fx.prediction_length);
    let raw: Vec<Vec<f32>> = fx.entries.iter().map(|e| f32s(e)).collect();
    let mut imputed = raw.clone();
    for (i, (mine, expected)) in imputed.iter_mut().zip(&fx.imputed).enumerate() {
        gluonts_last_value_imputation(mine);
        assert_same_f32s(mine, &f32s(expected), &format!("imputed entry {i}"));
    }
    for f in &fx.filters {
        let target: Vec<f64> = raw[f.entry].iter().map(|&v| f64::from(v)).collect();
        let keep = has_enough_observations(&target, f.min_length, f.max_missing_prop);
        assert_eq!(
            keep == EntryFilter::Keep,
            f.keep,
            "entry {} at min_length {}, max_missing_prop {}: {keep:?}",
            f.entry,
            f.min_length,
            f.max_missing_prop
        );
    }
    let mut groups: BTreeMap<String, Vec<(&SplitCase, _)>> = BTreeMap::new();
    for case in &fx.splits {
        let what = format!(
            "entry {} at {} (imputed {})",
            case.entry, case.split, case.imputed
        );
        let source = if case.imputed { &imputed } else { &raw };
        let instance =
            split_instance(&source[case.entry], case.split, c, h, DropMask::NONE).unwrap();
        assert_same_f32s(instance.past(), &f32s(&case.past), &format!("{what}: past"));
        assert_same_f32s(
            instance.future(),
            &f32s(&case.future),
            &format!("{what}: future"),
        );
        let pad = case.past_is_pad.iter().take_while(|&&p| p == 1).count();
        assert_eq!(
            case.past_is_pad.iter().sum::<i64>() as usize,
            pad,
            "{what}: leading pads"
        );
        assert_eq!(instance.pad, pad, "{what}: padding");
        groups
            .entry(case.model_type.clone())
            .or_default()
            .push((case, instance));
    }
    for (model_type, cases) in groups {
        let mut config = fx.tokenizer.clone();
        config.insert("model_type".into(), model_type.clone().into());
        let tokenizer: ChronosConfig = serde_json::from_value(config.into()).unwrap();
        let mode = match model_type.as_str() {
            "seq2seq" => Mode::Seq2Seq {
                tokenizer,
                drop_prob: 0.0,
            },
            _ => Mode::Causal { tokenizer },
        };
        let instances: Vec<_> = cases.iter().map(|(_, i)| i.clone()).collect();
        let Batch::Tokens {
            input_ids,
            attention_mask,
            labels,
        } = BatchBuilder::new(&mode).unwrap().build(&instances).unwrap()
        else {
            panic!("expected tokens")
        };
        let (ids, mask, labels) = (ints(&input_ids), ints(&attention_mask), ints(&labels));
        for (r, (case, _)) in cases.iter().enumerate() {
            let what = format!("{model_type} entry {} at {}", case.entry, case.split);
            assert_eq!(ids[r], case.input_ids, "{what}: input_ids");
            assert_eq!(mask[r], case.attention_mask, "{what}: attention_mask");
            assert_eq!(labels[r], case.labels, "{what}: labels");
        }
    }
}

#[test]
fn bolt_can_leave_out_instances_with_a_constant_past() {
    // Half the series are zeros for their first 40 steps (a window of 8 there is constant),
    // then a random walk.
    let dir = tempfile::tempdir().unwrap();
    let mut series = walks(20, 60, 0.0, 3);
    for s in series.iter_mut().step_by(2) {
        s[..40].iter_mut().for_each(|v| *v = 0.0);
    }
    let path = write(dir.path(), "zeros.arrow", &series, IpcCompression::None);
    let constant_pasts = |skip: bool| {
        let mode = Mode::Bolt {
            drop_prob: 0.0,
            skip_constant_past: skip,
            max_scaled_future: None,
        };
        let mut data =
            TrainingData::open(std::slice::from_ref(&path), None, options(mode, 8, 4, 8)).unwrap();
        let mut constant = 0;
        for (batch, _) in take(&mut data, 40) {
            let Batch::Values { context, .. } = batch else {
                panic!("Bolt batches hold values")
            };
            for row in Vec::<Vec<f32>>::try_from(context).unwrap() {
                let observed: Vec<f32> = row.into_iter().filter(|v| !v.is_nan()).collect();
                constant += usize::from(observed.iter().all(|&v| v == observed[0]));
            }
        }
        constant
    };
    assert!(constant_pasts(false) > 20, "{}", constant_pasts(false));
    assert_eq!(constant_pasts(true), 0);
}

#[test]
fn bolt_can_bound_the_scaled_future() {
    // Past 1, 3, 1, 3 (mean 2, std 1) then a future reaching 2 + 7: scaled 7.
    let instance =
        split_instance(&[1.0, 3.0, 1.0, 3.0, 2.0, 9.0], 4, 4, 2, DropMask::NONE).unwrap();
    assert!((instance.max_scaled_future() - 7.0).abs() < 1e-12);
    // A constant past scales by |mean| + 1e-5; an unobserved future gives 0.
    let constant = split_instance(&[0.0, 0.0, 0.0, 1.0], 3, 4, 1, DropMask::NONE).unwrap();
    assert!((constant.max_scaled_future() - 1e5).abs() < 1e-6);
    let unobserved = split_instance(&[1.0, 2.0, f64::NAN as f32], 2, 2, 1, DropMask::NONE).unwrap();
    assert_eq!(unobserved.max_scaled_future(), 0.0);

    // In the stream: series whose last third jumps by 100 around a walk of unit steps.
    let dir = tempfile::tempdir().unwrap();
    let mut series = walks(20, 60, 0.0, 5);
    for s in series.iter_mut().step_by(2) {
        s[40..].iter_mut().for_each(|v| *v += 100.0);
    }
    let path = write(dir.path(), "jumps.arrow", &series, IpcCompression::None);
    let largest = |bound: Option<f64>| {
        let mode = Mode::Bolt {
            drop_prob: 0.0,
            skip_constant_past: false,
            max_scaled_future: bound,
        };
        let mut data =
            TrainingData::open(std::slice::from_ref(&path), None, options(mode, 8, 4, 8)).unwrap();
        let mut largest: f64 = 0.0;
        for (batch, _) in take(&mut data, 40) {
            let Batch::Values { context, target } = batch else {
                panic!("Bolt batches hold values")
            };
            let pasts = Vec::<Vec<f32>>::try_from(context).unwrap();
            let futures = Vec::<Vec<f32>>::try_from(target).unwrap();
            for (past, future) in pasts.into_iter().zip(futures) {
                let values: Vec<f32> = past.into_iter().chain(future).collect();
                let instance = chronos::train::data::Instance {
                    values,
                    context_length: 8,
                    pad: 0,
                };
                largest = largest.max(instance.max_scaled_future());
            }
        }
        largest
    };
    assert!(largest(None) > 50.0, "{}", largest(None));
    assert!(largest(Some(20.0)) <= 20.0);
}
