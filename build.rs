//! Embeds an rpath to the libtorch that torch-sys linked against, so binaries and tests run
//! without LD_LIBRARY_PATH, and keeps libtorch_cuda linked (rustc passes `--as-needed`, which would
//! drop it because nothing references it directly) so CUDA devices work on a GPU machine.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        let cuda = std::path::Path::new(&lib_dir).join("libtorch_cuda.so");
        if cuda.exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}
