//! Link libtorch so that the binary starts without `LD_LIBRARY_PATH`, and compile the small C++
//! shim for what `tch` does not wrap (per-device autocast, channels-last, the fused gate).
//!
//! `torch-sys` (links key `tch`) exports its library folder as `DEP_TCH_LIBTORCH_LIB` to crates
//! that depend on it directly. We embed that folder as an rpath. `libtorch_cuda.so` is not
//! linked: nothing references its symbols, so `--as-needed` drops it, and `device::
//! load_cuda_backend` loads it at run time on machines with a CUDA driver (linked, it slowed the
//! start of every process on machines without one). Its path is passed on for that.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    for file in ["torch_extras.cpp", "gate.cpp", "gate_kernels.cpp"] {
        println!("cargo:rerun-if-changed=csrc/{file}");
    }
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib_dir = Path::new(&lib_dir);
    compile_torch_extras(lib_dir);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    let cuda = lib_dir.join("libtorch_cuda.so");
    if cuda.exists() {
        println!("cargo:rustc-env=PIXELX_TORCH_CUDA_LIB={}", cuda.display());
    }
}

/// Builds `csrc/` against the headers next to the libtorch libraries, with the flags `torch-sys`
/// uses for its own C++ (C++17, the new libstdc++ ABI unless told otherwise). The gate kernels
/// are built once portable and, on x86-64, once more for AVX-512, chosen between at run time
/// (`csrc/gate.cpp`); all of it optimised whatever the Cargo profile, since it is hot-loop code.
fn compile_torch_extras(lib_dir: &Path) {
    let avx512 = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    // Each library in a folder of its own: the kernels' source is compiled twice (same object
    // name), and the linker searches every build's folder for every library.
    let out_dir = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).to_path_buf();
    // The shim first: static libraries are searched in order, and it calls into the kernels.
    let mut shim = torch_cpp(lib_dir);
    if avx512 {
        shim.define("PIXELX_HAVE_AVX512", None);
    }
    shim.file("csrc/torch_extras.cpp")
        .file("csrc/gate.cpp")
        .out_dir(out_dir.join("shim"))
        .compile("pixelx_torch_extras");
    let mut kernels = torch_cpp(lib_dir);
    kernels
        .flag("-fopenmp")
        .file("csrc/gate_kernels.cpp")
        .define("CPU_CAPABILITY", "DEFAULT")
        .define("PIXELX_CAP", "default")
        .out_dir(out_dir.join("gate_default"))
        .compile("pixelx_gate_default");
    if avx512 {
        let mut kernels = torch_cpp(lib_dir);
        for flag in [
            "-fopenmp",
            "-mavx512f",
            "-mavx512bw",
            "-mavx512vl",
            "-mavx512dq",
            "-mfma",
        ] {
            kernels.flag(flag);
        }
        kernels
            .file("csrc/gate_kernels.cpp")
            .define("CPU_CAPABILITY", "AVX512")
            .define("CPU_CAPABILITY_AVX512", None)
            .define("PIXELX_CAP", "avx512")
            .out_dir(out_dir.join("gate_avx512"))
            .compile("pixelx_gate_avx512");
    }
    link_openmp(lib_dir);
}

/// The kernels split their work with `at::parallel_for`, which is inline OpenMP code in a
/// libtorch built with OpenMP (as the pip wheel is): without `-fopenmp` it runs on one thread.
/// They must use libtorch's own OpenMP runtime, so that `at::set_num_threads` reaches them and
/// one thread pool serves both: link the copy in its library folder by path where there is one
/// (the wheel's `libgomp.so.1`, or `libgomp-<hash>.so.1` in the libtorch archive), else `-lgomp`.
fn link_openmp(lib_dir: &Path) {
    let bundled = std::fs::read_dir(lib_dir).ok().and_then(|entries| {
        entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("libgomp") && name.contains(".so")
        })
    });
    match bundled {
        Some(path) => println!("cargo:rustc-link-arg={}", path.display()),
        None => println!("cargo:rustc-link-lib=gomp"),
    }
}

/// A C++ build against libtorch's headers.
fn torch_cpp(lib_dir: &Path) -> cc::Build {
    let root = lib_dir.parent().unwrap_or(lib_dir);
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .opt_level(3)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag_if_supported("-Wno-deprecated-declarations")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-psabi")
        .warnings(false);
    build
}
