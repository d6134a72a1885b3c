//! Proposing the next trial of a study, without repeating a configuration already tried: the
//! one policy the coordinator's study and the benchmark's replay share.

use super::space::{Params, Space};
use super::tpe::{suggest_random, suggest_tpe, TpeSettings, Trial};

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
    use super::*;

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
