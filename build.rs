//! Link libtorch so that the binary starts without `LD_LIBRARY_PATH` and sees CUDA devices.
//!
//! `torch-sys` (links key `tch`) exports its library folder as `DEP_TCH_LIBTORCH_LIB` to crates
//! that depend on it directly. We embed that folder as an rpath, and force `libtorch_cuda.so` to
//! stay in the needed list: nothing references its symbols directly, so the default
//! `--as-needed` linking would drop it and CUDA would then report itself unavailable.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    if std::path::Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
