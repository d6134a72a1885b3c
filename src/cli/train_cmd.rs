//! `pixelx train` and `pixelx resume`.

use std::sync::atomic::AtomicBool;

use anyhow::Result;

use super::{init_logging, Cli, TrainArgs};
use crate::config::RunConfig;
use crate::device::{device_name, resolve_device};
use crate::run_dir::{adhoc_run_id, RunDir};
use crate::train::{NoObserver, Outcome, Trainer};

pub fn train(cli: &Cli, args: &TrainArgs) -> Result<()> {
    let config = args.apply(RunConfig::default());
    config.validate()?;
    let device = resolve_device(&config.device)?;
    let id = adhoc_run_id(&config);
    // Load data and build the model before creating the folder, so a missing dataset leaves no
    // half-made run behind.
    let trainer = Trainer::new(
        config.clone(),
        RunDir::new(&cli.runs_dir, &id),
        &cli.data_dir,
        device,
    )?;
    let run = RunDir::create(&cli.runs_dir, &id, &config)?;
    init_logging(cli.quiet, Some(&run.log_path()));
    println!("run {id} on {}  ->  {}", device_name(device), run.root.display());
    execute(cli, trainer)
}

pub fn resume(cli: &Cli, run_id: &str) -> Result<()> {
    let (run, config) = RunDir::open(&cli.runs_dir, run_id)?;
    init_logging(cli.quiet, Some(&run.log_path()));
    let device = resolve_device(&config.device)?;
    let trainer = Trainer::resume(config, run, &cli.data_dir, device)?;
    println!(
        "run {run_id} resumes after epoch {} of {} on {}",
        trainer.state.epochs_done,
        trainer.config.epochs,
        device_name(device)
    );
    execute(cli, trainer)
}

fn execute(cli: &Cli, mut trainer: Trainer) -> Result<()> {
    trainer.show_progress = !cli.quiet;
    let stop = AtomicBool::new(false);
    let outcome = trainer.run(&mut NoObserver, &stop)?;
    let wall: f64 = trainer.state.history.iter().map(|r| r.seconds).sum();
    match (outcome, trainer.state.best()) {
        (Outcome::Completed, Some(best)) => {
            let last = trainer.state.history.last().unwrap_or(best);
            println!(
                "run {} finished {} epoch(s) in {wall:.1} s",
                trainer.run.id, trainer.state.epochs_done
            );
            println!(
                "  best epoch {}: test nll {:.4}  bpd {:.4}  bpd8 {:.4}",
                best.epoch, best.test.nll, best.test.bpd, best.test.bpd8
            );
            println!(
                "  last epoch {}: train loss {:.4}, {:.1} images/s",
                last.epoch, last.train_loss, last.images_per_sec
            );
            println!("  checkpoint {}", trainer.run.best_checkpoint().display());
            let samples = trainer.run.epoch_samples(best.epoch);
            if samples.exists() {
                println!("  samples    {}", samples.display());
            }
        }
        (Outcome::Completed, None) => println!("run {} had nothing left to train", trainer.run.id),
        (Outcome::Interrupted, _) => println!(
            "run {} interrupted; `pixelx resume {}` continues it",
            trainer.run.id, trainer.run.id
        ),
    }
    Ok(())
}
