//! The shape of `src/` (issue 18), read from the source files alone: modules import only modules
//! below them, no two files import each other, and files and functions stay small. A new module,
//! a new upward import or a long function belongs here as a table entry with its reason, or fixed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules of `src/`, lowest layer first. A module may use modules of lower layers
/// only: never one of a higher layer, nor a peer in its own layer. Derived from
/// docs/architecture.md and issue 18's target shape; a name in a layer that `src/` does not have
/// is ignored, and a module of `src/` missing from the table fails the test.
const LAYERS: &[&[&str]] = &[
    // The one median and other statistics of plain numbers, used by search and estimates alike.
    &["stats"],
    // Leaves: this machine, stop signals, libtorch panics, device names, bf16, datasets, the
    // model, the pure search methods, and the formats of numbers, sizes and durations.
    &[
        "host",
        "panics",
        "signals",
        "device",
        "precision",
        "data",
        "model",
        "search",
        "format",
    ],
    // Files on disk and the metrics of a test set.
    &["fsio", "metrics"],
    // Plain data over files: safetensors, sample grids, the journal's events, run parameters.
    &["weights", "sample", "journal", "config"],
    // Run folders, the slots a sweep runs on (with the rule that caps them), and what a study's
    // space holds (which of its points are invalid).
    &["run_dir", "slots", "census"],
    // The training loop.
    &["train"],
    // Peers that must not know each other: a worker (`execute`) never opens the registry.
    &["execute", "registry", "interop"],
    // What reads the registry: estimates, reports, the MLflow sync. `report` formats through the
    // formats module, not through the coordinator's display.
    &["estimate", "report", "sync"],
    // The coordinator, and the dashboard (which must not reach into the coordinator).
    &["schedule", "serve"],
    // The commands, over everything.
    &["cli"],
];

/// Files allowed over `MAX_FILE_LINES` (tests aside), each with why it reads better whole.
const LONG_FILES: &[(&str, &str)] = &[];

/// Functions allowed over `MAX_FN_LINES`, as `file:fn name`, each with why it reads better whole.
const LONG_FNS: &[(&str, &str)] = &[];

const MAX_FILE_LINES: usize = 400;
const MAX_FN_LINES: usize = 80;

#[test]
fn no_module_imports_one_above_it_or_a_peer() {
    let files = sources();
    let rank = layer_ranks();
    let mut problems = Vec::new();
    let top_levels: BTreeSet<&str> = files
        .iter()
        .filter_map(|f| f.module.first().map(String::as_str))
        .collect();
    for m in &top_levels {
        if !rank.contains_key(m) {
            problems.push(format!(
                "module `{m}` is not in the LAYERS table of tests/it/structure.rs"
            ));
        }
    }
    for file in &files {
        let Some(from) = file.module.first() else { continue };
        let Some(&from_rank) = rank.get(from.as_str()) else {
            continue;
        };
        for (line, path) in &file.paths {
            let to = &path[0];
            if to == from {
                continue;
            }
            let Some(&to_rank) = rank.get(to.as_str()) else {
                // `crate::` paths name only modules; anything else is a macro or a re-export of
                // lib.rs, which has none today.
                continue;
            };
            if to_rank > from_rank {
                problems.push(format!(
                    "{}:{line}: `{from}` (layer {from_rank}) uses `crate::{}`, a module above it (layer {to_rank})",
                    file.rel,
                    path.join("::")
                ));
            } else if to_rank == from_rank {
                problems.push(format!(
                    "{}:{line}: `{from}` uses `crate::{}`, a peer in its own layer {from_rank}",
                    file.rel,
                    path.join("::")
                ));
            }
        }
    }
    assert_clean("modules that import upwards", problems);
}

#[test]
fn no_two_files_import_each_other() {
    let files = sources();
    let modules: BTreeMap<Vec<String>, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    let reexports = reexports(&files);
    // Edges between files, with the first line that makes each one. A file and the module files
    // above it (its `mod.rs` chain) always see each other (`mod x;` one way, `super::` the other),
    // so those pairs are left out; a name a `mod.rs` re-exports counts as its defining file.
    let mut edges: BTreeMap<usize, BTreeMap<usize, usize>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        for (line, path) in &file.paths {
            let Some(j) = resolve(path, &modules, &reexports) else {
                continue;
            };
            let other = &files[j].module;
            if j == i || other.starts_with(&file.module) || file.module.starts_with(other) {
                continue;
            }
            edges.entry(i).or_default().entry(j).or_insert(*line);
        }
    }
    let mut problems = Vec::new();
    for component in cycles(files.len(), &edges) {
        let mut lines = vec![format!(
            "these files import each other: {}",
            component
                .iter()
                .map(|&i| files[i].rel.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )];
        for &a in &component {
            for (&b, line) in edges.get(&a).into_iter().flatten() {
                if component.contains(&b) {
                    lines.push(format!("    {}:{line} uses {}", files[a].rel, files[b].rel));
                }
            }
        }
        problems.push(lines.join("\n"));
    }
    assert_clean("import cycles between files", problems);
}

#[test]
fn files_and_functions_stay_small() {
    let mut problems = Vec::new();
    for file in sources() {
        if file.code_lines > MAX_FILE_LINES && !LONG_FILES.iter().any(|(f, _)| *f == file.rel) {
            problems.push(format!(
                "{}: {} lines without its tests (at most {MAX_FILE_LINES})",
                file.rel, file.code_lines
            ));
        }
        for (line, name, len) in &file.functions {
            let key = format!("{}:{name}", file.rel);
            if *len > MAX_FN_LINES && !LONG_FNS.iter().any(|(f, _)| *f == key) {
                problems.push(format!(
                    "{}:{line}: fn {name} has {len} lines (at most {MAX_FN_LINES})",
                    file.rel
                ));
            }
        }
    }
    assert_clean("files and functions over the size limits", problems);
}

/// The exceptions tables name only what still exists and still needs the exception.
#[test]
fn the_exceptions_are_all_still_needed() {
    let files = sources();
    let mut problems = Vec::new();
    for (name, _) in LONG_FILES {
        match files.iter().find(|f| f.rel == *name) {
            None => problems.push(format!("LONG_FILES names {name}, which does not exist")),
            Some(f) if f.code_lines <= MAX_FILE_LINES => problems.push(format!(
                "LONG_FILES names {name}, which is {} lines now",
                f.code_lines
            )),
            Some(_) => {}
        }
    }
    for (key, _) in LONG_FNS {
        let found = files.iter().flat_map(|f| {
            f.functions
                .iter()
                .map(move |(_, n, len)| (format!("{}:{n}", f.rel), *len))
        });
        match found.filter(|(k, _)| k == key).map(|(_, len)| len).max() {
            None => problems.push(format!("LONG_FNS names {key}, which does not exist")),
            Some(len) if len <= MAX_FN_LINES => {
                problems.push(format!("LONG_FNS names {key}, which is {len} lines now"))
            }
            Some(_) => {}
        }
    }
    let named: BTreeSet<&str> = LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
    if named.len() != LAYERS.iter().map(|l| l.len()).sum::<usize>() {
        problems.push("a module is named twice in LAYERS".into());
    }
    assert_clean("stale entries in the tables of tests/it/structure.rs", problems);
}

/// The reader itself, on a made-up file: what counts as an import and how long things are.
#[test]
fn the_reader_sees_every_kind_of_import_and_measures_functions() {
    let text = r##"//! crate::commented::out is no import
use std::path::Path;
use crate::{alpha::A, beta};
use super::sibling::{self, S};
use super::super::uncle;
#[serde(deserialize_with = "crate::gamma::nan_if_null")]
struct X;
/* crate::blocked::out */
fn short() -> &'static str {
    let c = '{';
    let s = "} crate::delta::in_a_string {";
    let r = r#"}"#;
    s
}
pub fn caller() {
    crate::epsilon::call();
}
#[cfg(test)]
mod tests {
    use crate::zeta::only_in_tests;
    fn long_test_helper() {}
}
"##;
    let source = parse(
        "src/a/b/c.rs".into(),
        vec!["a".into(), "b".into(), "c".into()],
        text,
    );
    let paths: Vec<String> = source.paths.iter().map(|(_, p)| p.join("::")).collect();
    assert_eq!(
        paths,
        [
            "alpha::A",
            "beta",
            "a::b::sibling",
            "a::b::sibling::S",
            "a::uncle",
            "gamma::nan_if_null",
            "delta::in_a_string",
            "epsilon::call",
        ]
    );
    let lines: Vec<usize> = source.paths.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [3, 3, 4, 4, 5, 6, 11, 16]);
    let functions: Vec<(usize, &str, usize)> = source
        .functions
        .iter()
        .map(|(l, n, len)| (*l, n.as_str(), *len))
        .collect();
    assert_eq!(functions, [(9, "short", 6), (15, "caller", 3)]);
    assert_eq!(source.code_lines, text.lines().count() - 5);
}

fn assert_clean(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} {what}:\n{}\n",
        problems.len(),
        problems.join("\n")
    );
}

fn layer_ranks() -> BTreeMap<&'static str, usize> {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(rank, names)| names.iter().map(move |n| (*n, rank)))
        .collect()
}

/// One source file of the library, read for its structure (tests aside).
struct Source {
    /// Relative to the repository, as `src/config/expand.rs`.
    rel: String,
    /// Its module path below the crate root: `["config", "expand"]`; `[]` for lib.rs.
    module: Vec<String>,
    /// Every path into the crate it names outside its tests (`crate::…`, `super::…`, `self::…`
    /// resolved to absolute paths), with its line.
    paths: Vec<(usize, Vec<String>)>,
    /// Its lines without its `#[cfg(test)]` items.
    code_lines: usize,
    /// Each `fn` outside its tests: line, name, lines from the `fn` line to its closing brace.
    functions: Vec<(usize, String, usize)>,
    /// In a module file: the names it `use`s from its own modules, to the module path they
    /// come from (a `super::Name` in a child lands in the file that defines `Name`).
    reexports: Vec<(String, Vec<String>)>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library file in `src/` (not main.rs, which only calls `cli::main` through `pixelx::`),
/// and not files that are test modules themselves (`…/tests.rs`).
fn sources() -> Vec<Source> {
    let mut paths = Vec::new();
    collect_rs(&src_dir(), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(src_dir()).unwrap().to_string_lossy().into_owned();
            if rel == "main.rs" || rel == "tests.rs" || rel.ends_with("/tests.rs") {
                return None;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            Some(parse(format!("src/{rel}"), module_of(&rel), &text))
        })
        .collect()
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `config/expand.rs` → `[config, expand]`, `config/mod.rs` → `[config]`, `lib.rs` → `[]`.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn parse(rel: String, module: Vec<String>, text: &str) -> Source {
    let code = clean(text, false);
    let with_strings = clean(text, true);
    let tests = test_items(&code);
    let in_tests = |at: usize| tests.iter().any(|r| r.contains(&at));
    let line_starts: Vec<usize> = code.match_indices('\n').map(|(k, _)| k).collect();
    let line_of = |at: usize| line_starts.partition_point(|&k| k < at) + 1;
    let test_lines: usize = tests
        .iter()
        .map(|r| code[r.clone()].matches('\n').count() + 1)
        .sum();
    let code_lines = text.lines().count().saturating_sub(test_lines);
    // `mod.rs` and lib.rs are their module; `super` of a file is its folder's module.
    let is_module_file = rel.ends_with("/mod.rs") || rel == "src/lib.rs";
    let here: Vec<String> = if is_module_file {
        module.clone()
    } else {
        module[..module.len().saturating_sub(1)].to_vec()
    };

    let mut paths = Vec::new();
    for (at, path) in crate_paths(&with_strings, &module, &here) {
        if !in_tests(at) && !path.is_empty() {
            paths.push((line_of(at), path));
        }
    }
    let functions = functions(&code)
        .into_iter()
        .filter(|(at, ..)| !in_tests(*at))
        .map(|(at, name, end)| (line_of(at), name, line_of(end) - line_of(at) + 1))
        .collect();
    let reexports = if is_module_file {
        reexported_names(&code, &module)
    } else {
        Vec::new()
    };
    Source {
        rel,
        module,
        paths,
        code_lines,
        functions,
        reexports,
    }
}

/// The text with comments blanked and, inside string and char literals, every brace, quote and
/// comment marker blanked too (all of a literal's text unless `keep_strings`), so that braces can
/// be counted. Each character becomes as many bytes as it had and newlines stay, so offsets and
/// line numbers are the file's. With `keep_strings` a path in a serde attribute
/// (`deserialize_with = "crate::journal::…"`) stays readable: it is an import too.
fn clean(text: &str, keep_strings: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| {
        if c == '\n' {
            out.push('\n')
        } else {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()))
        }
    };
    let inert = |out: &mut String, c: char| {
        if keep_strings && !matches!(c, '{' | '}' | '"' | '\'' | '/' | '*') {
            out.push(c)
        } else {
            blank(out, c)
        }
    };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if let Some((start, hashes)) = raw_string_start(&chars, i) {
            // r"…", r#"…"#, br"…": no escapes, closed by a quote and as many #s.
            out.extend(&chars[i..start + hashes + 1]);
            i = start + hashes + 1;
            let closes =
                |at: usize| chars[at] == '"' && (0..hashes).all(|k| chars.get(at + 1 + k) == Some(&'#'));
            while i < chars.len() && !closes(i) {
                inert(&mut out, chars[i]);
                i += 1;
            }
            let end = (i + hashes + 1).min(chars.len());
            out.extend(&chars[i..end]);
            i = end;
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, '\\');
                    i += 1;
                    if i < chars.len() {
                        blank(&mut out, chars[i]);
                        i += 1;
                    }
                    continue;
                }
                inert(&mut out, chars[i]);
                i += 1;
            }
            if i < chars.len() {
                out.push('"');
                i += 1;
            }
        } else if c == '\'' && !(i > 0 && ident(chars[i - 1])) {
            // A char literal ('x', '\n', '\'', '\u{7f}'), else a lifetime or a label.
            let end = if next == Some('\\') {
                (i + 3..chars.len()).find(|&k| chars[k] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    out.push('\'');
                    for &ch in &chars[i + 1..end] {
                        blank(&mut out, ch);
                    }
                    out.push('\'');
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// If a raw string opens at `i` (`r"`, `r#"`, `br#"`…, not in the middle of a word): the index
/// just after its `r` and the number of its `#`s.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let start = match (chars[i], chars.get(i + 1)) {
        ('r', _) => i + 1,
        ('b', Some('r')) => i + 2,
        _ => return None,
    };
    let hashes = chars[start.min(chars.len())..]
        .iter()
        .take_while(|&&c| c == '#')
        .count();
    (chars.get(start + hashes) == Some(&'"')).then_some((start, hashes))
}

/// Byte ranges of the `#[cfg(test)]` items (the attribute to the item's closing brace or `;`).
fn test_items(code: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("#[cfg(test)]") {
        let start = from + found;
        let after = start + "#[cfg(test)]".len();
        let open = code[after..].find(['{', ';']).map(|k| after + k);
        let end = match open {
            Some(k) if code.as_bytes()[k] == b'{' => matching_brace(code, k),
            Some(k) => k,
            None => code.len() - 1,
        };
        ranges.push(start..end + 1);
        from = end + 1;
    }
    ranges
}

/// The index of the `}` closing the `{` at `open` (the end of the text if it never closes).
fn matching_brace(code: &str, open: usize) -> usize {
    let mut depth = 0usize;
    for (k, b) in code.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    code.len() - 1
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every `crate::`, `super::` and `self::` path of the text, as (byte offset, absolute module
/// path below the crate root). A group (`crate::{a, b::c}`) gives one path per member.
/// `module` is the file's module path, `here` the module `super::` is relative to.
fn crate_paths(code: &str, module: &[String], here: &[String]) -> Vec<(usize, Vec<String>)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if (i > 0 && (is_ident_byte(bytes[i - 1]) || bytes[i - 1] == b':')) || !is_ident_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let (word, mut j) = ident_at(code, i);
        let mut base: Vec<String> = match word {
            "crate" => Vec::new(),
            "self" => module.to_vec(),
            "super" => here.to_vec(),
            _ => {
                i = j.max(i + 1);
                continue;
            }
        };
        if !code[j..].starts_with("::") {
            i = j;
            continue;
        }
        j += 2;
        // Further `super::`s climb one module each.
        while code[j..].starts_with("super::") {
            base.pop();
            j += "super::".len();
        }
        for (rest, _) in path_tails(code, j) {
            let mut path = base.clone();
            path.extend(rest);
            out.push((i, path));
        }
        i = j;
    }
    out
}

fn ident_at(code: &str, at: usize) -> (&str, usize) {
    let end = at + code[at..].bytes().take_while(|&b| is_ident_byte(b)).count();
    (&code[at..end], end)
}

/// The paths that start at `at` (after a `::`): `a::b::C` gives `[a, b, C]`, a group
/// `{a::B, c}` gives each member's path; `self` in a group stands for the path so far.
fn path_tails(code: &str, at: usize) -> Vec<(Vec<String>, usize)> {
    let skip_ws = |k: usize| k + code[k..].bytes().take_while(|b| b.is_ascii_whitespace()).count();
    let mut k = skip_ws(at);
    let mut prefix = Vec::new();
    loop {
        if code[k..].starts_with('{') {
            let close = matching_brace(code, k);
            let mut paths = Vec::new();
            for member in split_top_level(&code[k + 1..close]) {
                let offset = k + 1 + member.0;
                for (tail, _) in path_tails(code, offset) {
                    let mut p = prefix.clone();
                    p.extend(tail.into_iter().filter(|s| s != "self"));
                    paths.push((p, close + 1));
                }
            }
            return paths;
        }
        let (word, end) = ident_at(code, k);
        if word.is_empty() {
            return vec![(prefix, k)];
        }
        prefix.push(word.to_owned());
        if code[end..].starts_with("::") {
            k = skip_ws(end + 2);
        } else {
            return vec![(prefix, end)];
        }
    }
}

/// The comma-separated members of a use group, as (offset, text), nested groups kept whole.
fn split_top_level(group: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, b) in group.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b',' if depth == 0 => {
                out.push((start, &group[start..k]));
                start = k + 1;
            }
            _ => {}
        }
    }
    out.push((start, &group[start..]));
    out.into_iter()
        .map(|(s, t)| {
            let lead = t.len() - t.trim_start().len();
            (s + lead, t.trim())
        })
        .filter(|(_, t)| !t.is_empty())
        .collect()
}

/// Each `fn` item: (offset of `fn`, name, offset of its closing brace). Declarations without a
/// body (trait methods ending in `;`) and `fn(…)` pointer types are left out.
fn functions(code: &str) -> Vec<(usize, String, usize)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("fn ") {
        let at = from + found;
        from = at + 3;
        if at > 0 && is_ident_byte(bytes[at - 1]) {
            continue;
        }
        let name_at = from
            + code[from..]
                .bytes()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
        let (name, _) = ident_at(code, name_at);
        if name.is_empty() {
            continue;
        }
        let Some(open) = code[name_at..].find(['{', ';']).map(|k| name_at + k) else {
            continue;
        };
        if bytes[open] == b';' {
            continue;
        }
        out.push((at, name.to_owned(), matching_brace(code, open)));
    }
    out
}

/// In a `mod.rs`/lib.rs: the names it brings in from its own modules with `use` (public or not:
/// a child sees its parent's private imports through `super::`), as (name, the module path
/// each comes from). `use child::{A, B}`, `use self::child::A`, `use child::A as B`; whether
/// `child` is a module is decided by [`reexports`].
fn reexported_names(code: &str, module: &[String]) -> Vec<(String, Vec<String>)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("use ") {
        let at = from + found;
        from = at + "use ".len();
        if at > 0 && is_ident_byte(bytes[at - 1]) {
            continue;
        }
        let mut start = from;
        if code[start..].starts_with("self::") {
            start += "self::".len();
        }
        if ["crate::", "super::", "std::", "core::", "alloc::", "::"]
            .iter()
            .any(|p| code[start..].starts_with(p))
        {
            continue;
        }
        for (path, end) in path_tails(code, start) {
            if path.len() < 2 {
                continue;
            }
            // `A as B` names B.
            let rest = code[end..].trim_start();
            let name = match rest.strip_prefix("as ") {
                Some(r) => ident_at(r.trim_start(), 0).0.to_owned(),
                None => path.last().unwrap().clone(),
            };
            let mut source = module.to_vec();
            source.extend(path[..path.len() - 1].iter().cloned());
            out.push((name, source));
        }
    }
    out
}

/// (module path, name) → the module path a `mod.rs` re-exported the name from.
type Reexports = BTreeMap<(Vec<String>, String), Vec<String>>;

fn reexports(files: &[Source]) -> Reexports {
    let modules: BTreeSet<&Vec<String>> = files.iter().map(|f| &f.module).collect();
    files
        .iter()
        .flat_map(|f| f.reexports.iter().map(move |(name, from)| (f, name, from)))
        // Only names brought in from a module of the crate (not `use serde::Deserialize`).
        .filter(|(f, _, from)| modules.contains(&from[..=f.module.len()].to_vec()))
        .map(|(f, name, from)| ((f.module.clone(), name.clone()), from.clone()))
        .collect()
}

/// The file an absolute path lands in: its longest module prefix, followed through re-exports.
fn resolve(path: &[String], modules: &BTreeMap<Vec<String>, usize>, reexports: &Reexports) -> Option<usize> {
    let mut path = path.to_vec();
    for _ in 0..8 {
        let len = (0..=path.len())
            .rev()
            .find(|&n| modules.contains_key(&path[..n]))?;
        let module = path[..len].to_vec();
        match path
            .get(len)
            .and_then(|name| reexports.get(&(module.clone(), name.clone())))
        {
            Some(source) => {
                let mut next = source.clone();
                next.extend(path[len..].iter().cloned());
                path = next;
            }
            None => return modules.get(&module).copied(),
        }
    }
    None
}

/// The strongly connected components of more than one file (Tarjan's algorithm).
fn cycles(n: usize, edges: &BTreeMap<usize, BTreeMap<usize, usize>>) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a BTreeMap<usize, BTreeMap<usize, usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        let targets: Vec<usize> = s
            .edges
            .get(&v)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        for w in targets {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}
