//! Where each configuration value came from (the file, a `PIXELX_*` variable, `--set`, a flag),
//! so that an error names the place to fix, and serde's messages in words a user reads.

use std::collections::BTreeMap;

use super::keys::RUN_KEYS;

/// The origin of one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The experiment file, by its path.
    File(String),
    /// An environment variable, by name.
    Env(String),
    /// A `--set KEY=VALUE` override, as written.
    Set(String),
    /// A command-line flag, e.g. `--hidden-ksize 4`.
    Flag(String),
    /// pixelx's built-in default.
    Default,
}

impl Source {
    /// ` (from X)` for a message that already names the experiment file: nothing when the value
    /// came from that file.
    pub fn note(&self) -> String {
        match self {
            Source::File(_) => String::new(),
            other => format!(" ({other})"),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "from {path}"),
            Source::Env(var) => write!(f, "from {var}"),
            Source::Set(text) => write!(f, "from --set {text}"),
            Source::Flag(flag) => write!(f, "from {flag}"),
            Source::Default => f.write_str("built-in default"),
        }
    }
}

/// The origin of every value that did not come from the file, by dotted path
/// (`defaults.learning_rate`, `scheduler.devices`, `grid.seed`).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    file: Option<String>,
    by_path: BTreeMap<String, Source>,
}

impl Sources {
    pub fn new(file: Option<String>) -> Self {
        Self {
            file,
            by_path: BTreeMap::new(),
        }
    }

    pub fn set(&mut self, path: &str, source: Source) {
        self.by_path.insert(path.to_owned(), source);
    }

    /// Where the value at `path` came from: an override of it or of a table above it, else the
    /// file (or the built-in default when there is no file).
    pub fn of(&self, path: &str) -> Source {
        let mut prefix = path;
        loop {
            if let Some(s) = self.by_path.get(prefix) {
                return s.clone();
            }
            match prefix.rsplit_once('.') {
                Some((up, _)) => prefix = up,
                None => break,
            }
        }
        match &self.file {
            Some(f) => Source::File(f.clone()),
            None => Source::Default,
        }
    }
}

/// `PIXELX_<RUN KEY>` variables set in the environment: (run key, value, variable name). Values
/// are read as TOML (`3`, `1e-3`, `"cpu"`, `[1, 2]`), else taken as plain strings.
pub fn env_run_values() -> Vec<(String, toml::Value, String)> {
    let mut out = Vec::new();
    for key in RUN_KEYS {
        let var = format!("PIXELX_{}", key.to_uppercase());
        let alias = ENV_ALIASES
            .iter()
            .find(|(_, k)| *k == key)
            .map(|(a, _)| format!("PIXELX_{a}"));
        // The full name wins over an alias when both are set.
        let found = std::iter::once(var)
            .chain(alias)
            .find_map(|v| std::env::var(&v).ok().map(|text| (text, v)));
        if let Some((text, var)) = found {
            out.push((key.to_owned(), parse_value(&text), var));
        }
    }
    out
}

/// Short names of run parameters, as the original's flags have them (`--lr`): `PIXELX_LR`.
const ENV_ALIASES: [(&str, &str); 1] = [("LR", "learning_rate")];

/// Other `PIXELX_*` variables pixelx reads (not run parameters).
const KNOWN_VARS: [&str; 6] = [
    "RUNS_DIR",
    "REGISTRY",
    "DATA_DIR",
    "THREADS",
    "CIFAR_DIR",
    "PYTHON",
];

/// `PIXELX_*` variables that look like a misspelt run parameter, with the likely one: they
/// would otherwise be ignored without a word.
pub fn misspelt_env_vars() -> Vec<(String, String)> {
    std::env::vars()
        .filter_map(|(var, _)| {
            let key = var.strip_prefix("PIXELX_")?.to_lowercase();
            let upper = key.to_uppercase();
            if RUN_KEYS.contains(&key.as_str())
                || KNOWN_VARS.contains(&upper.as_str())
                || ENV_ALIASES.iter().any(|(a, _)| *a == upper)
            {
                return None;
            }
            let (distance, near) = RUN_KEYS
                .iter()
                .map(|k| (strsim::levenshtein(&key, k), *k))
                .min()?;
            (distance <= 2).then(|| (var.clone(), format!("PIXELX_{}", near.to_uppercase())))
        })
        .collect()
}

/// A value as TOML when it parses as one, else the text as a string.
pub fn parse_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// serde's type errors in a user's words: "invalid type: string "x", expected f64" becomes
/// "expected a number, got the string "x"".
pub fn humanize(message: &str) -> String {
    let message = message.trim();
    let kind = |expected: &str| -> String {
        let e = expected.trim().trim_matches('`');
        match e {
            "f64" | "f32" => "a number".into(),
            "u8" | "u16" | "u32" | "u64" | "usize" => "an integer ≥ 0".into(),
            "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
            "a boolean" | "bool" => "true or false".into(),
            other => other.to_owned(),
        }
    };
    // figment's `unknown variant: found `x`, expected `one of `a`, `b``.
    if let Some(rest) = message.strip_prefix("unknown variant: found ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            let expected = expected
                .strip_prefix('`')
                .and_then(|e| e.strip_suffix('`'))
                .unwrap_or(expected);
            return format!("unknown variant {found}, expected {expected}");
        }
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let rest = rest.strip_prefix("found ").unwrap_or(rest);
            if let Some((got, expected)) = rest.split_once(", expected ") {
                let expected = expected.lines().next().unwrap_or(expected);
                let got = got.replacen("string ", "the string ", 1);
                return format!("expected {}, got {got}", kind(expected));
            }
        }
    }
    message.lines().next().unwrap_or(message).to_owned()
}

/// The nearest valid name, when one is close enough to be a likely typo.
pub fn suggest(key: &str, valid: &[&str]) -> String {
    valid
        .iter()
        .map(|v| (strsim::levenshtein(key, v), v))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, v)| format!("; did you mean `{v}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_read_as_words() {
        assert_eq!(
            humanize("invalid type: string \"fast\", expected f64"),
            "expected a number, got the string \"fast\""
        );
        assert_eq!(
            humanize("invalid type: found string \"x\", expected usize"),
            "expected an integer ≥ 0, got the string \"x\""
        );
        assert_eq!(
            humanize("unknown variant `fp16`, expected one of `auto`, `fp32`, `bf16`"),
            "unknown variant `fp16`, expected one of `auto`, `fp32`, `bf16`"
        );
        assert_eq!(
            humanize("unknown variant: found `svhn`, expected `one of `mnist`, `cifar``"),
            "unknown variant `svhn`, expected one of `mnist`, `cifar`"
        );
    }

    #[test]
    fn sources_fall_back_to_the_table_above_and_the_file() {
        let mut s = Sources::new(Some("e.toml".into()));
        s.set("grid", Source::Set("grid={...}".into()));
        s.set("defaults.epochs", Source::Env("PIXELX_EPOCHS".into()));
        assert_eq!(s.of("grid.seed"), Source::Set("grid={...}".into()));
        assert_eq!(s.of("defaults.epochs"), Source::Env("PIXELX_EPOCHS".into()));
        assert_eq!(s.of("defaults.seed"), Source::File("e.toml".into()));
    }
}
