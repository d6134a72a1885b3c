//! The spread of many runs' curves, drawn in place of their lines in a summarised experiment
//! (see [`super::views::ExperimentView::summarised`]).

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
        let mut by_x: Vec<(f64, f64)> = samples
            .into_iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        if by_x.is_empty() || runs == 0 {
            return None;
        }
        by_x.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let points = by_x
            .chunk_by(|a, b| a.0 == b.0)
            .map(|group| {
                let q = |f: f64| group[((group.len() - 1) as f64 * f).round() as usize].1;
                EnvelopePoint {
                    x: group[0].0,
                    min: group[0].1,
                    q10: q(0.1),
                    median: q(0.5),
                    q90: q(0.9),
                    max: group[group.len() - 1].1,
                }
            })
            .collect();
        Some(Self { runs, points })
    }
}
