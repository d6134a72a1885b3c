//! Training on real MNIST subsets: determinism, exact resume, checkpoint fall-back.
//! Belongs here: the `Trainer` in process (determinism, resume, checkpoints, precision).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::support;
use pixelx::config::RunConfig;
use pixelx::precision::Precision;
use pixelx::run_dir::RunDir;
use pixelx::train::{EpochRecord, NoObserver, Observer, Outcome, Trainer};
use tch::Device;

fn train(runs: &std::path::Path, id: &str, config: pixelx::config::RunConfig) -> Vec<EpochRecord> {
    let run = RunDir::create(runs, id, &config).unwrap();
    let mut t = Trainer::new(config, run, &support::data_dir(), Device::Cpu).unwrap();
    assert_eq!(
        t.run(&mut NoObserver, &AtomicBool::new(false)).unwrap(),
        Outcome::Completed
    );
    t.state.history
}

/// Compares everything an epoch measured except timings.
fn assert_same_metrics(a: &[EpochRecord], b: &[EpochRecord]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            (x.epoch, x.train_loss, x.test, x.learning_rate),
            (y.epoch, y.train_loss, y.test, y.learning_rate)
        );
    }
}

#[test]
fn same_config_and_seed_give_identical_metrics() {
    tch::set_num_threads(1);
    let runs = tempfile::tempdir().unwrap();
    let a = train(runs.path(), "a", support::tiny_config());
    let b = train(runs.path(), "b", support::tiny_config());
    assert_same_metrics(&a, &b);
    // And training did something: loss fell below the uniform 2-level model's ln 2 ≈ 0.693 (this config reaches about 0.27).
    assert!(a[1].test.nll < 0.4, "{:?}", a[1].test);
    assert!((a[1].test.bpd - a[1].test.nll / std::f64::consts::LN_2).abs() < 1e-12);
    assert!(
        (a[1].test.bpd8 - (a[1].test.bpd + 7.0)).abs() < 1e-9,
        "L = 2: each level spans 128 bytes"
    );
    let mut other_seed = support::tiny_config();
    other_seed.seed += 1;
    let c = train(runs.path(), "c", other_seed);
    assert_ne!(a[1].test, c[1].test);
}

/// Raises the stop flag once `after` epochs have finished, like a Ctrl-C would.
struct StopAfter {
    after: u32,
    stop: Arc<AtomicBool>,
}

impl Observer for StopAfter {
    fn on_epoch(&mut self, r: &EpochRecord, _: &pixelx::journal::CheckpointRecord, _: bool) {
        if r.epoch >= self.after {
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_resumed_run_ends_exactly_where_an_uninterrupted_one_does() {
    tch::set_num_threads(1);
    let runs = tempfile::tempdir().unwrap();
    let mut config = support::tiny_config();
    config.epochs = 3;
    config.lr_schedule = pixelx::config::LrSchedule::Cyclic;
    let whole = train(runs.path(), "whole", config.clone());

    let run = RunDir::create(runs.path(), "split", &config).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut first = Trainer::new(config.clone(), run.clone(), &support::data_dir(), Device::Cpu).unwrap();
    let mut obs = StopAfter {
        after: 1,
        stop: stop.clone(),
    };
    assert_eq!(first.run(&mut obs, &stop).unwrap(), Outcome::Interrupted);
    assert_eq!(first.state.epochs_done, 1);
    drop(first);

    let mut resumed = Trainer::resume(config, run, &support::data_dir(), Device::Cpu).unwrap();
    assert_eq!(resumed.state.epochs_done, 1);
    assert_eq!(
        resumed.run(&mut NoObserver, &AtomicBool::new(false)).unwrap(),
        Outcome::Completed
    );
    assert_same_metrics(&whole, &resumed.state.history);
}

#[test]
fn a_corrupt_latest_checkpoint_falls_back_to_the_previous_one() {
    tch::set_num_threads(1);
    let runs = tempfile::tempdir().unwrap();
    let config = support::tiny_config();
    train(runs.path(), "r", config.clone());
    let run = RunDir::new(runs.path(), "r");
    let latest = run.epoch_checkpoint(2);
    let mut bytes = std::fs::read(&latest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&latest, bytes).unwrap();
    let resumed = Trainer::resume(config, run, &support::data_dir(), Device::Cpu).unwrap();
    assert_eq!(
        resumed.state.epochs_done, 1,
        "epoch 2's checkpoint is damaged, epoch 1's is used"
    );
}

#[test]
fn each_epoch_leaves_a_checkpoint_samples_and_a_journal_line() {
    let runs = tempfile::tempdir().unwrap();
    let mut config = support::tiny_config();
    config.epochs = 1;
    let run = RunDir::create(runs.path(), "x", &config).unwrap();
    let mut t = Trainer::new(config, run.clone(), &support::data_dir(), Device::Cpu).unwrap();
    let mut journal = pixelx::execute::JournalObserver::new(&run.root, false);
    assert_eq!(
        t.run(&mut journal, &AtomicBool::new(false)).unwrap(),
        Outcome::Completed
    );
    journal.flush();
    let history = t.state.history.clone();
    assert!(run.best_checkpoint().exists());
    assert!(run.epoch_checkpoint(1).exists());
    let png = image::open(run.epoch_samples(1)).unwrap();
    assert_eq!(
        (png.width(), png.height()),
        (2 * 28 + 3 * 2, 28 + 2 * 2),
        "two samples side by side"
    );
    let events = pixelx::journal::read_from(&run.root, 0).unwrap().events;
    let epoch = events.iter().find_map(|(_, e)| match e {
        pixelx::journal::Event::Epoch {
            record, checkpoint, ..
        } => Some((record.clone(), checkpoint.clone())),
        _ => None,
    });
    let (record, checkpoint) = epoch.expect("an epoch line");
    assert_eq!(record.test, history[0].test);
    assert_eq!(
        checkpoint.sha256,
        pixelx::weights::file_sha256(&run.epoch_checkpoint(1)).unwrap(),
        "the journal holds the checkpoint's checksum"
    );
    let steps: usize = events
        .iter()
        .map(|(_, e)| match e {
            pixelx::journal::Event::Steps { steps, .. } => steps.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(steps, 1024 / 32, "every step journalled once");
}

#[test]
fn bf16_autocast_trains_deterministically_and_keeps_fp32_weights() {
    tch::set_num_threads(1);
    let runs = tempfile::tempdir().unwrap();
    let fp32 = train(runs.path(), "fp32", support::tiny_config());
    let bf16_config = pixelx::config::RunConfig {
        precision: pixelx::precision::Precision::Bf16,
        ..support::tiny_config()
    };
    let a = train(runs.path(), "bf16-a", bf16_config.clone());
    let b = train(runs.path(), "bf16-b", bf16_config);
    assert_same_metrics(&a, &b);
    // The forward pass really ran in bf16 (fp32 would reproduce the fp32 run's losses bit for
    // bit), and it learned about as well: within 5% of fp32's test nll.
    assert_ne!(a[0].train_loss, fp32[0].train_loss);
    let (x, y) = (a[1].test.nll, fp32[1].test.nll);
    assert!((x - y).abs() / y < 0.05, "bf16 nll {x} vs fp32 {y}");
    // Master weights, optimiser moments and checkpoints stay fp32.
    // (Read the file's own header: pixelx's loader would convert any float dtype to fp32.)
    let bytes = std::fs::read(runs.path().join("bf16-a/checkpoints/best.safetensors")).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let tensors = header.tensors();
    assert!(tensors.len() > 10);
    for (name, info) in tensors {
        assert_eq!(info.dtype, safetensors::Dtype::F32, "{name}");
    }
}

/// A fresh `auto` run trains in what `auto` resolves to here; a resumed one in the precision it
/// started in, even where `auto` would now resolve otherwise (a run moved to a machine of the
/// other kind), so that it ends exactly where an uninterrupted run in that precision does.
#[test]
fn a_resumed_auto_run_keeps_the_precision_it_started_in() {
    tch::set_num_threads(1);
    let here = Precision::Auto.resolve(Device::Cpu);
    // What `auto` resolved to on the machine the run started on.
    let there = match here {
        Precision::Bf16 => Precision::Fp32,
        _ => Precision::Bf16,
    };
    let runs = tempfile::tempdir().unwrap();
    let config = support::tiny_config();
    let whole = train(
        runs.path(),
        "whole",
        RunConfig {
            precision: there,
            ..config.clone()
        },
    );
    let auto = RunConfig {
        precision: Precision::Auto,
        ..config
    };
    let run = RunDir::create(runs.path(), "split", &auto).unwrap();
    let mut first = Trainer::new(auto.clone(), run.clone(), &support::data_dir(), Device::Cpu).unwrap();
    assert_eq!(first.precision(), here, "a new run resolves auto for its device");
    first.state.precision = Some(there);
    let stop = Arc::new(AtomicBool::new(false));
    let mut obs = StopAfter {
        after: 1,
        stop: stop.clone(),
    };
    assert_eq!(first.run(&mut obs, &stop).unwrap(), Outcome::Interrupted);
    drop(first);

    let mut resumed = Trainer::resume(auto, run, &support::data_dir(), Device::Cpu).unwrap();
    assert_eq!(resumed.state.epochs_done, 1);
    assert_eq!(
        resumed.precision(),
        there,
        "the checkpoint's precision, not {here:?}"
    );
    assert_eq!(
        resumed.run(&mut NoObserver, &AtomicBool::new(false)).unwrap(),
        Outcome::Completed
    );
    assert_same_metrics(&whole, &resumed.state.history);
}
