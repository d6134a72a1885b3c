//! Link libtorch so that the binary starts without `LD_LIBRARY_PATH` and sees CUDA devices, and
//! compile the small C++ shim for what `tch` does not wrap (per-device autocast, channels-last).
//!
//! `torch-sys` (links key `tch`) exports its library folder as `DEP_TCH_LIBTORCH_LIB` to crates
//! that depend on it directly. We embed that folder as an rpath, and force `libtorch_cuda.so` to
//! stay in the needed list: nothing references its symbols directly, so the default
//! `--as-needed` linking would drop it and CUDA would then report itself unavailable.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=csrc/torch_extras.cpp");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib_dir = Path::new(&lib_dir);
    compile_torch_extras(lib_dir);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// Builds `csrc/torch_extras.cpp` against the headers next to the libtorch libraries, with the flags
/// `torch-sys` uses for its own C++ (C++17, the new libstdc++ ABI unless told otherwise).
fn compile_torch_extras(lib_dir: &Path) {
    let root = lib_dir.parent().unwrap_or(lib_dir);
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    cc::Build::new()
        .cpp(true)
        .file("csrc/torch_extras.cpp")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag_if_supported("-Wno-deprecated-declarations")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .compile("pixelx_torch_extras");
}
