//! Datasets resolve from the Hugging Face cache layout with no network (HF_HUB_OFFLINE=1), for
//! the library and for `evaluate` without --data-dir. One test in this binary: it sets process
//! environment variables.

mod common;

use std::process::Command;

use chronos::eval::hub::dataset_files;
use chronos::eval::read_dataset;
use common::shared;

#[test]
fn datasets_load_from_the_hf_cache_offline_and_misses_name_the_dataset() {
    let cache = tempfile::tempdir().unwrap();
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    let repo = cache.path().join("datasets--autogluon--chronos_datasets");
    let folder = repo.join("snapshots").join(commit).join("monash_cif_2016");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    let shard = folder.join("train-00000-of-00001.parquet");
    std::fs::copy(shared().join("datasets/monash_cif_2016.parquet"), &shard).unwrap();

    std::env::set_var("HF_HUB_CACHE", cache.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let files = dataset_files("autogluon/chronos_datasets", "monash_cif_2016").unwrap();
    assert_eq!(files, vec![shard]);
    let dataset = read_dataset("monash_cif_2016", &files, None).unwrap();
    assert_eq!(dataset.series.len(), 72);

    let err = dataset_files("autogluon/chronos_datasets", "m4_daily")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("m4_daily")
            && err.contains("autogluon/chronos_datasets")
            && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );

    // The binary without --data-dir reads the same cache.
    let out_dir = tempfile::tempdir().unwrap();
    let config = out_dir.path().join("cif.yaml");
    std::fs::write(
        &config,
        "- name: monash_cif_2016\n  hf_repo: autogluon/chronos_datasets\n  offset: -12\n  \
         prediction_length: 12\n  num_rolls: 1\n",
    )
    .unwrap();
    let results = out_dir.path().join("r.csv");
    let run = Command::new(env!("CARGO_BIN_EXE_evaluate"))
        .arg("--config")
        .arg(&config)
        .args(["--model", "seasonal-naive", "--output"])
        .arg(&results)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&results).unwrap();
    assert!(
        text.contains("monash_cif_2016,seasonal-naive,1.28929"),
        "{text}"
    );
}
