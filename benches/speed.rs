//! `just bench`: pixelx's speed as ratios against baselines measured in the same invocation.
//!
//! - training: images/s of pixelx against the PyTorch reference (`python/reference_pixelcnn.py`)
//!   on the same architecture, batch and thread count; on a CUDA machine also bf16 autocast
//!   against fp32 on `cuda:0`;
//! - sampling: the cached sampler against the naive one (a full forward pass per sub-pixel);
//! - registry: 100,000 step metrics recorded in batches against one transaction per value, and
//!   a report (table and HTML) over 1,000 runs;
//! - packing: a 4-run sweep on 2 CPU slots of 1 thread against 1 slot of 2 threads;
//! - slurm: the same kind of sweep through a local Slurm cluster against the local backend, and
//!   the submission of 200 runs.
//! - estimate: `pixelx run experiments/mnist_sweep.toml --dry-run` end to end, calibration of its
//!   10 architectures included (target: under 30 s on the 2-core machine).
//!
//! `cargo bench --bench speed -- training` (or `sampling`) runs one part.

#[path = "speed_profile.rs"]
mod speed_profile;
#[path = "speed_sampling.rs"]
mod speed_sampling;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use pixelx::model::{ModelSpec, PixelCnn};
use pixelx::precision::Precision;
use pixelx::sample::{sample, Sampler};
use pixelx::train::speed::StepTimer;
use tch::{nn, Device, Kind, Tensor};

const THREADS: i32 = 2;

/// How a training-speed measurement runs.
#[derive(Clone, Copy)]
struct Setup {
    device: Device,
    precision: Precision,
    channels_last: bool,
    cropped: bool,
}

/// What pixelx trains with on CPU in fp32: channels-last, `h_conv` cropped (the model's default).
const CPU_FP32: Setup = Setup {
    device: Device::Cpu,
    precision: Precision::Fp32,
    channels_last: true,
    cropped: true,
};

/// pixelx training images/s: forward, loss, backward, clipping and Adam, as the trainer does
/// (the step the estimator's calibration times too).
fn pixelx_train_speed(spec: ModelSpec, batch: i64, steps: usize, setup: Setup) -> f64 {
    StepTimer::new(spec, 28, batch, setup.device, setup.precision)
        .channels_last(setup.channels_last)
        .cropped(setup.cropped)
        .images_per_sec(2, steps)
        .expect("autocast")
}

fn pytorch_train_speed(spec: ModelSpec, batch: i64, steps: usize, channels_last: bool) -> f64 {
    pytorch_train_speed_on("cpu", spec, batch, steps, channels_last)
}

/// The reference's images/s on `device` (`cpu`, `cuda:0`), fp32 eager.
fn pytorch_train_speed_on(
    device: &str,
    spec: ModelSpec,
    batch: i64,
    steps: usize,
    channels_last: bool,
) -> f64 {
    pytorch_train(device, spec, batch, steps, channels_last)["images_per_sec"]
        .as_f64()
        .unwrap()
}

/// The reference script's `train-speed` report: images/s, seconds, peak RSS in MiB.
fn pytorch_train(
    device: &str,
    spec: ModelSpec,
    batch: i64,
    steps: usize,
    channels_last: bool,
) -> serde_json::Value {
    // `cargo bench` runs from the package root, as scripts/gpu-check.sh does on a GPU machine
    // (where PIXELX_PYTHON names that machine's python3).
    let python = std::env::var("PIXELX_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python").into());
    let script = "python/reference_pixelcnn.py";
    let out = Command::new(python)
        .args([script, "train-speed"])
        .args([
            "--channels",
            &spec.channels.to_string(),
            "--hidden-fmaps",
            &spec.hidden_fmaps.to_string(),
        ])
        .args(["--out-hidden-fmaps", &spec.out_hidden_fmaps.to_string()])
        .args(["--batch-size", &batch.to_string(), "--steps", &steps.to_string()])
        .args(["--threads", &THREADS.to_string(), "--device", device])
        .args(["--levels", &spec.levels.to_string()])
        .args(channels_last.then_some("--channels-last"))
        .output()
        .expect("the project's .venv python (run `just setup`) or $PIXELX_PYTHON");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json from the reference script")
}

/// Median images/s of `a` and `b`, measured in alternation so that drift in the machine's speed
/// (a shared VM here) hits both alike.
fn alternating_medians(rounds: usize, mut a: impl FnMut() -> f64, mut b: impl FnMut() -> f64) -> (f64, f64) {
    let (mut xs, mut ys): (Vec<f64>, Vec<f64>) = (0..rounds).map(|_| (a(), b())).unzip();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut xs), median(&mut ys))
}

/// Floating-point operations of one training step (see [`speed_profile::step_flops_by_kind`]).
fn train_step_flops(spec: ModelSpec, batch: i64, side: i64) -> f64 {
    speed_profile::step_flops_by_kind(spec, batch, side).iter().sum()
}

/// GFLOP/s of a large matrix product through libtorch on this thread count: the machine's
/// practical peak for `kind`. The fastest of 10 products, not their mean: a peak is what the
/// machine reaches, and a mean over a few dropped by a tenth when another process woke up
/// (which then inflated every "% of peak" printed against it).
fn matmul_peak_gflops(kind: Kind) -> f64 {
    let n = 2048;
    let a = Tensor::randn([n, n], (kind, Device::Cpu));
    let b = Tensor::randn([n, n], (kind, Device::Cpu));
    let _ = a.matmul(&b);
    let fastest = (0..10)
        .map(|_| {
            let start = Instant::now();
            let _ = a.matmul(&b);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (n * n * n) as f64 / fastest / 1e9
}

/// pixelx against the PyTorch reference on one model, fp32, same batch, threads and layout.
fn against_reference(name: &str, spec: ModelSpec, batch: i64, steps: usize, rounds: usize) -> (f64, f64) {
    let (baseline, ours) = alternating_medians(
        rounds,
        || pytorch_train_speed(spec, batch, steps, false),
        || pixelx_train_speed(spec, batch, steps, CPU_FP32),
    );
    println!("  {name}: PyTorch reference {baseline:.1} images/s (baseline), pixelx {ours:.1} images/s");
    println!("  ratio              {:8.2}x", ours / baseline);
    (baseline, ours)
}

fn training() {
    let spec = ModelSpec::original(3);
    // PIXELX_BENCH_STEPS / PIXELX_BENCH_ROUNDS shorten a run on a busy machine.
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (batch, steps, rounds) = (32, env("PIXELX_BENCH_STEPS", 8), env("PIXELX_BENCH_ROUNDS", 5));
    println!(
        "training: C=3 F=30 O=10 6 blocks k=7 L=2, batch {batch}, {THREADS} threads, \
         median of {rounds} alternating rounds of {steps} steps"
    );
    let (reference, ours) = against_reference("RGB default", spec, batch, steps, rounds);
    let mut simple = ModelSpec::original(1);
    simple.hidden_fmaps = 21;
    against_reference("very simple model (C=1 F=21)", simple, batch, steps, rounds);
    // Roofline: achieved GFLOP/s of the counted step work against a large matmul's.
    let peak = matmul_peak_gflops(Kind::Float);
    let achieved = train_step_flops(spec, batch, 28) * ours / batch as f64 / 1e9;
    println!(
        "  roofline: {:.2} GFLOP per step, {achieved:.1} GFLOP/s achieved, fp32 matmul peak \
         {peak:.1} GFLOP/s: {:.0}% of peak",
        train_step_flops(spec, batch, 28) / 1e9,
        100.0 * achieved / peak
    );
    speed_profile::by_layer(spec, batch, steps.min(4), peak);
    // Peak resident memory of a process training the RGB default, against the reference's.
    let torch_rss = pytorch_train("cpu", spec, batch, steps, false)["peak_rss_mb"]
        .as_f64()
        .unwrap();
    let ours_rss = speed_profile::child_peak_rss(spec.channels, batch, steps);
    println!(
        "  peak RSS, {steps} steps at batch {batch}: pixelx {ours_rss:.0} MiB, PyTorch reference \
         {torch_rss:.0} MiB (baseline): {:.2}x",
        ours_rss / torch_rss
    );
    // Cropped row convolutions (the default) against the full masked kernels (the reference's way).
    let full_kernels = Setup {
        cropped: false,
        ..CPU_FP32
    };
    let (full, cropped) = alternating_medians(
        rounds,
        || pixelx_train_speed(spec, batch, steps, full_kernels),
        || pixelx_train_speed(spec, batch, steps, CPU_FP32),
    );
    println!(
        "  cropped h_conv     {cropped:8.1} images/s against full masked kernels {full:.1} (baseline): {:.2}x",
        cropped / full
    );
    let flops = train_step_flops(spec, batch, 28);
    layouts_and_precisions(spec, (batch, steps, rounds), (peak, flops), reference);
}

/// Both memory layouts, and bf16 autocast where the CPU has native bf16 (then its matmul peak
/// too), each against pixelx's fp32 default (NHWC) measured in alternation with it; on a GPU,
/// the same on cuda:0 at a GPU-sized batch.
/// `reference` is the PyTorch reference's fp32 images/s measured before, `flops` a step's work.
fn layouts_and_precisions(
    spec: ModelSpec,
    (batch, steps, rounds): (i64, usize, usize),
    (fp32_peak, flops): (f64, f64),
    reference: f64,
) {
    let mut bf16_peak = None;
    let mut setups = vec![(
        "fp32 NCHW",
        Setup {
            channels_last: false,
            ..CPU_FP32
        },
    )];
    if pixelx::precision::cpu_has_native_bf16() {
        let bf16 = Setup {
            precision: Precision::Bf16,
            ..CPU_FP32
        };
        let bf16_nchw = Setup {
            channels_last: false,
            ..bf16
        };
        setups.extend([("bf16 NHWC", bf16), ("bf16 NCHW", bf16_nchw)]);
        let peak = matmul_peak_gflops(Kind::BFloat16);
        println!(
            "  bf16 matmul peak   {peak:8.1} GFLOP/s ({:.2}x fp32's)",
            peak / fp32_peak
        );
        bf16_peak = Some(peak);
    } else {
        println!("  bf16: this CPU has no native bf16 (avx512_bf16/amx_bf16); not compared");
    }
    for (name, setup) in setups {
        let (base, rate) = alternating_medians(
            rounds,
            || pixelx_train_speed(spec, batch, steps, CPU_FP32),
            || pixelx_train_speed(spec, batch, steps, setup),
        );
        println!(
            "  pixelx {name}   {rate:8.1} images/s  ({:.2}x fp32 NHWC at {base:.1})",
            rate / base
        );
        if let (Some(peak), Precision::Bf16, true) = (bf16_peak, setup.precision, setup.channels_last) {
            // What `precision = "auto"` trains with on this CPU, against the reference's fp32.
            let achieved = flops * rate / batch as f64 / 1e9;
            println!(
                "  bf16 NHWC against the PyTorch reference (fp32, {reference:.1} images/s): {:.2}x; \
                 roofline {achieved:.1} GFLOP/s of the bf16 peak {peak:.1}: {:.0}%",
                rate / reference,
                100.0 * achieved / peak
            );
        }
    }
    if pixelx::device::cuda_device_count() == 0 {
        println!("  cuda: no device here");
        return;
    }
    let (batch, steps) = (256, 50);
    println!("training on cuda:0, batch {batch}, {steps} steps:");
    let torch = pytorch_train_speed_on("cuda:0", spec, batch, steps, false);
    println!("  PyTorch reference  {torch:8.1} images/s  (baseline)");
    // pixelx's CUDA default is NCHW with full h_conv kernels (not measured before); the other
    // combinations are what a GPU machine would switch it to.
    for (channels_last, cropped) in [(false, false), (true, false), (true, true)] {
        for precision in [Precision::Fp32, Precision::Bf16] {
            let setup = Setup {
                device: Device::Cuda(0),
                precision,
                channels_last,
                cropped,
            };
            let rate = pixelx_train_speed(spec, batch, steps, setup);
            let layout = if channels_last { "NHWC" } else { "NCHW" };
            let kernels = if cropped { "cropped" } else { "full" };
            println!(
                "  pixelx {} {layout} {kernels:7}  {rate:8.1} images/s  ({:.2}x PyTorch)",
                precision.as_str(),
                rate / torch
            );
        }
    }
}

fn sampling() {
    let spec = ModelSpec::original(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = PixelCnn::new(&vs.root(), spec, 0);
    let labels = Tensor::arange(64, (Kind::Int64, Device::Cpu)).remainder(10);
    println!("sampling: 64 MNIST 28x28 images, C=1 F=30 6 blocks k=7 L=2, {THREADS} threads");
    let start = Instant::now();
    let threads = pixelx::sample::libtorch_threads();
    let cached = sample(&model, &labels, (28, 28), 1.0, Sampler::Cached, 1, threads);
    let t_cached = start.elapsed().as_secs_f64();
    println!("  cached             {t_cached:8.2} s");
    // The naive sampler is 784 identical full forward passes over the batch (about 1 s each here,
    // so 15+ minutes in all): time a few of them and multiply. The test suite checks on small
    // models that both samplers give the same images.
    let x = cached.to_kind(Kind::Float);
    let passes = 6;
    let start = Instant::now();
    for _ in 0..passes {
        let _ = tch::no_grad(|| model.forward(&x, &labels));
    }
    let per_pass = start.elapsed().as_secs_f64() / passes as f64;
    let t_naive = per_pass * (28 * 28) as f64;
    println!(
        "  naive              {t_naive:8.2} s  (baseline: 784 passes x {per_pass:.3} s, {passes} timed)"
    );
    println!("  speed-up           {:8.1}x  (in process)", t_naive / t_cached);
    speed_sampling::whole_process(per_pass);
}

fn registry() {
    use pixelx::config::{ExperimentInfo, RunConfig};
    use pixelx::registry::{Registry, RunFilter};
    let dir = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(&dir.path().join("r.sqlite")).unwrap();
    let exp = reg
        .upsert_experiment(&ExperimentInfo::named("bench", ""), None, Default::default())
        .unwrap();
    let values = 100_000i64;
    println!("registry: {values} step metrics, then a report over 1,000 runs");
    for id in ["batched", "per_value"] {
        reg.add_run(exp, id, &RunConfig::default(), dir.path(), None)
            .unwrap();
    }
    drop(reg);
    // Baseline: what a naive recorder does, one transaction per value.
    let conn = rusqlite::Connection::open(dir.path().join("r.sqlite")).unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    let start = Instant::now();
    for step in 0..values {
        conn.execute(
            "INSERT INTO metrics (run_id, name, step, value) VALUES ('per_value', 'train_loss', ?1, ?2)",
            rusqlite::params![step, 1.0 / (step + 1) as f64],
        )
        .unwrap();
    }
    let t_naive = start.elapsed().as_secs_f64();
    // pixelx: the worker's journal (two values per step: loss and lr), ingested by the
    // coordinator in one transaction per read.
    let run_dir = dir.path().join("batched");
    let one = [support::SyntheticEpoch {
        bpd8: 7.2,
        samples: false,
    }];
    support::write_journal(&run_dir, values / 2, &one, |s| 1.0 / s as f64, None);
    let mut reg = Registry::open(&dir.path().join("r.sqlite")).unwrap();
    let start = Instant::now();
    reg.ingest("batched", &run_dir).unwrap();
    let t_batched = start.elapsed().as_secs_f64();
    println!("  one transaction per value  {t_naive:8.2} s  (baseline)");
    println!(
        "  pixelx, journal ingested   {t_batched:8.2} s  ({:.0} values/s)",
        values as f64 / t_batched
    );
    println!("  ratio                      {:8.1}x", t_naive / t_batched);

    for i in 0..1000 {
        let id = format!("run{i:04}");
        let config = RunConfig {
            seed: i,
            learning_rate: 1e-4 * (1 + i % 7) as f64,
            ..RunConfig::default()
        };
        reg.add_run(exp, &id, &config, dir.path(), None).unwrap();
        let run_dir = dir.path().join("runs").join(&id);
        let epochs: Vec<support::SyntheticEpoch> = (1..=10)
            .map(|epoch| support::SyntheticEpoch {
                bpd8: 7.14 - epoch as f64 * 1e-3 + (i % 13) as f64 * 1e-4,
                samples: false,
            })
            .collect();
        support::write_journal(&run_dir, 10, &epochs, |s| 1.0 / s as f64, None);
        reg.ingest(&id, &run_dir).unwrap();
        reg.set_status(&id, pixelx::registry::RunStatus::Completed, None)
            .unwrap();
    }
    let start = Instant::now();
    let mut runs = reg.summaries(&RunFilter::default()).unwrap();
    pixelx::report::sort_runs(&mut runs, "bpd8").unwrap();
    let params = pixelx::report::varying_params(&runs);
    let table = pixelx::report::render(&runs, &params, pixelx::report::Format::Table).unwrap();
    let t_table = start.elapsed().as_secs_f64();
    let start = Instant::now();
    pixelx::report::write_html(&reg, &runs, &dir.path().join("runs"), &dir.path().join("r.html")).unwrap();
    let t_html = start.elapsed().as_secs_f64();
    println!(
        "  report table, {} runs      {t_table:8.3} s  ({} lines)",
        runs.len(),
        table.lines().count()
    );
    println!(
        "  report HTML, {} runs       {t_html:8.3} s  ({} KiB)",
        runs.len(),
        std::fs::metadata(dir.path().join("r.html")).unwrap().len() / 1024
    );
    // One run's summary (`pixelx show`, the end of `pixelx train`): all runs read, then picked
    // (baseline, as before), against the single-run filter.
    let id = runs[runs.len() / 2].id.clone();
    let start = Instant::now();
    let all = reg.summaries(&RunFilter::default()).unwrap();
    let picked = all.into_iter().find(|r| r.id == id).unwrap();
    let t_all = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let one = reg.summaries(&RunFilter::run(&id)).unwrap();
    let t_one = start.elapsed().as_secs_f64();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].best.map(|b| b.bpd8), picked.best.map(|b| b.bpd8));
    println!(
        "  one run's summary          {t_one:8.4} s  (baseline: read all and pick, {t_all:.4} s; {:.0}x)",
        t_all / t_one
    );
}

/// A 4-run experiment of small MNIST models ([`packing_model`]; `grid` lists the seeds) with
/// these scheduler lines, in fp32 (pinned: the default `auto` would make the packing figure
/// depend on the CPU's bf16).
fn small_sweep(dir: &Path, name: &str, seeds: &str, scheduler: &str) -> std::path::PathBuf {
    let file = dir.join(format!("{name}.toml"));
    let m = packing_model();
    let text = format!(
        "[experiment]\nname = \"{name}\"\ndataset = \"mnist\"\n[defaults]\nepochs = 1\n\
         hidden_fmaps = {}\nout_hidden_fmaps = {}\nhidden_layers = {}\ncausal_ksize = {}\n\
         hidden_ksize = {}\ntrain_subset = 3000\ntest_subset = 500\nepoch_samples = 0\n\
         precision = \"fp32\"\n[grid]\nseed = [{seeds}]\n[scheduler]\n{scheduler}\n",
        m.hidden_fmaps, m.out_hidden_fmaps, m.hidden_layers, m.causal_ksize, m.hidden_ksize
    );
    std::fs::write(&file, text).unwrap();
    file
}

/// Wall time of `pixelx run` over a 4-run experiment with the given scheduler settings.
fn sweep_seconds(dir: &Path, name: &str, scheduler: &str) -> f64 {
    let data = std::env::var("PIXELX_DATA_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/data").into());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pixelx"));
    cmd.arg("--runs-dir")
        .arg(dir.join(name))
        .args(["--data-dir", &data]);
    timed_sweep(cmd, &small_sweep(dir, name, "1, 2, 3, 4", scheduler))
}

fn timed_sweep(mut cmd: Command, file: &Path) -> f64 {
    let start = Instant::now();
    let out = cmd.args(["-q", "run"]).arg(file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    start.elapsed().as_secs_f64()
}

fn packing() {
    let dir = tempfile::tempdir().unwrap();
    println!("packing: 4 small MNIST runs (F=16, 2 blocks, 3,000 images, 1 epoch) on 2 cores");
    let sequential = sweep_seconds(dir.path(), "sequential", "devices = \"cpu\"\nruns_per_device = 1");
    let packed = sweep_seconds(
        dir.path(),
        "packed",
        "devices = [\"cpu\", \"cpu\"]\nruns_per_device = 1",
    );
    println!("  1 slot x 2 threads   {sequential:8.1} s  (baseline)");
    println!("  2 slots x 1 thread   {packed:8.1} s");
    println!("  ratio                {:8.2}x", sequential / packed);
    // What the scheduler plans for the same sweep when the file names no `runs_per_device`.
    let file = small_sweep(dir.path(), "default", "1, 2, 3, 4", "devices = \"cpu\"");
    let experiment = pixelx::config::Experiment::load(&file, &[]).unwrap();
    let cores = pixelx::host::num_cores();
    let workload = pixelx::train::memory::workload(&experiment, 0);
    let slots = pixelx::slots::plan_slots(&experiment.scheduler, 0, cores, &workload).unwrap();
    println!(
        "  default (`runs_per_device = \"auto\"`) on {cores} cores: {} slot(s) x {} thread(s)",
        slots.len(),
        slots[0].threads
    );
    packing_bound();
}

/// The packing sweep's model (F=16, 2 blocks, k 5/3, O=16): what [`small_sweep`] writes and
/// [`packing_bound`] times.
fn packing_model() -> ModelSpec {
    let mut spec = ModelSpec::original(1);
    (spec.hidden_fmaps, spec.out_hidden_fmaps, spec.hidden_layers) = (16, 16, 2);
    (spec.causal_ksize, spec.hidden_ksize) = (5, 3);
    spec
}

/// Training images/s of the packing model in `n` processes at once of `threads` torch threads
/// each (this bench started again as `--speed-child THREADS`), one figure per process.
fn speed_children(n: usize, threads: i32) -> Vec<f64> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--speed-child", &threads.to_string()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        })
        .collect()
}

/// The child's side of [`speed_children`]: `--speed-child THREADS`.
fn speed_child(threads: &str) {
    tch::set_num_threads(threads.parse().expect("a thread count"));
    let rate = StepTimer::new(packing_model(), 28, 32, Device::Cpu, Precision::Fp32)
        .images_per_sec(5, 60)
        .expect("fp32 steps");
    println!("{rate:.1}");
}

/// What bounds the packing ratio on this machine, steady-state training only (no start-up,
/// evaluation or launch to overlap): how much faster the packing model trains on 2 threads than
/// on 1, and how much two 1-thread processes at once slow each other (shared cache, memory
/// bandwidth). Two slots beat one by `2 × paired / two_threads`.
fn packing_bound() {
    let one = speed_children(1, 1)[0];
    let two = speed_children(1, 2)[0];
    let paired = speed_children(2, 1);
    let paired = paired.iter().sum::<f64>() / paired.len() as f64;
    println!(
        "  training alone: 1 thread {one:.0} images/s, 2 threads {two:.0} ({:.2}x); two 1-thread \
         processes at once {paired:.0} each ({:.2}x slower than alone): steady-state packing {:.2}x",
        two / one,
        one / paired,
        2.0 * paired / two
    );
}

/// Seconds from each run's launch (process started, job submitted) to its worker's start.
fn launch_latencies(runs: &Path) -> Vec<f64> {
    let reg = pixelx::registry::Registry::open_read_only(&runs.join("registry.sqlite")).unwrap();
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    reg.summaries(&Default::default())
        .unwrap()
        .iter()
        .filter_map(|r| {
            let events = reg.events(&r.id).ok()?;
            let launched = events.iter().find(|e| e.0 == "launched")?;
            let running = events.iter().find(|e| e.0 == "running")?;
            Some((at(&running.1) - at(&launched.1)).num_milliseconds() as f64 / 1000.0)
        })
        .collect()
}

/// The Slurm backend on a real local cluster: its scheduling overhead over the local backend on
/// the same 4-run sweep, and how fast 200 runs are submitted.
fn slurm() {
    let cluster = support::cluster::Cluster::up(6937);
    let dir = tempfile::tempdir().unwrap();
    let rounds = 3;
    println!(
        "slurm: 4 small MNIST runs (as packing), 2 at a time, local backend vs a local Slurm cluster, \
         median of {rounds} alternating rounds"
    );
    let (mut local_launch, mut slurm_launch) = (Vec::new(), Vec::new());
    let (mut local_round, mut slurm_round) = (0, 0);
    let (local, on_slurm) = alternating_medians(
        rounds,
        || {
            local_round += 1;
            let name = format!("local{local_round}");
            let t = sweep_seconds(dir.path(), &name, "devices = [\"cpu\", \"cpu\"]");
            local_launch.extend(launch_latencies(&dir.path().join(&name)));
            t
        },
        || {
            slurm_round += 1;
            let name = format!("slurm{slurm_round}");
            let scheduler = "backend = \"slurm\"\n[scheduler.slurm]\ncpus_per_run = 1\nmax_jobs = 2";
            let file = small_sweep(dir.path(), &name, "1, 2, 3, 4", scheduler);
            let t = timed_sweep(cluster.pixelx(&dir.path().join(&name)), &file);
            slurm_launch.extend(launch_latencies(&dir.path().join(&name)));
            t
        },
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!("  local backend        {local:8.1} s  (baseline)");
    println!(
        "  Slurm backend        {on_slurm:8.1} s  ({:+.2} s per run)",
        (on_slurm - local) / 4.0
    );
    println!(
        "  launch to start      {:8.2} s per run on Slurm vs {:.2} s locally: {:+.2} s of scheduling per run",
        mean(&slurm_launch),
        mean(&local_launch),
        mean(&slurm_launch) - mean(&local_launch)
    );

    // 200 runs submitted held (`--hold`), so nothing trains: the time is the coordinator's.
    let seeds: Vec<String> = (1..=200).map(|s| s.to_string()).collect();
    let file = small_sweep(
        dir.path(),
        "queued200",
        &seeds.join(", "),
        "backend = \"slurm\"\n[scheduler.slurm]\nmax_jobs = 200\nextra = [\"--hold\"]",
    );
    let start = Instant::now();
    let mut coordinator = cluster
        .pixelx(&dir.path().join("queued200"))
        .args(["-q", "run"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while cluster.pixelx_jobs().len() < 200 {
        assert!(
            start.elapsed().as_secs() < 300,
            "200 jobs were not submitted in 5 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let submitted = start.elapsed().as_secs_f64();
    // SAFETY: signalling the coordinator this function started.
    unsafe {
        libc::kill(coordinator.id() as i32, libc::SIGINT);
    }
    let _ = coordinator.wait();
    println!(
        "  200 runs submitted   {submitted:8.2} s  ({:.1} ms per job, sbatch and registry included)",
        submitted * 1000.0 / 200.0
    );
}

/// The shipped sweep's dry run, timed end to end: expansion, calibration of every architecture,
/// the plan and its total.
fn estimate() {
    let dir = tempfile::tempdir().unwrap();
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/mnist_sweep.toml");
    println!("estimate: `pixelx run experiments/mnist_sweep.toml --dry-run`, calibration included");
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_pixelx"))
        .arg("--runs-dir")
        .arg(dir.path().join("runs"))
        .args(["run", file, "--dry-run"])
        .output()
        .unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("speeds:") || l.contains("images·epochs"))
    {
        println!("  {line}");
    }
    println!("  dry run            {seconds:8.1} s  (target < 30 s)");
}

fn main() {
    // As `pixelx` does first: libtorch's CUDA backend is loaded at run time, not linked.
    if let Some(warning) = pixelx::device::load_cuda_backend_warning() {
        eprintln!("{warning}");
    }
    tch::set_num_threads(THREADS);
    // As a training process has it (`Trainer::new`): the in-process step timings and the
    // peak-RSS child measure what a run does.
    pixelx::host::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--rss-child") {
        speed_profile::rss_child(&args[at + 1..]);
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "--speed-child") {
        speed_child(&args[at + 1]);
        return;
    }
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| name.contains(w.as_str()));
    if run("training") {
        training();
    }
    if run("sampling") {
        sampling();
    }
    if run("registry") {
        registry();
    }
    if run("packing") {
        packing();
    }
    if run("slurm") {
        slurm();
    }
    if run("estimate") {
        estimate();
    }
}
