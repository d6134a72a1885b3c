//! The command line: argument definitions and dispatch. Each command is a thin call into the
//! library; errors are reported once, with their context chain, and a non-zero exit.

mod args;
mod model_cmds;
mod serve_cmd;
mod sweep_cmds;
mod train_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

pub use args::{ArchArgs, ModelSource, TrainArgs};

#[derive(Parser, Debug)]
#[command(
    name = "pixelx",
    version,
    about = "Gated PixelCNN experiments: train, sample, evaluate, export"
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
    #[arg(long, global = true, env = "PIXELX_THREADS", default_value_t = 0)]
    pub threads: i32,
    /// Only warnings and errors; no progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Expand an experiment file's grid, schedule its runs over the devices, record everything.
    /// Running a file again finishes what is unfinished.
    Run(sweep_cmds::RunArgs),
    /// Compare runs: a table, the best runs, or an HTML page.
    Report(sweep_cmds::ReportArgs),
    /// List runs.
    Ls,
    /// One run in full: config, history, metrics, artefacts.
    Show { run_id: String },
    /// Train one model (the original train.py flags), recorded in its own run folder.
    Train(TrainArgs),
    /// Continue a run from its last intact checkpoint to its configured end.
    Resume { run_id: String },
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
    /// Train one registered run (started by `pixelx run`, one process per run).
    #[command(hide = true)]
    Worker {
        run_id: String,
        #[arg(long)]
        device: String,
    },
}

impl Cli {
    pub fn registry_path(&self) -> PathBuf {
        self.registry
            .clone()
            .unwrap_or_else(|| crate::registry::Registry::default_path(&self.runs_dir))
    }
}

/// Parses arguments, runs the command and maps errors to a message and exit code 1.
pub fn main() -> ExitCode {
    // Rust ignores SIGPIPE, which turns `pixelx report | head` into a panic on the next print;
    // a command-line tool should just stop, as any Unix filter does.
    // SAFETY: resetting a signal disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if cli.threads > 0 {
        tch::set_num_threads(cli.threads);
    }
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    // Commands that train set up logging themselves, once they know the run's log file.
    if !matches!(
        cli.command,
        Command::Train(_) | Command::Resume { .. } | Command::Worker { .. }
    ) {
        init_logging(cli.quiet, None);
    }
    match &cli.command {
        Command::Train(args) => train_cmd::train(&cli, args),
        Command::Resume { run_id } => train_cmd::resume(&cli, run_id),
        Command::Worker { run_id, device } => train_cmd::worker(&cli, run_id, device),
        Command::Run(args) => sweep_cmds::run(&cli, args),
        Command::Report(args) => sweep_cmds::report(&cli, args),
        Command::Ls => sweep_cmds::ls(&cli),
        Command::Show { run_id } => sweep_cmds::show(&cli, run_id),
        Command::Sample(args) => model_cmds::sample(&cli, args),
        Command::Eval(args) => model_cmds::eval(&cli, args),
        Command::Export(args) => model_cmds::export(&cli, args),
        Command::Import(args) => model_cmds::import(&cli, args),
        Command::Serve(args) => serve_cmd::serve(&cli, args),
    }
}

/// Logs to stderr (`RUST_LOG` overrides the level) and, for training, also to the run's log file.
pub fn init_logging(quiet: bool, file: Option<&std::path::Path>) {
    let level = if quiet { "warn" } else { "info" };
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
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
