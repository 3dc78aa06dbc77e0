//! Checkpoint loading: storage dtypes, tied copies, sharding, and clear errors for bad files.

mod common;

use std::path::{Path, PathBuf};

use chronos::checkpoint::Checkpoint;
use chronos::pipeline::{left_pad_and_stack, BoltPipeline, Dtype, Pipeline};
use common::{assert_close, root, shared};
use tch::{Device, Kind, Tensor};

fn bolt_reg() -> PathBuf {
    root().join("fixtures/bolt/models/bolt-reg")
}

/// Copies `config.json` of `src` into a temp dir and writes `tensors` as its weights.
fn checkpoint_with(src: &Path, tensors: &[(String, Tensor)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    Tensor::write_safetensors(tensors, dir.path().join("model.safetensors")).unwrap();
    dir
}

fn tensors_of(dir: &Path) -> Vec<(String, Tensor)> {
    let mut t = Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

fn load_err(dir: &Path) -> String {
    let checkpoint = Checkpoint::from_dir(dir).unwrap();
    BoltPipeline::load(&checkpoint, Dtype::F32, Device::Cpu)
        .unwrap_err()
        .to_string()
}

fn forecast(dir: &Path, dtype: Dtype) -> Tensor {
    let checkpoint = Checkpoint::from_dir(dir).unwrap();
    let pipeline = BoltPipeline::load(&checkpoint, dtype, Device::Cpu).unwrap();
    let series: Vec<Vec<f32>> = (0..3)
        .map(|i| {
            (0..50)
                .map(|t| ((t * (i + 1)) as f32 * 0.3).sin() * 10.0 + i as f32)
                .collect()
        })
        .collect();
    pipeline
        .predict(&left_pad_and_stack(&series).unwrap(), None, false)
        .unwrap()
}

#[test]
fn bf16_weights_in_file_load_into_f32_model() {
    let f32_file = tensors_of(&bolt_reg());
    let bf16_dir = root().join("fixtures/bolt/models/bolt-bf16");
    let bf16_file = tensors_of(&bf16_dir);
    assert!(bf16_file.iter().all(|(_, t)| t.kind() == Kind::BFloat16));
    // The bf16 checkpoint holds bolt-reg's weights rounded to bf16: loading it at f32 and
    // loading bolt-reg's weights rounded the same way must forecast identically.
    let rounded: Vec<(String, Tensor)> = f32_file
        .iter()
        .map(|(n, t)| (n.clone(), t.to_kind(Kind::BFloat16)))
        .collect();
    let rounded_dir = checkpoint_with(&bolt_reg(), &rounded);
    let a = forecast(&bf16_dir, Dtype::F32);
    let b = forecast(rounded_dir.path(), Dtype::F32);
    assert_eq!(a.size(), [3, 9, 8]);
    assert_close("bf16 file", &a, &b, 0.0);
}

#[test]
fn tied_embedding_copies_of_older_transformers_are_accepted() {
    let mut tensors = tensors_of(&bolt_reg());
    let shared = tensors
        .iter()
        .find(|(n, _)| n == "shared.weight")
        .unwrap()
        .1
        .copy();
    tensors.push(("encoder.embed_tokens.weight".into(), shared.copy()));
    tensors.push(("decoder.embed_tokens.weight".into(), shared));
    let dir = checkpoint_with(&bolt_reg(), &tensors);
    assert_close(
        "with tied copies",
        &forecast(dir.path(), Dtype::F32),
        &forecast(&bolt_reg(), Dtype::F32),
        0.0,
    );
}

#[test]
fn missing_tensor_is_named() {
    let tensors: Vec<_> = tensors_of(&bolt_reg())
        .into_iter()
        .filter(|(n, _)| n != "encoder.block.1.layer.1.DenseReluDense.wo.weight")
        .collect();
    let dir = checkpoint_with(&bolt_reg(), &tensors);
    let err = load_err(dir.path());
    assert!(
        err.contains("missing tensor 'encoder.block.1.layer.1.DenseReluDense.wo.weight'"),
        "{err}"
    );
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn unexpected_tensor_is_named() {
    let mut tensors = tensors_of(&bolt_reg());
    tensors.push((
        "encoder.block.7.extra.weight".into(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    ));
    let dir = checkpoint_with(&bolt_reg(), &tensors);
    let err = load_err(dir.path());
    assert!(
        err.contains("unexpected tensor 'encoder.block.7.extra.weight'"),
        "{err}"
    );
}

#[test]
fn wrong_shape_is_named() {
    let tensors: Vec<_> = tensors_of(&bolt_reg())
        .into_iter()
        .map(|(n, t)| {
            if n == "decoder.final_layer_norm.weight" {
                (n, Tensor::ones([5], (Kind::Float, Device::Cpu)))
            } else {
                (n, t)
            }
        })
        .collect();
    let dir = checkpoint_with(&bolt_reg(), &tensors);
    let err = load_err(dir.path());
    assert!(
        err.contains("'decoder.final_layer_norm.weight' has shape [5]"),
        "{err}"
    );
}

#[test]
fn truncated_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        bolt_reg().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let bytes = std::fs::read(bolt_reg().join("model.safetensors")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("model.safetensors") && err.contains("not a valid safetensors"),
        "{err}"
    );
}

#[test]
fn sharded_checkpoint_loads() {
    let tensors = tensors_of(&bolt_reg());
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        bolt_reg().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let (first, second) = tensors.split_at(tensors.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        Tensor::write_safetensors(part, dir.path().join(file)).unwrap();
        for (name, _) in part {
            map.insert(name.clone(), file.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    assert_close(
        "sharded",
        &forecast(dir.path(), Dtype::F32),
        &forecast(&bolt_reg(), Dtype::F32),
        0.0,
    );
}

#[test]
fn config_errors_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bolt_reg().join("config.json")).unwrap())
            .unwrap();
    config["chronos_config"]["surprise"] = 1.into();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        bolt_reg().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("config.json") && err.contains("surprise"),
        "{err}"
    );

    config["chronos_config"]
        .as_object_mut()
        .unwrap()
        .remove("surprise");
    config["d_model"] = 0.into();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let err = Checkpoint::from_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("'d_model' must be positive"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = Checkpoint::from_dir(empty.path()).unwrap_err().to_string();
    assert!(err.contains("no config.json"), "{err}");
}

#[test]
fn pipeline_class_is_chosen_from_the_config() {
    let bolt = Pipeline::load(bolt_reg().to_str().unwrap(), Dtype::F32, Device::Cpu).unwrap();
    assert!(matches!(bolt, Pipeline::Bolt(_)));
    let dummy = shared().join("checkpoints/dummy-chronos-bolt-model");
    assert!(Pipeline::load(dummy.to_str().unwrap(), Dtype::F32, Device::Cpu).is_ok());
    // The upstream Chronos-T5 dummy names no pipeline class: ChronosPipeline, as upstream.
    let t5 = shared().join("checkpoints/dummy-chronos-model");
    let t5 = Pipeline::load(t5.to_str().unwrap(), Dtype::F32, Device::Cpu).unwrap();
    assert!(matches!(t5, Pipeline::Chronos(_)));
    assert_eq!(t5.prediction_length(), 64);
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bolt_reg().join("config.json")).unwrap())
            .unwrap();
    config["chronos_pipeline_class"] = "ChronosMysteryPipeline".into();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        bolt_reg().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let err = Pipeline::load(dir.path().to_str().unwrap(), Dtype::F32, Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("ChronosMysteryPipeline"), "{err}");
}

#[test]
fn empty_series_is_an_error_naming_it() {
    let err = left_pad_and_stack(&[vec![1.0f32, 2.0], vec![]]).unwrap_err();
    assert!(err.to_string().contains("series 1 is empty"), "{err}");
    let padded = left_pad_and_stack(&[vec![1.0f32, 2.0, 3.0], vec![4.0]]).unwrap();
    let row: Vec<f32> = Vec::try_from(padded.get(1)).unwrap();
    assert!(row[0].is_nan() && row[1].is_nan() && row[2] == 4.0);
}

#[test]
fn loading_a_model_leaves_the_global_generator_alone() {
    // Seeded sample paths must not depend on whether a model was loaded after seeding.
    tch::manual_seed(7);
    let expected = Tensor::rand([4], (Kind::Float, Device::Cpu));
    tch::manual_seed(7);
    for dir in [
        bolt_reg(),
        root().join("fixtures/t5/models/t5-rand"),
        root().join("fixtures/gpt2/models/gpt2-rand"),
    ] {
        Pipeline::load(dir.to_str().unwrap(), Dtype::F32, Device::Cpu).unwrap();
    }
    let drawn = Tensor::rand([4], (Kind::Float, Device::Cpu));
    assert_close("rand after loading", &drawn, &expected, 0.0);
}
