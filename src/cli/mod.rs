//! The command line: argument definitions and dispatch. Each command is a thin call into the
//! library; errors are reported once, with their context chain, and a non-zero exit.

mod args;
mod exit;
mod model_cmds;
mod recorded;
mod report_cmds;
mod run_cmd;
mod serve_cmd;
mod shell_cmds;
mod sweep_view;
mod sync_cmd;
mod train_bar;
mod train_cmd;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

pub use args::{ArchArgs, DeviceArgs, ModelSource, TrainArgs};
pub use exit::{Interrupted, WorkerBusy, WorkerStopped};

use crate::registry::Registry;

#[derive(Parser, Debug)]
#[command(
    name = "pixelx",
    version,
    about = "Gated PixelCNN experiments: sweep, train, compare, sample, evaluate, export"
)]
pub struct Cli {
    /// Folder holding run folders and, by default, the registry.
    #[arg(long, global = true, env = "PIXELX_RUNS_DIR", default_value = "runs")]
    pub runs_dir: PathBuf,
    /// The SQLite registry (default: <runs-dir>/registry.sqlite).
    #[arg(long, global = true, env = "PIXELX_REGISTRY")]
    pub registry: Option<PathBuf>,
    /// Folder holding the datasets (`just setup` fills it).
    #[arg(long, global = true, env = "PIXELX_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Torch threads for this process (0 = torch's default).
    #[arg(long, global = true, env = "PIXELX_THREADS", default_value_t = 0,
          value_parser = clap::value_parser!(i32).range(0..=4096))]
    pub threads: i32,
    /// Only warnings and errors; no progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Expand an experiment file's grid (or run its adaptive search), schedule its runs over the
    /// devices or a Slurm cluster, record everything. Running a file again finishes what is
    /// unfinished.
    Run(run_cmd::RunArgs),
    /// Compare runs: a table, the best runs, or an HTML page.
    Report(report_cmds::ReportArgs),
    /// List runs.
    Ls,
    /// One run in full: config, history, metrics, artefacts.
    Show { run_id: String },
    /// Train one model (the original train.py flags), recorded in its own run folder.
    Train(TrainArgs),
    /// Continue a run from its last intact checkpoint to its configured end.
    Resume {
        run_id: String,
        /// Continue a run that was pruned or diverged, too.
        #[arg(long)]
        force: bool,
    },
    /// Generate a PNG grid of samples from a run or a checkpoint (the original sample.py flags).
    Sample(model_cmds::SampleArgs),
    /// Test-set nll, bpd and bpd8 of a run or a checkpoint.
    Eval(model_cmds::EvalArgs),
    /// Write a run's weights in the reference layout as safetensors, config in the metadata.
    Export(model_cmds::ExportArgs),
    /// A local web dashboard over the registry, updating live while sweeps run (read-only).
    Serve(serve_cmd::ServeArgs),
    /// Read reference-layout safetensors weights (e.g. from the PyTorch original) into a new run.
    Import(model_cmds::ImportArgs),
    /// A shell completion script on stdout (run ids complete from the registry in bash and fish).
    Completions(shell_cmds::CompletionsArgs),
    /// The manual page (roff) on stdout, or every command's page into a folder.
    Man(shell_cmds::ManArgs),
    /// Run ids starting with PREFIX, one a line, for the completion scripts.
    #[command(name = shell_cmds::COMPLETE_RUNS, hide = true)]
    CompleteRuns { prefix: Option<String> },
    /// Push runs to an experiment tracker (MLflow), sending only what is new.
    #[command(subcommand)]
    Sync(sync_cmd::SyncTarget),
    /// Train one run in its folder (started by `pixelx run`, one process or Slurm job per run).
    #[command(hide = true)]
    Worker {
        run_id: String,
        #[arg(long)]
        device: Option<String>,
        /// Wait for the coordinator's pruning decision after each epoch.
        #[arg(long)]
        ask_before_epoch: bool,
    },
}

impl Cli {
    pub fn registry_path(&self) -> PathBuf {
        self.registry
            .clone()
            .unwrap_or_else(|| Registry::default_path(&self.runs_dir))
    }

    /// Paths no output a user names may replace.
    pub fn protected(&self) -> crate::fsio::Protected {
        crate::fsio::Protected {
            registry: self.registry_path(),
            runs_dir: self.runs_dir.clone(),
        }
    }
}

/// Parses arguments, runs the command, and ends as `exit::leave` decides (the one place exit
/// codes are decided).
pub fn main() -> ! {
    // Rust ignores SIGPIPE, which turns `pixelx report | head` into a panic on the next print;
    // a command-line tool should just stop, as any Unix filter does.
    // SAFETY: resetting a signal disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    crate::panics::install_hook();
    let cli = Cli::parse();
    // Before anything asks libtorch about CUDA (it keeps its first answer).
    if let Some(warning) = crate::device::load_cuda_backend_warning() {
        eprintln!("{warning}");
    }
    if cli.threads > 0 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cli.threads as usize > cores {
            eprintln!(
                "warning: --threads {} is more than this machine's {cores} cores; the threads will \
                 take turns on them, which is slower than {cores}",
                cli.threads
            );
        }
        tch::set_num_threads(cli.threads);
    }
    let result = dispatch(&cli);
    drop(cli);
    exit::leave(result)
}

fn dispatch(cli: &Cli) -> Result<()> {
    // Commands that train set up logging themselves, once they know the run's log file.
    if !matches!(
        cli.command,
        Command::Train(_) | Command::Resume { .. } | Command::Worker { .. }
    ) {
        init_logging(cli.quiet, None);
    }
    if matches!(cli.command, Command::Run(_) | Command::Train(_)) {
        for (var, likely) in crate::config::misspelt_env_vars() {
            eprintln!("warning: {var} is not a pixelx setting and is ignored; did you mean {likely}?");
        }
    }
    // Every command but the worker (which never opens it) reads or writes the registry, a dry
    // run its history: a folder given as one is named as such, not as missing or unopenable.
    if !matches!(cli.command, Command::Worker { .. }) {
        crate::registry::check_not_folder(&cli.registry_path())?;
    }
    match &cli.command {
        Command::Train(args) => train_cmd::train(cli, args)?,
        Command::Resume { run_id, force } => train_cmd::resume(cli, run_id, *force)?,
        Command::Worker {
            run_id,
            device,
            ask_before_epoch,
        } => train_cmd::worker(cli, run_id, device.as_deref(), *ask_before_epoch)?,
        Command::Run(args) => run_cmd::run(cli, args)?,
        Command::Report(args) => report_cmds::report(cli, args)?,
        Command::Ls => report_cmds::ls(cli)?,
        Command::Show { run_id } => report_cmds::show(cli, run_id)?,
        Command::Sample(args) => model_cmds::sample(cli, args)?,
        Command::Eval(args) => model_cmds::eval(cli, args)?,
        Command::Export(args) => model_cmds::export(cli, args)?,
        Command::Import(args) => model_cmds::import(cli, args)?,
        Command::Serve(args) => serve_cmd::serve(cli, args)?,
        Command::Completions(args) => shell_cmds::completions(args)?,
        Command::Man(args) => shell_cmds::man(args)?,
        Command::CompleteRuns { prefix } => shell_cmds::complete_runs(cli, prefix.as_deref().unwrap_or(""))?,
        Command::Sync(target) => sync_cmd::sync(cli, target)?,
    }
    Ok(())
}

/// The one resolver of run ids every command uses: a full id or an unambiguous prefix, checked
/// to be an id at all before the registry (opened read-only) is asked.
pub fn resolve_run_id(cli: &Cli, given: &str) -> Result<String> {
    crate::run_dir::check_run_id(given)?;
    let registry = Registry::open_read_only(&cli.registry_path())?;
    resolve_in(&registry, given)
}

/// [`resolve_run_id`] against an open registry.
pub fn resolve_in(registry: &Registry, given: &str) -> Result<String> {
    crate::run_dir::check_run_id(given)?;
    let found = registry.find_runs(given)?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no run `{given}` in {}", registry.path.display()),
        many => bail!("`{given}` matches {} runs: {}", many.len(), many.join(", ")),
    }
}

/// Logs to stderr (`RUST_LOG` overrides the level) and, for training, also to the run's log file.
pub fn init_logging(quiet: bool, file: Option<&std::path::Path>) {
    let level = if quiet { "warn" } else { "info" };
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only for a terminal: logs redirected to a file stay plain text.
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(filter());
    let file_layer = file
        .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok())
        .map(|f| {
            fmt::layer()
                .with_writer(std::sync::Mutex::new(f))
                .with_ansi(false)
                .with_filter(EnvFilter::new("info"))
        });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file_layer)
        .try_init();
}
