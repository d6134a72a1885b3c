//! The register-blocked product on AVX-512F: 4 rows × up to 4 vectors (64 columns) of `c`
//! accumulate in registers while `k` runs, `a` is read in place and broadcast, `b`'s padded rows
//! are loaded whole; the last vector of a row is stored through a mask.

use std::arch::x86_64::*;

use super::LANES;

pub fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

/// `c += a · b` (see [`super::gemm_acc`]); `b` is `k × ldb` with `ldb` a multiple of 16.
///
/// # Safety
/// AVX-512F must be available; `a` must hold `(m-1)·lda + k` values, `b` `k·ldb`, and `c`
/// `(m-1)·ldc + n`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    let vectors = n.div_ceil(LANES);
    let mut v0 = 0;
    while v0 < vectors {
        let count = (vectors - v0).min(4);
        let mut masks = [0u16; 4];
        for (v, mask) in masks.iter_mut().enumerate() {
            let left = n.saturating_sub((v0 + v) * LANES).min(LANES);
            *mask = ((1u32 << left) - 1) as u16;
        }
        let (b, c) = (b.add(v0 * LANES), c.add(v0 * LANES));
        let mut r = 0;
        while r + 4 <= m {
            let (a, c) = (a.add(r * lda), c.add(r * ldc));
            match count {
                4 => block::<4, 4>(k, a, lda, b, ldb, c, ldc, masks),
                3 => block::<4, 3>(k, a, lda, b, ldb, c, ldc, masks),
                2 => block::<4, 2>(k, a, lda, b, ldb, c, ldc, masks),
                _ => block::<4, 1>(k, a, lda, b, ldb, c, ldc, masks),
            }
            r += 4;
        }
        while r < m {
            let (a, c) = (a.add(r * lda), c.add(r * ldc));
            match count {
                4 => block::<1, 4>(k, a, lda, b, ldb, c, ldc, masks),
                3 => block::<1, 3>(k, a, lda, b, ldb, c, ldc, masks),
                2 => block::<1, 2>(k, a, lda, b, ldb, c, ldc, masks),
                _ => block::<1, 1>(k, a, lda, b, ldb, c, ldc, masks),
            }
            r += 1;
        }
        v0 += count;
    }
}

/// Adds the accumulators of one row into `c` (vector `v` through `masks[v]`).
macro_rules! store_row {
    ($c:expr, $masks:expr, $($v:literal => $acc:expr),*) => {$(
        if $v < V {
            let p = $c.add($v * LANES);
            let old = _mm512_maskz_loadu_ps($masks[$v], p);
            _mm512_mask_storeu_ps(p, $masks[$v], _mm512_add_ps(old, $acc));
        }
    )*};
}

/// `R` rows × `V` vectors of `c` += `a[R × k] · b[k × V·16]`. The accumulators are named
/// variables, not an array, and the loops over rows and vectors are written out, so they stay
/// in registers in pixelx's lightly optimised development build too (`V` is a constant: the
/// vectors past it fold away).
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const R: usize, const V: usize>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    masks: [u16; 4],
) {
    let z = _mm512_setzero_ps();
    let [mut c00, mut c01, mut c02, mut c03] = [z; 4];
    let [mut c10, mut c11, mut c12, mut c13] = [z; 4];
    let [mut c20, mut c21, mut c22, mut c23] = [z; 4];
    let [mut c30, mut c31, mut c32, mut c33] = [z; 4];
    // Rows past R read row 0 again (always in bounds) and are never stored.
    let row = |r: usize| if r < R { a.add(r * lda) } else { a };
    let (a0, a1, a2, a3) = (row(0), row(1), row(2), row(3));
    let mut bp = b;
    for t in 0..k {
        let x0 = _mm512_set1_ps(*a0.add(t));
        let (x1, x2, x3) = if R > 1 {
            (
                _mm512_set1_ps(*a1.add(t)),
                _mm512_set1_ps(*a2.add(t)),
                _mm512_set1_ps(*a3.add(t)),
            )
        } else {
            (z, z, z)
        };
        let b0 = _mm512_loadu_ps(bp);
        c00 = _mm512_fmadd_ps(x0, b0, c00);
        if R > 1 {
            c10 = _mm512_fmadd_ps(x1, b0, c10);
            c20 = _mm512_fmadd_ps(x2, b0, c20);
            c30 = _mm512_fmadd_ps(x3, b0, c30);
        }
        if V > 1 {
            let b1 = _mm512_loadu_ps(bp.add(LANES));
            c01 = _mm512_fmadd_ps(x0, b1, c01);
            if R > 1 {
                c11 = _mm512_fmadd_ps(x1, b1, c11);
                c21 = _mm512_fmadd_ps(x2, b1, c21);
                c31 = _mm512_fmadd_ps(x3, b1, c31);
            }
        }
        if V > 2 {
            let b2 = _mm512_loadu_ps(bp.add(2 * LANES));
            c02 = _mm512_fmadd_ps(x0, b2, c02);
            if R > 1 {
                c12 = _mm512_fmadd_ps(x1, b2, c12);
                c22 = _mm512_fmadd_ps(x2, b2, c22);
                c32 = _mm512_fmadd_ps(x3, b2, c32);
            }
        }
        if V > 3 {
            let b3 = _mm512_loadu_ps(bp.add(3 * LANES));
            c03 = _mm512_fmadd_ps(x0, b3, c03);
            if R > 1 {
                c13 = _mm512_fmadd_ps(x1, b3, c13);
                c23 = _mm512_fmadd_ps(x2, b3, c23);
                c33 = _mm512_fmadd_ps(x3, b3, c33);
            }
        }
        bp = bp.add(ldb);
    }
    store_row!(c, masks, 0 => c00, 1 => c01, 2 => c02, 3 => c03);
    if R > 1 {
        store_row!(c.add(ldc), masks, 0 => c10, 1 => c11, 2 => c12, 3 => c13);
        store_row!(c.add(2 * ldc), masks, 0 => c20, 1 => c21, 2 => c22, 3 => c23);
        store_row!(c.add(3 * ldc), masks, 0 => c30, 1 => c31, 2 => c32, 3 => c33);
    }
}

/// `e^x` on 16 lanes: Cephes' `expf` (range reduction by `ln 2`, degree-6 polynomial, 2^n by
/// `scalef`), within a few ulp of the libm value over the clamped range.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn exp16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.0)), _mm512_set1_ps(88.0));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
        x,
        _mm512_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5, // Cephes: 5.0000001201e-1, which is 0.5 in f32
    ] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0));
    _mm512_scalef_ps(y, n)
}

/// `out[i] = tanh(pre[i]) · sigmoid(pre[f + i])` for `i < f`, 16 lanes at a time, as
/// `(1 - 2 / (e^{2a} + 1)) / (1 + e^{-b})`.
///
/// # Safety
/// AVX-512F must be available; `pre` must hold `2·f` values and `out` `f`.
#[target_feature(enable = "avx512f")]
pub unsafe fn gate(pre: *const f32, out: *mut f32, f: usize) {
    let one = _mm512_set1_ps(1.0);
    let two = _mm512_set1_ps(2.0);
    let mut i = 0;
    while i < f {
        let left = (f - i).min(LANES);
        let mask = ((1u32 << left) - 1) as u16;
        let a = _mm512_maskz_loadu_ps(mask, pre.add(i));
        let b = _mm512_maskz_loadu_ps(mask, pre.add(f + i));
        let e2a = exp16(_mm512_add_ps(a, a));
        let tanh = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(e2a, one)));
        let sigmoid = _mm512_div_ps(
            one,
            _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), b))),
        );
        _mm512_mask_storeu_ps(out.add(i), mask, _mm512_mul_ps(tanh, sigmoid));
        i += LANES;
    }
}
