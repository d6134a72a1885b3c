//! The gate `tanh(a) · sigmoid(b)` as one fused, differentiable libtorch operation on CPU
//! (`csrc/gate.cpp`): one pass over memory forward and one backward, where the unfused ops take
//! three kernels forward and about five backward, and on the strided channel halves of a
//! channels-last tensor `tanh` and `sigmoid` fall off libtorch's vectorised path. Other devices
//! and dtypes use the unfused ops.

use tch::Tensor;

extern "C" {
    fn pixelx_gate_supported(t: *const torch_sys::C_tensor) -> i32;
    fn pixelx_gate(t: *const torch_sys::C_tensor, out: *mut *mut torch_sys::C_tensor) -> i32;
    #[cfg(test)]
    fn pixelx_gate_force_portable(on: i32) -> i32;
}

/// `tanh(t[:F]) * sigmoid(t[F:])` over the channel dimension of `[N, 2F, H, W]`, in `t`'s layout.
pub fn gate(t: &Tensor) -> Tensor {
    if !fused_applies(t) {
        return gate_unfused(t);
    }
    // SAFETY: `t` is a live tensor the shim takes (checked above), and it catches every C++
    // exception.
    super::layout::shim_result("fused gate", t, |out| unsafe { pixelx_gate(t.as_ptr(), out) })
}

/// Whether [`gate`] runs the fused op on `t`: a 4-d CPU tensor of float or bf16 with an even
/// channel count, dense in NCHW or NHWC.
pub(crate) fn fused_applies(t: &Tensor) -> bool {
    // SAFETY: `t` is a live tensor; the shim only reads its metadata and catches exceptions.
    unsafe { pixelx_gate_supported(t.as_ptr()) == 1 }
}

/// The same gate as libtorch's separate ops compute it: the definition the fused one is
/// tested against, and what runs where it does not apply.
pub fn gate_unfused(t: &Tensor) -> Tensor {
    let halves = t.chunk(2, 1);
    halves[0].tanh() * halves[1].sigmoid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layout::channels_last;
    use tch::{Device, Kind};

    /// `[n, 2f, h, w]` values spread over about ±6, the same on every call (no global RNG,
    /// which tests running beside this one draw from too).
    fn spread(shape: [i64; 4]) -> Tensor {
        let n: i64 = shape.iter().product();
        (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.37).sin() * 6.0
    }

    /// Largest |difference| between the fused and unfused gate's values and input gradients on
    /// `[n, 2f, h, w]` pre-activations of `kind`, in NCHW or NHWC.
    fn largest_difference(shape: [i64; 4], kind: Kind, nhwc: bool) -> (f64, f64) {
        let base = spread(shape).view(shape);
        let base = if nhwc { channels_last(&base) } else { base };
        assert!(
            fused_applies(&base.to_kind(kind)),
            "{shape:?} {kind:?} nhwc={nhwc} takes the fused path"
        );
        let run = |f: fn(&Tensor) -> Tensor| {
            let t = base.to_kind(kind).detach().set_requires_grad(true);
            let y = f(&t);
            // A gradient that differs per element, so a swapped or misplaced one shows.
            let weights = Tensor::arange(y.numel() as i64, (Kind::Float, Device::Cpu))
                .sin()
                .view(y.size().as_slice())
                .to_kind(kind);
            (&y * weights).sum(Kind::Float).backward();
            (y.to_kind(Kind::Float), t.grad().to_kind(Kind::Float))
        };
        let (y1, g1) = run(gate);
        let (y2, g2) = run(gate_unfused);
        assert_eq!(y1.size(), y2.size());
        let max = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
        (max(&y1, &y2), max(&g1, &g2))
    }

    #[test]
    fn fused_gate_gives_the_unfused_values_and_gradients() {
        // Both kernels where the CPU has AVX-512, so the portable one is not untested code here.
        // SAFETY: sets a flag of this thread's in the shim.
        let has_avx512 = unsafe { pixelx_gate_force_portable(0) } == 1;
        for portable in [false, true].into_iter().take(1 + has_avx512 as usize) {
            unsafe { pixelx_gate_force_portable(portable as i32) };
            compare_on_shapes();
        }
        unsafe { pixelx_gate_force_portable(0) };
    }

    fn compare_on_shapes() {
        // Odd sizes leave partial vectors at every segment's end; F=30 is the default width; the
        // last two are large enough to be split between threads, the last one mid-row.
        for shape in [
            [2, 60, 5, 7],
            [3, 6, 4, 4],
            [1, 2, 1, 1],
            [2, 34, 28, 28],
            [3, 34, 28, 29],
        ] {
            for nhwc in [false, true] {
                let (values, grads) = largest_difference(shape, Kind::Float, nhwc);
                assert!(
                    values < 1e-6 && grads < 1e-6,
                    "{shape:?} nhwc={nhwc}: {values} {grads}"
                );
                let (values, grads) = largest_difference(shape, Kind::BFloat16, nhwc);
                // One bf16 rounding of values below 1 (2^-8), each way.
                assert!(
                    values <= 4e-3 && grads <= 8e-3,
                    "{shape:?} bf16 nhwc={nhwc}: {values} {grads}"
                );
            }
        }
    }

    #[test]
    fn fused_gate_keeps_the_layout() {
        let t = channels_last(&spread([2, 8, 3, 5]).view([2, 8, 3, 5]));
        assert!(fused_applies(&t) && fused_applies(&t.contiguous()));
        let y = gate(&t);
        assert!(crate::model::layout::is_channels_last(&y));
        assert_eq!(y.size(), vec![2, 4, 3, 5]);
        let y = gate(&t.contiguous());
        assert!(y.is_contiguous());
    }

    #[test]
    fn tensors_it_does_not_take_go_through_the_unfused_ops() {
        // A strided view (every other row) is neither NCHW- nor NHWC-dense.
        let t = spread([2, 8, 6, 5]).view([2, 8, 6, 5]);
        let view = t.slice(2, 0, 6, 2);
        assert!(!fused_applies(&view));
        let fused = gate(&view);
        let diff = (fused - gate_unfused(&view)).abs().max().double_value(&[]);
        assert_eq!(diff, 0.0);
        let doubles = t.to_kind(Kind::Double);
        assert!(!fused_applies(&doubles) && !fused_applies(&t.narrow(1, 0, 7)));
        assert_eq!(gate(&doubles).kind(), Kind::Double);
    }
}
