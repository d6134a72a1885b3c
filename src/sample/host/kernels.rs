//! The host sampler's arithmetic: small matrix products over strided rows, and the gate.
//!
//! The products are tiny (a few images or one image row by a layer's weights), so copying the
//! operands into blocked panels, as a general GEMM does, costs about as much as the multiply-adds.
//! The weights are therefore stored once with rows padded to whole 16-float vectors, and on CPUs
//! with AVX-512 a register-blocked kernel reads the activations in place; elsewhere
//! `matrixmultiply` computes the same products.

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Floats per vector of the blocked kernel; a matrix's rows are padded to a multiple.
const LANES: usize = 16;

/// A `[rows, cols]` row-major weight matrix whose rows start `stride` floats apart (`cols`
/// rounded up to whole vectors, the padding zero).
pub struct Matrix {
    rows: usize,
    cols: usize,
    stride: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// From `rows · cols` row-major values.
    pub fn new(rows: usize, cols: usize, values: &[f32]) -> Self {
        assert_eq!(values.len(), rows * cols, "a {rows}x{cols} matrix");
        let stride = cols.div_ceil(LANES).max(1) * LANES;
        let mut data = vec![0.0; rows * stride];
        for (dst, src) in data.chunks_mut(stride).zip(values.chunks(cols.max(1))) {
            dst[..cols].copy_from_slice(src);
        }
        Self {
            rows,
            cols,
            stride,
            data,
        }
    }
}

/// `c[m × b.cols] += a[m × b.rows] · b`: `a`'s rows start `lda` values apart (they may
/// overlap: a sliding window over a row of activations), `c`'s rows `ldc` apart.
pub fn gemm_acc(m: usize, a: &[f32], lda: usize, b: &Matrix, c: &mut [f32], ldc: usize) {
    let (k, n) = (b.rows, b.cols);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + k, "gemm: a too short");
    assert!(c.len() >= (m - 1) * ldc + n && ldc >= n, "gemm: c too short");
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: the CPU has AVX-512F; the asserts above bound every index the kernel reads
        // in `a` and writes in `c` (it writes only the first `n` values of each row), and it
        // reads `b.data` over its padded `k × stride` extent.
        unsafe {
            avx512::gemm(
                m,
                k,
                n,
                a.as_ptr(),
                lda,
                b.data.as_ptr(),
                b.stride,
                c.as_mut_ptr(),
                ldc,
            )
        };
        return;
    }
    gemm_acc_portable(m, a, lda, b, c, ldc);
}

/// `gemm_acc` without AVX-512, through `matrixmultiply` (which picks AVX/FMA at run time).
/// Callers have checked the bounds; kept apart so tests cover it on CPUs that have AVX-512.
fn gemm_acc_portable(m: usize, a: &[f32], lda: usize, b: &Matrix, c: &mut [f32], ldc: usize) {
    let (k, n) = (b.rows, b.cols);
    // SAFETY: `gemm_acc` asserted the bounds of `a` and `c`; `c` is borrowed mutably, so it
    // aliases neither `a` nor `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            lda as isize,
            1,
            b.data.as_ptr(),
            b.stride as isize,
            1,
            1.0,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

/// `out[f] = tanh(pre[f]) · sigmoid(pre[F + f])` for one position, `pre` of length `2F`.
pub fn gate(pre: &[f32], out: &mut [f32]) {
    let f = out.len();
    assert!(pre.len() >= 2 * f, "gate: pre too short");
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: the CPU has AVX-512F; `pre` holds 2F values and `out` F (asserted above).
        unsafe { avx512::gate(pre.as_ptr(), out.as_mut_ptr(), f) };
        return;
    }
    gate_portable(pre, out);
}

/// `gate` without AVX-512: libm's `tanh` and `exp`.
fn gate_portable(pre: &[f32], out: &mut [f32]) {
    let f = out.len();
    for ((o, &a), &b) in out.iter_mut().zip(&pre[..f]).zip(&pre[f..2 * f]) {
        *o = a.tanh() / (1.0 + (-b).exp());
    }
}

/// Each of `rows` rows of `dst` (`ld` apart) starts with `src`.
pub fn fill_rows(dst: &mut [f32], rows: usize, ld: usize, src: &[f32]) {
    for r in 0..rows {
        dst[r * ld..r * ld + src.len()].copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both gates (the vectorised one where the CPU has it, and the portable one) against
    /// libm's `tanh` and `exp`, over the range activations take, saturation included, and a
    /// partial last vector.
    #[test]
    fn the_gate_matches_libm() {
        let f = 37;
        let pre: Vec<f32> = (0..2 * f).map(|i| (i as f32 - f as f32) * 0.61).collect();
        for kernel in [gate, gate_portable] {
            let mut out = vec![0.0; f];
            kernel(&pre, &mut out);
            check_gate(&pre, &out);
        }
    }

    fn check_gate(pre: &[f32], out: &[f32]) {
        let f = out.len();
        for i in 0..f {
            let want = pre[i].tanh() / (1.0 + (-pre[f + i]).exp());
            assert!(
                (out[i] - want).abs() <= 1e-6,
                "gate({}, {}) = {} vs {want}",
                pre[i],
                pre[f + i],
                out[i]
            );
        }
    }

    /// Both products (the blocked kernel where the CPU has it, and `matrixmultiply`) against
    /// the plain definition, over the shapes the kernel splits differently: row blocks and
    /// remainders, 1 to 5 vectors and partial ones.
    #[test]
    fn products_match_the_definition() {
        for (m, k, n, lda) in [
            (1, 1, 1, 1),
            (4, 7, 16, 9),
            (13, 120, 60, 130),
            (5, 30, 70, 30),
            (28, 210, 60, 30),
            (3, 10, 2, 12),
        ] {
            let a: Vec<f32> = (0..(m - 1) * lda + k)
                .map(|v| ((v * 7 % 13) as f32 - 6.0) / 5.0)
                .collect();
            let values: Vec<f32> = (0..k * n).map(|v| ((v * 5 % 11) as f32 - 5.0) / 3.0).collect();
            let b = Matrix::new(k, n, &values);
            let ldc = n + 3;
            for kernel in [gemm_acc, gemm_acc_portable] {
                let mut c = vec![1.0f32; m * ldc];
                kernel(m, &a, lda, &b, &mut c, ldc);
                check_product(m, k, n, (&a, lda), &values, (&c, ldc));
            }
        }
    }

    /// `c` is 1 plus `a · values` in its first `n` columns and untouched (1) after them.
    fn check_product(
        m: usize,
        k: usize,
        n: usize,
        (a, lda): (&[f32], usize),
        values: &[f32],
        (c, ldc): (&[f32], usize),
    ) {
        for r in 0..m {
            for col in 0..ldc {
                let want = if col < n {
                    1.0 + (0..k).map(|t| a[r * lda + t] * values[t * n + col]).sum::<f32>()
                } else {
                    1.0
                };
                let got = c[r * ldc + col];
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{m}x{k}x{n} [{r},{col}]: {got} vs {want}"
                );
            }
        }
    }
}
