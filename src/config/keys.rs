//! The names an experiment file may use: its sections, the keys of each table and of a search
//! axis. Checking a file, a `--set` path and a `PIXELX_*` variable all read these lists, so a
//! key is added in one place.

/// Run parameters, i.e. the keys of `[defaults]`, grid axes, points, exclusions and search
/// spaces: `RunConfig`'s fields in order (a test pins the two together).
pub const RUN_KEYS: [&str; 20] = [
    "dataset",
    "epochs",
    "batch_size",
    "causal_ksize",
    "hidden_ksize",
    "data_channels",
    "color_levels",
    "hidden_fmaps",
    "out_hidden_fmaps",
    "hidden_layers",
    "learning_rate",
    "weight_decay",
    "max_norm",
    "epoch_samples",
    "seed",
    "device",
    "lr_schedule",
    "train_subset",
    "test_subset",
    "precision",
];

const SECTIONS: [&str; 9] = [
    "experiment",
    "defaults",
    "grid",
    "points",
    "exclude",
    "random",
    "search",
    "pruner",
    "scheduler",
];
const EXPERIMENT_KEYS: [&str; 4] = ["name", "description", "dataset", "max_runs"];
const SCHEDULER_KEYS: [&str; 5] = ["devices", "runs_per_device", "retries", "backend", "slurm"];
const SLURM_KEYS: [&str; 8] = [
    "partition",
    "time",
    "cpus_per_run",
    "gpus_per_run",
    "mem",
    "max_jobs",
    "extra",
    "signal_grace",
];
const RANDOM_KEYS: [&str; 3] = ["samples", "seed", "space"];
const SEARCH_KEYS: [&str; 7] = [
    "method",
    "trials",
    "seed",
    "parallel",
    "startup_trials",
    "multivariate",
    "space",
];
const PRUNER_KEYS: [&str; 6] = [
    "kind",
    "metric",
    "grace_epochs",
    "reduction_factor",
    "warmup_epochs",
    "min_trials",
];

/// The keys an axis of a search space may have.
pub(super) const AXIS_KEYS: [&str; 7] = [
    "uniform",
    "log_uniform",
    "int",
    "int_uniform",
    "choice",
    "step",
    "log",
];

/// The keys valid directly under a dotted table path, or None when the path holds values.
pub(super) fn keys_under(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "" => &SECTIONS,
        "experiment" => &EXPERIMENT_KEYS,
        "defaults" | "grid" | "random.space" | "search.space" => &RUN_KEYS,
        "scheduler" => &SCHEDULER_KEYS,
        "scheduler.slurm" => &SLURM_KEYS,
        "random" => &RANDOM_KEYS,
        "search" => &SEARCH_KEYS,
        "pruner" => &PRUNER_KEYS,
        _ if is_space_axis(path) => &AXIS_KEYS,
        _ => return None,
    })
}

/// `search.space.<name>` or `random.space.<name>`: one axis of a search space.
fn is_space_axis(path: &str) -> bool {
    ["search.space.", "random.space."].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|name| !name.is_empty() && !name.contains('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::super::run_config::RunConfig;
    use super::*;

    /// `RUN_KEYS` is how files, `--set` and reports name a run's parameters: it must list
    /// exactly `RunConfig`'s fields, in their order.
    #[test]
    fn run_keys_are_the_run_config_fields() {
        let value = serde_json::to_value(RunConfig::default()).unwrap();
        let fields: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields, RUN_KEYS);
    }
}
