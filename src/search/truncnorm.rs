//! The standard normal distribution, truncated: log masses, log densities and inverse-CDF
//! draws, accurate far into the tails (TPE evaluates kernels tens of widths away from their
//! centre). Written from the textbook formulas; Optuna's `_truncnorm.py` (itself from SciPy)
//! is the behavioural reference: work in the left tail and mirror the right one.

use std::f64::consts::FRAC_1_SQRT_2;

/// `ln sqrt(2 pi)`.
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// `Phi(x)`, the standard normal CDF.
pub fn ndtr(x: f64) -> f64 {
    0.5 * libm::erfc(-x * FRAC_1_SQRT_2)
}

/// `ln Phi(x)`, accurate for very negative `x` (asymptotic series) and for large `x`
/// (`ln(1 - Phi(-x))`).
pub fn log_ndtr(x: f64) -> f64 {
    if x > 6.0 {
        (-ndtr(-x)).ln_1p()
    } else if x > -20.0 {
        ndtr(x).ln()
    } else {
        // Phi(x) = pdf(x)/(-x) * (1 - 1/x^2 + 3/x^4 - 15/x^6 + ...), x -> -inf.
        let x2 = x * x;
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in 1..8 {
            term *= -((2 * k - 1) as f64) / x2;
            sum += term;
        }
        -0.5 * x2 - (-x).ln() - LN_SQRT_2PI + sum.ln()
    }
}

/// `ln(exp(p) - exp(q))` for `p >= q`.
fn log_diff(p: f64, q: f64) -> f64 {
    if q == f64::NEG_INFINITY {
        return p;
    }
    p + (-(q - p).exp()).ln_1p()
}

/// `ln(Phi(b) - Phi(a))` for `a <= b`: the log mass of the standard normal on `[a, b]`.
pub fn log_gauss_mass(a: f64, b: f64) -> f64 {
    if b <= 0.0 {
        log_diff(log_ndtr(b), log_ndtr(a))
    } else if a > 0.0 {
        log_gauss_mass(-b, -a)
    } else {
        // Straddles 0: both tails are small, so subtract them from 1.
        (-ndtr(a) - ndtr(-b)).ln_1p()
    }
}

/// Log density at `x` of N(`mu`, `sigma`) truncated to `[low, high]`; `-inf` outside.
pub fn log_pdf(x: f64, mu: f64, sigma: f64, low: f64, high: f64) -> f64 {
    if x < low || x > high {
        return f64::NEG_INFINITY;
    }
    let z = (x - mu) / sigma;
    -0.5 * z * z - LN_SQRT_2PI - sigma.ln() - log_gauss_mass((low - mu) / sigma, (high - mu) / sigma)
}

/// Log probability that N(`mu`, `sigma`) truncated to `[low, high]` lands in `[left, right]`
/// (a sub-interval of `[low, high]`): the discrete kernels' mass of one grid cell.
pub fn log_cell_mass(left: f64, right: f64, mu: f64, sigma: f64, low: f64, high: f64) -> f64 {
    log_gauss_mass((left - mu) / sigma, (right - mu) / sigma)
        - log_gauss_mass((low - mu) / sigma, (high - mu) / sigma)
}

/// The draw of N(`mu`, `sigma`) truncated to `[low, high]` at quantile `u` in `[0, 1)`.
pub fn ppf(u: f64, mu: f64, sigma: f64, low: f64, high: f64) -> f64 {
    let a = (low - mu) / sigma;
    let b = (high - mu) / sigma;
    let log_mass = log_gauss_mass(a, b);
    // The target CDF value p = Phi(a) + u * mass, or its complement q = 1 - p; invert whichever
    // is smaller, where it is accurate. In log space so that masses far in a tail keep their
    // precision.
    let log_p = log_add(log_ndtr(a), u.ln() + log_mass);
    let log_q = log_add(log_ndtr(-b), (1.0 - u).ln() + log_mass);
    let z = if log_p <= log_q {
        ndtri_exp(log_p)
    } else {
        -ndtri_exp(log_q)
    };
    (mu + sigma * z).clamp(low, high)
}

/// `ln(exp(p) + exp(q))`.
fn log_add(p: f64, q: f64) -> f64 {
    let m = p.max(q);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((p - m).exp() + (q - m).exp()).ln()
}

/// `x` with `ln Phi(x) = y`, for `y <= ln 0.5` or so (the caller inverts the smaller side).
fn ndtri_exp(y: f64) -> f64 {
    if y == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if y >= 0.0 {
        return f64::INFINITY;
    }
    // Start from the rational approximation (or the tail asymptote where exp(y) underflows),
    // then polish with Newton steps on ln Phi(x) - y, whose derivative is pdf(x) / Phi(x).
    let mut x = if y > -700.0 {
        ndtri_approx(y.exp())
    } else {
        -(-2.0 * (y + LN_SQRT_2PI)).sqrt()
    };
    for _ in 0..50 {
        let l = log_ndtr(x);
        let dx = (l - y) * (l + 0.5 * x * x + LN_SQRT_2PI).exp();
        x -= dx;
        if !dx.is_finite() || dx.abs() <= 1e-12 * x.abs().max(1e-300) {
            break;
        }
    }
    x
}

/// Acklam's rational approximation of the inverse normal CDF (relative error ~1e-9).
fn ndtri_approx(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.024_25;
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_and_cdf() {
        assert!((LN_SQRT_2PI - (2.0 * std::f64::consts::PI).sqrt().ln()).abs() < 1e-15);
        assert!((ndtr(0.0) - 0.5).abs() < 1e-16);
        assert!((ndtr(1.959_963_984_540_054) - 0.975).abs() < 1e-12);
        // ln Phi(-30) = -454.32124395634319... (mpmath); the series and erfc agree where both work.
        assert!((log_ndtr(-30.0) + 454.321_243_956_343_2).abs() < 1e-9);
        for x in [-25.0, -20.5, -19.5] {
            let series = log_ndtr(x);
            let direct = ndtr(x).ln();
            assert!((series - direct).abs() < 1e-9, "{x}: {series} vs {direct}");
        }
        assert!((log_ndtr(8.0) + 6.220_960_574_271_786e-16).abs() < 1e-24);
    }

    #[test]
    fn masses() {
        // Central: Phi(1) - Phi(-1) = 0.682689492137...
        assert!((log_gauss_mass(-1.0, 1.0).exp() - 0.682_689_492_137_085_9).abs() < 1e-14);
        // Far tails stay finite and symmetric.
        let l = log_gauss_mass(-41.0, -40.0);
        assert!(
            l.is_finite() && (l - log_gauss_mass(40.0, 41.0)).abs() < 1e-9,
            "{l}"
        );
        assert!((log_gauss_mass(2.0, 3.0).exp() - (ndtr(3.0) - ndtr(2.0))).abs() < 1e-15);
    }

    #[test]
    fn ppf_inverts_the_cdf() {
        for (mu, sigma, low, high) in [
            (0.0, 1.0, -1.0, 2.0),
            (0.9, 0.01, 0.0, 1.0),
            (0.0, 0.05, 0.0, 5.0),
        ] {
            for u in [0.0, 1e-12, 0.1, 0.5, 0.9, 0.999_999] {
                let x = ppf(u, mu, sigma, low, high);
                assert!((low..=high).contains(&x), "{x}");
                let a = (low - mu) / sigma;
                let cdf =
                    (log_gauss_mass(a, (x - mu) / sigma) - log_gauss_mass(a, (high - mu) / sigma)).exp();
                let cdf = if u == 0.0 { 0.0 } else { cdf };
                assert!(
                    (cdf - u).abs() < 1e-9,
                    "mu {mu} sigma {sigma} u {u}: x {x} cdf {cdf}"
                );
            }
        }
        // Deep in a tail: a kernel 30 widths from the nearest bound.
        let x = ppf(0.5, 0.0, 1.0, 30.0, 31.0);
        assert!(x > 30.0 && x < 30.1, "{x}");
    }

    #[test]
    fn pdf_integrates_to_one() {
        let (mu, sigma, low, high) = (0.2, 0.3, 0.0, 1.0);
        let n = 20_000;
        let h = (high - low) / n as f64;
        let total: f64 = (0..n)
            .map(|i| log_pdf(low + (i as f64 + 0.5) * h, mu, sigma, low, high).exp() * h)
            .sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        let cells: f64 = (0..10)
            .map(|k| log_cell_mass(k as f64 * 0.1, (k + 1) as f64 * 0.1, mu, sigma, low, high).exp())
            .sum();
        assert!((cells - 1.0).abs() < 1e-12, "{cells}");
    }
}
