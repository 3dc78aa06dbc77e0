//! `cargo bench --bench t5`: Chronos-T5 sampling speed, Rust vs the Python reference, in one run
//! on the same machine and checkpoint (random weights with the published chronos-t5-small
//! architecture, f32, context 512, horizon 64, 20 sample paths, batch 8 and batch 1).
//!
//! Prints both sides' throughput and latency with the ratio, peak RSS, and a bf16 row. Python
//! spends its time in HF `generate`, which repeats every series' encoder states for each sample
//! path and projects them to cross-attention keys/values again; Rust projects them once per
//! series.
//!
//! Needs `scripts/setup.sh --reference`; the checkpoint is generated on first use by
//! `fixtures/generate_t5.py --full-size small` into git-ignored `fixtures/full-size/`.
//! Environment: `T5_BENCH_SIZE` (tiny|mini|small|base), `T5_BENCH_REPEATS` (default 3).

mod common;

use chronos::checkpoint::Checkpoint;
use chronos::pipeline::{ChronosPipeline, Dtype};
use common::{
    env_or, full_size_checkpoint, median_seconds, peak_rss_mb, python_forecast_timings,
    random_walks, TempFile,
};
use tch::{Device, Tensor};

const BATCH: i64 = 8;
const CONTEXT: i64 = 512;
const HORIZON: i64 = 64;
const SAMPLES: i64 = 20;

fn main() {
    let size: String = env_or("T5_BENCH_SIZE", "small".to_string());
    let repeats: usize = env_or("T5_BENCH_REPEATS", 3);
    let dir = full_size_checkpoint("generate_t5.py", "t5", &size);
    let checkpoint = Checkpoint::from_dir(&dir).expect("checkpoint");
    let (inputs, input_file) = random_walks(BATCH, CONTEXT);
    let input_file = TempFile(input_file);
    let one = inputs.narrow(0, 0, 1);

    let time = |dtype: Dtype| {
        let p = ChronosPipeline::load(&checkpoint, dtype, Device::Cpu).expect("load");
        let sampling = chronos::sampling::SamplingConfig {
            num_samples: SAMPLES,
            ..p.default_sampling()
        };
        let predict = |x: &Tensor| {
            let _ = p.predict(x, Some(HORIZON), &sampling, false).unwrap();
        };
        let batch = median_seconds(repeats, || predict(&inputs));
        let single = median_seconds(2 * repeats, || predict(&one));
        (batch, single)
    };
    let (rust_batch, rust_single) = time(Dtype::F32);
    let rust_rss = peak_rss_mb();
    let (bf16_batch, bf16_single) = time(Dtype::BF16);

    let py = python_forecast_timings(
        "bench_t5.py",
        &dir,
        &input_file.0,
        (BATCH, CONTEXT, HORIZON),
        repeats,
        &["--num-samples".into(), SAMPLES.to_string()],
    );
    let (py_batch, py_single, py_rss) = (py.batch_s, py.single_s, py.peak_rss_mb);

    println!(
        "chronos-t5-{size} (random weights), f32, context {CONTEXT}, horizon {HORIZON}, {SAMPLES} samples, CPU threads: rust {}, python {}",
        tch::get_num_threads(),
        py.threads
    );
    println!(
        "{:<30} {:>10} {:>10} {:>10}",
        "", "rust", "python", "speed-up"
    );
    println!(
        "{:<30} {:>10.2} {:>10.2} {:>9.2}x",
        format!("batch {BATCH}: series/s"),
        BATCH as f64 / rust_batch,
        BATCH as f64 / py_batch,
        py_batch / rust_batch
    );
    println!(
        "{:<30} {:>10.0} {:>10.0} {:>9.2}x",
        "batch 1: latency ms",
        rust_single * 1e3,
        py_single * 1e3,
        py_single / rust_single
    );
    println!("{:<30} {:>10.0} {:>10.0}", "peak RSS MB", rust_rss, py_rss);
    println!(
        "bf16 (rust): batch {BATCH} {:.2} series/s ({:.2}x python f32), batch 1 {:.0} ms ({:.2}x python f32)",
        BATCH as f64 / bf16_batch,
        py_batch / bf16_batch,
        bf16_single * 1e3,
        py_single / bf16_single
    );
}
