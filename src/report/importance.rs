//! Parameter importance: the share of the variance of best test bpd8 explained by each swept
//! parameter's main effect (a functional-ANOVA decomposition of the recorded results).
//!
//! Why by hand and not a random-forest crate: on a full grid, fANOVA of the tabulated results
//! *is* the classical ANOVA decomposition, so the main effects are exact group means, with no
//! model to fit and nothing random. smartcore's forest importances (impurity-based) add up to 1
//! whatever the noise, favour parameters with many values (seeds), and change with the forest's
//! seed; see docs/dashboard.md.
//! Random-search parameters with many distinct values are grouped into quantile bins first,
//! which makes their figure an approximation (marked as such).

use super::param_text;
use super::views::{ExperimentView, ParamKind, RunView};

/// Distinct values above which a numeric parameter is binned.
const MAX_LEVELS: usize = 12;

#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    pub key: String,
    /// Fraction of the variance of best bpd8 explained by this parameter alone, in [0, 1].
    pub share: f64,
    pub levels: usize,
    /// The value (or bin) with the lowest mean bpd8.
    pub best_level: String,
    /// Whether values were grouped into bins.
    pub binned: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportanceTable {
    /// By share, largest first.
    pub rows: Vec<Importance>,
    /// What the main effects leave unexplained: interactions and run-to-run noise.
    pub rest: f64,
    /// Runs the fit used: completed runs with a test result.
    pub runs: usize,
}

/// The importance table of `view`, or `None` with fewer than 3 completed runs or no spread.
pub fn main_effects(view: &ExperimentView) -> Option<ImportanceTable> {
    // Only completed runs: a pruned or failed run's bpd8 is from an earlier epoch and would
    // count its shorter training as the parameter's effect.
    // An experiment read at scale stands on its rank-spaced sample.
    let runs: Vec<&RunView> = view
        .stand_ins()
        .into_iter()
        .filter(|r| r.summary.status == "completed" && r.bpd8().is_some())
        .collect();
    if runs.len() < 3 {
        return None;
    }
    let y: Vec<f64> = runs.iter().filter_map(|r| r.bpd8()).collect();
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let total: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    let mut rows: Vec<Importance> = view
        .params
        .iter()
        .filter_map(|p| {
            let (labels, binned) = levels(&runs, p);
            let mut groups: Vec<(String, f64, usize)> = Vec::new();
            for (label, v) in labels.into_iter().zip(&y) {
                match groups.iter_mut().find(|g| g.0 == label) {
                    Some(g) => {
                        g.1 += v;
                        g.2 += 1;
                    }
                    None => groups.push((label, *v, 1)),
                }
            }
            if groups.len() < 2 {
                return None;
            }
            let between: f64 = groups
                .iter()
                .map(|(_, sum, n)| *n as f64 * (sum / *n as f64 - mean).powi(2))
                .sum();
            let best = groups
                .iter()
                .min_by(|a, b| (a.1 / a.2 as f64).total_cmp(&(b.1 / b.2 as f64)))
                .map(|g| g.0.clone())
                .unwrap_or_default();
            Some(Importance {
                key: p.key.clone(),
                share: (between / total).clamp(0.0, 1.0),
                levels: groups.len(),
                best_level: best,
                binned,
            })
        })
        .collect();
    rows.sort_by(|a, b| b.share.total_cmp(&a.share).then_with(|| a.key.cmp(&b.key)));
    // On an unbalanced design (random search, pruned grid points) main effects overlap and can
    // add up past 1; the rest is then shown as 0.
    let rest = (1.0 - rows.iter().map(|r| r.share).sum::<f64>()).max(0.0);
    Some(ImportanceTable {
        rows,
        rest,
        runs: runs.len(),
    })
}

/// Each run's level of parameter `p`: its value, or its quantile bin when a numeric parameter
/// has too many distinct values for groups to have more than a run or two each.
fn levels(runs: &[&RunView], p: &super::views::ParamInfo) -> (Vec<String>, bool) {
    let text: Vec<String> = runs.iter().map(|r| param_text(&r.summary, &p.key)).collect();
    let mut distinct = text.clone();
    distinct.sort();
    distinct.dedup();
    let numeric = matches!(p.kind, ParamKind::Numeric { .. });
    if !numeric || distinct.len() <= MAX_LEVELS {
        return (text, false);
    }
    let positions: Vec<f64> = runs
        .iter()
        .map(|r| p.position(&r.summary).unwrap_or(f64::NAN))
        .collect();
    let mut sorted: Vec<f64> = positions.iter().copied().filter(|x| x.is_finite()).collect();
    if sorted.is_empty() {
        return (text, false);
    }
    sorted.sort_by(f64::total_cmp);
    let bins = ((runs.len() as f64).sqrt().round() as usize).clamp(2, 10);
    // Bin edges at quantiles; a run falls in the first bin whose upper edge it does not exceed.
    let edges: Vec<f64> = (1..=bins)
        .map(|k| sorted[((sorted.len() - 1) * k) / bins])
        .collect();
    let shown = |x: f64| match p.kind {
        ParamKind::Numeric { log: true } => super::charts::fmt_num(10f64.powf(x)),
        _ => super::charts::fmt_num(x),
    };
    let labels = positions
        .iter()
        .map(|&x| {
            let k = edges.iter().position(|&e| x <= e).unwrap_or(bins - 1);
            let lo = if k == 0 { sorted[0] } else { edges[k - 1] };
            format!("{}–{}", shown(lo), shown(edges[k]))
        })
        .collect();
    (labels, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::views::{ParamInfo, RunView};

    fn run(id: &str, lr: f64, seed: u64, bpd8: f64) -> RunView {
        let summary = crate::report::views::tests::summary(
            id,
            Some(bpd8),
            serde_json::json!({"learning_rate": lr, "seed": seed}),
        );
        RunView {
            summary,
            rank: None,
            colour: (0, 0, 0),
            loss: Default::default(),
            sample_epochs: vec![],
            drawn: true,
        }
    }

    #[test]
    fn a_parameter_that_decides_everything_explains_everything() {
        let runs = vec![
            run("a", 1e-3, 1, 2.0),
            run("b", 1e-3, 2, 2.0),
            run("c", 1e-2, 1, 1.0),
            run("d", 1e-2, 2, 1.0),
        ];
        let view = ExperimentView {
            name: "e".into(),
            description: String::new(),
            runs,
            params: vec![
                ParamInfo {
                    key: "learning_rate".into(),
                    kind: ParamKind::Numeric { log: true },
                },
                ParamInfo {
                    key: "seed".into(),
                    kind: ParamKind::Numeric { log: false },
                },
            ],
            epoch_envelope: None,
            loss_envelope: None,
            at_scale: None,
        };
        let t = main_effects(&view).unwrap();
        assert_eq!(t.rows[0].key, "learning_rate");
        assert!((t.rows[0].share - 1.0).abs() < 1e-12);
        assert_eq!(t.rows[0].best_level, "0.01");
        assert!(t.rows[1].share.abs() < 1e-12);
        assert!(t.rest.abs() < 1e-12);
    }

    #[test]
    fn an_additive_grid_splits_the_variance_by_effect_size() {
        // bpd8 = lr effect (±2) + seed effect (±1): shares 4/5 and 1/5.
        let mut runs = Vec::new();
        for (i, (lr, a)) in [(1e-3, 2.0), (1e-2, -2.0)].into_iter().enumerate() {
            for (j, (seed, b)) in [(1, 1.0), (2, -1.0)].into_iter().enumerate() {
                runs.push(run(&format!("r{i}{j}"), lr, seed, 10.0 + a + b));
            }
        }
        let view = ExperimentView {
            name: "e".into(),
            description: String::new(),
            runs,
            params: vec![
                ParamInfo {
                    key: "learning_rate".into(),
                    kind: ParamKind::Numeric { log: true },
                },
                ParamInfo {
                    key: "seed".into(),
                    kind: ParamKind::Numeric { log: false },
                },
            ],
            epoch_envelope: None,
            loss_envelope: None,
            at_scale: None,
        };
        let t = main_effects(&view).unwrap();
        assert!((t.rows[0].share - 0.8).abs() < 1e-12, "{t:?}");
        assert!((t.rows[1].share - 0.2).abs() < 1e-12, "{t:?}");
    }
}
