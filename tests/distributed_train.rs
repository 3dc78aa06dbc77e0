//! Data-parallel training through the `train` binary on the CPU (Gloo): `--nproc 2` trains the
//! model that one process trains on the union of the two ranks' batches, with the replicas
//! checked identical after every step; a killed rank ends the job quickly with an error naming
//! it, and `--resume` continues from the last complete checkpoint to the weights of an
//! uninterrupted run (with the same number of ranks only); torchrun can launch the ranks.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use tch::Tensor;

use chronos::data::{GluonEntry, GluonWriteOptions, GluonWriter};

const TRAIN: &str = env!("CARGO_BIN_EXE_train");

/// 40 sines (period 12, varied phase and level) of lengths 30 to 120: instances of the short
/// ones have padded contexts, so the ranks' batches hold different numbers of observed values.
fn write_sines(dir: &Path) -> PathBuf {
    let path = dir.join("sines.arrow");
    let start = NaiveDate::from_ymd_opt(2020, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap();
    let entries: Vec<GluonEntry> = (0..40)
        .map(|i| GluonEntry {
            start,
            target: (0..30 + (i * 23) % 91)
                .map(|t| {
                    let angle = 2.0 * std::f64::consts::PI * t as f64 / 12.0 + i as f64 * 0.7;
                    10.0 + i as f64 + 3.0 * angle.sin()
                })
                .collect(),
        })
        .collect();
    let mut writer = GluonWriter::create(&path, &GluonWriteOptions::default()).unwrap();
    writer.write(&entries, &[]).unwrap();
    writer.finish().unwrap();
    path
}

/// A tiny Chronos-Bolt without dropout (dropout masks depend on the batch shape).
///
/// Quantile levels q with q * N never an integer for these batch sizes N: the pinball loss's
/// gradient for level q sums terms `1{y <= p} - q`, which cancel exactly when q * N targets
/// lie below the prediction (q = 0.5, N = 16: 8 of 16). Such a gradient is 0 up to rounding,
/// and AdamW's first step turns the rounding residue, which differs with the summation order,
/// into a step of about ±lr. The same holds for torch's DDP; these levels keep the comparison
/// about the data-parallel arithmetic.
const BOLT: &str = "model_family: bolt\ncontext_length: 32\nprediction_length: 8\n\
    input_patch_size: 8\ninput_patch_stride: 8\nquantiles: [0.1234, 0.4321, 0.8765]\n\
    model_config: {d_model: 32, d_ff: 64, d_kv: 16, num_heads: 2, num_layers: 1, \
    num_decoder_layers: 1, dropout_rate: 0.0}\n";

/// A tiny causal Chronos-GPT2 without dropout, accumulating two micro-batches per step: its
/// loss divides by the step's token count, summed over the ranks.
const GPT2: &str = "model_family: t5\nmodel_type: causal\nmodel_id: openai-community/gpt2\n\
    context_length: 32\nprediction_length: 8\nn_tokens: 128\nmax_missing_prop: 0.1\n\
    gradient_accumulation_steps: 2\nmodel_config: {n_embd: 32, n_layer: 1, n_head: 2, \
    resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0}\n";

/// `model` (BOLT or GPT2) training on `data`, batch 8, then the `extra` keys.
fn write_config(dir: &Path, data: &Path, model: &str, extra: &str) -> PathBuf {
    let yaml = format!(
        "{model}training_data_paths: [{data:?}]\nmin_past: 16\nper_device_train_batch_size: 8\n\
         learning_rate: 0.001\nshuffle_buffer_length: 20\nseed: 11\nrandom_init: true\n{extra}"
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Runs `train` with `args` (options first, then `--config` and overrides) to completion.
fn train(args: &[&str]) -> String {
    let out = Command::new(TRAIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "train {args:?} failed:\n{stderr}");
    stderr
}

fn weights(dir: &Path) -> Vec<(String, Tensor)> {
    let mut w = Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

fn metric(run_dir: &Path, key: &str) -> Vec<f64> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()[key]
                .as_f64()
                .unwrap()
        })
        .collect()
}

/// The largest `|a - b| / (1 + |b|)` over all weights.
fn max_difference(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            let err = (ta - tb).abs() / (tb.abs() + 1.0);
            err.max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

#[test]
fn two_bolt_ranks_train_the_model_of_one_process_on_the_union_of_their_batches() {
    check_union_batch(BOLT);
}

#[test]
fn two_causal_gpt2_ranks_train_the_model_of_one_process_on_the_union_of_their_batches() {
    check_union_batch(GPT2);
}

/// 12 steps of `model` on 2 ranks (replicas checked identical after every step) against one
/// process with twice the batch, and against rank 0's shard alone.
fn check_union_batch(model: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_sines(tmp.path());
    let config = write_config(
        tmp.path(),
        &data,
        model,
        "max_steps: 12\nsave_steps: 100\nlog_steps: 4\n",
    );
    let config = config.to_str().unwrap();
    let out = |name: &str| tmp.path().join(name).to_string_lossy().to_string();
    let (two, one, shard) = (out("two"), out("one"), out("shard"));

    let log = train(&[
        "--threads",
        "1",
        "--quiet",
        "--check-sync",
        "1",
        "--nproc",
        "2",
        "--config",
        config,
        "--output-dir",
        &two,
    ]);
    for rank in 0..2 {
        assert!(log.contains(&format!("[rank {rank}] 12 steps")), "{log}");
    }
    train(&[
        "--threads",
        "1",
        "--quiet",
        "--config",
        config,
        "--output-dir",
        &one,
        "--per-device-train-batch-size",
        "16",
    ]);
    // rank 0's shard alone: what the ranks would train without averaging their gradients
    train(&[
        "--threads",
        "1",
        "--quiet",
        "--config",
        config,
        "--output-dir",
        &shard,
    ]);

    let run = |dir: &str| Path::new(dir).join("run-0");
    let entries = std::fs::read_dir(&two).unwrap().count();
    assert_eq!(entries, 1, "rank 0 alone made a run directory");
    let final_of = |dir: &str| weights(&run(dir).join("checkpoint-final"));
    let (two_w, one_w, shard_w) = (final_of(&two), final_of(&one), final_of(&shard));
    for ((name, a), (_, b)) in two_w.iter().zip(&one_w) {
        common::assert_close(name, a, b, 1e-5);
    }
    let off = max_difference(&shard_w, &one_w);
    assert!(
        off > 1e-3,
        "a single shard should train another model (max difference {off:e})"
    );

    // the logged losses and gradient norms are those of the union batch
    for key in ["loss", "grad_norm"] {
        let (a, b) = (metric(&run(&two), key), metric(&run(&one), key));
        assert_eq!(a.len(), 3);
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                "{key}: {a:?} vs {b:?}"
            );
        }
    }
    let allreduce = metric(&run(&two), "allreduce_s_per_step");
    assert!(
        allreduce.iter().all(|s| s.is_finite() && *s > 0.0),
        "{allreduce:?}"
    );
}

/// Starts `train` with `args`, collecting its stderr lines as they come.
fn spawn(args: &[&str]) -> (std::process::Child, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(TRAIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (child, lines)
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_killed_rank_ends_the_job_and_resume_continues_from_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_sines(tmp.path());
    let extra = "max_steps: 100000\nsave_steps: 20\nlog_steps: 20\nlr_scheduler_type: constant\n";
    let config = write_config(tmp.path(), &data, BOLT, extra);
    let config = config.to_str().unwrap();
    let whole = tmp.path().join("whole").to_string_lossy().to_string();
    let broken = tmp.path().join("broken").to_string_lossy().to_string();
    let stop = "200";

    train(&[
        "--threads",
        "1",
        "--quiet",
        "--stop-after",
        stop,
        "--nproc",
        "2",
        "--config",
        config,
        "--output-dir",
        &whole,
    ]);

    let (mut job, lines) = spawn(&[
        "--threads",
        "1",
        "--quiet",
        "--nproc",
        "2",
        "--config",
        config,
        "--output-dir",
        &broken,
    ]);
    let run_dir = Path::new(&broken).join("run-0");
    let minute = Duration::from_secs(60);
    wait_until("the first checkpoint", minute, || {
        run_dir.join("checkpoint-20").is_dir()
    });
    let pid: i32 = {
        let lines = lines.lock().unwrap();
        let line = lines
            .iter()
            .find_map(|l| l.strip_prefix("launcher: rank 1 is pid "))
            .expect("the launcher names its ranks' pids");
        line.trim().parse().unwrap()
    };
    // SAFETY: signalling a child of the job this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);

    let killed = Instant::now();
    let mut status = None;
    wait_until("the job to end", minute, || {
        status = job.try_wait().unwrap();
        status.is_some()
    });
    eprintln!("the job ended {:?} after the kill", killed.elapsed());
    assert!(!status.unwrap().success(), "the launcher must fail");
    let log = lines.lock().unwrap().join("\n");
    assert!(
        log.contains(&format!("rank 1 (pid {pid}) was killed by signal 9")),
        "the launcher names the dead rank:\n{log}"
    );
    assert!(
        log.contains("[rank 0] Error"),
        "rank 0 fails on its own:\n{log}"
    );

    // the last complete checkpoint is before the stop, and the run resumes from it
    let last = (1..10)
        .map(|k| k * 20)
        .rfind(|step| run_dir.join(format!("checkpoint-{step}")).is_dir())
        .unwrap();
    assert!(
        last < 200,
        "killed too late to test resuming (checkpoint-{last})"
    );
    // the ranks' shards depend on the world size: one process cannot take over
    let single = Command::new(TRAIN)
        .args(["--threads", "1", "--quiet", "--resume"])
        .arg(&run_dir)
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&single.stderr);
    assert!(!single.status.success());
    assert!(
        message.contains("trained by 2 rank(s), this job has 1"),
        "{message}"
    );
    let log = train(&[
        "--threads",
        "1",
        "--quiet",
        "--stop-after",
        stop,
        "--nproc",
        "2",
        "--resume",
        run_dir.to_str().unwrap(),
    ]);
    assert!(log.contains("[rank 0] 200 steps"), "{log}");
    let resumed = weights(&run_dir.join("checkpoint-200"));
    let reference = weights(&Path::new(&whole).join("run-0/checkpoint-200"));
    for ((name, a), (_, b)) in resumed.iter().zip(&reference) {
        assert!(
            a.equal(b),
            "{name}: resumed weights differ from the uninterrupted run's"
        );
    }
}

/// The files named `name` under `dir`, recursively.
fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            found.extend(find_files(&path, name));
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found
}

#[test]
fn torchrun_runs_the_ranks_with_its_own_store() {
    // torchrun's agent hosts the TCPStore on MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True)
    let torchrun = common::root().join(".venv/bin/torchrun");
    let tmp = tempfile::tempdir().unwrap();
    let data = write_sines(tmp.path());
    let config = write_config(
        tmp.path(),
        &data,
        BOLT,
        "max_steps: 6\nsave_steps: 100\nlog_steps: 3\n",
    );
    let (out, logs) = (tmp.path().join("out"), tmp.path().join("logs"));
    let port = chronos::distributed::free_port("127.0.0.1")
        .unwrap()
        .to_string();
    let status = Command::new(&torchrun)
        .args([
            "--nproc-per-node=2",
            "--master-port",
            &port,
            "--redirects",
            "3",
            "--log-dir",
        ])
        .arg(&logs)
        .args([
            "--no-python",
            TRAIN,
            "--threads",
            "1",
            "--quiet",
            "--check-sync",
            "1",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--output-dir")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", torchrun.display()));
    // torchrun keeps each rank's stderr in <log-dir>/<run>/attempt_0/<rank>/stderr.log
    let rank_logs: Vec<String> = find_files(&logs, "stderr.log")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(status.success(), "torchrun failed:\n{rank_logs:#?}");
    assert_eq!(rank_logs.len(), 2);
    for log in &rank_logs {
        assert!(log.contains("6 steps in"), "{log}");
        assert!(
            !log.contains("failed to bind"),
            "a rank hosted a store:\n{log}"
        );
    }
    assert_eq!(metric(&out.join("run-0"), "loss").len(), 2);
}
