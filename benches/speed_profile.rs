//! Where one training step of a model goes, by kind of layer, and the peak memory of a training
//! process beside the PyTorch reference's.
//!
//! Each kind is timed alone, forward and backward (through a `sum`), on the shapes one step of
//! the model gives it, with the model's own weights; the optimiser (clipping and Adam) and the
//! batch assembly (`Dataset::batch`'s work: index, convert, scale) likewise. What the whole step
//! takes beyond their sum is the rest: residual and skip adds, shifts and concatenations, the
//! loss, and autograd's bookkeeping.

use std::time::Instant;

use pixelx::model::{gate, vertical_pre, ModelSpec, PixelCnn};
use pixelx::precision::Precision;
use pixelx::train::{training_loss, Adam};
use tch::{nn, Device, Kind, Tensor};

const SIDE: i64 = 28;

/// Mean seconds of `f` over `reps` calls after one untimed call.
fn seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    for _ in 0..reps {
        f();
    }
    start.elapsed().as_secs_f64() / reps as f64
}

/// Random `[batch, channels, 28, 28]` activations in the model's layout, made once per shape
/// outside the timings.
fn input(model: &PixelCnn, batch: i64, channels: i64) -> Tensor {
    let x = Tensor::randn([batch, channels, SIDE, SIDE], (Kind::Float, Device::Cpu));
    if model.channels_last {
        pixelx::model::layout::channels_last(&x)
    } else {
        x
    }
}

/// Forward and backward of `f` on `x` as a new leaf that needs grad (same storage, fresh grad).
fn fwd_bwd(x: &Tensor, f: impl Fn(&Tensor) -> Tensor) {
    let x = x.detach().set_requires_grad(true);
    f(&x).sum(Kind::Float).backward();
}

/// Seconds per step of each kind of layer of `model` at `batch`, in the order printed: the
/// convolution kinds first, in [`step_flops_by_kind`]'s order, then the gates.
fn by_kind(model: &PixelCnn, batch: i64, reps: usize) -> Vec<(&'static str, f64)> {
    let s = model.spec;
    let (c, f) = (s.channels, s.hidden_fmaps);
    let causal = &model.causal;
    let (xc, xf, x2f) = (
        input(model, batch, c),
        input(model, batch, f),
        input(model, batch, 2 * f),
    );
    // The row convolutions as the model runs them: cropped to their kept taps, or full.
    let row = |conv: &pixelx::model::Conv, x: &Tensor| {
        if causal.cropped {
            conv.row_causal(x)
        } else {
            conv.row_masked(x)
        }
    };
    let vertical = seconds(reps, || {
        fwd_bwd(&xc, |x| {
            vertical_pre(&causal.v_conv, &causal.v_fc, x, causal.ksize)
        });
        for g in &model.gated {
            fwd_bwd(&xf, |x| vertical_pre(&g.v_conv, &g.v_fc, x, g.ksize));
        }
    });
    let rows = seconds(reps, || {
        fwd_bwd(&xc, |x| row(&causal.h_conv, x));
        for g in &model.gated {
            fwd_bwd(&xf, |x| row(&g.h_conv, x));
        }
    });
    let pointwise = seconds(reps, || {
        fwd_bwd(&x2f, |x| causal.v_to_h.pointwise(x));
        fwd_bwd(&xf, |x| causal.h_fc.pointwise(x));
        for g in &model.gated {
            fwd_bwd(&x2f, |x| g.v_to_h.pointwise(x));
            let w = Tensor::cat(&[g.h_skip.effective_weight(), g.h_fc.effective_weight()], 0);
            fwd_bwd(&xf, |x| x.conv2d(&w, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1));
        }
        fwd_bwd(&xf, |x| {
            model.out.pointwise(&model.out_hidden.pointwise(x).relu())
        });
    });
    let gates = seconds(reps, || {
        for _ in 0..2 * (1 + s.hidden_layers) {
            fwd_bwd(&x2f, gate);
        }
    });
    vec![
        ("vertical (k/2+1)xk convs", vertical),
        ("masked 1xk convs (h_conv)", rows),
        ("1x1 convs (v_to_h, h_fc/h_skip, head)", pointwise),
        ("gates (tanh x sigmoid, fused)", gates),
    ]
}

/// Seconds of batch assembly, of clipping + Adam, and of a whole step, on `spec` at `batch`.
fn around(spec: ModelSpec, batch: i64, reps: usize) -> (f64, f64, f64, PixelCnn, nn::VarStore) {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = PixelCnn::new(&vs.root(), spec, 0);
    let mut adam = Adam::new(&vs, 1e-4);
    let set = Tensor::randint(
        spec.levels,
        [10_000, spec.channels, SIDE, SIDE],
        (Kind::Uint8, Device::Cpu),
    );
    let labels = Tensor::randint(10, [10_000], (Kind::Int64, Device::Cpu));
    let scale = (spec.levels - 1) as f64;
    let data = seconds(reps, || {
        let idx = Tensor::randint(10_000, [batch], (Kind::Int64, Device::Cpu));
        let levels = set.index_select(0, &idx);
        let _ = (
            levels.to_kind(Kind::Float) / scale,
            levels.to_kind(Kind::Int64),
            labels.index_select(0, &idx),
        );
    });
    let levels = set.narrow(0, 0, batch).to_kind(Kind::Int64);
    let x = levels.to_kind(Kind::Float) / scale;
    let y = labels.narrow(0, 0, batch);
    let mut step = || {
        let loss = training_loss(&model, &x, &y, &levels, Precision::Fp32).expect("fp32 loss");
        let _ = loss.double_value(&[]);
        adam.zero_grad();
        loss.backward();
    };
    let whole_without_optimiser = seconds(reps, &mut step);
    let optimiser = seconds(reps, || {
        adam.clip_grad_norm(1.0);
        adam.step(1e-4);
    });
    (data, optimiser, whole_without_optimiser + optimiser, model, vs)
}

/// Floating-point operations of one training step of `batch` `side × side` images by kind of
/// convolution, as pixelx computes them by default on CPU: `(vertical, rows, pointwise)`.
/// Vertical kernels have `v_fc` folded in, `h_conv` is cropped to the `k/2 + 1` columns its mask
/// keeps, `h_skip`+`h_fc` run as one: 2 per multiply-add, and the backward pass twice the
/// forward's (gradients of the inputs and of the weights). The taps a mask zeroes and pixelx
/// skips are not counted, nor is element-wise work (gates, residuals, loss, Adam).
pub fn step_flops_by_kind(spec: ModelSpec, batch: i64, side: i64) -> [f64; 3] {
    let (c, f, o) = (spec.channels, spec.hidden_fmaps, spec.out_hidden_fmaps);
    let (two, layers) = (2 * f, spec.hidden_layers);
    let (kc, k) = (spec.causal_ksize, spec.hidden_ksize);
    // Mask A keeps the centre column only where there is an earlier colour group to read.
    let causal_cols = kc / 2 + i64::from(c > 1);
    let vertical = c * two * (kc / 2 + 1) * kc + layers * f * two * (k / 2 + 1) * k;
    let rows = c * two * causal_cols + layers * f * two * (k / 2 + 1);
    let pointwise = two * two + f * f + layers * (two * two + f * two) + f * o + o * c * spec.levels;
    [vertical, rows, pointwise].map(|macs| 2.0 * 3.0 * (macs * batch * side * side) as f64)
}

/// Prints the step's time by kind of layer, each convolution kind's share of `peak` (GFLOP/s),
/// and the roofline the step would reach if everything but the convolutions cost nothing: the
/// ceiling that libtorch's convolution kernels alone put on it.
pub fn by_layer(spec: ModelSpec, batch: i64, reps: usize, peak: f64) {
    let (data, optimiser, step, model, _vs) = around(spec, batch, reps);
    let mut parts = by_kind(&model, batch, reps);
    let flops = step_flops_by_kind(spec, batch, SIDE);
    // `by_kind` lists the convolution kinds first, in the order of their FLOP counts.
    let conv_seconds: f64 = parts[..flops.len()].iter().map(|p| p.1).sum();
    parts.push(("optimiser (clip + Adam)", optimiser));
    parts.push(("data (batch assembly)", data));
    let counted: f64 = parts.iter().map(|p| p.1).sum();
    let step = step + data;
    parts.push((
        "rest (adds, shifts, cat, loss, autograd)",
        (step - counted).max(0.0),
    ));
    println!(
        "  profile of one step (batch {batch}, each kind timed alone, forward + backward): {:.0} ms",
        step * 1e3
    );
    for (i, (name, s)) in parts.into_iter().enumerate() {
        let rate = flops
            .get(i)
            .map(|f| {
                let gflops = f / s / 1e9;
                format!("  {gflops:6.1} GFLOP/s, {:3.0}% of peak", 100.0 * gflops / peak)
            })
            .unwrap_or_default();
        println!(
            "    {name:42} {:7.1} ms  {:4.0}%{rate}",
            s * 1e3,
            100.0 * s / step
        );
    }
    let ceiling = flops.iter().sum::<f64>() / conv_seconds / 1e9;
    println!(
        "  ceiling with these convolution kernels (the rest at zero cost): {ceiling:.1} GFLOP/s, \
         {:.0}% of peak",
        100.0 * ceiling / peak
    );
}

/// Peak resident memory (MiB) of a process that takes `steps` training steps of `spec` at
/// `batch`: this bench binary started again as such a process (same libtorch, nothing else).
pub fn child_peak_rss(spec_channels: i64, batch: i64, steps: usize) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--rss-child",
            &spec_channels.to_string(),
            &batch.to_string(),
            &steps.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the child prints its peak RSS")
}

/// The child's side of [`child_peak_rss`]: `--rss-child C BATCH STEPS`.
pub fn rss_child(args: &[String]) {
    let num = |i: usize| args[i].parse::<i64>().expect("a number");
    let (batch, steps) = (num(1), num(2) as usize);
    let mut timer = pixelx::train::speed::StepTimer::new(
        ModelSpec::original(num(0)),
        SIDE,
        batch,
        Device::Cpu,
        Precision::Fp32,
    );
    timer.time_steps(steps).expect("fp32 steps");
    println!("{:.1}", pixelx::host::peak_rss_mb());
}
