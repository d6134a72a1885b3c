//! A rough bound on the memory a training step needs, to refuse an impossible batch before
//! loading data and allocating (where libtorch would abort the process instead of failing).

use tch::Device;

use crate::config::{ConfigError, Experiment, RunConfig, SearchMethod};
use crate::slots::Workload;

/// What a training process holds besides its step's activations: libtorch, the data set, the
/// weights and optimiser state of a small model (a tiny MNIST run peaks near 400 MiB).
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

/// What `experiment` gives the scheduler to pack: the runs it can keep in flight (a grid's
/// runs; a random search's trials, or `search.parallel` of them; a TPE study one at a time
/// unless `search.parallel` says more, since it proposes from what finished) and the memory of
/// its largest run.
pub fn workload(experiment: &Experiment) -> Workload {
    let search = &experiment.search;
    let runs = match search.method {
        SearchMethod::Grid => experiment.runs.len(),
        SearchMethod::Random => search
            .trials
            .unwrap_or(usize::MAX)
            .min(search.parallel.unwrap_or(usize::MAX)),
        SearchMethod::Tpe => search.parallel.unwrap_or(1),
    };
    // A study's runs are proposed later: its base configuration stands for them.
    let largest = experiment
        .runs
        .iter()
        .map(|r| training_bytes(&r.config))
        .max()
        .unwrap_or_else(|| training_bytes(&experiment.base));
    Workload {
        runs: runs.max(1),
        bytes_per_run: PROCESS_BYTES.saturating_add(largest),
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

    #[test]
    fn a_grid_packs_its_runs_a_study_its_runs_in_flight() {
        let grid = workload(&load("[grid]\nseed = [1, 2, 3]\nhidden_fmaps = [8, 16]\n"));
        assert_eq!(grid.runs, 6);
        let largest = RunConfig {
            hidden_fmaps: 16,
            ..RunConfig::default()
        };
        assert_eq!(grid.bytes_per_run, PROCESS_BYTES + training_bytes(&largest));
        let space = "[search.space]\nseed = { int = [1, 99] }\n";
        let random = load(&format!("[search]\nmethod = \"random\"\ntrials = 5\n{space}"));
        assert_eq!(workload(&random).runs, 5);
        let capped = load(&format!(
            "[search]\nmethod = \"random\"\ntrials = 5\nparallel = 2\n{space}"
        ));
        assert_eq!(workload(&capped).runs, 2);
        let tpe = load(&format!("[search]\nmethod = \"tpe\"\ntrials = 5\n{space}"));
        assert_eq!(
            workload(&tpe).runs,
            1,
            "a study proposes from what finished: one at a time"
        );
    }
}
