//! Embeds an rpath to the libtorch that torch-sys linked against, so binaries and tests run
//! without LD_LIBRARY_PATH, and keeps libtorch_cuda linked (rustc passes `--as-needed`, which would
//! drop it because nothing references it directly) so CUDA devices work on a GPU machine.
//!
//! Compiles the C++ shim (`csrc/`, the `extern "C"` APIs behind `chronos::distributed` and
//! `chronos::train::adamw`) against the headers of the same libtorch, with its C++ ABI
//! (`LIBTORCH_CXX11_ABI`, default 1, as torch-sys). The wheel ships no gloo headers: `csrc/gloo/` declares the few gloo types that
//! c10d's `ProcessGroupGloo.hpp` names. `ProcessGroupNCCL` is compiled in when libtorch has CUDA
//! and the CUDA crt/cccl headers of the `nvidia-cuda-crt`/`nvidia-cuda-cccl` wheels (installed
//! by `scripts/setup.sh` next to torch) are there; otherwise the shim reports NCCL as missing.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-changed=csrc");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib_dir = PathBuf::from(lib_dir);
    let cuda = lib_dir.join("libtorch_cuda.so").exists();
    if let Some(nvidia) = nvidia_dir(&lib_dir).filter(|_| cuda) {
        // setup.sh may install the CUDA headers after a first build
        println!(
            "cargo:rerun-if-changed={}",
            nvidia.join("cu13/include").display()
        );
    }
    let nccl_includes = if cuda { nccl_includes(&lib_dir) } else { None };
    if cuda && nccl_includes.is_none() {
        println!(
            "cargo:warning=libtorch has CUDA but the CUDA crt/cccl headers are missing \
             (scripts/setup.sh installs them): building without ProcessGroupNCCL"
        );
    }
    compile_shim(&lib_dir, nccl_includes.as_deref());

    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        if nccl_includes.is_some() {
            println!("cargo:rustc-link-arg=-lc10_cuda");
        }
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// The include folders of CUDA (with crt), CCCL and NCCL from the nvidia wheels installed next to
/// the torch package (`site-packages/nvidia/{cu13,nccl}/include`), when all are present.
fn nccl_includes(lib_dir: &Path) -> Option<Vec<PathBuf>> {
    let nvidia = nvidia_dir(lib_dir)?;
    let cuda = nvidia.join("cu13/include");
    let dirs = vec![cuda.clone(), cuda.join("cccl"), nvidia.join("nccl/include")];
    let needed = [
        cuda.join("cuda_runtime_api.h"),
        cuda.join("crt/host_config.h"),
        cuda.join("cccl/cuda/std/version"),
        nvidia.join("nccl/include/nccl.h"),
    ];
    needed.iter().all(|p| p.exists()).then_some(dirs)
}

/// `site-packages/nvidia` beside the torch package whose `lib` folder is `lib_dir`.
fn nvidia_dir(lib_dir: &Path) -> Option<PathBuf> {
    let torch_dir = lib_dir.canonicalize().ok()?.parent()?.to_path_buf();
    Some(torch_dir.parent()?.join("nvidia"))
}

fn compile_shim(lib_dir: &Path, nccl_includes: Option<&[PathBuf]>) {
    let include = lib_dir.parent().unwrap_or(lib_dir).join("include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .flag("-std=c++17")
        // at::parallel_for is inline: without OpenMP it would run its whole range on one thread.
        // The symbols resolve to the libgomp.so.1 that libtorch ships and loads.
        .flag("-fopenmp")
        .flag("-Wno-interference-size")
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .define("GLOG_USE_GLOG_EXPORT", None)
        .define("USE_DISTRIBUTED", None)
        .define("USE_C10D_GLOO", None)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include("csrc/gloo")
        .file("csrc/c10d.cpp")
        .file("csrc/nccl.cpp")
        .file("csrc/adamw.cpp")
        .file("csrc/dropout.cpp")
        .file("csrc/mask.cpp")
        .file("csrc/attention.cpp")
        .file("csrc/precision.cpp")
        .file("csrc/threads.cpp")
        .file("csrc/shim.cpp");
    if let Some(dirs) = nccl_includes {
        build
            .define("USE_C10D_NCCL", None)
            .define("CHRONOS_WITH_NCCL", None)
            .includes(dirs);
    }
    build.compile("chronos_c10d");
    println!("cargo:rustc-link-lib=dylib=gomp");
}
