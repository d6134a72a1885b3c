//! Proposing the next trial of a study, without repeating a configuration already tried: the
//! one policy the coordinator's study and the benchmark's replay share.

use super::space::{Params, Space};
use super::tpe::{suggest_random, suggest_tpe, TpeSettings};
use super::trial::Trial;

/// How trials are proposed.
#[derive(Debug, Clone)]
pub enum Proposer {
    /// Independent draws from the space.
    Random,
    /// Tree-structured Parzen Estimator.
    Tpe(TpeSettings),
}

/// Redraws allowed when a suggestion repeats a configuration already tried.
pub const REDRAWS: u64 = 64;

/// The parameters of trial `number`: a pure function of the seed, `number` and the trials so
/// far. A suggestion that `taken` says was tried already (it would be the same run) is drawn
/// again with a seed derived from the redraw count; None when [`REDRAWS`] draws were all taken
/// (the space is exhausted).
pub fn propose(
    proposer: &Proposer,
    space: &Space,
    trials: &[Trial],
    seed: u64,
    number: usize,
    mut taken: impl FnMut(&Params) -> bool,
) -> Option<Params> {
    (0..REDRAWS).find_map(|redraw| {
        let seed = seed ^ redraw.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let params = match proposer {
            Proposer::Random => suggest_random(space, seed, number),
            Proposer::Tpe(settings) => suggest_tpe(space, trials, settings, seed, number),
        };
        (!taken(&params)).then_some(params)
    })
}

#[cfg(test)]
mod tests {
    use super::super::space::Distribution;
    use super::super::trial::{Trial, TrialState};
    use super::*;

    /// Invalid proposals of a study with `proposer` over `space` (each axis valid, `invalid` the
    /// joint rule) among trials `from..budget`, summed over `seeds`. Invalid trials are recorded
    /// as `recorded` says: as the study records them, complete with an infinite value (worse
    /// than every other), or failed (which TPE ignores).
    fn invalid_proposals(
        proposer: &Proposer,
        recorded: TrialState,
        space: &Space,
        invalid: impl Fn(&Params) -> bool,
        objective: impl Fn(&Params) -> f64,
        seeds: u64,
        (from, budget): (usize, usize),
    ) -> usize {
        let mut count = 0;
        for seed in 0..seeds {
            let mut trials: Vec<Trial> = Vec::new();
            for n in 0..budget {
                let taken = |p: &Params| trials.iter().any(|t| &t.params == p);
                let params = propose(proposer, space, &trials, seed, n, taken).expect("a continuous space");
                let bad = invalid(&params);
                count += usize::from(bad && n >= from);
                let (state, value) = if bad {
                    (
                        recorded,
                        (recorded == TrialState::Complete).then_some(f64::INFINITY),
                    )
                } else {
                    (TrialState::Complete, Some(objective(&params)))
                };
                trials.push(Trial {
                    number: n,
                    params,
                    state,
                    value,
                    intermediate: Default::default(),
                });
            }
        }
        count
    }

    /// A space valid axis by axis but not as a whole (x + y > 1 is invalid: half the square)
    /// and an objective that is pure noise, so only the invalid trials tell the sampler
    /// anything: after its random start-up TPE proposes far fewer invalid points than random
    /// search, which keeps proposing them half of the time, and than TPE told nothing of them
    /// (invalid trials recorded as failed, which it ignores).
    #[test]
    fn tpe_learns_to_avoid_invalid_combinations() {
        let space: Space = toml::from_str("x = { uniform = [0, 1] }\ny = { uniform = [0, 1] }").unwrap();
        let f = |p: &Params, k: &str| p[k].as_float().unwrap();
        let invalid = |p: &Params| f(p, "x") + f(p, "y") > 1.0;
        let noise = |p: &Params| {
            ((f(p, "x") * 12.9898 + f(p, "y") * 78.233).sin() * 43758.5453)
                .fract()
                .abs()
        };
        let tpe = Proposer::Tpe(TpeSettings {
            avoid_repeats: true,
            ..TpeSettings::default()
        });
        let window = (20, 60);
        let worst = TrialState::Complete;
        let with_tpe = invalid_proposals(&tpe, worst, &space, invalid, noise, 10, window);
        let with_random = invalid_proposals(&Proposer::Random, worst, &space, invalid, noise, 10, window);
        let ignored = invalid_proposals(&tpe, TrialState::Failed, &space, invalid, noise, 10, window);
        println!(
            "invalid proposals of trials 20..60 over 10 seeds: tpe {with_tpe}, random {with_random}, \
             tpe ignoring them {ignored}"
        );
        assert!(
            with_tpe * 2 < with_random && with_tpe * 2 < ignored,
            "tpe proposed {with_tpe} invalid points, random {with_random}, tpe ignoring them {ignored}"
        );
    }

    #[test]
    fn repeats_are_redrawn_and_an_exhausted_space_says_so() {
        let space = Space::from([(
            "k".to_owned(),
            Distribution::Choice(vec![toml::Value::Integer(3), toml::Value::Integer(5)]),
        )]);
        let mut seen: Vec<Params> = Vec::new();
        for n in 0..2 {
            let p = propose(&Proposer::Random, &space, &[], 1, n, |p| seen.contains(p)).unwrap();
            seen.push(p);
        }
        assert_ne!(seen[0], seen[1], "the second draw avoids the first");
        assert_eq!(
            propose(&Proposer::Random, &space, &[], 1, 2, |p| seen.contains(p)),
            None
        );
        // Pure: the same inputs give the same proposal.
        let a = propose(&Proposer::Random, &space, &[], 9, 0, |_| false);
        assert_eq!(a, propose(&Proposer::Random, &space, &[], 9, 0, |_| false));
    }
}
