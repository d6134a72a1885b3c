//! Checks of an experiment that its types cannot express: its name, the Slurm settings, an
//! adaptive search's budget and space (whose corners must make valid runs), and the pruner
//! against the sweep it prunes. Each error names the key at fault.

use super::expand::overlay;
use super::run_config::RunConfig;
use super::schema::{ExperimentFile, Table};
use super::sources::Sources;
use super::sweep::{valid_slurm_time, PrunerKind, PrunerSettings, SearchSettings, SlurmSettings};
use crate::search::Distribution;

/// Names pixelx records runs under itself, with what they hold: a file of the same name would
/// silently share their experiment.
const RESERVED_NAMES: [(&str, &str); 2] = [
    ("adhoc", "runs started with `pixelx train`"),
    ("imported", "weights read with `pixelx import`"),
];

/// Characters that print as nothing or reorder the text around them (zero-width spaces and
/// joiners, bidirectional marks, embeddings, overrides and isolates, the byte-order mark): a
/// name holding one reads as another name.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    )
}

/// Rejects names a terminal or a log would show as something else, names that are a path's dot
/// segment (a link to `/experiments/..` is folded to `/` by every browser), and reserved ones.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("`experiment.name` must not be empty".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "`experiment.name` contains the control character {:?}; use printable characters",
            c
        ));
    }
    if let Some(c) = name.chars().find(|c| is_invisible(*c)) {
        return Err(format!(
            "`experiment.name` contains U+{:04X}, an invisible or text-direction character; use \
             printable characters",
            c as u32
        ));
    }
    if name == "." || name == ".." {
        return Err(format!(
            "`experiment.name` `{name}` is a path segment, which links and paths cannot name; \
             choose another name"
        ));
    }
    if let Some((_, holds)) = RESERVED_NAMES.iter().find(|(n, _)| *n == name) {
        return Err(format!(
            "`experiment.name`: `{name}` is reserved for {holds}; choose another name"
        ));
    }
    Ok(())
}

pub(super) fn check_slurm(s: &SlurmSettings) -> Result<(), String> {
    if let Some(t) = &s.time {
        if !valid_slurm_time(t) {
            return Err(format!(
                "`scheduler.slurm.time`: `{t}` is not a Slurm time limit; use minutes (`90`), \
                 `HH:MM:SS` or `D-HH:MM:SS`"
            ));
        }
    }
    if s.max_jobs == 0 {
        return Err("`scheduler.slurm.max_jobs` must be at least 1".into());
    }
    if s.cpus_per_run == Some(0) {
        return Err("`scheduler.slurm.cpus_per_run` must be at least 1".into());
    }
    if let Some(m) = &s.mem {
        let digits = m.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || m.len() - digits.len() > 1 {
            return Err(format!(
                "`scheduler.slurm.mem`: `{m}` is not a memory size; use a number with an optional unit, e.g. \"32G\" or \"4000M\""
            ));
        }
    }
    // Slurm stores the signal's lead time in 16 bits.
    if s.signal_grace > 65_535 {
        return Err(format!(
            "`scheduler.slurm.signal_grace` must be at most 65535 seconds, got {}",
            s.signal_grace
        ));
    }
    for (key, value) in [("partition", &s.partition), ("time", &s.time)] {
        if value.as_ref().is_some_and(|v| v.contains(char::is_whitespace)) {
            return Err(format!(
                "`scheduler.slurm.{key}` must not contain spaces or newlines"
            ));
        }
    }
    for line in &s.extra {
        if line.contains('\n') || !line.trim_start().starts_with('-') {
            return Err(format!(
                "`scheduler.slurm.extra`: `{line}` is not one sbatch option (e.g. \"--account=vision\")"
            ));
        }
    }
    Ok(())
}

/// A grid sweep takes no search space or budget: those are for the adaptive methods.
pub(super) fn check_grid_search(file: &ExperimentFile) -> Result<(), String> {
    if file
        .search
        .as_ref()
        .is_some_and(|s| !s.space.is_empty() || s.trials.is_some())
    {
        return Err(
            "`search.method = \"grid\"` takes its runs from [grid], [[points]] and [random]; \
             `search.space` and `search.trials` are for \"random\" or \"tpe\""
                .into(),
        );
    }
    Ok(())
}

/// Checks the pruner against the sweep: enough runs for the median rule, and epochs (at most
/// `max_epochs` in any run) for its own settings.
pub(super) fn check_pruner(
    pruner: &PrunerSettings,
    planned: usize,
    max_epochs: u32,
    sources: &Sources,
) -> Result<(), String> {
    if pruner.kind == PrunerKind::Median && pruner.min_trials > planned {
        return Err(format!(
            "`pruner.min_trials` = {} is more than the {planned} run(s) of the sweep: the median rule could never stop a run",
            pruner.min_trials
        ));
    }
    pruner.validate(max_epochs).map_err(|e| {
        // Say where the runs' epochs came from when it was not the file.
        format!(
            "{e}{}",
            sources
                .of("defaults.epochs")
                .note()
                .replace(" (from", " (epochs from")
        )
    })
}

/// Checks an adaptive `[search]`: its budget and space, and that the space's corners make
/// valid runs (so a bad bound fails now, not after hours of sweeping).
pub(super) fn check_adaptive(
    file: &ExperimentFile,
    search: &SearchSettings,
    base: &RunConfig,
    sources: &Sources,
) -> Result<(), String> {
    check_budget(file, search)?;
    for (key, dist) in &search.space {
        dist.validate()
            .map_err(|e| format!("`search.space.{key}`: {e}"))?;
    }
    check_precision_choices(search)?;
    check_corners(search, base, sources)
}

/// A space whose `precision` offers both `fp32` and `auto` would propose two trials under one
/// id (an id leaves out both; see `identity`).
fn check_precision_choices(search: &SearchSettings) -> Result<(), String> {
    let Some(Distribution::Choice(values)) = search.space.get("precision") else {
        return Ok(());
    };
    let offers = |name: &str| values.iter().any(|v| v.as_str() == Some(name));
    if offers("fp32") && offers("auto") {
        return Err(
            "`search.space.precision` offers both \"fp32\" and \"auto\", which give a trial the same \
             id (an id leaves out fp32 and auto alike, so that files from before `auto` keep their \
             ids); offer one of them, or bf16 to compare bf16 with fp32"
                .into(),
        );
    }
    Ok(())
}

/// An adaptive search proposes its own runs, within a budget of trials and at least one axis.
fn check_budget(file: &ExperimentFile, search: &SearchSettings) -> Result<(), String> {
    let method = search.method.as_str();
    if !file.grid.is_empty() || !file.points.is_empty() || file.random.is_some() {
        return Err(format!(
            "`search.method = \"{method}\"` proposes the runs itself; move [grid], [[points]] and \
             [random] axes into `[search.space]`"
        ));
    }
    match search.trials {
        None => {
            return Err(format!(
                "`search.trials`: the budget of runs is required for \"{method}\""
            ))
        }
        Some(0) => return Err("`search.trials` must be at least 1".into()),
        Some(n) if n > file.experiment.max_runs => {
            return Err(format!(
                "`search.trials` = {n} is more than `experiment.max_runs` = {}; raise it \
                 (`--set experiment.max_runs={n}`) if you mean it",
                file.experiment.max_runs
            ))
        }
        Some(_) => {}
    }
    if search.parallel == Some(0) {
        return Err("`search.parallel` must be at least 1".into());
    }
    if search.space.is_empty() {
        return Err(format!(
            "`search.space` is empty: \"{method}\" needs at least one axis"
        ));
    }
    Ok(())
}

/// Every axis at its first value, then each value of each axis in turn with the others held
/// there: a value that makes an invalid run is found now, not hours into the study.
fn check_corners(search: &SearchSettings, base: &RunConfig, sources: &Sources) -> Result<(), String> {
    let reference: Table = search
        .space
        .iter()
        .map(|(k, d)| (k.clone(), axis_values(d)[0].clone()))
        .collect();
    let check = |table: &Table, axis: &str| -> Result<(), String> {
        let config = overlay(base, table, "search.space", "search.space", sources)?;
        config.validate().map_err(|e| {
            if search.space.contains_key(&e.key) {
                let hint = if e.key == axis {
                    ""
                } else {
                    " (with the other axes at their first value)"
                };
                format!("`search.space.{}`{hint}: {e}", e.key)
            } else {
                // The space is fine; the value comes from the defaults (or their overrides).
                let origin = sources.of(&format!("defaults.{}", e.key));
                e.from_source(origin).to_string()
            }
        })
    };
    check(&reference, "")?;
    for (key, dist) in &search.space {
        for value in axis_values(dist) {
            let mut table = reference.clone();
            table.insert(key.clone(), value);
            check(&table, key)?;
        }
    }
    Ok(())
}

/// The values checked for an axis: both ends of a float range, every value of an integer range
/// (or its ends, past ten thousand values) and every choice.
fn axis_values(d: &Distribution) -> Vec<toml::Value> {
    match d {
        Distribution::Float { low, high, .. } => vec![toml::Value::Float(*low), toml::Value::Float(*high)],
        Distribution::Int { low, high, step, .. } => {
            let step = (*step).max(1);
            if (*high as i128 - *low as i128) / (step as i128) < 10_000 {
                (*low..=*high)
                    .step_by(step as usize)
                    .map(toml::Value::Integer)
                    .collect()
            } else {
                vec![toml::Value::Integer(*low), toml::Value::Integer(*high)]
            }
        }
        Distribution::Choice(values) => values.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_read_as_other_names_or_are_reserved_are_refused() {
        for bad in [
            "a\u{202E}b",
            "a\u{200B}b",
            "\u{FEFF}x",
            "..",
            ".",
            "adhoc",
            "imported",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["...", "a.b", "café ☕", "Adhoc-2", "mnist_sweep"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }
}
