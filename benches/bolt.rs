//! `cargo bench --bench bolt`: Chronos-Bolt inference speed, Rust vs the Python reference, in one
//! run on the same machine and the same checkpoint (random weights with the published
//! chronos-bolt-small architecture, f32, context 512, horizon 64).
//!
//! Prints throughput at batch 64 and latency at batch 1 for both, the ratio, peak RSS, the
//! model's matmul FLOPs per batch (counted from the architecture), the machine's plain f32
//! matmul rate measured in the same run, and bf16 speed with its deviation from f32.
//!
//! Needs `scripts/setup.sh --reference` (the Python side); the checkpoint is generated on first
//! use by `fixtures/generate.py --full-size small` into the git-ignored `fixtures/full-size/`.
//! Environment: `BOLT_BENCH_SIZE` (tiny|mini|small|base, default small), `BOLT_BENCH_REPEATS`.

mod common;

use chronos::bolt::ChronosBolt;
use chronos::checkpoint::Checkpoint;
use chronos::pipeline::{BoltPipeline, Dtype};
use common::{
    env_or, full_size_checkpoint, matmul_rate, median_seconds, peak_rss_mb,
    python_forecast_timings, random_walks, TempFile,
};
use tch::{Device, Tensor};

const BATCH: i64 = 64;
const CONTEXT: i64 = 512;
const HORIZON: i64 = 64;

/// Multiply-add FLOPs (2 per MAC) of the matmuls of one Bolt forward pass.
fn matmul_flops(model: &ChronosBolt, batch: i64, context: i64) -> f64 {
    let c = &model.config;
    let b = &model.chronos;
    let (d, ff, inner) = (c.d_model, c.d_ff, c.num_heads * c.d_kv);
    let patches = (context + b.input_patch_size - 1) / b.input_patch_size;
    let tokens = patches + i64::from(b.use_reg_token);
    let gated = if c.feed_forward().expect("valid config").1 {
        3
    } else {
        2
    };
    let outputs = b.quantiles.len() as i64 * b.prediction_length;
    let mac = |rows: i64, k: i64, n: i64| (rows * k * n) as f64;
    let patch_in = 2 * b.input_patch_size;
    let input = mac(patches, patch_in, ff) + mac(patches, ff, d) + mac(patches, patch_in, d);
    let encoder_layer =
        mac(tokens, d, 4 * inner) + 2.0 * mac(tokens, tokens, inner) + mac(tokens, d, gated * ff);
    let decoder_layer = mac(1, d, 4 * inner)      // self-attention
        + mac(1, d, 2 * inner) + mac(tokens, d, 2 * inner) + 2.0 * mac(1, tokens, inner) // cross
        + mac(1, d, gated * ff);
    let output = mac(1, d, ff) + mac(1, ff, outputs) + mac(1, d, outputs);
    let per_series = input
        + c.num_layers as f64 * encoder_layer
        + c.num_decoder_layers() as f64 * decoder_layer
        + output;
    2.0 * batch as f64 * per_series
}

fn main() {
    let size: String = env_or("BOLT_BENCH_SIZE", "small".to_string());
    let repeats: usize = env_or("BOLT_BENCH_REPEATS", 5);
    let dir = full_size_checkpoint("generate.py", "bolt", &size);
    let checkpoint = Checkpoint::from_dir(&dir).expect("checkpoint");
    let (inputs, input_file) = random_walks(BATCH, CONTEXT);
    let input_file = TempFile(input_file);

    let threads = tch::get_num_threads();
    let peak = matmul_rate(repeats);

    let f32_pipeline = BoltPipeline::load(&checkpoint, Dtype::F32, Device::Cpu).expect("load f32");
    let flops = matmul_flops(&f32_pipeline.model, BATCH, CONTEXT);
    let one = inputs.narrow(0, 0, 1);
    let predict = |p: &BoltPipeline, x: &Tensor| p.predict(x, Some(HORIZON), false).unwrap();
    let rust_batch = median_seconds(repeats, || {
        let _ = predict(&f32_pipeline, &inputs);
    });
    let rust_single = median_seconds(4 * repeats, || {
        let _ = predict(&f32_pipeline, &one);
    });
    let rust_rss = peak_rss_mb();
    let reference = predict(&f32_pipeline, &inputs);
    drop(f32_pipeline);

    let bf16_pipeline =
        BoltPipeline::load(&checkpoint, Dtype::BF16, Device::Cpu).expect("load bf16");
    let bf16_batch = median_seconds(repeats, || {
        let _ = predict(&bf16_pipeline, &inputs);
    });
    let bf16_single = median_seconds(4 * repeats, || {
        let _ = predict(&bf16_pipeline, &one);
    });
    let bf16_out = predict(&bf16_pipeline, &inputs);
    let rel_dev = ((&bf16_out - &reference).abs() / (reference.abs() + 1.0))
        .max()
        .double_value(&[]);

    let py = python_forecast_timings(
        "bench_bolt.py",
        &dir,
        &input_file.0,
        (BATCH, CONTEXT, HORIZON),
        repeats,
        &[],
    );
    let (py_batch, py_single, py_rss) = (py.batch_s, py.single_s, py.peak_rss_mb);

    println!("chronos-bolt-{size} (random weights), f32, context {CONTEXT}, horizon {HORIZON}, CPU threads: rust {threads}, python {}", py.threads);
    println!(
        "plain f32 matmul (2048^3, libtorch): {:.1} GFLOP/s",
        peak / 1e9
    );
    println!(
        "model matmul FLOPs per batch of {BATCH}: {:.2} GFLOP",
        flops / 1e9
    );
    println!("{:<28} {:>12} {:>12} {:>10}", "", "rust", "python", "ratio");
    println!(
        "{:<28} {:>12.1} {:>12.1} {:>9.2}x",
        "batch 64: series/s",
        BATCH as f64 / rust_batch,
        BATCH as f64 / py_batch,
        py_batch / rust_batch
    );
    println!(
        "{:<28} {:>11.2}x {:>11.2}x",
        "batch 64: of matmul rate",
        flops / rust_batch / peak,
        flops / py_batch / peak
    );
    println!(
        "{:<28} {:>12.2} {:>12.2} {:>9.2}x",
        "batch 1: latency ms",
        rust_single * 1e3,
        py_single * 1e3,
        rust_single / py_single
    );
    println!("{:<28} {:>12.0} {:>12.0}", "peak RSS MB", rust_rss, py_rss);
    println!(
        "bf16 (rust): batch 64 {:.1} series/s ({:.2}x f32), batch 1 {:.2} ms ({:.2}x python f32), max |bf16 - f32| / (1 + |f32|) = {rel_dev:.2e}",
        BATCH as f64 / bf16_batch,
        rust_batch / bf16_batch,
        bf16_single * 1e3,
        bf16_single / py_single
    );
}
