//! Records the source commit, and links libtorch so the `voc` binary runs without `LD_LIBRARY_PATH`.
//!
//! torch-sys tells its direct dependents where libtorch lives (`DEP_TCH_LIBTORCH_LIB`).
//! We record that folder as an rpath, and, when the libtorch build carries CUDA, force
//! `libtorch_cuda` into the link with `--no-as-needed`: nothing references it by symbol,
//! but loading it is what registers the CUDA backend for `--device cuda`.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/logs/HEAD");
    println!("cargo:rerun-if-env-changed=VOC_SOURCE_COMMIT");
    // Where there is no git checkout (a Docker build context), the builder may name the commit.
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .or_else(|| std::env::var("VOC_SOURCE_COMMIT").ok())
        .filter(|c| !c.is_empty());
    if let Some(commit) = commit {
        println!("cargo:rustc-env=VOC_SOURCE_COMMIT={commit}");
    }
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    if Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
