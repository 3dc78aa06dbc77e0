//! Benchmark datasets from the Hugging Face hub (`hf_repo`, config `name`), through the HF cache
//! in the layout of Python's `huggingface_hub` (`datasets--<owner>--<name>/snapshots/<commit>/`),
//! where the repos keep each config's shards in a folder `<name>/`.
//!
//! A dataset already in the cache (the snapshot that `refs/main` names) is read from there with no
//! network; otherwise its Parquet/Arrow files are listed and downloaded with `hf-hub`, unless
//! `HF_HUB_OFFLINE` is set. The cache is `HF_HUB_CACHE`, else `HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`.

use std::path::PathBuf;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use super::dataset::shards_in;
use super::EvalError;

/// The HF cache folder (as `huggingface_hub`).
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("HF_HUB_CACHE") {
        Some(dir) => dir.into(),
        None => Cache::from_env().path().clone(),
    }
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

/// The local files (shards in name order) of config `name` of the dataset repo `repo`.
pub fn dataset_files(repo: &str, name: &str) -> Result<Vec<PathBuf>, EvalError> {
    let hub_err = |message: String| EvalError::Hub {
        repo: repo.to_string(),
        name: name.to_string(),
        message,
    };
    let cache = Cache::new(cache_dir());
    let hf_repo = Repo::new(repo.to_string(), RepoType::Dataset);
    let repo_dir = cache.path().join(hf_repo.folder_name());
    if let Ok(commit) = std::fs::read_to_string(repo_dir.join("refs").join("main")) {
        let folder = repo_dir.join("snapshots").join(commit.trim()).join(name);
        if folder.is_dir() {
            let shards = shards_in(&folder)?;
            if !shards.is_empty() {
                return Ok(shards);
            }
        }
    }
    if offline() {
        return Err(hub_err(format!(
            "not in the HF cache {} and HF_HUB_OFFLINE is set",
            cache.path().display()
        )));
    }
    let api = ApiBuilder::from_cache(cache)
        .with_progress(true)
        .build()
        .map_err(|e| hub_err(e.to_string()))?
        .repo(hf_repo);
    let info = api
        .info()
        .map_err(|e| hub_err(format!("cannot list the repo: {e}")))?;
    let prefix = format!("{name}/");
    let mut files: Vec<String> = info
        .siblings
        .into_iter()
        .map(|s| s.rfilename)
        .filter(|f| {
            f.strip_prefix(&prefix).is_some_and(|rest| {
                !rest.contains('/') && (rest.ends_with(".parquet") || rest.ends_with(".arrow"))
            })
        })
        .collect();
    if files.is_empty() {
        return Err(hub_err(format!(
            "the repo has no Parquet/Arrow files in '{prefix}' (datasets built by a loading \
             script, such as those of chronos_datasets_extra, must be prepared locally and \
             passed with --data-dir)"
        )));
    }
    files.sort();
    files
        .iter()
        .map(|f| {
            api.get(f)
                .map_err(|e| hub_err(format!("cannot fetch {f}: {e}")))
        })
        .collect()
}
