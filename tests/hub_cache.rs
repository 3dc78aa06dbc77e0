//! Hub ids resolve from the Hugging Face cache layout with no network (HF_HUB_OFFLINE=1).
//! One test in this binary: it sets process environment variables.

mod common;

use chronos::checkpoint::Checkpoint;
use common::root;

#[test]
fn hub_id_loads_from_cache_offline_and_errors_name_the_model() {
    let cache = tempfile::tempdir().unwrap();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = cache.path().join("models--amazon--chronos-bolt-test");
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    let src = root().join("fixtures/bolt/models/bolt-reg");
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(file), snapshot.join(file)).unwrap();
    }

    std::env::set_var("HF_HUB_CACHE", cache.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let by_branch = Checkpoint::open("amazon/chronos-bolt-test").unwrap();
    assert_eq!(
        by_branch.weight_files,
        vec![snapshot.join("model.safetensors")]
    );
    let t5 = by_branch.config.t5(&by_branch.config_path).unwrap();
    assert_eq!(t5.d_model, 32);
    let by_commit = Checkpoint::open(&format!("amazon/chronos-bolt-test@{commit}")).unwrap();
    assert_eq!(by_commit.config_path, snapshot.join("config.json"));

    let err = Checkpoint::open("amazon/not-cached")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("amazon/not-cached") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
    let err = Checkpoint::open("no/such/model/path")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no such local folder"), "{err}");
}
