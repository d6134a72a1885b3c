//! `--set key=value` overrides and the layering of values: built-in defaults < the file <
//! `PIXELX_<PARAM>` environment variables < `--set`, each value remembered with where it came
//! from so that an error can say so.

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;

use super::keys::{keys_under, RUN_KEYS};
use super::schema::{check_structure, ExperimentFile};
use super::sources::{env_run_values, humanize, parse_value, suggest, Source, Sources};

/// One `--set` argument: the dotted path it sets, its value, and the argument as given.
pub(super) struct Override<'a> {
    path: String,
    value: toml::Value,
    given: &'a String,
}

/// Parses every `--set` argument, stopping at the first bad one.
pub(super) fn parse_all(overrides: &[String]) -> Result<Vec<Override<'_>>, String> {
    overrides
        .iter()
        .map(|given| parse_override(given).map(|(path, value)| Override { path, value, given }))
        .collect()
}

/// Parses a `--set key=value` override: `key` is a run parameter (meaning `defaults.key`) or a
/// dotted path; `value` is read as TOML, falling back to a plain string.
pub fn parse_override(s: &str) -> Result<(String, toml::Value), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("--set {s}: expected KEY=VALUE"))?;
    let key = key.trim();
    let path = if RUN_KEYS.contains(&key) {
        format!("defaults.{key}")
    } else if key.contains('.') {
        check_override_path(key)?;
        key.to_owned()
    } else if keys_under("").is_some_and(|s| s.contains(&key)) {
        key.to_owned()
    } else {
        return Err(format!("--set: unknown key `{key}`{}", suggest(key, &RUN_KEYS)));
    };
    check_integer_range(key, value)?;
    Ok((path, parse_value(value)))
}

/// Checks the path of a `--set` key against the file's structure.
fn check_override_path(path: &str) -> Result<(), String> {
    let (parent, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    match keys_under(parent) {
        Some(valid) if !valid.contains(&leaf) => {
            Err(format!("--set: unknown key `{path}`{}", suggest(leaf, valid)))
        }
        Some(_) => Ok(()),
        None => Err(format!("--set: `{parent}` holds no keys")),
    }
}

/// TOML integers are 64-bit: a longer one would otherwise be read as a string and reported as
/// "expected an integer, got the string".
fn check_integer_range(key: &str, value: &str) -> Result<(), String> {
    let text = value.trim();
    // TOML allows `1_000`; Rust's parser does not.
    let plain = text.replace('_', "");
    let digits = plain.strip_prefix(['-', '+']).unwrap_or(&plain);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || plain.parse::<i64>().is_ok() {
        return Ok(());
    }
    let bound = if text.starts_with('-') {
        format!("too small (at least {})", i64::MIN)
    } else {
        format!("too large (at most {})", i64::MAX)
    };
    Err(format!("--set {key}: {text} is {bound}"))
}

/// Puts the overrides that hold tables (and arrays of them, `points=[{...}]`) into the
/// document, so that their keys are checked, with suggestions, as the file's are. Returns the
/// text to layer: the file as read, or the document with those tables when there are any.
pub(super) fn apply_tables(
    doc: &mut toml::Table,
    text: String,
    overrides: &[Override],
) -> Result<String, String> {
    let holds_tables = |value: &toml::Value| {
        value.is_table()
            || value
                .as_array()
                .is_some_and(|a| a.iter().any(toml::Value::is_table))
    };
    if !overrides.iter().any(|o| holds_tables(&o.value)) {
        return Ok(text);
    }
    for o in overrides.iter().filter(|o| holds_tables(&o.value)) {
        replace_at(doc, &o.path, o.value.clone());
    }
    check_structure(doc)?;
    toml::to_string(doc).map_err(|e| format!("cannot apply --set: {e}"))
}

/// Puts `value` at the dotted `path` of `doc`, replacing what was there (creating tables on the
/// way). A table given to `--set` replaces the file's table instead of merging into it, so that
/// `--set 'search.space.x={ choice = [8] }'` reshapes an axis written as `{ int = [...] }`.
fn replace_at(doc: &mut toml::Table, path: &str, value: toml::Value) {
    let (parents, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    let mut table = doc;
    for part in parents.split('.').filter(|p| !p.is_empty()) {
        let entry = table
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        table = entry.as_table_mut().expect("made a table just above");
    }
    table.insert(leaf.to_owned(), value);
}

/// The file `text` (named `file` in messages) under the `PIXELX_*` variables and the `--set`
/// overrides, deserialised, with where each value came from.
pub(super) fn layer(
    text: &str,
    file: &str,
    overrides: Vec<Override>,
) -> Result<(ExperimentFile, Sources), String> {
    let mut sources = Sources::new(Some(file.to_owned()));
    let mut figment = Figment::from(Toml::string(text));
    for (key, value, var) in env_run_values() {
        let path = format!("defaults.{key}");
        figment = figment.merge(Serialized::global(&path, value));
        sources.set(&path, Source::Env(var));
    }
    // Tables replaced the file's above; merged again here so that they win over PIXELX_*.
    for o in overrides {
        figment = figment.merge(Serialized::global(&o.path, o.value));
        sources.set(&o.path, Source::Set(o.given.clone()));
    }
    let file: ExperimentFile = figment.extract().map_err(|e| {
        let e = e.into_iter().next().map(|e| {
            let path = e.path.join(".");
            let kind = humanize(&e.kind.to_string());
            if path.is_empty() {
                kind
            } else {
                format!("`{path}`{}: {kind}", sources.of(&path).note())
            }
        });
        e.unwrap_or_else(|| "invalid experiment file".into())
    })?;
    Ok((file, sources))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_paths_are_checked_with_suggestions() {
        assert_eq!(parse_override("epochs=3").unwrap().0, "defaults.epochs");
        assert!(parse_override("learning_rat=3")
            .unwrap_err()
            .contains("did you mean `learning_rate`"));
        assert!(parse_override("scheduler.runs_per_devic=2")
            .unwrap_err()
            .contains("did you mean `runs_per_device`"));
        assert!(parse_override("scheduler.slurm.partition=gpu").is_ok());
        assert!(parse_override("grid.seed=[1, 2]").is_ok());
        assert!(parse_override("grid.sed=[1, 2]").unwrap_err().contains("`seed`"));
    }

    #[test]
    fn set_says_an_integer_is_out_of_range_and_keeps_the_ones_toml_reads() {
        let big = parse_override("search.trials=18446744073709551615").unwrap_err();
        assert!(big.contains("too large"), "{big}");
        let small = parse_override("seed=-9223372036854775809").unwrap_err();
        assert!(small.contains("too small"), "{small}");
        for ok in [
            "seed=1_000",
            "seed=+5",
            "seed=-9223372036854775808",
            "device=cpu",
            "seed=1e3",
        ] {
            assert!(parse_override(ok).is_ok(), "{ok}");
        }
    }
}
