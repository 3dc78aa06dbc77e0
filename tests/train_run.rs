//! The training loop (`chronos::train::run`): tiny Chronos-Bolt and Chronos-T5 models trained
//! for a few steps on a synthetic GluonTS Arrow file (CPU, seconds): the loss goes down, the
//! final checkpoint loads back through `Pipeline::load` and forecasts finite values, an
//! interrupted and resumed run ends with the same weights as an uninterrupted one (bit for
//! bit), and bad configs or paths give errors that say what is wrong.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use tch::{Device, Tensor};

use chronos::data::{GluonEntry, GluonWriteOptions, GluonWriter};
use chronos::pipeline::{Dtype, Pipeline};
use chronos::train::config::TrainConfig;
use chronos::train::run::{self, RunOptions, TrainRunError};

/// `count` noiseless sines (period 12, random-ish phase and level) of length `len`.
fn write_sines(dir: &Path, count: usize, len: usize) -> PathBuf {
    let path = dir.join("sines.arrow");
    let start = NaiveDate::from_ymd_opt(2020, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("valid date");
    let entries: Vec<GluonEntry> = (0..count)
        .map(|i| {
            let phase = i as f64 * 0.7;
            let level = 10.0 + i as f64;
            GluonEntry {
                start,
                target: (0..len)
                    .map(|t| {
                        level + 3.0 * (2.0 * std::f64::consts::PI * t as f64 / 12.0 + phase).sin()
                    })
                    .collect(),
            }
        })
        .collect();
    let mut writer = GluonWriter::create(&path, &GluonWriteOptions::default()).unwrap();
    writer.write(&entries, &[]).unwrap();
    writer.finish().unwrap();
    path
}

/// The tests take turns: training and T5 sampling draw from libtorch's global generator.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const TINY_T5: &str = "{d_model: 32, d_ff: 64, d_kv: 16, num_heads: 2, num_layers: 1, \
                       num_decoder_layers: 1}";

/// A tiny config of `family` training on `data` into `out`.
fn tiny_config(family: &str, data: &Path, out: &Path, extra: &str) -> TrainConfig {
    let family_keys = match family {
        "bolt" => "model_family: bolt\ninput_patch_size: 8\n",
        _ => "model_family: t5\nn_tokens: 128\n",
    };
    let yaml = format!(
        "{family_keys}training_data_paths: [{data:?}]\noutput_dir: {out:?}\n\
         context_length: 32\nprediction_length: 8\nmin_past: 16\nmax_steps: 60\n\
         save_steps: 100\nlog_steps: 10\nper_device_train_batch_size: 16\n\
         gradient_accumulation_steps: 1\nlearning_rate: 0.01\nshuffle_buffer_length: 10\n\
         seed: 7\nrandom_init: true\nmodel_config: {TINY_T5}\n{extra}",
    );
    let cfg = TrainConfig::from_yaml_str(&yaml).unwrap();
    cfg.validate().unwrap();
    cfg
}

/// The `loss` of each line of a run's `metrics.jsonl`.
fn logged_losses(run_dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

fn weights(dir: &Path) -> Vec<(String, Tensor)> {
    let mut w = Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

/// Trains `family` for 60 steps; checks the loss, the run layout and the final checkpoint.
fn check_training(family: &str) {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let data = write_sines(tmp.path(), 40, 120);
    let out = tmp.path().join("out");
    let cfg = tiny_config(family, &data, &out, "");
    let summary = run::train(&cfg, &RunOptions::default()).unwrap();
    assert_eq!(summary.run_dir, out.join("run-0"));
    assert_eq!(summary.steps, 60);
    let losses = logged_losses(&summary.run_dir);
    assert_eq!(losses.len(), 6, "a metrics line every 10 steps");
    eprintln!(
        "{family}: logged losses {losses:?}, {:.1} steps/s",
        summary.steps_per_second
    );
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(
        (losses[4] + losses[5]) / 2.0 < 0.85 * losses[0],
        "{family}: the loss did not go down: {losses:?}"
    );

    let final_dir = summary.final_checkpoint.clone().unwrap();
    assert_eq!(final_dir, summary.run_dir.join("checkpoint-final"));
    for file in [
        "config.json",
        "model.safetensors",
        "training_info.json",
        "trainer_state.json",
    ] {
        assert!(final_dir.join(file).is_file(), "{file} missing");
    }
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(final_dir.join("training_info.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(info["training_config"]["max_steps"], 60);
    assert_eq!(info["training_config"]["seed"], 7);
    // The written config is the one the config module generates.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(final_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config, cfg.config_json().unwrap());
    // Tied embeddings are stored once.
    let names: Vec<String> = weights(&final_dir).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"shared.weight".to_string()));
    assert!(!names.contains(&"encoder.embed_tokens.weight".to_string()));

    // A second run goes to run-1.
    assert_eq!(run::next_run_dir(&out), out.join("run-1"));

    // The checkpoint forecasts.
    let pipeline = Pipeline::load(final_dir.to_str().unwrap(), Dtype::F32, Device::Cpu).unwrap();
    let context = Tensor::from_slice(
        &(0..32)
            .map(|t| 10.0 + 3.0 * (2.0 * std::f32::consts::PI * t as f32 / 12.0).sin())
            .collect::<Vec<f32>>(),
    )
    .unsqueeze(0);
    tch::manual_seed(0);
    let forecast = pipeline
        .predict_quantiles(&context, None, &[0.1, 0.5, 0.9], None, true)
        .unwrap();
    assert_eq!(forecast.mean.size(), vec![1, 8]);
    assert!(bool::try_from(forecast.quantiles.isfinite().all()).unwrap());
    assert!(bool::try_from(forecast.mean.isfinite().all()).unwrap());

    python_loads(&final_dir);
    check_tensorboard(&summary.run_dir, &losses);
}

#[test]
fn bf16_mixed_precision_trains() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let data = write_sines(tmp.path(), 40, 120);
    let (out_f32, out_bf16) = (tmp.path().join("f32"), tmp.path().join("bf16"));
    let f32_run = run::train(
        &tiny_config("bolt", &data, &out_f32, ""),
        &RunOptions::default(),
    )
    .unwrap();
    let cfg = tiny_config("bolt", &data, &out_bf16, "bf16: true\n");
    let bf16_run = run::train(&cfg, &RunOptions::default()).unwrap();
    let (full, mixed) = (
        logged_losses(&f32_run.run_dir),
        logged_losses(&bf16_run.run_dir),
    );
    eprintln!("losses: f32 {full:?}, bf16 autocast {mixed:?}");
    assert!(
        (mixed[4] + mixed[5]) / 2.0 < 0.85 * mixed[0],
        "the loss did not go down: {mixed:?}"
    );
    assert_ne!(full, mixed, "autocast changed nothing");
    // Same data and initialisation: the first logged losses agree to bfloat16 precision.
    assert!(
        (mixed[0] - full[0]).abs() < 0.05 * full[0],
        "{mixed:?} vs {full:?}"
    );
    // The checkpoint is f32 like any other.
    let final_dir = bf16_run.final_checkpoint.unwrap();
    assert!(weights(&final_dir)
        .iter()
        .all(|(_, t)| t.kind() == tch::Kind::Float));
}

/// `(step, tag, value)` of every scalar in the TFRecord event file `path`, each record's
/// length and data checked against their masked CRC-32C.
fn read_events(path: &Path) -> Vec<(u64, String, f32)> {
    fn varint(bytes: &[u8], at: &mut usize) -> u64 {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = bytes[*at];
            *at += 1;
            value |= u64::from(byte & 0x7F) << shift;
            if byte < 0x80 {
                break;
            }
        }
        value
    }
    /// The fields of a protobuf message: (field number, varint or the bytes of the payload).
    fn fields(bytes: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
        let (mut at, mut out) = (0, Vec::new());
        while at < bytes.len() {
            let key = varint(bytes, &mut at);
            let (field, wire) = (key >> 3, key & 7);
            let payload = match wire {
                0 => (varint(bytes, &mut at), Vec::new()),
                1 => (0, bytes[at..at + 8].to_vec()),
                2 => {
                    let len = varint(bytes, &mut at) as usize;
                    (0, bytes[at..at + len].to_vec())
                }
                5 => (0, bytes[at..at + 4].to_vec()),
                other => panic!("wire type {other}"),
            };
            at += match wire {
                1 => 8,
                2 => payload.1.len(),
                5 => 4,
                _ => 0,
            };
            out.push((field, payload.0, payload.1));
        }
        out
    }
    let bytes = std::fs::read(path).unwrap();
    let (mut at, mut scalars, mut records) = (0, Vec::new(), 0);
    let crc = |data: &[u8]| chronos::train::tensorboard::masked_crc32c(data);
    while at < bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        assert_eq!(crc(len_bytes).to_le_bytes(), bytes[at + 8..at + 12]);
        let data = &bytes[at + 12..at + 12 + len];
        assert_eq!(crc(data).to_le_bytes(), bytes[at + 12 + len..at + 16 + len]);
        at += 16 + len;
        let event = fields(data);
        if records == 0 {
            assert!(event
                .iter()
                .any(|(f, _, b)| *f == 3 && b == b"brain.Event:2"));
        }
        records += 1;
        let step = event.iter().find(|f| f.0 == 2).map_or(0, |f| f.1);
        for (_, _, summary) in event.iter().filter(|f| f.0 == 5) {
            for (_, _, value) in fields(summary) {
                let value = fields(&value);
                let tag = value.iter().find(|f| f.0 == 1).unwrap();
                let simple = value.iter().find(|f| f.0 == 2).unwrap();
                scalars.push((
                    step,
                    String::from_utf8(tag.2.clone()).unwrap(),
                    f32::from_le_bytes(simple.2.clone().try_into().unwrap()),
                ));
            }
        }
    }
    scalars
}

/// The run's TensorBoard file holds the logged losses (and the other scalars) at their steps;
/// when `.venv` has TensorBoard, its own reader agrees.
fn check_tensorboard(run_dir: &Path, losses: &[f64]) {
    let files: Vec<PathBuf> = std::fs::read_dir(run_dir.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let scalars = read_events(&files[0]);
    let logged: Vec<(u64, f32)> = scalars
        .iter()
        .filter(|(_, tag, _)| tag == "train/loss")
        .map(|(step, _, v)| (*step, *v))
        .collect();
    let expected: Vec<(u64, f32)> = losses
        .iter()
        .enumerate()
        .map(|(i, l)| (10 * (i as u64 + 1), *l as f32))
        .collect();
    assert_eq!(logged, expected);
    for tag in [
        "train/learning_rate",
        "train/grad_norm",
        "train/steps_per_second",
    ] {
        let n = scalars
            .iter()
            .filter(|(_, t, v)| t == tag && v.is_finite())
            .count();
        assert_eq!(n, losses.len(), "{tag}");
    }

    let Some(python) = venv_python_with("tensorboard") else {
        eprintln!("TensorBoard check skipped: no .venv with tensorboard");
        return;
    };
    let script = "import sys\n\
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n\
        acc = EventAccumulator(sys.argv[1]); acc.Reload()\n\
        print(' '.join(f'{e.step}:{e.value!r}' for e in acc.Scalars('train/loss')))";
    let out = std::process::Command::new(&python)
        .args(["-c", script, run_dir.join("logs").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<(u64, f32)> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|pair| {
            let (step, value) = pair.split_once(':').unwrap();
            (step.parse().unwrap(), value.parse::<f64>().unwrap() as f32)
        })
        .collect();
    assert_eq!(read, expected, "TensorBoard's reader");
}

/// `.venv`'s Python when `module` imports there.
fn venv_python_with(module: &str) -> Option<PathBuf> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let imports = python.is_file()
        && std::process::Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
    imports.then_some(python)
}

/// When `.venv` has the Python `chronos` package: the checkpoint loads in
/// `BaseChronosPipeline.from_pretrained` and predicts.
fn python_loads(dir: &Path) {
    let Some(python) = venv_python_with("chronos") else {
        eprintln!("python check skipped: no .venv with the chronos package");
        return;
    };
    let script = "import sys, torch\nfrom chronos import BaseChronosPipeline\n\
                  p = BaseChronosPipeline.from_pretrained(sys.argv[1], device_map='cpu')\n\
                  q, m = p.predict_quantiles(torch.arange(32.0).unsqueeze(0), 8, [0.5])\n\
                  assert torch.isfinite(q).all(), q\nprint('python ok', tuple(q.shape))";
    let out = std::process::Command::new(&python)
        .args(["-c", script, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Python package does not load {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
}

#[test]
fn bolt_trains_and_its_checkpoint_forecasts() {
    check_training("bolt");
}

#[test]
fn t5_trains_and_its_checkpoint_forecasts() {
    check_training("t5");
}

/// Interrupted after 6 steps (checkpoint at 4), resumed: the same final weights and data
/// position as an uninterrupted run, and the same logged losses (metrics of the lost steps are
/// dropped; a logging window spanning the checkpoint is restored from the checkpoint); also
/// from a checkpoint without the AdamW state, by replay.
fn check_resume(family: &str) {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let data = write_sines(tmp.path(), 20, 80);
    let mut cfg = tiny_config(family, &data, &tmp.path().join("a"), "");
    (cfg.max_steps, cfg.save_steps, cfg.log_steps) = (10, 4, 3);
    cfg.gradient_accumulation_steps = 2;
    let whole = run::train(&cfg, &RunOptions::default()).unwrap();
    // The same run, stopped after 6 steps, into `tmp/<out>`.
    let stopped_run = |out: &str| {
        let mut cfg = cfg.clone();
        cfg.output_dir = tmp.path().join(out);
        let options = RunOptions {
            stop_after: Some(6),
            ..RunOptions::default()
        };
        run::train(&cfg, &options).unwrap()
    };

    let stopped = stopped_run("b");
    assert_eq!(stopped.steps, 6);
    assert!(stopped.final_checkpoint.is_none());
    assert!(stopped.run_dir.join("checkpoint-4").is_dir());
    let resumed = run::resume(&stopped.run_dir, &RunOptions::default()).unwrap();
    assert_eq!(resumed.steps, 10);

    let a = whole.final_checkpoint.unwrap();
    let b = resumed.final_checkpoint.unwrap();
    let (wa, wb) = (weights(&a), weights(&b));
    assert_eq!(wa.len(), wb.len());
    for ((na, ta), (nb, tb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{family}: {na} differs after resuming");
    }
    let state = |dir: &Path| std::fs::read_to_string(dir.join("trainer_state.json")).unwrap();
    assert_eq!(state(&a), state(&b));
    // The resumed run loaded checkpoint-4's AdamW state; the final states agree bit for bit.
    let optimizer = |dir: &Path| std::fs::read(dir.join("optimizer.safetensors")).unwrap();
    assert_eq!(
        optimizer(&a),
        optimizer(&b),
        "{family}: AdamW states differ"
    );
    assert_eq!(
        logged_losses(&whole.run_dir),
        logged_losses(&resumed.run_dir),
        "{family}: metrics differ"
    );

    // A checkpoint without the AdamW state (an older run) is resumed by replaying its steps.
    let stopped = stopped_run("c");
    std::fs::remove_file(stopped.run_dir.join("checkpoint-4/optimizer.safetensors")).unwrap();
    let replayed = run::resume(&stopped.run_dir, &RunOptions::default()).unwrap();
    let wc = weights(&replayed.final_checkpoint.unwrap());
    for ((na, ta), (_, tc)) in wa.iter().zip(&wc) {
        assert!(ta.equal(tc), "{family}: {na} differs after replaying");
    }

    // A finished run does not resume.
    let err = run::resume(&resumed.run_dir, &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("complete"), "{err}");
}

#[test]
fn bolt_resumes_bit_for_bit() {
    check_resume("bolt");
}

#[test]
fn t5_resumes_bit_for_bit() {
    check_resume("t5");
}

#[test]
fn bad_paths_and_configs_error_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.arrow");
    let cfg = tiny_config("bolt", &missing, &tmp.path().join("out"), "");
    let err = run::train(&cfg, &RunOptions::default()).unwrap_err();
    assert!(matches!(err, TrainRunError::Data(_)), "{err:?}");
    assert!(err.to_string().contains("missing.arrow"), "{err}");
    assert!(
        !tmp.path().join("out/run-0").exists(),
        "no run folder for a failed start"
    );

    // A model_id that is neither a folder nor a built-in architecture.
    let data = write_sines(tmp.path(), 5, 60);
    let mut cfg = tiny_config("t5", &data, &tmp.path().join("out"), "");
    (cfg.random_init, cfg.model_config) = (false, None);
    cfg.model_id = tmp.path().join("no-such-model").display().to_string();
    let err = run::train(&cfg, &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("model_id"), "{err}");

    // An invalid value is caught before anything runs.
    let mut cfg = tiny_config("t5", &data, &tmp.path().join("out"), "");
    cfg.learning_rate = -1.0;
    let err = run::train(&cfg, &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("learning_rate"), "{err}");

    // Resuming something that is not a run.
    let err = run::resume(&tmp.path().join("nowhere"), &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("training_info.json"), "{err}");
    std::fs::create_dir_all(tmp.path().join("bad")).unwrap();
    std::fs::write(tmp.path().join("bad/training_info.json"), "{\"x\": 1}").unwrap();
    let err = run::resume(&tmp.path().join("bad"), &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("training_config"), "{err}");
}

#[test]
fn fine_tunes_from_a_checkpoint_folder() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let data = write_sines(tmp.path(), 20, 80);
    for family in ["bolt", "t5"] {
        let out = tmp.path().join(family);
        let mut cfg = tiny_config(family, &data, &out, "");
        (cfg.max_steps, cfg.log_steps) = (3, 1);
        let first = run::train(&cfg, &RunOptions::default()).unwrap();
        let pretrained = first.final_checkpoint.unwrap();

        (cfg.random_init, cfg.model_config) = (false, None);
        cfg.model_id = pretrained.display().to_string();
        let tuned = run::train(&cfg, &RunOptions::default()).unwrap();
        assert_eq!(tuned.run_dir, out.join("run-1"));
        let (a, b) = (
            weights(&pretrained),
            weights(&tuned.final_checkpoint.unwrap()),
        );
        assert_eq!(
            a.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            b.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "{family}: the fine-tuned checkpoint has other tensors"
        );
        assert!(
            a.iter().zip(&b).any(|((_, x), (_, y))| !x.equal(y)),
            "{family}: fine-tuning changed nothing"
        );
    }
}

/// Runs the `train` binary; returns (success, stderr).
fn train_cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_train"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn the_train_binary_trains_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_sines(tmp.path(), 20, 80);
    let out = tmp.path().join("out");
    let yaml = format!(
        "model_family: bolt\ninput_patch_size: 8\ntraining_data_paths: [{data:?}]\n\
         output_dir: {out:?}\ncontext_length: 32\nprediction_length: 8\nmin_past: 16\n\
         max_steps: 6\nsave_steps: 2\nlog_steps: 2\nper_device_train_batch_size: 8\n\
         seed: 3\nrandom_init: true\nmodel_config: {TINY_T5}\n"
    );
    let config = tmp.path().join("tiny.yaml");
    std::fs::write(&config, yaml).unwrap();
    let config = config.to_str().unwrap();

    let (ok, err) = train_cli(&["--quiet", "--stop-after", "3", "--config", config]);
    assert!(ok, "{err}");
    let run = out.join("run-0");
    assert!(run.join("checkpoint-2").is_dir() && !run.join("checkpoint-final").exists());
    // --resume without a folder: the latest run of the config's output_dir.
    let (ok, err) = train_cli(&["--quiet", "--resume", "--config", config]);
    assert!(ok, "{err}");
    assert!(run.join("checkpoint-6").is_dir() && run.join("checkpoint-final").is_dir());
    assert_eq!(logged_losses(&run).len(), 3);
    // Overrides after the config.
    let (ok, err) = train_cli(&["--quiet", "--config", config, "--max-steps", "1"]);
    assert!(ok, "{err}");
    assert!(out.join("run-1/checkpoint-final").is_dir());

    let (ok, err) = train_cli(&["--quiet", "--resume", run.to_str().unwrap()]);
    assert!(!ok && err.contains("complete"), "{err}");
    let (ok, err) = train_cli(&["--config", "/nonexistent/c.yaml"]);
    assert!(!ok && err.contains("/nonexistent/c.yaml"), "{err}");
    let (ok, err) = train_cli(&["--config", config, "--max-stepz", "3"]);
    assert!(!ok && err.contains("max_steps"), "{err}");
    let (ok, err) = train_cli(&["--dtype", "bf16", "--config", config]);
    assert!(!ok && err.contains("f32"), "{err}");
}
