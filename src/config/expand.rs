//! Expanding a grid experiment into its runs: the cartesian product of `[grid]`, then
//! `[[points]]` and `[random]` samples, minus the grid points and samples `[[exclude]]` matches
//! (explicit points are kept), each validated and named by its id.
//!
//! The size is computed before anything is built, so a typo that makes a grid of a million runs
//! is refused at once; duplicates are dropped with a hash map, so expansion is linear.

use std::collections::HashMap;

use rand::SeedableRng;

use super::identity::{precision_conflict, run_id, RunSpec};
use super::run_config::{ConfigError, RunConfig};
use super::schema::{ExperimentFile, Table};
use super::sources::{humanize, Sources};
use crate::search::{sample_params, values_equal};

/// Applies `table` over `base`, key by key. A value of the wrong type is reported with its
/// place in the file (`at`, e.g. `points[2]`) and its origin (looked up under `source_path`).
pub fn overlay(
    base: &RunConfig,
    table: &Table,
    at: &str,
    source_path: &str,
    sources: &Sources,
) -> Result<RunConfig, String> {
    let apply = |t: &mut dyn Iterator<Item = (&String, &toml::Value)>| -> Result<RunConfig, toml::de::Error> {
        let mut value = toml::Value::try_from(base).expect("a RunConfig is a TOML table");
        let fields = value.as_table_mut().expect("a RunConfig is a TOML table");
        for (k, v) in t {
            fields.insert(k.clone(), v.clone());
        }
        value.try_into()
    };
    match apply(&mut table.iter()) {
        Ok(config) => Ok(config),
        Err(whole) => {
            // Find the key at fault, so the message can name it and its origin.
            for (k, v) in table {
                if let Err(e) = apply(&mut std::iter::once((k, v))) {
                    let origin = sources.of(&format!("{source_path}.{k}")).note();
                    let key = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    return Err(format!("`{key}`{origin}: {}", humanize(e.message())));
                }
            }
            let what = humanize(whole.message());
            Err(if at.is_empty() {
                what
            } else {
                format!("`{at}`: {what}")
            })
        }
    }
}

/// Whether `config` has every value of `pattern` (2 and 2.0 compare equal).
fn matches(config: &toml::Table, pattern: &Table) -> bool {
    pattern
        .iter()
        .all(|(k, v)| config.get(k).is_some_and(|x| values_equal(x, v)))
}

/// How many runs the file describes before exclusions and duplicates, or None on overflow.
fn planned_size(file: &ExperimentFile) -> Option<(usize, String)> {
    let mut grid: usize = 1;
    let mut dims = Vec::new();
    for values in file.grid.values() {
        grid = grid.checked_mul(values.len())?;
        dims.push(values.len().to_string());
    }
    // Without a grid, the bare defaults are not a run of their own when points or random
    // samples are given.
    if file.grid.is_empty() && (!file.points.is_empty() || file.random.is_some()) {
        grid = 0;
    }
    let random = file.random.as_ref().map_or(0, |r| r.samples);
    let total = grid.checked_add(file.points.len())?.checked_add(random)?;
    let mut parts = Vec::new();
    if !dims.is_empty() {
        parts.push(format!("grid {}", dims.join(" × ")));
    }
    if !file.points.is_empty() {
        parts.push(format!("{} points", file.points.len()));
    }
    if random > 0 {
        parts.push(format!("{random} random samples"));
    }
    Some((total, parts.join(" + ")))
}

/// Every run of a grid experiment, validated, in file order and without duplicates.
pub fn expand(file: &ExperimentFile, base: &RunConfig, sources: &Sources) -> Result<Vec<RunSpec>, String> {
    check_size(file)?;
    for (key, values) in &file.grid {
        if values.is_empty() {
            return Err(format!("grid.{key} is an empty list, which gives no runs"));
        }
    }
    let exclusions = file
        .exclude
        .iter()
        .enumerate()
        .map(|(i, e)| {
            // Checks the types (an exclusion that can never match is a mistake, not a no-op).
            overlay(base, e, &format!("exclude[{i}]"), "exclude", sources)?;
            Ok(e)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut runs = Vec::new();
    let mut seen = HashMap::new();
    for (at, source_path, table) in point_tables(file)? {
        let config = overlay(base, &table, &at, source_path, sources)?;
        let fields = toml::Value::try_from(&config).map_err(|e| e.to_string())?;
        let fields = fields.as_table().ok_or("config is not a table")?;
        // Exclusions cut the generated points; a point the user listed by hand is meant.
        if source_path != "points" && exclusions.iter().any(|e| matches(fields, e)) {
            continue;
        }
        config
            .validate()
            .map_err(|e| locate(e, &at, source_path, &table, sources))?;
        let id = run_id(&file.experiment.name, &config);
        match seen.get(&id) {
            None => {
                seen.insert(id.clone(), runs.len());
                runs.push(RunSpec { id, config });
            }
            Some(&i) => {
                if let Some(why) = precision_conflict(&runs[i].config, &config) {
                    let place = match at.as_str() {
                        "grid" => format!("grid point {}", describe(&table)),
                        _ => at,
                    };
                    return Err(format!("{place}: {why}"));
                }
            }
        }
    }
    if runs.is_empty() {
        return Err("the grid, points and exclusions leave no runs".into());
    }
    Ok(runs)
}

/// Refuses a sweep larger than `experiment.max_runs` before anything is built.
fn check_size(file: &ExperimentFile) -> Result<(), String> {
    let max = file.experiment.max_runs;
    match planned_size(file) {
        Some((n, _)) if n <= max => Ok(()),
        size => {
            let (n, parts) = size.map_or(("more than 2^64".to_owned(), String::new()), |(n, p)| {
                (n.to_string(), format!(" ({p})"))
            });
            Err(format!(
                "the sweep has {n} runs{parts}, more than `experiment.max_runs` = {max}; \
                 raise it (`--set experiment.max_runs=N`) if you mean it"
            ))
        }
    }
}

/// The table of every point of the sweep, in file order: the grid's product, the explicit
/// points, the random samples. Each comes with its place for messages (`points[2]`) and the
/// path its values' origins are recorded under.
fn point_tables(file: &ExperimentFile) -> Result<Vec<(String, &'static str, Table)>, String> {
    let mut tables: Vec<(String, &'static str, Table)> = Vec::new();
    let axes: Vec<(&String, &Vec<toml::Value>)> = file.grid.iter().collect();
    let grid_runs = if file.grid.is_empty() && (!file.points.is_empty() || file.random.is_some()) {
        0
    } else {
        axes.iter().map(|(_, v)| v.len()).product()
    };
    for n in 0..grid_runs {
        // The n-th point of the product, last axis fastest.
        let mut rest = n;
        let mut t = Table::new();
        for (key, values) in axes.iter().rev() {
            t.insert((*key).clone(), values[rest % values.len()].clone());
            rest /= values.len();
        }
        tables.push(("grid".into(), "grid", t));
    }
    for (i, p) in file.points.iter().enumerate() {
        tables.push((format!("points[{i}]"), "points", p.clone()));
    }
    if let Some(random) = &file.random {
        for (key, dist) in &random.space {
            dist.validate()
                .map_err(|e| format!("`random.space.{key}`: {e}"))?;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(random.seed);
        for _ in 0..random.samples {
            tables.push((
                "random.space".into(),
                "random.space",
                sample_params(&random.space, &mut rng),
            ));
        }
    }
    Ok(tables)
}

/// An invalid run's error, saying which point it is and where the value at fault came from:
/// this point's table, or else the defaults.
fn locate(e: ConfigError, at: &str, source_path: &str, table: &Table, sources: &Sources) -> String {
    let origin = if table.contains_key(&e.key) {
        sources.of(&format!("{source_path}.{}", e.key))
    } else {
        sources.of(&format!("defaults.{}", e.key))
    };
    let where_ = match at {
        _ if table.is_empty() => String::new(),
        "grid" => format!("grid point {}: ", describe(table)),
        _ => format!("{at}: "),
    };
    format!("{where_}{}", e.from_source(origin))
}

/// `key = value, ...` of a grid point, for messages.
fn describe(t: &Table) -> String {
    t.iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
