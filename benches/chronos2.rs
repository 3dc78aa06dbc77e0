//! `cargo bench --bench chronos2`: Chronos-2 forecasting speed and memory, Rust vs the Python
//! reference's `Chronos2Pipeline.predict_df`, in one run on the same machine, checkpoints and
//! tables (random weights with the published shapes, univariate hourly random walks, horizon 64,
//! levels 0.1 … 0.9, batch size 256).
//!
//! Each case times, in-process and end to end from a parsed table to the forecast table, Rust's
//! `Chronos2Inputs::new` + `predict_quantiles` + `chronos2_forecast_table` and Python's
//! `predict_df` (its table read before timing too), and reports each side's peak RSS. Then the
//! model's share of the machine's f32 matmul rate: one forward pass of 256 series, its matmul
//! FLOPs counted from the architecture, against a plain 2048³ libtorch matmul in the same run.
//!
//! Needs `scripts/setup.sh --reference`; checkpoints are generated on first use by
//! `fixtures/generate_chronos2.py --full-size <size>` into the git-ignored `fixtures/full-size/`.
//! Environment: `CHRONOS2_BENCH_CASES`, comma-separated `size:series:context:dtype` (default
//! below: what fits a 2-core machine in about 15 minutes), `CHRONOS2_BENCH_REPEATS` (default 3).

mod common;

use std::io::Write;

use chrono::{Duration, NaiveDate};
use chronos::checkpoint::Checkpoint;
use chronos::chronos2::Chronos2Model;
use chronos::data::{self, Chronos2Inputs, FrameColumns};
use chronos::pipeline::{Chronos2Options, Chronos2Pipeline, Chronos2Task, Dtype};
use common::{env_or, full_size_checkpoint, matmul_rate, median_seconds, peak_rss_mb, python_json};
use tch::{Device, Kind, Tensor};

const HORIZON: i64 = 64;
const LEVELS: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
/// Series per forward pass, for the matmul-rate measurement (upstream's default batch size).
const RATE_BATCH: i64 = 256;
const DEFAULT_CASES: &str =
    "small:128:1024:f32,small:128:1024:bf16,small:1024:1024:f32,small:128:8192:f32,base:128:1024:f32";

struct Case {
    size: String,
    series: i64,
    context: i64,
    dtype: Dtype,
    dtype_name: String,
}

fn parse_cases(spec: &str) -> Vec<Case> {
    spec.split(',')
        .filter(|c| !c.is_empty())
        .map(|c| {
            let parts: Vec<&str> = c.split(':').collect();
            let [size, series, context, dtype] = parts[..] else {
                panic!("CHRONOS2_BENCH_CASES: '{c}' is not size:series:context:dtype");
            };
            Case {
                size: size.to_string(),
                series: series.parse().expect("series"),
                context: context.parse().expect("context"),
                dtype: dtype.parse().expect("dtype f32 or bf16"),
                dtype_name: dtype.to_string(),
            }
        })
        .collect()
}

/// Multiply-add FLOPs (2 per MAC) of the matmuls one forward pass over `rows` univariate series
/// of `context` steps (each series its own group) needs, `output_patches` forecast patches.
fn matmul_flops(model: &Chronos2Model, rows: i64, context: i64, output_patches: i64) -> f64 {
    let (c, b) = (&model.config, &model.chronos);
    let (d, ff, inner) = (c.d_model, c.d_ff, c.num_heads * c.d_kv);
    let context_patches = (context + b.input_patch_size - 1) / b.input_patch_size;
    let tokens = context_patches + i64::from(b.use_reg_token) + output_patches;
    let mac = |rows: i64, k: i64, n: i64| (rows * k * n) as f64;
    let patch_in = 3 * b.input_patch_size;
    let embed = |n: i64| mac(n, patch_in, ff) + mac(n, ff, d) + mac(n, patch_in, d);
    let outputs = b.quantiles.len() as i64 * b.output_patch_size;
    // Time attention: q, k, v, o, scores and values; group attention over a one-series group:
    // the value and output projections (its one weight is 1; upstream also computes q, k and
    // the (batch, batch) scores); the MLP.
    let layer = mac(tokens, d, 4 * inner)
        + 2.0 * mac(tokens, tokens, inner)
        + mac(tokens, d, 2 * inner)
        + mac(tokens, d, 2 * ff);
    let head = mac(output_patches, d, ff)
        + mac(output_patches, ff, outputs)
        + mac(output_patches, d, outputs);
    let per_series =
        embed(context_patches) + embed(output_patches) + c.num_layers as f64 * layer + head;
    2.0 * rows as f64 * per_series
}

/// Random walks as a long CSV table (item_id, timestamp, target), hourly from 2020-01-01.
fn write_table(path: &std::path::Path, series: i64, context: i64) {
    tch::manual_seed(0);
    let walks =
        Tensor::randn([series, context], (Kind::Float, Device::Cpu)).cumsum(1, Kind::Float) + 100.0;
    let values = Vec::<f32>::try_from(walks.flatten(0, -1)).unwrap();
    let start = NaiveDate::from_ymd_opt(2020, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let stamps: Vec<String> = (0..context)
        .map(|t| {
            (start + Duration::hours(t))
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "item_id,timestamp,target").unwrap();
    for (i, row) in values.chunks(context as usize).enumerate() {
        for (stamp, v) in stamps.iter().zip(row) {
            writeln!(out, "s{i},{stamp},{v}").unwrap();
        }
    }
    out.flush().unwrap();
}

/// Resets this process's peak RSS (Linux `clear_refs` 5), so that the next case reports its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Timing {
    rust_s: f64,
    rust_rss: f64,
    python_s: f64,
    python_rss: f64,
}

fn run_case(case: &Case, repeats: usize) -> Timing {
    let dir = full_size_checkpoint("generate_chronos2.py", "2", &case.size);
    let table = std::env::temp_dir().join(format!(
        "chronos2-bench-{}-{}-{}.csv",
        std::process::id(),
        case.series,
        case.context
    ));
    write_table(&table, case.series, case.context);
    let table = common::TempFile(table);

    reset_peak_rss();
    let checkpoint = Checkpoint::from_dir(&dir).expect("checkpoint");
    let pipeline = Chronos2Pipeline::load(&checkpoint, case.dtype, Device::Cpu).expect("load");
    let columns = FrameColumns {
        id: "item_id".into(),
        timestamp: "timestamp".into(),
        targets: vec!["target".into()],
    };
    let past = data::read_frame(&table.0, &columns).expect("read table");
    let freq = past.freq().expect("hourly");
    let options = Chronos2Options {
        prediction_length: Some(HORIZON),
        ..Chronos2Options::default()
    };
    let rust_s = median_seconds(repeats, || {
        let inputs = Chronos2Inputs::new(&past, None, HORIZON as usize, &freq).unwrap();
        let forecasts = pipeline
            .predict_quantiles(&inputs.tasks, &LEVELS, &options)
            .unwrap();
        let table = data::chronos2_forecast_table(&past, &freq, &forecasts, &LEVELS).unwrap();
        std::hint::black_box(table);
    });
    let rust_rss = peak_rss_mb();

    let py = python_json(
        "bench_chronos2.py",
        &[
            "--model".into(),
            common::arg(&dir),
            "--table".into(),
            common::arg(&table.0),
            "--horizon".into(),
            HORIZON.to_string(),
            "--dtype".into(),
            case.dtype_name.clone(),
            "--repeats".into(),
            repeats.to_string(),
        ],
    );
    Timing {
        rust_s,
        rust_rss,
        python_s: py["seconds"].as_f64().expect("seconds"),
        python_rss: py["peak_rss_mb"].as_f64().expect("peak_rss_mb"),
    }
}

/// Seconds of one forward pass of [`RATE_BATCH`] series of `context` steps, and its FLOPs.
fn forward_rate(size: &str, context: i64, repeats: usize) -> (f64, f64) {
    let dir = full_size_checkpoint("generate_chronos2.py", "2", size);
    let checkpoint = Checkpoint::from_dir(&dir).expect("checkpoint");
    let pipeline = Chronos2Pipeline::load(&checkpoint, Dtype::F32, Device::Cpu).expect("load");
    let walks =
        Tensor::randn([RATE_BATCH, context], (Kind::Float, Device::Cpu)).cumsum(1, Kind::Float);
    let rows = Vec::<Vec<f32>>::try_from(walks).unwrap();
    let tasks: Vec<Chronos2Task> = rows
        .iter()
        .map(|r| Chronos2Task::from_targets(&[r], HORIZON as usize).unwrap())
        .collect();
    let options = Chronos2Options {
        prediction_length: Some(HORIZON),
        ..Chronos2Options::default()
    };
    let seconds = median_seconds(repeats, || {
        let _ = pipeline.predict(&tasks, &options).unwrap();
    });
    let patches = HORIZON / pipeline.model.chronos.output_patch_size;
    (
        seconds,
        matmul_flops(&pipeline.model, RATE_BATCH, context, patches),
    )
}

fn main() {
    let cases = parse_cases(&env_or("CHRONOS2_BENCH_CASES", DEFAULT_CASES.to_string()));
    let repeats: usize = env_or("CHRONOS2_BENCH_REPEATS", 3);
    let peak = matmul_rate(5);
    println!(
        "Chronos-2 (random weights), horizon {HORIZON}, 9 levels, batch size 256, CPU threads {}; median of {repeats}",
        tch::get_num_threads()
    );
    println!(
        "{:<26} {:>10} {:>10} {:>8} {:>10} {:>10}",
        "size series context dtype", "rust s", "python s", "ratio", "rust MB", "python MB"
    );
    for case in &cases {
        let t = run_case(case, repeats);
        println!(
            "{:<26} {:>10.2} {:>10.2} {:>7.2}x {:>10.0} {:>10.0}",
            format!(
                "{} {} {} {}",
                case.size, case.series, case.context, case.dtype_name
            ),
            t.rust_s,
            t.python_s,
            t.python_s / t.rust_s,
            t.rust_rss,
            t.python_rss
        );
    }
    println!(
        "plain f32 matmul (2048^3, libtorch): {:.1} GFLOP/s",
        peak / 1e9
    );
    for (size, context) in [("small", 1024), ("base", 1024)] {
        let (seconds, flops) = forward_rate(size, context, repeats);
        println!(
            "{size}, {RATE_BATCH} series x {context}, f32 forward: {:.2} s, {:.1} GFLOP, {:.1} GFLOP/s = {:.2} of the matmul rate",
            seconds,
            flops / 1e9,
            flops / seconds / 1e9,
            flops / seconds / peak
        );
    }
}
