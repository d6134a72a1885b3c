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
pub unsafe fn gemm(m: usize, k: usize, n: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize) {
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

/// `R` rows × `V` vectors of `c` += `a[R × k] · b[k × V·16]`.
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
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for t in 0..k {
        let row = b.add(t * ldb);
        let mut bv = [_mm512_setzero_ps(); V];
        for (v, bv) in bv.iter_mut().enumerate() {
            *bv = _mm512_loadu_ps(row.add(v * LANES));
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*a.add(r * lda + t));
            for v in 0..V {
                acc[v] = _mm512_fmadd_ps(x, bv[v], acc[v]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for v in 0..V {
            let p = c.add(r * ldc + v * LANES);
            let old = _mm512_maskz_loadu_ps(masks[v], p);
            _mm512_mask_storeu_ps(p, masks[v], _mm512_add_ps(old, acc[v]));
        }
    }
}
