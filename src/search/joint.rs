//! The multivariate Parzen estimator of TPE (Optuna's `multivariate=True`): one mixture over all
//! axes whose kernel `k` is the product of the axes' kernels `k`, as Optuna's
//! `_MixtureOfProductDistribution`. Each axis's kernels (centres, widths, the prior kernel, the
//! categorical smoothing) are exactly the univariate [`Parzen`]'s; what changes is that a
//! kernel is chosen once per draw for all axes, and a point's density sums the axes' log
//! densities inside each kernel before the kernels are mixed, so TPE sees how axes go together
//! (a learning rate good with one width and bad with another).
//!
//! Observations are rows of internal values (one per axis, in the space's key order) of the
//! trials that have a valid value on every axis, oldest first: a trial missing an axis is left
//! out, as Optuna leaves out a trial without every parameter of the relative search space.

use rand::Rng;

use super::parzen::{log_sum_exp, pick, Parzen, ParzenSettings};
use super::space::Distribution;

/// A mixture of products over the axes of a space.
#[derive(Debug, Clone)]
pub struct JointParzen {
    /// One univariate estimator per axis, all fitted to the same observations (so their kernel
    /// weights are equal).
    axes: Vec<Parzen>,
}

impl JointParzen {
    /// Fits the mixture to `rows` (one internal value per axis of `dists`, oldest trial first).
    pub fn new(rows: &[Vec<f64>], dists: &[&Distribution], settings: &ParzenSettings) -> Self {
        let axes = dists
            .iter()
            .enumerate()
            .map(|(d, dist)| {
                let column: Vec<f64> = rows.iter().map(|r| r[d]).collect();
                Parzen::new(&column, dist, settings)
            })
            .collect();
        Self { axes }
    }

    fn weights(&self) -> &[f64] {
        self.axes.first().map_or(&[1.0], |a| a.weights())
    }

    /// `size` independent draws (each one internal value per axis): per draw, a kernel by
    /// weight, then each axis's value from that kernel, in axis order (one uniform each).
    pub fn sample(&self, rng: &mut impl Rng, size: usize) -> Vec<Vec<f64>> {
        (0..size)
            .map(|_| {
                let k = pick(self.weights(), rng.gen::<f64>());
                self.axes
                    .iter()
                    .map(|a| a.kernel_sample(k, rng.gen::<f64>()))
                    .collect()
            })
            .collect()
    }

    /// Log density of the mixture at `x` (one internal value per axis): the log of
    /// `sum_k w_k prod_d p_kd(x_d)`, each axis's term a density (continuous, in `ln` for log
    /// axes) or a mass (discrete, categorical), as Optuna's `log_pdf`.
    pub fn log_pdf(&self, x: &[f64]) -> f64 {
        let terms: Vec<f64> = self
            .weights()
            .iter()
            .enumerate()
            .map(|(k, w)| {
                self.axes
                    .iter()
                    .zip(x)
                    .map(|(a, xd)| a.kernel_log_pdf(k, *xd))
                    .sum::<f64>()
                    + w.ln()
            })
            .collect();
        log_sum_exp(&terms)
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

    /// With one axis the joint estimator is the univariate one.
    #[test]
    fn one_axis_is_the_univariate_estimator() {
        let d = Distribution::Float {
            low: 0.0,
            high: 1.0,
            log: false,
        };
        let obs = [0.5, 0.2, 0.6, 0.2];
        let rows: Vec<Vec<f64>> = obs.iter().map(|o| vec![*o]).collect();
        let joint = JointParzen::new(&rows, &[&d], &OPTUNA);
        let uni = Parzen::new(&obs, &d, &OPTUNA);
        for x in [0.0, 0.1, 0.33, 0.9] {
            assert!((joint.log_pdf(&[x]) - uni.log_pdf(x)).abs() < 1e-12);
        }
    }

    /// Observations clustered at two opposite corners of a square: the joint density is high
    /// at those corners and low at the other two, which a product of marginals cannot tell
    /// apart.
    #[test]
    fn the_joint_density_sees_which_values_go_together() {
        let d = Distribution::Float {
            low: 0.0,
            high: 1.0,
            log: false,
        };
        let xs = [0.1, 0.12, 0.14, 0.86, 0.88, 0.9];
        let rows: Vec<Vec<f64>> = xs.iter().map(|x| vec![*x, *x]).collect();
        let joint = JointParzen::new(&rows, &[&d, &d], &OPTUNA);
        let corner = joint.log_pdf(&[0.12, 0.12]);
        let off = joint.log_pdf(&[0.12, 0.88]);
        assert!(corner > off + 1.0, "corner {corner} vs off-diagonal {off}");
        let uni = Parzen::new(&xs, &d, &OPTUNA);
        let independent = |a: f64, b: f64| uni.log_pdf(a) + uni.log_pdf(b);
        assert!((independent(0.12, 0.12) - independent(0.12, 0.88)).abs() < 1e-9);
    }

    /// Draws pick one kernel for all axes: with narrow kernels at two opposite corners, almost
    /// every draw lands near a corner where both coordinates agree.
    #[test]
    fn draws_keep_axes_together() {
        use rand::SeedableRng;
        let d = Distribution::Choice(vec![0.into(), 1.into()]);
        let rows: Vec<Vec<f64>> = (0..20).map(|i| vec![(i % 2) as f64; 2]).collect();
        let joint = JointParzen::new(&rows, &[&d, &d], &OPTUNA);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let draws = joint.sample(&mut rng, 2000);
        let agree = draws.iter().filter(|x| x[0] == x[1]).count() as f64 / 2000.0;
        assert!(agree > 0.85, "{agree}");
    }

    /// Log densities of the joint mixture at a few points, against Optuna 5.1.0's
    /// `_ParzenEstimator` over the same spaces (prior weight 1, magic clip on, endpoints off,
    /// `default_weights`): the values `scripts/optuna_parzen_cases.py` prints.
    #[test]
    fn matches_optunas_multivariate_parzen_estimator() {
        let float = |low, high, log| Distribution::Float { low, high, log };
        let int = |low, high, step, log| Distribution::Int { low, high, step, log };
        let choice = |n: i64| Distribution::Choice((0..n).map(toml::Value::Integer).collect());
        let ramp: Vec<Vec<f64>> = (0..30)
            .map(|i| vec![((i * 7) % 31) as f64 / 31.0, (1 + (i * 11) % 50) as f64])
            .collect();
        // (axes, observations, points, Optuna's values there)
        type Case = (Vec<Distribution>, Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<f64>);
        let cases: Vec<Case> = vec![
            (
                vec![float(1e-4, 1e-1, true), int(16, 64, 8, false), choice(3)],
                vec![
                    vec![1e-3, 24.0, 1.0],
                    vec![2e-3, 40.0, 1.0],
                    vec![5e-2, 48.0, 2.0],
                    vec![1e-3, 48.0, 0.0],
                ],
                vec![
                    vec![1e-4, 16.0, 0.0],
                    vec![1e-3, 24.0, 1.0],
                    vec![2e-3, 48.0, 1.0],
                    vec![3e-2, 64.0, 2.0],
                    vec![1e-1, 40.0, 0.0],
                ],
                vec![
                    -6.384346584004073,
                    -3.9860228385605043,
                    -4.280062523994752,
                    -5.448563973625327,
                    -5.787881566724389,
                ],
            ),
            (
                vec![float(0.0, 1.0, false), int(1, 50, 1, true)],
                ramp,
                vec![
                    vec![0.05, 1.0],
                    vec![0.5, 10.0],
                    vec![0.95, 50.0],
                    vec![0.3, 23.0],
                ],
                vec![
                    -4.469585380607512,
                    -6.515913447820084,
                    -3.1469059827448955,
                    -5.693447016727728,
                ],
            ),
            (
                vec![float(-5.0, 5.0, false), choice(3)],
                vec![],
                vec![vec![0.0, 0.0], vec![4.9, 2.0]],
                vec![-3.360219581171206, -3.480269581171206],
            ),
            (
                vec![choice(6), choice(2), choice(2)],
                vec![vec![2.0, 1.0, 0.0], vec![3.0, 1.0, 1.0], vec![2.0, 0.0, 1.0]],
                vec![
                    vec![2.0, 1.0, 0.0],
                    vec![2.0, 1.0, 1.0],
                    vec![5.0, 0.0, 0.0],
                    vec![3.0, 1.0, 1.0],
                ],
                vec![
                    -2.26176309847379,
                    -2.7725887222397807,
                    -4.014301854548564,
                    -2.26176309847379,
                ],
            ),
        ];
        for (dists, rows, points, want) in cases {
            let refs: Vec<&Distribution> = dists.iter().collect();
            let p = JointParzen::new(&rows, &refs, &OPTUNA);
            for (x, w) in points.iter().zip(want) {
                let got = p.log_pdf(x);
                assert!((got - w).abs() < 1e-9, "{dists:?} at {x:?}: {got} vs Optuna {w}");
            }
        }
    }
}
