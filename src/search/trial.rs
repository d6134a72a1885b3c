//! One trial of a study as the searchers and pruners see it: its number, parameters, state and
//! results. Shared by TPE, the pruners and the coordinator's study (`schedule::study`).

use std::collections::BTreeMap;

use super::space::Params;

/// Where a trial stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrialState {
    Complete,
    Pruned,
    Running,
    Failed,
}

/// One trial of a study, as the searcher and the pruner see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// 0-based, unique within the study.
    pub number: usize,
    pub params: Params,
    pub state: TrialState,
    /// Objective of a complete trial (lower is better).
    pub value: Option<f64>,
    /// Per-epoch values of the pruning metric (epoch numbers are 1-based).
    pub intermediate: BTreeMap<u32, f64>,
}

impl Trial {
    /// A running trial with no results yet.
    pub fn running(number: usize, params: Params) -> Self {
        Self {
            number,
            params,
            state: TrialState::Running,
            value: None,
            intermediate: BTreeMap::new(),
        }
    }

    /// The last epoch with a recorded value, and that value.
    pub fn last_intermediate(&self) -> Option<(u32, f64)> {
        self.intermediate.iter().next_back().map(|(e, v)| (*e, *v))
    }

    /// The objective of a complete trial with a usable (non-NaN) value.
    pub fn complete_value(&self) -> Option<f64> {
        match (self.state, self.value) {
            (TrialState::Complete, Some(v)) if !v.is_nan() => Some(v),
            _ => None,
        }
    }
}
