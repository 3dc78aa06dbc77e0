//! The training configuration: upstream's keys and defaults, the shipped configs, command-line
//! overrides, errors that name the key, and checkpoint `config.json` files that load as the
//! right pipeline.

mod common;

use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::{json, Value};

use tch::nn::VarStore;
use tch::Device;

use chronos::bolt::ChronosBolt;
use chronos::chronos_t5::ChronosT5;
use chronos::config::{ChronosBoltConfig, ModelConfig};
use chronos::pipeline::{Dtype, Pipeline};
use chronos::tokenizer::ChronosConfig;
use chronos::train::config::{
    ArchitectureSpec, ConfigArgs, ModelFamily, ModelSize, ModelType, Optim, TrainConfig,
    TrainConfigError,
};
use common::{root, shared};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A config with training data, so that it validates.
fn with_data(yaml: &str) -> TrainConfig {
    TrainConfig::from_yaml_str(&format!("training_data_paths: [a.arrow]\n{yaml}")).unwrap()
}

fn overridden(list: &[&str]) -> TrainConfig {
    let mut cfg = with_data("");
    cfg.apply_overrides(&args(list)).unwrap();
    cfg
}

fn override_err(list: &[&str]) -> TrainConfigError {
    let mut cfg = with_data("");
    let before = cfg.clone();
    let err = cfg.apply_overrides(&args(list)).unwrap_err();
    assert_eq!(
        cfg, before,
        "a failed override must leave the config unchanged"
    );
    err
}

fn invalid_key(yaml: &str) -> (String, String) {
    let cfg = if yaml.contains("training_data_paths") {
        TrainConfig::from_yaml_str(yaml).unwrap()
    } else {
        with_data(yaml)
    };
    match cfg.validate() {
        Err(TrainConfigError::Invalid { key, message }) => (key, message),
        other => panic!("{yaml:?}: expected an Invalid error, got {other:?}"),
    }
}

fn shipped() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("configs/train"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn shipped_config(name: &str) -> TrainConfig {
    TrainConfig::from_yaml(&root().join("configs/train").join(name)).unwrap()
}

/// upstream `scripts/training/train.py`, `main(...)`: every parameter with its default, as YAML
/// (`tokenizer_kwargs` is upstream's Python-literal string, which YAML reads as a mapping).
const UPSTREAM_DEFAULTS: &str = "
probability: null
context_length: 512
prediction_length: 64
min_past: 64
max_steps: 200_000
save_steps: 50_000
log_steps: 500
per_device_train_batch_size: 32
learning_rate: 1e-3
optim: adamw_torch_fused
shuffle_buffer_length: 100
gradient_accumulation_steps: 2
model_id: google/t5-efficient-tiny
model_type: seq2seq
random_init: false
tie_embeddings: false
output_dir: ./output/
tf32: true
torch_compile: true
tokenizer_class: MeanScaleUniformBins
tokenizer_kwargs: {'low_limit': -15.0, 'high_limit': 15.0}
n_tokens: 4096
n_special_tokens: 2
pad_token_id: 0
eos_token_id: 1
use_eos_token: true
lr_scheduler_type: linear
warmup_ratio: 0.0
dataloader_num_workers: 1
max_missing_prop: 0.9
num_samples: 20
temperature: 1.0
top_k: 50
top_p: 1.0
seed: null
";

#[test]
fn defaults_are_upstreams() {
    let upstream = TrainConfig::from_yaml_str(UPSTREAM_DEFAULTS).unwrap();
    assert_eq!(upstream, TrainConfig::default());
    let d = TrainConfig::default();
    assert_eq!(d.max_steps, 200_000);
    assert_eq!(d.save_steps, 50_000);
    assert_eq!(d.gradient_accumulation_steps, 2);
    assert_eq!(d.min_past, 64);
    assert_eq!(d.optim, Optim::AdamwTorchFused);
    assert_eq!(d.model_family, ModelFamily::T5);
    assert_eq!(d.model_type, ModelType::Seq2seq);
    assert_eq!(d.tokenizer_kwargs.low_limit, -15.0);
    assert!(d.training_data_paths.is_empty() && d.seed.is_none() && d.model_config.is_none());
    assert!(d.tf32 && !d.bf16);

    // Every upstream key, plus ours: the family, the architecture, Bolt's keys and HF
    // TrainingArguments' `bf16`.
    let mut keys = TrainConfig::keys();
    let mut expected: Vec<String> = UPSTREAM_DEFAULTS
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
        .chain(
            [
                "training_data_paths",
                "model_family",
                "model_config",
                "input_patch_size",
                "input_patch_stride",
                "quantiles",
                "use_reg_token",
                "skip_constant_contexts",
                "max_scaled_target",
                "bf16",
            ]
            .map(String::from),
        )
        .collect();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected);
}

#[test]
fn shipped_configs_parse_and_validate() {
    let files = shipped();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for size in ["tiny", "mini", "small", "base", "large"] {
        assert!(names.contains(&format!("chronos-t5-{size}")), "{names:?}");
    }
    for name in ["chronos-gpt2", "chronos-bolt-tiny", "chronos-bolt-small"] {
        assert!(names.contains(&name.to_string()), "{names:?}");
    }
    for file in &files {
        let cfg = TrainConfig::from_yaml(file).unwrap();
        cfg.validate()
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let json = cfg.config_json().unwrap();
        assert!(json["chronos_config"].is_object(), "{}", file.display());
        let name = file.file_name().unwrap().to_string_lossy();
        if name.starts_with("chronos-bolt-2m") {
            continue; // the bundled model's own recipes, below
        }
        // upstream's 200_000 (YAML 1.1) is an integer.
        assert_eq!(cfg.max_steps, 200_000, "{}", file.display());
        assert_eq!(cfg.probabilities(), vec![0.9, 0.1]);
    }

    // The bundled model's two stages: what their training_info.json files record.
    let recorded = |path: &str| -> TrainConfig {
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap();
        serde_json::from_value(info["training_config"].clone()).unwrap()
    };
    let bundled = shipped_config("chronos-bolt-2m.yaml");
    let mut stage1 = recorded("models/chronos-bolt-2m/training/stage1/training_info.json");
    // The GPU session wrote into its own /tmp (scripts/gpu-train-bundled.sh --output-dir).
    assert_eq!(stage1.output_dir, Path::new("/tmp/run"));
    stage1.output_dir = bundled.output_dir.clone();
    assert_eq!(bundled, stage1);
    assert_eq!(bundled.skip_constant_contexts, Some(true));

    // Stage 2, its CPU continuation: the same data and architecture, from stage 1's checkpoint
    // (then in models/chronos-bolt-2m), in bf16 mixed precision.
    let cpu = shipped_config("chronos-bolt-2m-cpu.yaml");
    assert_eq!(cpu.training_data_paths, bundled.training_data_paths);
    assert_eq!(cpu.probabilities(), bundled.probabilities());
    assert_eq!(
        (cpu.context_length, cpu.prediction_length, cpu.min_past),
        (
            bundled.context_length,
            bundled.prediction_length,
            bundled.min_past
        )
    );
    assert_eq!(cpu.model_id, "models/chronos-bolt-2m");
    assert!(!cpu.random_init && cpu.bf16 && cpu.max_scaled_target == Some(50.0));
    // Stage 2 ran on copies of the data outside the work tree (scripts/train-bundled-cpu.sh).
    let mut stage2 = recorded("models/chronos-bolt-2m/training_info.json");
    assert_eq!(
        stage2.training_data_paths,
        [
            Path::new("/work/runs/bundled/history.arrow"),
            Path::new("/work/runs/bundled/kernelsynth.arrow")
        ]
    );
    stage2.training_data_paths = cpu.training_data_paths.clone();
    assert_eq!(cpu, stage2);

    let large = shipped_config("chronos-t5-large.yaml");
    assert_eq!(
        (
            large.per_device_train_batch_size,
            large.gradient_accumulation_steps
        ),
        (8, 4)
    );
    assert_eq!(
        large
            .backbone()
            .unwrap()
            .t5(Path::new("x"))
            .unwrap()
            .d_model,
        1024
    );
    let gpt2 = shipped_config("chronos-gpt2.yaml");
    assert_eq!(gpt2.model_type, ModelType::Causal);
    assert_eq!(gpt2.max_missing_prop, 0.1);
    assert!(!gpt2.random_init);
    assert!(matches!(gpt2.backbone().unwrap(), ModelConfig::Gpt2(_)));
    let bolt = shipped_config("chronos-bolt-small.yaml");
    assert_eq!(bolt.model_family, ModelFamily::Bolt);
    assert_eq!(bolt.bolt_config().context_length, 2048);
    assert_eq!(
        bolt.backbone()
            .unwrap()
            .t5(Path::new("x"))
            .unwrap()
            .num_layers,
        6
    );
}

#[test]
fn upstream_config_files_load_verbatim() {
    // upstream scripts/training/configs/chronos-t5-tiny.yaml, unchanged.
    let upstream = "training_data_paths:
- \"/home/ubuntu/tsmixup-data.arrow\"
- \"/home/ubuntu/kernelsynth-data.arrow\"
probability:
- 0.9
- 0.1
context_length: 512
prediction_length: 64
min_past: 60
max_steps: 200_000
save_steps: 100_000
log_steps: 500
per_device_train_batch_size: 32
learning_rate: 0.001
optim: adamw_torch_fused
num_samples: 20
shuffle_buffer_length: 100_000
gradient_accumulation_steps: 1
model_id: google/t5-efficient-tiny
model_type: seq2seq
random_init: true
tie_embeddings: true
output_dir: ./output/
tf32: true
torch_compile: true
tokenizer_class: \"MeanScaleUniformBins\"
tokenizer_kwargs:
  low_limit: -15.0
  high_limit: 15.0
n_tokens: 4096
lr_scheduler_type: linear
warmup_ratio: 0.0
dataloader_num_workers: 1
max_missing_prop: 0.9
use_eos_token: true
";
    let mut cfg = TrainConfig::from_yaml_str(upstream).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.shuffle_buffer_length, 100_000);
    let ours = shipped_config("chronos-t5-tiny.yaml");
    cfg.training_data_paths = ours.training_data_paths.clone();
    assert_eq!(cfg, ours);
}

#[test]
fn overrides_of_each_type() {
    let cfg = overridden(&[
        "--max-steps",
        "1000",
        "--learning_rate=1e-4",
        "--warmup-ratio",
        "0.1",
        "--random-init",
        "true",
        "--tf32=false",
        "--model-id",
        "my-org/my-model",
        "--output-dir",
        "123",
        "--seed",
        "7",
        "--min-past",
        "-1",
    ]);
    assert_eq!(cfg.max_steps, 1000);
    assert_eq!(cfg.learning_rate, 1e-4);
    assert_eq!(cfg.warmup_ratio, 0.1);
    assert!(cfg.random_init);
    assert!(!cfg.tf32);
    assert_eq!(cfg.model_id, "my-org/my-model");
    assert_eq!(cfg.output_dir, PathBuf::from("123"));
    assert_eq!(cfg.seed, Some(7));
    assert_eq!(cfg.min_past, -1);

    // Lists: YAML flow sequences (Python literals too) or comma-separated.
    let cfg = overridden(&[
        "--training-data-paths",
        "['x.arrow', 'y.arrow']",
        "--probability",
        "[3, 1]",
        "--model-family",
        "bolt",
        "--quantiles",
        "0.1,0.5,0.9",
        "--input-patch-size=8",
    ]);
    assert_eq!(
        cfg.training_data_paths,
        vec![PathBuf::from("x.arrow"), PathBuf::from("y.arrow")]
    );
    assert_eq!(cfg.probabilities(), vec![0.75, 0.25]);
    assert_eq!(cfg.quantiles, Some(vec![0.1, 0.5, 0.9]));
    assert_eq!(cfg.model_family, ModelFamily::Bolt);
    let bolt = cfg.bolt_config();
    assert_eq!((bolt.input_patch_size, bolt.input_patch_stride), (8, 8));
    cfg.validate().unwrap();

    // Bare flags, `--no-` flags, null, mappings, later overrides winning.
    let cfg = overridden(&[
        "--tie-embeddings",
        "--no-use-eos-token",
        "--seed",
        "5",
        "--seed",
        "null",
        "--tokenizer-kwargs",
        "{'low_limit': -10, 'high_limit': 10}",
        "--model-config",
        "small",
        "--max-steps",
        "1_000",
    ]);
    assert!(cfg.tie_embeddings);
    assert!(!cfg.use_eos_token);
    assert_eq!(cfg.seed, None);
    assert_eq!(cfg.tokenizer_kwargs.high_limit, 10.0);
    assert_eq!(
        cfg.model_config,
        Some(ArchitectureSpec::Size(ModelSize::Small))
    );
    assert_eq!(cfg.max_steps, 1000);

    // Overrides go on top of a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(
        &file,
        "training_data_paths: [a.arrow]\nmax_steps: 10\nlog_steps: 3\n",
    )
    .unwrap();
    let cfg = TrainConfig::load(Some(&file), &args(&["--max-steps", "20"])).unwrap();
    assert_eq!((cfg.max_steps, cfg.log_steps), (20, 3));
}

#[test]
fn clap_passes_overrides_through() {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: ConfigArgs,
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, "training_data_paths: [a.arrow]\n").unwrap();
    let cli = Cli::try_parse_from([
        "train",
        "--config",
        file.to_str().unwrap(),
        "--max-steps",
        "10",
        "--random-init",
        "--min-past=-3",
    ])
    .unwrap();
    assert_eq!(cli.config.config.as_deref(), Some(file.as_path()));
    assert_eq!(
        cli.config.overrides,
        args(&["--max-steps", "10", "--random-init", "--min-past=-3"])
    );
    let err = cli.config.load().unwrap_err();
    assert_eq!(err.key(), Some("min_past"));
    let cli = Cli::try_parse_from([
        "train",
        "--config",
        file.to_str().unwrap(),
        "--max-steps",
        "10",
    ])
    .unwrap();
    assert_eq!(cli.config.load().unwrap().max_steps, 10);
}

#[test]
fn unknown_keys_are_named() {
    let err = TrainConfig::from_yaml_str("max_step: 10").unwrap_err();
    match &err {
        TrainConfigError::UnknownKey {
            key, suggestion, ..
        } => {
            assert_eq!(key, "max_step");
            assert_eq!(suggestion.as_deref(), Some("max_steps"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains("did you mean 'max_steps'"),
        "{err}"
    );

    let err = override_err(&["--max-steps", "5", "--lerning-rate", "0.1"]);
    assert_eq!(err.key(), Some("lerning_rate"));
    assert!(err.to_string().contains("learning_rate"), "{err}");
    assert!(err.to_string().starts_with("command line"), "{err}");

    let err = override_err(&["--dropout", "0.1"]);
    assert!(matches!(
        err,
        TrainConfigError::UnknownKey {
            suggestion: None,
            ..
        }
    ));

    // In a file, keys are upstream's snake_case.
    let err = TrainConfig::from_yaml_str("max-steps: 10").unwrap_err();
    assert_eq!(err.key(), Some("max-steps"));
    assert!(err.to_string().contains("'max_steps'"), "{err}");
}

#[test]
fn wrong_types_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "training_data_paths: [a]\nmax_steps: many\n").unwrap();
    let err = TrainConfig::from_yaml(&file).unwrap_err();
    assert_eq!(err.key(), Some("max_steps"));
    let text = err.to_string();
    assert!(
        text.contains("bad.yaml") && text.contains("usize"),
        "{text}"
    );

    for (yaml, key, expected) in [
        ("learning_rate: fast", "learning_rate", "f64"),
        ("random_init: 1", "random_init", "bool"),
        ("optim: sgd", "optim", "adamw_torch_fused"),
        ("model_family: lstm", "model_family", "bolt"),
        ("training_data_paths: 3", "training_data_paths", "sequence"),
        (
            "tokenizer_kwargs: {low: 1}",
            "tokenizer_kwargs",
            "low_limit",
        ),
        ("max_steps: -5", "max_steps", "-5"),
        ("model_config: [1, 2]", "model_config", "size name"),
        ("probability: [a, b]", "probability", "f64"),
    ] {
        let err = TrainConfig::from_yaml_str(yaml).unwrap_err();
        assert!(
            matches!(err, TrainConfigError::WrongType { .. }),
            "{yaml}: {err:?}"
        );
        assert_eq!(err.key(), Some(key), "{yaml}");
        assert!(err.to_string().contains(expected), "{yaml}: {err}");
    }

    let err = override_err(&["--learning-rate", "fast"]);
    assert_eq!(err.key(), Some("learning_rate"));
    assert!(err.to_string().contains("f64"), "{err}");
    let err = override_err(&["--output-dir"]);
    assert_eq!(err.key(), Some("output_dir"));
    assert!(err.to_string().contains("needs a value"), "{err}");
    let err = override_err(&["--quantiles", "0.1,high"]);
    assert_eq!(err.key(), Some("quantiles"));

    for bad in [
        &["max-steps", "5"][..],
        &["--"],
        &["--=5"],
        &["--config", "x.yaml"],
    ] {
        assert!(
            matches!(override_err(bad), TrainConfigError::Arguments(_)),
            "{bad:?}"
        );
    }
    assert!(matches!(
        TrainConfig::from_yaml_str("- a\n- b"),
        Err(TrainConfigError::Syntax { .. })
    ));
    assert!(matches!(
        TrainConfig::from_yaml(Path::new("/nonexistent/c.yaml")),
        Err(TrainConfigError::Io { .. })
    ));
}

#[test]
fn bad_values_are_named() {
    for (yaml, key, expected) in [
        ("training_data_paths: []", "training_data_paths", "required"),
        ("probability: [0.5, 0.5]", "probability", "2 weights for 1"),
        ("probability: [0]", "probability", "sum to 0"),
        ("probability: [-1]", "probability", ">= 0"),
        ("warmup_ratio: 1.5", "warmup_ratio", "[0, 1]"),
        ("max_missing_prop: -0.1", "max_missing_prop", "[0, 1]"),
        ("max_steps: 0", "max_steps", "at least 1"),
        (
            "per_device_train_batch_size: 0",
            "per_device_train_batch_size",
            "at least 1",
        ),
        ("learning_rate: 0", "learning_rate", "positive"),
        ("context_length: 0", "context_length", "at least 1"),
        ("min_past: -1", "min_past", ">= 0"),
        ("temperature: 0", "temperature", "positive"),
        ("top_p: 2", "top_p", "[0, 1]"),
        ("n_tokens: 3", "n_tokens", "bins"),
        ("pad_token_id: 2", "pad_token_id", "special token"),
        (
            "tokenizer_kwargs: {low_limit: 1, high_limit: 1}",
            "tokenizer_kwargs",
            "below",
        ),
        (
            "input_patch_size: 8",
            "input_patch_size",
            "model_family: bolt",
        ),
        (
            "model_family: bolt\nn_tokens: 1024",
            "n_tokens",
            "model_family: t5",
        ),
        (
            "model_family: bolt\nmodel_type: causal",
            "model_type",
            "model_family: t5",
        ),
        (
            "model_family: bolt\nquantiles: [0.5, 0.1]",
            "quantiles",
            "increasing",
        ),
        (
            "model_family: bolt\ninput_patch_stride: 0",
            "input_patch_stride",
            "at least 1",
        ),
        ("model_config: tiny", "model_config", "random_init"),
        ("model_id: someone/some-model", "model_id", "not downloaded"),
        (
            "random_init: true\nmodel_config: {d_model: x}",
            "model_config",
            "d_model",
        ),
        (
            "random_init: true\nmodel_config: {num_heads: 0}",
            "model_config",
            "num_heads",
        ),
        (
            "random_init: true\nmodel_config: {feed_forward_proj: gated-tanh}",
            "model_config",
            "tanh",
        ),
        ("model_type: causal", "model_id", "needs gpt2"),
        (
            "model_type: causal\nmodel_id: gpt2\ncontext_length: 1000",
            "model_id",
            "n_positions",
        ),
    ] {
        let (k, message) = invalid_key(yaml);
        assert_eq!(k, key, "{yaml}: {message}");
        assert!(message.contains(expected), "{yaml}: {message}");
    }
    // The same keys at their defaults are fine under Bolt (a saved config reloads).
    with_data("model_family: bolt\nn_tokens: 4096\ntop_k: 50")
        .validate()
        .unwrap();
    // A missing architecture file names its path.
    let err = with_data("random_init: true\nmodel_config: /nonexistent/arch.json")
        .validate()
        .unwrap_err();
    assert!(
        matches!(&err, TrainConfigError::Io { path, .. } if path == Path::new("/nonexistent/arch.json")),
        "{err:?}"
    );
}

#[test]
fn architectures_resolve_without_network() {
    for (size, dims) in [
        ("tiny", (256, 1024, 4, 4)),
        ("mini", (384, 1536, 4, 8)),
        ("small", (512, 2048, 6, 8)),
        ("base", (768, 3072, 12, 12)),
        ("large", (1024, 4096, 24, 16)),
    ] {
        let by_id = with_data(&format!(
            "model_id: google/t5-efficient-{size}\nrandom_init: true"
        ));
        let by_size = with_data(&format!("model_config: {size}\nrandom_init: true"));
        for cfg in [by_id, by_size] {
            let ModelConfig::T5(t5) = cfg.backbone().unwrap() else {
                panic!("{size}: not T5")
            };
            assert_eq!(
                (t5.d_model, t5.d_ff, t5.num_layers, t5.num_heads),
                dims,
                "{size}"
            );
            assert_eq!((t5.num_decoder_layers(), t5.d_kv), (dims.2, 64));
            assert_eq!(t5.initializer_factor, 0.05);
            assert_eq!(t5.vocab_size, 4096);
        }
    }

    // A file (YAML or JSON), a folder with config.json, and an inline mapping.
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.yaml");
    std::fs::write(
        &arch,
        "d_model: 64\nd_ff: 128\nnum_layers: 2\nnum_heads: 2\nd_kv: 32\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "t5", "d_model": 32, "num_layers": 1, "num_heads": 1, "d_ff": 64}"#,
    )
    .unwrap();
    let from_file = with_data(&format!(
        "random_init: true\nmodel_config: {}",
        arch.display()
    ));
    let from_dir = with_data(&format!("model_id: {}", dir.path().display()));
    let inline = with_data("random_init: true\nmodel_config: {d_model: 16, num_layers: 3}");
    let d_models: Vec<(i64, i64, i64)> = [from_file, from_dir, inline]
        .iter()
        .map(|cfg| {
            cfg.validate().unwrap();
            let ModelConfig::T5(t5) = cfg.backbone().unwrap() else {
                panic!("not T5")
            };
            (t5.d_model, t5.num_layers, t5.d_kv)
        })
        .collect();
    // HF defaults fill what the mapping leaves out (d_kv 64).
    assert_eq!(d_models, vec![(64, 2, 32), (32, 1, 64), (16, 3, 64)]);
    // A folder overrides nothing without random_init: initializer_factor stays the folder's.
    let from_dir = with_data(&format!("model_id: {}", dir.path().display()));
    assert_eq!(
        from_dir.config_json().unwrap()["initializer_factor"],
        json!(1.0)
    );
    assert_eq!(
        from_dir.architecture().unwrap().source,
        dir.path().display().to_string()
    );
    // A serialised config with model_config reads back equal.
    let cfg = with_data("random_init: true\nmodel_config: {d_model: 16, num_layers: 3}");
    let text = serde_yaml::to_string(&cfg).unwrap();
    assert_eq!(TrainConfig::from_yaml_str(&text).unwrap(), cfg);
}

/// Writes `cfg`'s config.json and reads it back as the forecasting side does.
fn round_trip(cfg: &TrainConfig, dir: &Path) -> (Value, ModelConfig) {
    let path = cfg.write_config_json(dir).unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (json, ModelConfig::from_file(&path).unwrap())
}

fn keys_of(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn shared_config(name: &str) -> Value {
    let path = shared().join("checkpoints").join(name).join("config.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn t5_config_json_loads_as_chronos_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = shipped_config("chronos-t5-tiny.yaml");
    let (json, model) = round_trip(&cfg, dir.path());
    assert_eq!(model.pipeline_class(), "ChronosPipeline");
    let path = dir.path().join("config.json");
    let chronos: ChronosConfig = model.chronos(&path).unwrap();
    chronos.validate().unwrap();
    assert_eq!(chronos, cfg.chronos_config());
    let t5 = model.t5(&path).unwrap();
    assert_eq!((t5.vocab_size, t5.d_model, t5.num_layers), (4096, 256, 4));
    assert_eq!(t5.initializer_factor, 0.05);
    assert!(t5.tie_word_embeddings);
    assert_eq!(json["architectures"], json!(["T5ForConditionalGeneration"]));
    assert_eq!(
        (json["dense_act_fn"].clone(), json["is_gated_act"].clone()),
        (json!("relu"), json!(false))
    );

    // Upstream's shape: every key of a checkpoint that upstream's train.py saved, and exactly
    // its chronos_config keys.
    let upstream = shared_config("dummy-chronos-model");
    let ours = keys_of(&json);
    for key in keys_of(&upstream) {
        if !["torch_dtype", "transformers_version"].contains(&key.as_str()) {
            assert!(ours.contains(&key), "config.json lacks '{key}'");
        }
    }
    assert_eq!(
        keys_of(&json["chronos_config"]),
        keys_of(&upstream["chronos_config"])
    );

    // Causal (GPT-2): same pipeline class, GPT-2 backbone.
    let mut gpt2 = shipped_config("chronos-gpt2.yaml");
    gpt2.apply_overrides(&args(&["--random-init"])).unwrap();
    let (json, model) = round_trip(&gpt2, dir.path());
    assert_eq!(model.pipeline_class(), "ChronosPipeline");
    let ModelConfig::Gpt2(g) = &model else {
        panic!("not GPT-2")
    };
    assert_eq!((g.vocab_size, g.n_positions, g.n_embd), (4096, 1024, 768));
    assert!(!g.tie_word_embeddings);
    assert_eq!(json["chronos_config"]["model_type"], json!("causal"));
    assert_eq!(json["architectures"], json!(["GPT2LMHeadModel"]));
}

#[test]
fn bolt_config_json_loads_as_bolt_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = shipped_config("chronos-bolt-tiny.yaml");
    let (json, model) = round_trip(&cfg, dir.path());
    assert_eq!(model.pipeline_class(), "ChronosBoltPipeline");
    let path = dir.path().join("config.json");
    let bolt: ChronosBoltConfig = model.chronos(&path).unwrap();
    bolt.validate().unwrap();
    assert_eq!(bolt, cfg.bolt_config());
    assert_eq!(
        (
            bolt.context_length,
            bolt.input_patch_size,
            bolt.quantiles.len()
        ),
        (2048, 16, 9)
    );
    let t5 = model.t5(&path).unwrap();
    assert_eq!((t5.vocab_size, t5.d_model), (2, 256));
    assert_eq!(json["reg_token_id"], json!(1));

    // The keys of upstream's Bolt checkpoint, and exactly its chronos_config keys.
    let upstream = shared_config("dummy-chronos-bolt-model");
    let ours = keys_of(&json);
    for key in keys_of(&upstream) {
        if !["torch_dtype", "transformers_version", "classifier_dropout"].contains(&key.as_str()) {
            assert!(ours.contains(&key), "config.json lacks '{key}'");
        }
    }
    assert_eq!(
        keys_of(&json["chronos_config"]),
        keys_of(&upstream["chronos_config"])
    );
    for key in [
        "architectures",
        "chronos_pipeline_class",
        "decoder_start_token_id",
    ] {
        assert_eq!(json[key], upstream[key], "{key}");
    }

    // Without the [REG] token: one embedding row, no reg_token_id.
    let mut no_reg = cfg.clone();
    no_reg.use_reg_token = Some(false);
    let (json, _) = round_trip(&no_reg, dir.path());
    assert_eq!(json["vocab_size"], json!(1));
    assert!(json.get("reg_token_id").is_none());
}

/// A checkpoint folder with `cfg`'s config.json and zero weights of the shapes it describes.
fn zero_checkpoint(cfg: &TrainConfig) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = round_trip(cfg, dir.path());
    let path = dir.path().join("config.json");
    let vs = VarStore::new(Device::Cpu);
    let t5 = model.t5(&path).unwrap();
    match cfg.model_family {
        ModelFamily::T5 => {
            ChronosT5::new(&vs.root(), t5, &model.chronos(&path).unwrap());
        }
        ModelFamily::Bolt => {
            ChronosBolt::new(&vs.root(), t5, &model.chronos(&path).unwrap());
        }
    }
    vs.save(dir.path().join("model.safetensors")).unwrap();
    dir
}

#[test]
fn generated_checkpoints_load_as_their_pipeline() {
    let small = "{d_model: 16, d_ff: 32, d_kv: 8, num_layers: 1, num_heads: 2}";
    let t5 = with_data(&format!(
        "random_init: true\ntie_embeddings: true\nmodel_config: {small}\nn_tokens: 64\nprediction_length: 12"
    ));
    let dir = zero_checkpoint(&t5);
    match Pipeline::load(dir.path().to_str().unwrap(), Dtype::F32, Device::Cpu).unwrap() {
        Pipeline::Chronos(p) => assert_eq!((p.prediction_length(), p.config.n_tokens), (12, 64)),
        _ => panic!("a T5 config loaded as another family"),
    }

    let bolt = with_data(&format!(
        "model_family: bolt\nrandom_init: true\nmodel_config: {small}\ncontext_length: 64\nquantiles: [0.1, 0.5, 0.9]"
    ));
    let dir = zero_checkpoint(&bolt);
    match Pipeline::load(dir.path().to_str().unwrap(), Dtype::F32, Device::Cpu).unwrap() {
        Pipeline::Bolt(p) => {
            assert_eq!(
                (p.context_length(), p.quantiles()),
                (64, &[0.1, 0.5, 0.9][..])
            )
        }
        _ => panic!("a Bolt config loaded as another family"),
    }
}

#[test]
fn derived_settings() {
    let cfg = with_data("max_steps: 5\nwarmup_ratio: 0.5\ndataloader_num_workers: 4");
    // ceil(0.5 * 5), as transformers' `get_warmup_steps`.
    assert_eq!(cfg.warmup_steps(), 3);
    assert_eq!(
        with_data("max_steps: 7\nwarmup_ratio: 0.5").warmup_steps(),
        4
    );
    assert_eq!(cfg.dataloader_workers(), 1);
    assert_eq!(
        TrainConfig::from_yaml_str("training_data_paths: [a, b, c]")
            .unwrap()
            .probabilities(),
        vec![1.0 / 3.0; 3]
    );
}
