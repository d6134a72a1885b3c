//! The one-dimensional Parzen estimator of TPE: a weighted mixture of one kernel per
//! observation plus one prior kernel, as in Optuna's `parzen_estimator.py` and
//! `probability_distributions.py` (univariate case).
//!
//! Values are in *internal* form: the number itself for `Float` and `Int` axes, the index of
//! the value for `Choice` axes.

use rand::Rng;

use super::space::Distribution;
use super::truncnorm;

/// How the below/above mixtures are built (the knobs of [`super::tpe::TpeSettings`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParzenSettings {
    pub prior_weight: f64,
    pub consider_magic_clip: bool,
    pub consider_endpoints: bool,
}

/// Optuna's `default_weights`: the `n` observations (oldest first) all weigh 1 when `n < 25`;
/// beyond that the newest 25 weigh 1 and the older ones ramp linearly from `1/n` up to 1.
pub fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let start = 1.0 / n as f64;
    let mut w: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                start
            } else {
                start + (1.0 - start) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

#[derive(Debug, Clone)]
enum Kernels {
    /// Truncated normals on `[low, high]` in the transformed space (`ln` when `log`); for a
    /// discrete axis (`step > 0`) the bounds are widened by half a step and a value's mass is
    /// that of its cell `[x - step/2, x + step/2]` (in `ln` when `log`).
    Numeric {
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        low: f64,
        high: f64,
        log: bool,
        /// 0 for a continuous axis.
        step: f64,
        /// The axis's own bounds (where discrete draws are rounded and clipped).
        grid_low: f64,
        grid_high: f64,
    },
    /// One row of choice probabilities per kernel.
    Categorical { rows: Vec<Vec<f64>> },
}

/// A mixture over one axis: `weights[k]` is the weight of kernel `k` (the last is the prior).
#[derive(Debug, Clone)]
pub struct Parzen {
    weights: Vec<f64>,
    kernels: Kernels,
}

impl Parzen {
    /// Fits the mixture to `observations` (internal form, oldest trial first).
    pub fn new(observations: &[f64], dist: &Distribution, settings: &ParzenSettings) -> Self {
        let n = observations.len();
        let mut weights = if n == 0 {
            vec![1.0]
        } else {
            let mut w = default_weights(n);
            w.push(settings.prior_weight);
            w
        };
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        let kernels = match dist {
            Distribution::Choice(values) => categorical(observations, values.len(), settings),
            Distribution::Float { low, high, log } => numeric(observations, *low, *high, 0.0, *log, settings),
            Distribution::Int { low, high, step, log } => numeric(
                observations,
                *low as f64,
                *high as f64,
                *step as f64,
                *log,
                settings,
            ),
        };
        Self { weights, kernels }
    }

    /// `size` independent draws from the mixture: per draw, a kernel by weight, then a value
    /// from that kernel (one uniform each, in that order).
    pub fn sample(&self, rng: &mut impl Rng, size: usize) -> Vec<f64> {
        (0..size)
            .map(|_| {
                let k = pick(&self.weights, rng.gen::<f64>());
                self.kernel_sample(k, rng.gen::<f64>())
            })
            .collect()
    }

    /// The mixture weights, the prior's last (they sum to 1).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The value of kernel `k` at quantile `u` in [0, 1) (internal form).
    pub fn kernel_sample(&self, k: usize, u: f64) -> f64 {
        match &self.kernels {
            Kernels::Categorical { rows } => pick(&rows[k], u) as f64,
            Kernels::Numeric {
                mus,
                sigmas,
                low,
                high,
                log,
                step,
                grid_low,
                grid_high,
            } => {
                let t = truncnorm::ppf(u, mus[k], sigmas[k], *low, *high);
                let x = if *log { t.exp() } else { t };
                if *step > 0.0 {
                    (grid_low + ((x - grid_low) / step).round() * step).clamp(*grid_low, *grid_high)
                } else {
                    // `exp(ln low)` may round a hair outside the bounds.
                    x.clamp(*grid_low, *grid_high)
                }
            }
        }
    }

    /// Log density (continuous axes, in the transformed space) or log mass (discrete and
    /// categorical axes) of kernel `k` alone at `x` (internal form), its weight left out.
    pub fn kernel_log_pdf(&self, k: usize, x: f64) -> f64 {
        match &self.kernels {
            Kernels::Categorical { rows } => rows[k][x as usize].ln(),
            Kernels::Numeric {
                mus,
                sigmas,
                low,
                high,
                log,
                step,
                ..
            } => {
                let t = |v: f64| if *log { v.ln() } else { v };
                if *step > 0.0 {
                    let (left, right) = (t(x - step / 2.0), t(x + step / 2.0));
                    truncnorm::log_cell_mass(left, right, mus[k], sigmas[k], *low, *high)
                } else {
                    truncnorm::log_pdf(t(x), mus[k], sigmas[k], *low, *high)
                }
            }
        }
    }

    /// Log density (continuous axes, in the transformed space) or log mass (discrete and
    /// categorical axes) of the mixture at `x` (internal form).
    pub fn log_pdf(&self, x: f64) -> f64 {
        let terms: Vec<f64> = match &self.kernels {
            // ln(w * p), as Optuna computes a categorical term (the product first).
            Kernels::Categorical { rows } => rows
                .iter()
                .zip(&self.weights)
                .map(|(row, w)| (w * row[x as usize]).ln())
                .collect(),
            Kernels::Numeric { .. } => self
                .weights
                .iter()
                .enumerate()
                .map(|(k, w)| w.ln() + self.kernel_log_pdf(k, x))
                .collect(),
        };
        log_sum_exp(&terms)
    }
}

/// Index `k` where the cumulative sum of `weights` (summing to ~1) first exceeds `u` in [0, 1).
pub(super) fn pick(weights: &[f64], u: f64) -> usize {
    let total: f64 = weights.iter().sum();
    let target = u * total;
    let mut acc = 0.0;
    for (k, w) in weights.iter().enumerate() {
        acc += w;
        if target < acc {
            return k;
        }
    }
    // Rounding: the last kernel with any weight.
    weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
}

pub(super) fn log_sum_exp(terms: &[f64]) -> f64 {
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || m.is_nan() {
        return m;
    }
    m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
}

/// Optuna's smoothed categorical kernels: every kernel row starts at `prior_weight / n_kernels`
/// for each choice, the observation's own choice gets +1, and rows are normalised; the prior
/// kernel's row is uniform.
fn categorical(observations: &[f64], n_choices: usize, settings: &ParzenSettings) -> Kernels {
    if observations.is_empty() {
        return Kernels::Categorical {
            rows: vec![vec![1.0 / n_choices as f64; n_choices]],
        };
    }
    let n_kernels = observations.len() + 1;
    let base = settings.prior_weight / n_kernels as f64;
    let mut rows = vec![vec![base; n_choices]; n_kernels];
    for (row, obs) in rows.iter_mut().zip(observations) {
        row[*obs as usize] += 1.0;
    }
    for row in &mut rows {
        let sum: f64 = row.iter().sum();
        if sum > 0.0 {
            row.iter_mut().for_each(|p| *p /= sum);
        } else {
            // prior_weight 0: the prior row is empty; make it uniform rather than NaN (its
            // mixture weight is 0 anyway).
            row.iter_mut().for_each(|p| *p = 1.0 / n_choices as f64);
        }
    }
    Kernels::Categorical { rows }
}

/// Gaussian kernels centred on the observations (in `ln` for log axes), each as wide as the
/// larger gap to its sorted neighbours (the bounds count as neighbours; without
/// `consider_endpoints`, the outermost kernels use their inner gap only), clipped to
/// `[range / min(100, n_kernels + 1), range]` with the magic clip (else `[1e-12, range]`);
/// plus the prior kernel centred on the range with width the whole range.
fn numeric(
    observations: &[f64],
    grid_low: f64,
    grid_high: f64,
    step: f64,
    log: bool,
    settings: &ParzenSettings,
) -> Kernels {
    let (mut low, mut high) = (grid_low, grid_high);
    if step > 0.0 {
        low -= step / 2.0;
        high += step / 2.0;
    }
    let t = |v: f64| if log { v.ln() } else { v };
    let (low, high) = (t(low), t(high));
    let mut mus: Vec<f64> = observations.iter().map(|o| t(*o)).collect();
    let n = mus.len();

    let mut order: Vec<usize> = (0..n).collect();
    // Stable: equal centres keep trial order, so which of them gets which gap (they can
    // differ) is deterministic.
    order.sort_by(|a, b| mus[*a].total_cmp(&mus[*b]));
    let mut sorted = Vec::with_capacity(n + 2);
    sorted.push(low);
    sorted.extend(order.iter().map(|i| mus[*i]));
    sorted.push(high);
    let mut sorted_sigmas: Vec<f64> = (1..=n)
        .map(|i| (sorted[i] - sorted[i - 1]).max(sorted[i + 1] - sorted[i]))
        .collect();
    if !settings.consider_endpoints && n >= 2 {
        sorted_sigmas[0] = sorted[2] - sorted[1];
        sorted_sigmas[n - 1] = sorted[n] - sorted[n - 1];
    }
    let range = high - low;
    let min_sigma = if settings.consider_magic_clip {
        range / (1.0 + (n + 1) as f64).min(100.0)
    } else {
        1e-12
    };
    let mut sigmas = vec![0.0; n];
    for (rank, i) in order.iter().enumerate() {
        sigmas[*i] = sorted_sigmas[rank].clamp(min_sigma, range);
    }
    mus.push(0.5 * (low + high));
    sigmas.push(range);
    Kernels::Numeric {
        mus,
        sigmas,
        low,
        high,
        log,
        step,
        grid_low,
        grid_high,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTUNA: ParzenSettings = ParzenSettings {
        prior_weight: 1.0,
        consider_magic_clip: true,
        consider_endpoints: false,
    };

    fn parts(p: &Parzen) -> (Vec<f64>, Vec<f64>) {
        match &p.kernels {
            Kernels::Numeric { mus, sigmas, .. } => (mus.clone(), sigmas.clone()),
            Kernels::Categorical { .. } => unreachable!(),
        }
    }

    #[test]
    fn weights_ramp_after_25() {
        assert_eq!(default_weights(3), vec![1.0; 3]);
        let w = default_weights(27);
        assert_eq!(w.len(), 27);
        assert!((w[0] - 1.0 / 27.0).abs() < 1e-15 && (w[1] - 1.0).abs() < 1e-15);
        assert_eq!(default_weights(26)[0], 1.0 / 26.0);
    }

    /// Hand-computed: observations 0.2, 0.5, 0.6 on [0, 1]. Sorted with the bounds:
    /// 0, 0.2, 0.5, 0.6, 1. Gaps: 0.2 | 0.3 | 0.1 | 0.4. Without endpoints, the outermost
    /// kernels take their inner gap: 0.2 -> 0.3, 0.6 -> 0.1; the middle one max(0.3, 0.1) = 0.3.
    /// Magic clip: min sigma = 1 / min(100, 1 + 4) = 0.2, so 0.1 becomes 0.2. Prior: mu 0.5,
    /// sigma 1. Weights: 1, 1, 1 and the prior 1, each 1/4.
    #[test]
    fn bandwidths_match_hand_computation() {
        let d = Distribution::Float {
            low: 0.0,
            high: 1.0,
            log: false,
        };
        let p = Parzen::new(&[0.5, 0.2, 0.6], &d, &OPTUNA);
        let (mus, sigmas) = parts(&p);
        assert_eq!(mus, vec![0.5, 0.2, 0.6, 0.5]);
        let want = [0.3, 0.3, 0.2, 1.0];
        for (s, w) in sigmas.iter().zip(want) {
            assert!((s - w).abs() < 1e-12, "{sigmas:?}");
        }
        assert_eq!(p.weights, vec![0.25; 4]);
        // One observation: max of both gaps (the endpoint rule needs two).
        let p = Parzen::new(&[0.2], &d, &OPTUNA);
        assert!((parts(&p).1[0] - 0.8).abs() < 1e-12);
        // Int with step 2 on [0, 10]: bounds widen to [-1, 11].
        let d = Distribution::Int {
            low: 0,
            high: 10,
            step: 2,
            log: false,
        };
        let p = Parzen::new(&[4.0], &d, &OPTUNA);
        assert_eq!(parts(&p), (vec![4.0, 5.0], vec![7.0, 12.0]));
    }

    #[test]
    fn categorical_rows_are_smoothed() {
        // Two observations of choice 1 among 3: n_kernels = 3, base = 1/3 each;
        // rows (1/3, 4/3, 1/3) / 2 = (1/6, 2/3, 1/6); prior row uniform.
        let d = Distribution::Choice(vec![1.into(), 2.into(), 3.into()]);
        let p = Parzen::new(&[1.0, 1.0], &d, &OPTUNA);
        // Mixture mass of choice 1: (2/3 + 2/3 + 1/3) / 3 = 5/9.
        assert!((p.log_pdf(1.0).exp() - 5.0 / 9.0).abs() < 1e-12);
        let total: f64 = (0..3).map(|c| p.log_pdf(c as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    #[test]
    fn discrete_masses_sum_to_one_and_draws_stay_on_grid() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for d in [
            Distribution::Int {
                low: 16,
                high: 64,
                step: 8,
                log: false,
            },
            Distribution::Int {
                low: 1,
                high: 50,
                step: 1,
                log: true,
            },
        ] {
            let p = Parzen::new(&[24.0, 40.0, 48.0], &d, &OPTUNA);
            let (low, high, step) = match d {
                Distribution::Int { low, high, step, .. } => (low, high, step),
                _ => unreachable!(),
            };
            let total: f64 = (low..=high)
                .step_by(step as usize)
                .map(|x| p.log_pdf(x as f64).exp())
                .sum();
            assert!((total - 1.0).abs() < 1e-9, "{d:?}: {total}");
            for x in p.sample(&mut rng, 500) {
                assert!(
                    d.contains(&toml::Value::Integer(x as i64)) && x.fract() == 0.0,
                    "{x}"
                );
            }
        }
    }

    #[test]
    fn draws_follow_the_density() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let d = Distribution::Float {
            low: 1e-4,
            high: 1e-1,
            log: true,
        };
        let p = Parzen::new(&[1e-3, 2e-3], &d, &OPTUNA);
        let draws = p.sample(&mut rng, 4000);
        assert!(draws.iter().all(|x| (1e-4..=1e-1).contains(x)));
        // Probability of [5e-4, 4e-3] in ln space, integrated numerically, vs the draw rate.
        let (a, b) = (5e-4f64.ln(), 4e-3f64.ln());
        let n = 4000;
        let h = (b - a) / n as f64;
        let mass: f64 = (0..n)
            .map(|i| p.log_pdf((a + (i as f64 + 0.5) * h).exp()).exp() * h)
            .sum();
        let rate = draws.iter().filter(|x| (5e-4..=4e-3).contains(*x)).count() as f64 / draws.len() as f64;
        assert!((mass - rate).abs() < 0.03, "mass {mass} rate {rate}");
    }

    /// Log densities (log masses for ints and choices) of the mixture at a few points, against
    /// Optuna 5.0.0's `_ParzenEstimator` with `prior_weight = 1`, magic clip on, endpoints off
    /// and `default_weights` (values printed by Optuna, observations in trial order).
    #[test]
    fn matches_optunas_parzen_estimator() {
        let ramp: Vec<f64> = (0..30).map(|i| ((i * 7) % 31) as f64 / 31.0).collect();
        let float = |low, high, log| Distribution::Float { low, high, log };
        let int = |low, high, step, log| Distribution::Int { low, high, step, log };
        // (axis, observations, points, Optuna's values there)
        type Case = (Distribution, Vec<f64>, Vec<f64>, Vec<f64>);
        let cases: Vec<Case> = vec![
            (
                float(0.0, 1.0, false),
                vec![0.5, 0.2, 0.6, 0.2],
                vec![0.0, 0.1, 0.2, 0.33, 0.9, 1.0],
                vec![
                    -0.21363704852240373,
                    0.10325491025556166,
                    0.26487724067370033,
                    0.2703859485407125,
                    -0.8384823639855584,
                    -1.2223742654303804,
                ],
            ),
            (
                float(1e-4, 1e-1, true),
                vec![1e-3, 2e-3, 5e-2],
                vec![1e-4, 5e-4, 1e-3, 3e-2, 1e-1],
                vec![
                    -2.4189105256823233,
                    -1.8147970524019814,
                    -1.7033608660114252,
                    -2.081375996121382,
                    -2.2203306309744977,
                ],
            ),
            (
                int(16, 64, 8, false),
                vec![24.0, 40.0, 48.0, 48.0],
                vec![16.0, 24.0, 32.0, 64.0],
                vec![
                    -2.438786332351364,
                    -2.188472475326802,
                    -1.9201202129109167,
                    -2.5558602132056656,
                ],
            ),
            (
                int(1, 50, 1, true),
                vec![3.0, 10.0, 11.0, 40.0],
                vec![1.0, 2.0, 10.0, 50.0],
                vec![
                    -2.1393892822934752,
                    -2.408868172562444,
                    -3.529787618644785,
                    -5.4410349124719115,
                ],
            ),
            (
                Distribution::Choice(vec![2.into(), 4.into(), 8.into()]),
                vec![1.0, 1.0, 2.0],
                vec![0.0, 1.0, 2.0],
                vec![-1.6582280766035324, -0.7419373447293773, -1.0986122886681098],
            ),
            (
                float(0.0, 1.0, false),
                ramp,
                vec![0.05, 0.5, 0.95],
                vec![0.05627735795786104, 0.051926138650582265, 0.06636042046824842],
            ),
            (
                float(-5.0, 5.0, false),
                vec![],
                vec![0.0, 4.9],
                vec![-2.261607292503096, -2.381657292503096],
            ),
        ];
        for (dist, obs, points, want) in cases {
            let p = Parzen::new(&obs, &dist, &OPTUNA);
            for (x, w) in points.iter().zip(want) {
                let got = p.log_pdf(*x);
                assert!((got - w).abs() < 1e-9, "{dist:?} at {x}: {got} vs Optuna {w}");
            }
        }
    }
}
