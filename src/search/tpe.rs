//! Tree-structured Parzen Estimator (univariate, or multivariate with
//! [`TpeSettings::multivariate`]; minimisation), with Optuna's
//! `TPESampler` semantics (`optuna/samplers/_tpe/sampler.py`):
//!
//! - random search until `n_startup_trials` trials are complete or pruned;
//! - the finished trials split into "below" (good) and "above" (bad): the best
//!   `gamma(n) = min(ceil(0.1 n), 25)` of the `n` complete + pruned trials are below, complete
//!   trials first (by value), then pruned ones (furthest epoch first, then the value at that
//!   epoch), then complete ones of infinite value (diverged, or an invalid configuration: not in
//!   Optuna, which has no such value); running trials are above (the constant liar); failed
//!   ones are ignored;
//! - univariate: per axis, in key order, 24 candidates drawn from the below mixture `l`, each
//!   scored by `ln l(x) - ln g(x)`, the best kept; multivariate: 24 whole configurations drawn
//!   from the joint below mixture ([`JointParzen`]), scored by the joint densities.
//!
//! Every suggestion is a pure function of (space, trials, settings, seed, number): the trials
//! are sorted by number first (their slice order does not matter), start-up points are those of
//! [`suggest_random`], and TPE draws from ChaCha8 seeded with a hash of (seed, number).
//!
//! One addition, off by default: [`TpeSettings::avoid_repeats`] (see there).

use std::collections::{BTreeSet, BinaryHeap};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::joint::JointParzen;
use super::parzen::{Parzen, ParzenSettings};
use super::same::same_params;
use super::space::{numeric, sample_params, values_equal, Distribution, Params, Space};
use super::trial::{Trial, TrialState};

/// TPE's knobs; [`Default`] gives Optuna's defaults, but univariate (`multivariate: false`) and
/// with 10 start-up trials: a study takes its own (`[search]`, multivariate and
/// [`startup_for_budget`] unless the file says).
#[derive(Debug, Clone, PartialEq)]
pub struct TpeSettings {
    /// Random search until this many trials are complete or pruned (Optuna: 10).
    pub n_startup_trials: usize,
    /// Candidates drawn from `l` per axis (Optuna: 24).
    pub n_ei_candidates: usize,
    /// Weight of the prior kernel in each mixture (Optuna: 1).
    pub prior_weight: f64,
    /// Floor the kernel widths at `range / min(100, n_kernels + 1)` (Optuna: on).
    pub consider_magic_clip: bool,
    /// Let the outermost kernels also use their gap to the bound (Optuna: off).
    pub consider_endpoints: bool,
    /// Count running trials as "above" so parallel workers spread out (Optuna: on).
    pub constant_liar: bool,
    /// Not in Optuna (default off): when the best candidate repeats the configuration of a
    /// complete, pruned or running trial, take the best-scoring combination of the axes'
    /// candidates that does not (joint score = sum of the axes' scores), else an untaken prior
    /// draw, else the repeat. During start-up, a random point that repeats one is replaced by an
    /// untaken prior draw. For spaces of choices and ints, where TPE otherwise re-proposes its
    /// favourite configuration again and again (and pixelx would find that run done).
    pub avoid_repeats: bool,
    /// Multivariate TPE (Optuna's `multivariate=True`, its default for one objective since
    /// Optuna 4): one joint mixture over all axes ([`JointParzen`]) instead of one per axis, so
    /// that TPE learns which values go together. Off in [`Default`]; a study takes
    /// `[search] multivariate`, true when absent.
    pub multivariate: bool,
}

impl Default for TpeSettings {
    fn default() -> Self {
        Self {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            prior_weight: 1.0,
            consider_magic_clip: true,
            consider_endpoints: false,
            constant_liar: true,
            avoid_repeats: false,
            multivariate: false,
        }
    }
}

/// TPE's random start-up trials for a study of `trials` trials when the experiment does not say:
/// a quarter of the budget, at least 2 and at most Optuna's 10. Optuna's fixed 10 leaves a study
/// of 12 trials two from the model; on the benchmark's grids (`just bench search`, docs/search.md)
/// a quarter found the grid's best more often at every budget, e.g. 93% instead of 72% of seeds
/// at 12 trials of the 24-configuration grid.
pub fn startup_for_budget(trials: usize) -> usize {
    (trials / 4).clamp(2, TpeSettings::default().n_startup_trials)
}

/// How many of `n` finished trials form the "below" (good) group: `min(ceil(0.1 n), 25)`.
pub fn gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// The `number`-th point of a random search: exactly the `number`-th point (0-based) that
/// pixelx's `[random]` search draws with the same seed and space (one ChaCha8 stream seeded
/// with `seed`, each point drawing its axes in key order), so a pure function of
/// (space, seed, number). Costs `number + 1` draws of the space.
pub fn suggest_random(space: &Space, seed: u64, number: usize) -> Params {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..number {
        sample_params(space, &mut rng);
    }
    sample_params(space, &mut rng)
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The generator of TPE's `number`-th suggestion: ChaCha8 seeded with a hash of both.
fn tpe_rng(seed: u64, number: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(splitmix64(
        splitmix64(seed ^ 0x7470_655f_7365_6564) ^ number as u64,
    ))
}

/// How far a pruned trial got, for ranking (smaller is better): its last epoch (further
/// first), then its value there (NaN as +inf); a trial with no value ranks after all others.
fn pruned_score(t: &Trial) -> (i64, f64) {
    match t.last_intermediate() {
        Some((epoch, v)) => (-i64::from(epoch), if v.is_nan() { f64::INFINITY } else { v }),
        None => (1, 0.0),
    }
}

/// Splits the trials (sorted by number) into below and above, each sorted by number.
fn split<'a>(trials: &[&'a Trial], n_below: usize, constant_liar: bool) -> (Vec<&'a Trial>, Vec<&'a Trial>) {
    // An infinite value (a diverged run, an invalid configuration) says the region is bad, not
    // how good: such trials rank after every complete and pruned trial.
    let (mut complete, worst): (Vec<&Trial>, Vec<&Trial>) = trials
        .iter()
        .copied()
        .filter(|t| t.complete_value().is_some())
        .partition(|t| t.complete_value().is_some_and(f64::is_finite));
    let mut pruned: Vec<&Trial> = trials
        .iter()
        .copied()
        .filter(|t| t.state == TrialState::Pruned)
        .collect();
    // Stable sorts over trials in number order: ties go to the older trial.
    complete.sort_by(|a, b| {
        a.complete_value()
            .unwrap()
            .total_cmp(&b.complete_value().unwrap())
    });
    pruned.sort_by(|a, b| {
        let (ea, va) = pruned_score(a);
        let (eb, vb) = pruned_score(b);
        ea.cmp(&eb).then(va.total_cmp(&vb))
    });
    let from_complete = n_below.min(complete.len());
    let from_pruned = (n_below - from_complete).min(pruned.len());
    let from_worst = (n_below - from_complete - from_pruned).min(worst.len());
    let mut below: Vec<&Trial> = complete[..from_complete].to_vec();
    below.extend(&pruned[..from_pruned]);
    below.extend(&worst[..from_worst]);
    let mut above: Vec<&Trial> = complete[from_complete..].to_vec();
    above.extend(&pruned[from_pruned..]);
    above.extend(&worst[from_worst..]);
    if constant_liar {
        above.extend(trials.iter().copied().filter(|t| t.state == TrialState::Running));
    }
    below.sort_by_key(|t| t.number);
    above.sort_by_key(|t| t.number);
    (below, above)
}

/// A value in TPE's internal form (the number, or the choice's index); `None` when the value is
/// missing or not in the axis (e.g. recorded under an older space), and the trial then
/// contributes nothing to this axis.
fn internal(dist: &Distribution, v: Option<&toml::Value>) -> Option<f64> {
    let v = v?;
    if !dist.contains(v) {
        return None;
    }
    match dist {
        Distribution::Choice(values) => values.iter().position(|c| values_equal(c, v)).map(|i| i as f64),
        _ => numeric(v),
    }
}

fn external(dist: &Distribution, x: f64) -> toml::Value {
    match dist {
        Distribution::Float { .. } => toml::Value::Float(x),
        Distribution::Int { .. } => toml::Value::Integer(x.round() as i64),
        Distribution::Choice(values) => values[x as usize].clone(),
    }
}

/// The `number`-th suggestion of a TPE study over `space`, given the study's `trials` (any
/// states, any order; the trial numbered `number`, if present, is ignored).
pub fn suggest_tpe(
    space: &Space,
    trials: &[Trial],
    settings: &TpeSettings,
    seed: u64,
    number: usize,
) -> Params {
    let mut trials: Vec<&Trial> = trials.iter().filter(|t| t.number != number).collect();
    trials.sort_by_key(|t| t.number);
    let finished = trials
        .iter()
        .filter(|t| t.complete_value().is_some() || t.state == TrialState::Pruned)
        .count();
    // Whether a complete, pruned or running trial already has these values (floats: within
    // the axis's resolution, see `same_params`).
    let taken = |p: &Params| {
        trials
            .iter()
            .any(|t| t.state != TrialState::Failed && same_params(space, p, &t.params))
    };
    let mut rng = tpe_rng(seed, number);
    let untaken_draw = |rng: &mut ChaCha8Rng| (0..100).map(|_| sample_params(space, rng)).find(|p| !taken(p));
    if finished < settings.n_startup_trials {
        let p = suggest_random(space, seed, number);
        if settings.avoid_repeats && taken(&p) {
            return untaken_draw(&mut rng).unwrap_or(p);
        }
        return p;
    }
    let (below, above) = split(&trials, gamma(finished), settings.constant_liar);
    let parzen = ParzenSettings {
        prior_weight: settings.prior_weight,
        consider_magic_clip: settings.consider_magic_clip,
        consider_endpoints: settings.consider_endpoints,
    };
    let n_candidates = settings.n_ei_candidates.max(1);
    if settings.multivariate {
        let ranked = joint_candidates(space, (&below, &above), &parzen, &mut rng, n_candidates);
        if !settings.avoid_repeats {
            return ranked.into_iter().next().expect("at least one candidate");
        }
        // The best candidate not taken (the joint scores rank whole configurations).
        let best = ranked[0].clone();
        return match ranked.into_iter().find(|p| !taken(p)) {
            Some(p) => p,
            None => untaken_draw(&mut rng).unwrap_or(best),
        };
    }
    let axes: Vec<AxisCandidates> = space
        .iter()
        .map(|(name, dist)| {
            let observe = |group: &[&Trial]| -> Vec<f64> {
                group
                    .iter()
                    .filter_map(|t| internal(dist, t.params.get(name)))
                    .collect()
            };
            let l = Parzen::new(&observe(&below), dist, &parzen);
            let g = Parzen::new(&observe(&above), dist, &parzen);
            AxisCandidates::score(name, dist, &l, &g, l.sample(&mut rng, n_candidates))
        })
        .collect();
    let best = assemble(&axes, &vec![0; axes.len()]);
    if !settings.avoid_repeats || !taken(&best) {
        return best;
    }
    untaken_combination(&axes, taken)
        .or_else(|| untaken_draw(&mut rng))
        .unwrap_or(best)
}

/// Multivariate TPE's candidates (Optuna's `multivariate=True`): `n` draws of whole
/// configurations from the joint below mixture, distinct, ranked by `ln l(x) - ln g(x)` of the
/// joint mixtures, best first (a stable sort: among equal scores the first drawn wins, as
/// numpy's argmax does; NaN scores rank last). A trial contributes only when every axis has a
/// valid value.
fn joint_candidates(
    space: &Space,
    (below, above): (&[&Trial], &[&Trial]),
    parzen: &ParzenSettings,
    rng: &mut ChaCha8Rng,
    n: usize,
) -> Vec<Params> {
    let dists: Vec<&Distribution> = space.values().collect();
    let observe = |group: &[&Trial]| -> Vec<Vec<f64>> {
        group
            .iter()
            .filter_map(|t| {
                space
                    .iter()
                    .map(|(name, dist)| internal(dist, t.params.get(name)))
                    .collect::<Option<Vec<f64>>>()
            })
            .collect()
    };
    let l = JointParzen::new(&observe(below), &dists, parzen);
    let g = JointParzen::new(&observe(above), &dists, parzen);
    let mut ranked: Vec<(f64, Vec<f64>)> = Vec::new();
    for x in l.sample(rng, n) {
        if !ranked.iter().any(|(_, y)| *y == x) {
            let score = l.log_pdf(&x) - g.log_pdf(&x);
            ranked.push((if score.is_nan() { f64::NEG_INFINITY } else { score }, x));
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked
        .into_iter()
        .map(|(_, x)| {
            space
                .iter()
                .zip(x)
                .map(|((name, dist), v)| (name.clone(), external(dist, v)))
                .collect()
        })
        .collect()
}

/// One axis's candidates: distinct values (internal form) with their scores
/// `ln l(x) - ln g(x)`, best first. The sort is stable, so among equal scores the first drawn
/// wins (as numpy's argmax does); NaN scores rank last.
struct AxisCandidates<'a> {
    name: &'a str,
    dist: &'a Distribution,
    ranked: Vec<(f64, f64)>,
}

impl<'a> AxisCandidates<'a> {
    fn score(name: &'a str, dist: &'a Distribution, l: &Parzen, g: &Parzen, draws: Vec<f64>) -> Self {
        let mut ranked: Vec<(f64, f64)> = Vec::new();
        for x in draws {
            if !ranked.iter().any(|(_, y)| *y == x) {
                let score = l.log_pdf(x) - g.log_pdf(x);
                ranked.push((if score.is_nan() { f64::NEG_INFINITY } else { score }, x));
            }
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        Self { name, dist, ranked }
    }
}

/// The configuration taking candidate `pick[i]` on axis `i`.
fn assemble(axes: &[AxisCandidates], pick: &[usize]) -> Params {
    axes.iter()
        .zip(pick)
        .map(|(a, i)| (a.name.to_owned(), external(a.dist, a.ranked[*i].1)))
        .collect()
}

/// The best-scoring combination of the axes' candidates that is not `taken`, searched
/// best-first over the candidate grid (the joint score of independent axes is the sum of
/// theirs); `None` if every combination visited (at most 10,000) is taken.
fn untaken_combination(axes: &[AxisCandidates], taken: impl Fn(&Params) -> bool) -> Option<Params> {
    let total = |pick: &[usize]| -> f64 { axes.iter().zip(pick).map(|(a, i)| a.ranked[*i].0).sum() };
    let start = vec![0; axes.len()];
    let mut heap = BinaryHeap::from([Ranked(total(&start), start.clone())]);
    let mut seen = BTreeSet::from([start]);
    for _ in 0..10_000 {
        let Ranked(_, pick) = heap.pop()?;
        let params = assemble(axes, &pick);
        if !taken(&params) {
            return Some(params);
        }
        for axis in 0..pick.len() {
            let mut next = pick.clone();
            next[axis] += 1;
            if next[axis] < axes[axis].ranked.len() && seen.insert(next.clone()) {
                heap.push(Ranked(total(&next), next));
            }
        }
    }
    None
}

/// A candidate combination ordered by its score (ties: the lexicographically smaller pick first).
#[derive(PartialEq)]
struct Ranked(f64, Vec<usize>);

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then_with(|| other.1.cmp(&self.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(text: &str) -> Space {
        toml::from_str(text).unwrap()
    }

    fn complete(number: usize, params: Params, value: f64) -> Trial {
        Trial {
            state: TrialState::Complete,
            value: Some(value),
            ..Trial::running(number, params)
        }
    }

    fn f(p: &Params, k: &str) -> f64 {
        numeric(&p[k]).unwrap()
    }

    /// Runs a sequential study of `budget` trials and returns the best value found.
    fn study(space: &Space, objective: impl Fn(&Params) -> f64, tpe: bool, seed: u64, budget: usize) -> f64 {
        let settings = TpeSettings::default();
        let mut trials: Vec<Trial> = Vec::new();
        for n in 0..budget {
            let p = if tpe {
                suggest_tpe(space, &trials, &settings, seed, n)
            } else {
                suggest_random(space, seed, n)
            };
            for (k, d) in space {
                assert!(d.contains(&p[k]), "{k} = {} not in {d:?}", p[k]);
            }
            let v = objective(&p);
            trials.push(complete(n, p, v));
        }
        trials
            .iter()
            .filter_map(|t| t.value)
            .fold(f64::INFINITY, f64::min)
    }

    fn medians(space: &Space, objective: impl Fn(&Params) -> f64 + Copy, seeds: u64) -> (f64, f64) {
        let run = |tpe| {
            crate::stats::median((0..seeds).map(|s| study(space, objective, tpe, s, 30)).collect())
                .unwrap_or(f64::NAN)
        };
        (run(true), run(false))
    }

    #[test]
    fn start_up_is_a_quarter_of_the_budget_within_2_and_10() {
        let startups: Vec<usize> = [1, 7, 8, 12, 24, 29, 40, 100].map(startup_for_budget).to_vec();
        assert_eq!(startups, [2, 2, 2, 3, 6, 7, 10, 10]);
    }

    #[test]
    fn gamma_matches_optuna() {
        assert_eq!(
            [0, 1, 10, 11, 100, 250, 251, 1000].map(gamma),
            [0, 1, 1, 2, 10, 25, 25, 25]
        );
    }

    #[test]
    fn tpe_beats_random_on_a_shifted_quadratic() {
        let s = space("x = { uniform = [-5, 5] }\ny = { uniform = [-5, 5] }");
        let objective = |p: &Params| (f(p, "x") - 1.7).powi(2) + (f(p, "y") + 2.3).powi(2);
        let (tpe, random) = medians(&s, objective, 41);
        println!("quadratic, median best of 41 seeds at 30 trials: tpe {tpe:.4}, random {random:.4}");
        assert!(
            tpe < random,
            "median best over 41 seeds: tpe {tpe:.4} vs random {random:.4}"
        );
    }

    /// Branin (minimum 0.397887) over mixed kinds: x1 = u - 6 with u log-uniform on [1, 16],
    /// x2 = k / 10 with k an int on [0, 150] in steps of 3, plus a categorical offset.
    #[test]
    fn tpe_beats_random_on_mixed_branin() {
        let s = space(
            r#"
            u = { log_uniform = [1, 16] }
            k = { int = [0, 150], step = 3 }
            c = { choice = ["a", "b", "c"] }
            "#,
        );
        let objective = |p: &Params| {
            let (x1, x2) = (f(p, "u") - 6.0, f(p, "k") / 10.0);
            let pi = std::f64::consts::PI;
            let (b, c, t) = (5.1 / (4.0 * pi * pi), 5.0 / pi, 1.0 / (8.0 * pi));
            let branin = (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0;
            let offset = match p["c"].as_str() {
                Some("a") => 0.0,
                Some("b") => 2.0,
                _ => 5.0,
            };
            branin + offset
        };
        let (tpe, random) = medians(&s, objective, 41);
        println!("mixed Branin, median best of 41 seeds at 30 trials: tpe {tpe:.4}, random {random:.4}");
        assert!(
            tpe < random,
            "median best over 41 seeds: tpe {tpe:.4} vs random {random:.4}"
        );
    }

    fn mixed_history() -> (Space, Vec<Trial>) {
        let s = space(
            r#"
            lr = { log_uniform = [1e-4, 1e-1] }
            fmaps = { int = [16, 64], step = 8 }
            levels = { choice = [2, 4, 8] }
            "#,
        );
        let mut trials: Vec<Trial> = (0..14)
            .map(|n| {
                let p = suggest_random(&s, 99, n);
                let v = (f(&p, "lr").log10() + 2.5).powi(2) + f(&p, "fmaps") / 64.0;
                complete(n, p, v)
            })
            .collect();
        // Other states: pruned (with and without values), running, failed.
        trials[3].state = TrialState::Pruned;
        trials[3].intermediate = [(1, 3.0), (2, 2.5)].into();
        trials[5].state = TrialState::Pruned;
        trials[9].state = TrialState::Running;
        trials[9].value = None;
        trials[11].state = TrialState::Failed;
        (s, trials)
    }

    #[test]
    fn suggestions_are_pure_functions_of_seed_number_and_trials() {
        let (s, trials) = mixed_history();
        let settings = TpeSettings::default();
        let a = suggest_tpe(&s, &trials, &settings, 7, 14);
        assert_eq!(a, suggest_tpe(&s, &trials, &settings, 7, 14));
        assert_ne!(a, suggest_tpe(&s, &trials, &settings, 8, 14));
        assert_ne!(a, suggest_tpe(&s, &trials, &settings, 7, 15));
        let mut shuffled = trials.clone();
        shuffled.reverse();
        shuffled.swap(2, 9);
        assert_eq!(a, suggest_tpe(&s, &shuffled, &settings, 7, 14));
        // The trial being suggested, if listed, is ignored.
        let mut with_self = trials.clone();
        with_self.push(Trial::running(14, a.clone()));
        assert_eq!(a, suggest_tpe(&s, &with_self, &settings, 7, 14));

        assert_eq!(suggest_random(&s, 3, 5), suggest_random(&s, 3, 5));
        assert_ne!(suggest_random(&s, 3, 5), suggest_random(&s, 4, 5));
        assert_ne!(suggest_random(&s, 3, 5), suggest_random(&s, 3, 6));
    }

    /// `suggest_random(space, seed, n)` is the n-th point of pixelx's `[random]` search: one
    /// ChaCha8 stream seeded with `seed`, drawing point after point.
    #[test]
    fn random_points_follow_the_random_search_stream() {
        let (s, _) = mixed_history();
        let mut stream = ChaCha8Rng::seed_from_u64(42);
        for n in 0..6 {
            assert_eq!(
                suggest_random(&s, 42, n),
                sample_params(&s, &mut stream),
                "point {n}"
            );
        }
    }

    #[test]
    fn startup_counts_complete_and_pruned_trials_only() {
        let (s, mut trials) = mixed_history();
        // 14 trials: 10 complete, 2 pruned, 1 running, 1 failed: 12 finished >= 10, so TPE.
        let settings = TpeSettings::default();
        assert_ne!(
            suggest_tpe(&s, &trials, &settings, 1, 14),
            suggest_random(&s, 1, 14)
        );
        // Make three more fail: 9 finished < 10, so the random search's point.
        for t in &mut trials[0..3] {
            t.state = TrialState::Failed;
        }
        assert_eq!(
            suggest_tpe(&s, &trials, &settings, 1, 14),
            suggest_random(&s, 1, 14)
        );
    }

    #[test]
    fn split_ranks_complete_then_pruned_by_progress() {
        let p = Params::new;
        let mut t = [
            complete(0, p(), 5.0),
            complete(1, p(), 1.0),
            Trial {
                state: TrialState::Pruned,
                intermediate: [(1, 0.5)].into(),
                ..Trial::running(2, p())
            },
            Trial {
                state: TrialState::Pruned,
                intermediate: [(1, 9.0), (3, 8.0)].into(),
                ..Trial::running(3, p())
            },
            Trial {
                state: TrialState::Pruned,
                intermediate: [(1, 9.0), (3, f64::NAN)].into(),
                ..Trial::running(4, p())
            },
            Trial::running(5, p()),
            Trial {
                state: TrialState::Failed,
                ..Trial::running(6, p())
            },
        ];
        t.sort_by_key(|t| t.number);
        let refs: Vec<&Trial> = t.iter().collect();
        let numbers = |v: Vec<&Trial>| v.iter().map(|t| t.number).collect::<Vec<_>>();
        // n_below 3: both complete trials (1, then 0), then the pruned trial that got furthest
        // (epoch 3) with the better value there: trial 3 (8.0) before trial 4 (NaN); trial 2
        // stopped at epoch 1, so it ranks after them despite its 0.5.
        let (below, above) = split(&refs, 3, true);
        assert_eq!(numbers(below), vec![0, 1, 3]);
        assert_eq!(numbers(above), vec![2, 4, 5]);
        let (below, above) = split(&refs, 1, false);
        assert_eq!(numbers(below), vec![1]);
        assert_eq!(numbers(above), vec![0, 2, 3, 4]);
    }

    /// Six workers ask in turn while the others run. Ten complete trials make `lr = 1e-3` the
    /// clear winner; without the liar every worker gets it; with the liar the running trials
    /// count as bad, and once five workers run 1e-3 the sixth is sent elsewhere. (With a single
    /// "below" trial, a categorical favourite takes several liars to dislodge.)
    #[test]
    fn constant_liar_spreads_parallel_suggestions() {
        let s = space("lr = { choice = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2] }");
        let lrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-4, 3e-4, 3e-3, 1e-2, 3e-4];
        let history: Vec<Trial> = lrs
            .iter()
            .enumerate()
            .map(|(n, lr)| {
                let v = (f64::log10(*lr) + 3.0).abs() + 0.01 * n as f64;
                complete(n, [("lr".to_owned(), toml::Value::Float(*lr))].into(), v)
            })
            .collect();
        let workers = |constant_liar: bool| {
            let settings = TpeSettings {
                constant_liar,
                ..TpeSettings::default()
            };
            let mut trials = history.clone();
            let mut got = Vec::new();
            for n in 10..16 {
                let p = suggest_tpe(&s, &trials, &settings, 0, n);
                got.push(p["lr"].as_float().unwrap());
                trials.push(Trial::running(n, p));
            }
            got
        };
        let without = workers(false);
        let with = workers(true);
        assert!(without.iter().all(|lr| *lr == 1e-3), "{without:?}");
        assert_eq!(with[0], 1e-3, "{with:?}");
        assert!(with.iter().any(|lr| *lr != 1e-3), "{with:?}");
        println!("constant liar: without {without:?}, with {with:?}");
    }

    #[test]
    fn avoid_repeats_proposes_untaken_configurations() {
        let s = space("lr = { choice = [1, 2, 3, 4] }\nwidth = { choice = [16, 32] }");
        let p = |lr: i64, w: i64| -> Params { [("lr".into(), lr.into()), ("width".into(), w.into())].into() };
        // Ten complete trials, the best at (2, 32); plain TPE proposes it again.
        let configs = [
            (1, 16),
            (2, 32),
            (3, 16),
            (4, 32),
            (1, 32),
            (3, 32),
            (4, 16),
            (1, 16),
            (3, 16),
            (4, 32),
        ];
        let mut trials: Vec<Trial> = configs
            .iter()
            .enumerate()
            .map(|(n, (lr, w))| {
                complete(
                    n,
                    p(*lr, *w),
                    ((*lr - 2) * (*lr - 2)) as f64 + if *w == 32 { 0.0 } else { 0.5 },
                )
            })
            .collect();
        let plain = TpeSettings::default();
        let distinct = TpeSettings {
            avoid_repeats: true,
            ..TpeSettings::default()
        };
        assert_eq!(suggest_tpe(&s, &trials, &plain, 0, 10), p(2, 32));
        let q = suggest_tpe(&s, &trials, &distinct, 0, 10);
        assert!(configs.iter().all(|(lr, w)| q != p(*lr, *w)), "{q:?}");
        assert_eq!(q, suggest_tpe(&s, &trials, &distinct, 0, 10));
        // Once all eight configurations are taken, a repeat is all there is.
        trials.push(complete(10, p(2, 16), 0.5));
        let q = suggest_tpe(&s, &trials, &distinct, 0, 11);
        assert!(s.iter().all(|(k, d)| d.contains(&q[k])));
        // A failed trial does not take its configuration.
        let mut failed = trials[..10].to_vec();
        failed[1].state = TrialState::Failed;
        failed.push(complete(10, p(2, 16), 0.5));
        let q = suggest_tpe(&s, &failed, &distinct, 0, 11);
        assert_eq!(q, p(2, 32));
    }

    /// A continuous study never counts a near-duplicate as new: a trial running at the start-up
    /// point's learning rate times (1 + 1e-12) takes that point, and a study avoiding repeats
    /// draws another; in TPE's phase, no proposal lands within the resolution of a trial.
    #[test]
    fn near_duplicates_of_floats_are_taken() {
        let s = space("lr = { log_uniform = [1e-4, 1e-1] }\nx = { uniform = [0, 1] }");
        let settings = TpeSettings {
            avoid_repeats: true,
            ..TpeSettings::default()
        };
        let p = suggest_random(&s, 5, 1);
        let mut near = p.clone();
        near.insert("lr".into(), toml::Value::Float(f(&p, "lr") * (1.0 + 1e-12)));
        assert_ne!(near, p);
        let trials = vec![Trial::running(0, near)];
        let q = suggest_tpe(&s, &trials, &settings, 5, 1);
        assert!(!same_params(&s, &q, &p), "{q:?} repeats {p:?}");
        assert_eq!(
            suggest_tpe(&s, &trials, &TpeSettings::default(), 5, 1),
            p,
            "without avoid_repeats the point stays"
        );
    }
}
