//! `pixelx completions` and `pixelx man`: shell completion scripts (clap_complete) whose run-id
//! arguments complete from the registry in bash and fish, and manual pages (clap_mangen).
//!
//! Dynamic completion goes through a hidden `pixelx __complete-runs PREFIX`, which the scripts
//! call with the `--runs-dir`/`--registry` given on the command line being completed. It opens
//! the registry read-only, as it is, and prints nothing when there is none.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;
use crate::registry::Registry;

/// The hidden command the completion scripts call for run ids.
pub const COMPLETE_RUNS: &str = "__complete-runs";

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write pixelx.1 and a page per command (pixelx-run.1, ...) into this folder instead of
    /// printing pixelx.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Subcommands whose positional `run_id` names a run, as clap knows them.
fn run_id_commands(cmd: &clap::Command) -> Vec<String> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .filter(|s| s.get_positionals().any(|a| a.get_id() == "run_id"))
        .map(|s| s.get_name().to_owned())
        .collect()
}

/// Every spelling (`-o`, `--output-fname`, aliases) of those of `args` that are options taking a value.
fn value_flags<'a>(args: impl Iterator<Item = &'a clap::Arg>) -> Vec<String> {
    let mut flags = Vec::new();
    for a in args.filter(|a| !a.is_positional() && a.get_action().takes_values()) {
        flags.extend(
            a.get_short_and_visible_aliases()
                .into_iter()
                .flatten()
                .map(|c| format!("-{c}")),
        );
        flags.extend(
            a.get_long_and_visible_aliases()
                .into_iter()
                .flatten()
                .map(|l| format!("--{l}")),
        );
    }
    flags
}

/// Bash: wraps clap's `_pixelx` so that, where a run id goes (the first positional of a
/// command that takes one, not an option's value), the candidates are the registry's run ids.
fn bash_run_ids(cmd: &clap::Command) -> String {
    let commands = run_id_commands(cmd);
    let global = value_flags(cmd.get_arguments()).join(" ");
    let mut cases = String::new();
    for name in &commands {
        let sub = cmd.find_subcommand(name).expect("listed above");
        let _ = writeln!(
            cases,
            "        {name}) echo \"{}\" ;;",
            value_flags(sub.get_arguments()).join(" ")
        );
    }
    format!(
        r#"
# Run ids complete from the registry: `pixelx {COMPLETE_RUNS}` reads it read-only (never creating
# it), from the --runs-dir/--registry given on the line or PIXELX_RUNS_DIR/PIXELX_REGISTRY.
_pixelx_value_flags() {{
    echo "{global}"
    case "$1" in
{cases}    esac
}}

_pixelx_with_run_ids() {{
    _pixelx "$@"
    local cur="${{COMP_WORDS[COMP_CWORD]}}" sub="" positionals=0 i=1 word value
    local -a location=()
    [[ $cur == -* ]] && return 0
    while (( i < COMP_CWORD )); do
        word="${{COMP_WORDS[i]}}"
        i=$(( i + 1 ))
        if [[ $word == -* && $word != *=* ]] && [[ " $(_pixelx_value_flags "$sub") " == *" $word "* ]]; then
            # The option's value: the next word, or the one after a lone `=` (COMP_WORDBREAKS).
            [[ ${{COMP_WORDS[i]}} == "=" ]] && i=$(( i + 1 ))
            (( i >= COMP_CWORD )) && return 0
            value="${{COMP_WORDS[i]}}"
            i=$(( i + 1 ))
            case "$word" in
                --runs-dir|--registry) location+=("$word" "$value") ;;
            esac
        elif [[ $word == --runs-dir=* || $word == --registry=* ]]; then
            location+=("$word")
        elif [[ $word != -* ]]; then
            if [[ -z $sub ]]; then sub=$word; else positionals=$(( positionals + 1 )); fi
        fi
    done
    [[ ${{COMP_WORDS[COMP_CWORD-1]}} == "=" ]] && return 0
    case " {commands} " in
        *" $sub "*) ;;
        *) return 0 ;;
    esac
    (( positionals == 0 )) || return 0
    local ids
    ids=$("${{COMP_WORDS[0]}}" "${{location[@]}}" {COMPLETE_RUNS} "$cur" 2>/dev/null) || return 0
    COMPREPLY=($(compgen -W "$ids" -- "$cur"))
}}

if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F _pixelx_with_run_ids -o nosort -o bashdefault -o default pixelx
else
    complete -F _pixelx_with_run_ids -o bashdefault -o default pixelx
fi
"#,
        commands = commands.join(" "),
    )
}

/// Fish: run ids for the commands that take one (fish filters them by the typed prefix).
fn fish_run_ids(cmd: &clap::Command) -> String {
    format!(
        "\n# Run ids from the registry, read-only.\ncomplete -c pixelx -n \"__fish_seen_subcommand_from {}\" \
         -f -a \"(pixelx {COMPLETE_RUNS} (commandline -ct) 2>/dev/null)\"\n",
        run_id_commands(cmd).join(" ")
    )
}

/// The command line without its hidden commands (`worker`, `__complete-runs`), which
/// clap_complete would otherwise offer among the subcommands.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    clap::Command::new("pixelx")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

pub fn completions(args: &CompletionsArgs) -> Result<()> {
    let mut cmd = visible_command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "pixelx", &mut script);
    let mut script = String::from_utf8(script).context("clap_complete wrote a non-UTF-8 script")?;
    match args.shell {
        Shell::Bash => script += &bash_run_ids(&cmd),
        Shell::Fish => script += &fish_run_ids(&cmd),
        _ => {}
    }
    print!("{script}");
    Ok(())
}

pub fn man(args: &ManArgs) -> Result<()> {
    let cmd = Cli::command();
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
            println!("wrote manual pages into {}", dir.display());
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            std::io::Write::write_all(&mut std::io::stdout(), &page)?;
        }
    }
    Ok(())
}

/// Prints the ids of the registry's runs that start with `prefix`, one a line. Anything that is
/// not a run id prefix, or a registry that does not exist, gives no candidates.
pub fn complete_runs(cli: &Cli, prefix: &str) -> Result<()> {
    if !prefix.is_empty() && crate::run_dir::check_run_id(prefix).is_err() {
        return Ok(());
    }
    let path = cli.registry_path();
    if !path.is_file() {
        return Ok(());
    }
    let registry = Registry::open_read_only_as_is(&path)?;
    for id in registry.find_runs(prefix)? {
        println!("{id}");
    }
    Ok(())
}
