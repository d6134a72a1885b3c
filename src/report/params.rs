//! The swept parameters of an experiment and how each is laid out on an axis.

use crate::registry::RunSummary;

/// Parameters that are searched on a log scale whatever their recorded values.
const LOG_KEYS: [&str; 2] = ["learning_rate", "weight_decay"];

/// How a swept parameter is laid out on an axis.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamKind {
    Numeric {
        log: bool,
    },
    /// Distinct values, in order.
    Categorical(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct ParamInfo {
    pub key: String,
    pub kind: ParamKind,
}

impl ParamInfo {
    /// A run's value on this parameter's axis: the number (log10 on a log axis) or the index of
    /// its category.
    pub fn position(&self, run: &RunSummary) -> Option<f64> {
        let v = run.params.get(&self.key)?;
        match &self.kind {
            ParamKind::Numeric { log } => {
                let x = v.as_f64()?;
                if *log {
                    (x > 0.0).then(|| x.log10())
                } else {
                    Some(x)
                }
            }
            ParamKind::Categorical(values) => {
                let text = super::param_text(run, &self.key);
                values.iter().position(|c| *c == text).map(|i| i as f64)
            }
        }
    }
}

/// The keys of [`crate::config::RUN_KEYS`] whose values differ among `runs`, in that order.
/// Runs whose parameters have the same keys in the same order as the first run's (every run one
/// version recorded) are compared value by value without a lookup per key: at 100,000 runs the
/// lookups were the largest cost of building a view.
fn varying_keys(runs: &[&RunSummary]) -> Vec<&'static str> {
    let Some((first, rest)) = runs.split_first() else {
        return Vec::new();
    };
    let mut by_position = vec![false; first.params.len()];
    let mut by_key: Vec<&'static str> = Vec::new();
    for run in rest {
        let aligned = run.params.len() == first.params.len()
            && run.params.keys().zip(first.params.keys()).all(|(a, b)| a == b);
        if aligned {
            for (differs, (a, b)) in by_position
                .iter_mut()
                .zip(run.params.values().zip(first.params.values()))
            {
                *differs |= a != b;
            }
        } else {
            for k in crate::config::RUN_KEYS {
                if !by_key.contains(&k) && run.params.get(k) != first.params.get(k) {
                    by_key.push(k);
                }
            }
        }
    }
    let flagged: Vec<&str> = first
        .params
        .keys()
        .zip(&by_position)
        .filter(|(_, differs)| **differs)
        .map(|(k, _)| k.as_str())
        .collect();
    crate::config::RUN_KEYS
        .into_iter()
        .filter(|k| by_key.contains(k) || flagged.contains(k))
        .collect()
}

/// The parameters whose values differ among `runs`, with how to lay each out.
pub(super) fn swept_params(runs: &[&RunSummary]) -> Vec<ParamInfo> {
    varying_keys(runs)
        .into_iter()
        .map(|k| {
            let values: Vec<&serde_json::Value> = runs.iter().filter_map(|r| r.params.get(k)).collect();
            let numbers: Option<Vec<f64>> = values.iter().map(|v| v.as_f64()).collect();
            let kind = match numbers {
                Some(xs) if !xs.is_empty() => {
                    let positive = xs.iter().all(|&x| x > 0.0);
                    let (lo, hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                        (a.min(x), b.max(x))
                    });
                    // A recorded spread over 1.5 decades reads better on a log axis.
                    let log = positive && (LOG_KEYS.contains(&k) || hi / lo >= 30.0);
                    ParamKind::Numeric { log }
                }
                _ => {
                    let mut cats: Vec<String> = runs.iter().map(|r| super::param_text(r, k)).collect();
                    cats.sort();
                    cats.dedup();
                    ParamKind::Categorical(cats)
                }
            };
            ParamInfo {
                key: k.to_string(),
                kind,
            }
        })
        .collect()
}
