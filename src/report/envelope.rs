//! The spread of many runs' curves, drawn in place of their lines in a summarised experiment
//! (see [`super::views::ExperimentView::summarised`]).

use std::collections::HashMap;

/// The spread of many runs' curves at each x: what a summarised chart draws in place of their
/// lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// How many runs it stands for.
    pub runs: usize,
    /// By x, ascending.
    pub points: Vec<EnvelopePoint>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnvelopePoint {
    pub x: f64,
    pub min: f64,
    pub q10: f64,
    pub median: f64,
    pub q90: f64,
    pub max: f64,
}

impl Envelope {
    /// The envelope of `(x, value)` samples grouped by x (non-finite values are left out).
    pub fn of(runs: usize, samples: impl IntoIterator<Item = (f64, f64)>) -> Option<Self> {
        // Grouped by x first, so that only each x's values are sorted (a few x values with
        // 100,000 values each, for the epoch chart of a large sweep).
        let mut by_x: HashMap<u64, Vec<f64>> = HashMap::new();
        for (x, y) in samples {
            if x.is_finite() && y.is_finite() {
                // `+ 0.0` makes -0.0 and 0.0 one group, as `==` does.
                by_x.entry((x + 0.0).to_bits()).or_default().push(y);
            }
        }
        if by_x.is_empty() || runs == 0 {
            return None;
        }
        let mut points: Vec<EnvelopePoint> = by_x
            .into_iter()
            .map(|(x, mut group)| {
                group.sort_unstable_by(f64::total_cmp);
                let q = |f: f64| group[((group.len() - 1) as f64 * f).round() as usize];
                EnvelopePoint {
                    x: f64::from_bits(x),
                    min: group[0],
                    q10: q(0.1),
                    median: q(0.5),
                    q90: q(0.9),
                    max: group[group.len() - 1],
                }
            })
            .collect();
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
        Some(Self { runs, points })
    }
}
