//! Adaptive hyperparameter search and early stopping, free of any training code.
//!
//! - [`space`]: the search-space grammar (`uniform`, `log_uniform`, `int`, `int_uniform`,
//!   `choice`) shared by random and adaptive search, with prior draws that reproduce pixelx's
//!   existing `[random]` search exactly.
//! - [`tpe`]: Tree-structured Parzen Estimator suggestions with Optuna's semantics (random
//!   start-up, pruned trials as data, running trials as bad: the constant liar), each a pure
//!   function of (space, trials, seed, trial number).
//! - [`pruner`]: early-stopping decisions (ASHA, median) as pure functions of the study.
//!
//! Conventions: lower values are better; trial numbers are 0-based; epochs are 1-based.

pub mod joint;
pub mod parzen;
pub mod propose;
pub mod pruner;
pub mod same;
pub mod space;
pub mod tpe;
pub mod trial;
mod truncnorm;

pub use propose::{propose, Proposer};
pub use pruner::{decide, rungs, Decision, Pruner};
pub use same::same_params;
pub use space::{enumerate, sample_params, values_equal, Distribution, Params, Space};
pub use tpe::{gamma, startup_for_budget, suggest_random, suggest_tpe, TpeSettings};
pub use trial::{Trial, TrialState};
