//! A rough bound on the memory a training step needs, to refuse an impossible batch before
//! loading data and allocating (where libtorch would abort the process instead of failing).

use tch::Device;

use crate::config::{overlay, ConfigError, Experiment, RunConfig, SearchMethod, Sources, Table};
use crate::search::space::Distribution;
use crate::slots::Workload;

/// What a training process holds besides its step's activations: libtorch, the data set, the
/// weights and optimiser state of a small model. A tiny MNIST run peaks near 210 MiB where
/// libtorch's CUDA backend is not loaded (machines without a CUDA driver), near 400 MiB where it
/// is; the bound keeps the larger.
const PROCESS_BYTES: u64 = 512 << 20;

/// Bytes the activations of one training step keep for the backward pass, give or take a factor
/// of two: per pixel and gated block about 16 feature maps of `F` floats (the two stacks'
/// pre-activations, gates, shifts, skips and residuals), plus the head and the logits.
pub fn training_bytes(config: &RunConfig) -> u64 {
    let side = config.dataset.side() as u64;
    let pixels = side * side;
    let f = config.hidden_fmaps as u64;
    let per_pixel = (config.hidden_layers as u64 + 1) * 16 * f
        + 4 * config.out_hidden_fmaps as u64
        + 4 * (config.channels() * config.color_levels) as u64;
    (config.batch_size as u64)
        .saturating_mul(pixels)
        .saturating_mul(per_pixel)
        .saturating_mul(4)
}

/// Refuses a run whose training step cannot fit in this machine's memory (CPU runs; a GPU's
/// own limit is left to libtorch, which fails there with an error rather than an abort).
pub fn check_fits(config: &RunConfig, device: Device) -> Result<(), ConfigError> {
    if device != Device::Cpu {
        return Ok(());
    }
    let Some(total) = crate::host::total_memory() else {
        return Ok(());
    };
    let need = training_bytes(config);
    if need > total {
        return Err(ConfigError::new(
            "batch_size",
            format!(
                "a training step of {} images of this model needs about {} of memory, more than this \
                 machine's {}; use a smaller batch_size or hidden_fmaps",
                config.batch_size,
                crate::format::bytes(need),
                crate::format::bytes(total)
            ),
        ));
    }
    Ok(())
}

/// What `experiment` gives the scheduler to pack, `finished` of its runs being done already (a
/// re-run does not train them): the runs it can keep in flight (a grid's runs left; a random
/// search's trials left, or `search.parallel` of them; a TPE study one at a time unless
/// `search.parallel` says more, since it proposes from what finished) and the memory of its
/// largest run.
pub fn workload(experiment: &Experiment, finished: usize) -> Workload {
    let search = &experiment.search;
    let runs = match search.method {
        SearchMethod::Grid => experiment.runs.len().saturating_sub(finished),
        SearchMethod::Random => search
            .trials
            .unwrap_or(usize::MAX)
            .saturating_sub(finished)
            .min(search.parallel.unwrap_or(usize::MAX)),
        SearchMethod::Tpe => search.parallel.unwrap_or(1),
    };
    // A study's runs are proposed later: its largest trial stands for them.
    let largest = experiment
        .runs
        .iter()
        .map(|r| training_bytes(&r.config))
        .max()
        .unwrap_or_else(|| training_bytes(&largest_trial(experiment)));
    Workload {
        runs: runs.max(1),
        bytes_per_run: PROCESS_BYTES.saturating_add(largest),
    }
}

/// A study's largest trial as far as memory goes: every axis of its space at its largest value
/// (a training step's memory only grows with each size parameter), or its base configuration
/// where that corner is not a valid one.
fn largest_trial(experiment: &Experiment) -> RunConfig {
    let table: Table = experiment
        .search
        .space
        .iter()
        .map(|(key, d)| (key.clone(), largest_value(d)))
        .collect();
    overlay(
        &experiment.base,
        &table,
        "search.space",
        "search.space",
        &Sources::default(),
    )
    .unwrap_or_else(|_| experiment.base.clone())
}

/// An axis's largest value: a range's top, a choice's largest number (or its first value when
/// none is a number).
fn largest_value(d: &Distribution) -> toml::Value {
    match d {
        Distribution::Float { high, .. } => toml::Value::Float(*high),
        Distribution::Int { high, .. } => toml::Value::Integer(*high),
        Distribution::Choice(values) => values
            .iter()
            .filter_map(|v| Some((v.as_float().or_else(|| v.as_integer().map(|i| i as f64))?, v)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, v)| v.clone())
            .or_else(|| values.first().cloned())
            .unwrap_or(toml::Value::Boolean(false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_model_fits_and_an_absurd_batch_does_not() {
        let config = RunConfig::default();
        assert!(
            training_bytes(&config) < 1 << 30,
            "{}",
            crate::format::bytes(training_bytes(&config))
        );
        let absurd = RunConfig {
            batch_size: 60_000,
            hidden_fmaps: 2_400,
            ..RunConfig::default()
        };
        assert!(training_bytes(&absurd) > 1 << 40);
        assert_eq!(crate::format::bytes(1536), "1.5 KiB");
    }

    fn load(text: &str) -> Experiment {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.toml");
        std::fs::write(&path, format!("[experiment]\nname = \"e\"\n{text}")).unwrap();
        Experiment::load(&path, &[]).unwrap()
    }

    fn workload_of(e: &Experiment) -> Workload {
        workload(e, 0)
    }

    #[test]
    fn a_grid_packs_its_runs_a_study_its_runs_in_flight() {
        let grid = workload_of(&load("[grid]\nseed = [1, 2, 3]\nhidden_fmaps = [8, 16]\n"));
        assert_eq!(grid.runs, 6);
        let largest = RunConfig {
            hidden_fmaps: 16,
            ..RunConfig::default()
        };
        assert_eq!(grid.bytes_per_run, PROCESS_BYTES + training_bytes(&largest));
        let space = "[search.space]\nseed = { int = [1, 99] }\n";
        let random = load(&format!("[search]\nmethod = \"random\"\ntrials = 5\n{space}"));
        assert_eq!(workload_of(&random).runs, 5);
        let capped = load(&format!(
            "[search]\nmethod = \"random\"\ntrials = 5\nparallel = 2\n{space}"
        ));
        assert_eq!(workload_of(&capped).runs, 2);
        let tpe = load(&format!("[search]\nmethod = \"tpe\"\ntrials = 5\n{space}"));
        assert_eq!(
            workload_of(&tpe).runs,
            1,
            "a study proposes from what finished: one at a time"
        );
        // Finished runs are not trained again: a grid packs what is left, at least one.
        let grid = load("[grid]\nseed = [1, 2, 3]\n");
        assert_eq!(workload(&grid, 2).runs, 1);
        assert_eq!(workload(&grid, 5).runs, 1);
        assert_eq!(workload(&random, 4).runs, 1);
        // A study's memory is its largest trial's, not its base's.
        let wide = load(&format!(
            "[search]\nmethod = \"random\"\ntrials = 5\n{space}hidden_fmaps = {{ int = [8, 96] }}\n\
             hidden_layers = {{ choice = [1, 4, 2] }}\n"
        ));
        let biggest = RunConfig {
            hidden_fmaps: 96,
            hidden_layers: 4,
            ..wide.base.clone()
        };
        assert_eq!(
            workload_of(&wide).bytes_per_run,
            PROCESS_BYTES + training_bytes(&biggest)
        );
        assert!(training_bytes(&biggest) > training_bytes(&wide.base));
    }
}
