//! Synthetic run records for the tests and the benchmarks: what a worker journals, written
//! directly, with no training.

use std::path::Path;

use pixelx::journal::{append, CheckpointRecord, EpochRecord, Event, FinalStatus, StepRecord};
use pixelx::metrics::EvalMetrics;

/// One synthetic epoch: its test bpd8 and whether it wrote a sample grid.
pub struct SyntheticEpoch {
    pub bpd8: f64,
    pub samples: bool,
}

/// Journals `steps` optimiser steps (in batches of 500, as workers write them) spread over
/// `epochs`, with `loss(step)` as each step's loss, then each epoch's record, and `end` when given.
pub fn write_journal(
    run_dir: &Path,
    steps: i64,
    epochs: &[SyntheticEpoch],
    loss: impl Fn(i64) -> f64,
    end: Option<(FinalStatus, Option<String>)>,
) {
    std::fs::create_dir_all(run_dir).unwrap();
    let per_epoch = (steps / epochs.len().max(1) as i64).max(1);
    for (i, e) in epochs.iter().enumerate() {
        let epoch = i as u32 + 1;
        let first = i as i64 * per_epoch + 1;
        let mut step = first;
        while step < first + per_epoch {
            let last = (step + 500).min(first + per_epoch);
            let rows = (step..last).map(|s| StepRecord(s, loss(s), 1e-3)).collect();
            append(
                run_dir,
                Event::Steps {
                    epoch,
                    step_in_epoch: last - first,
                    steps_per_epoch: per_epoch,
                    images_per_sec: 900.0,
                    steps: rows,
                },
            )
            .unwrap();
            step = last;
        }
        let record = EpochRecord {
            epoch,
            train_loss: 0.2,
            test: EvalMetrics {
                nll: (e.bpd8 - 7.0).max(0.05) * std::f64::consts::LN_2,
                bpd: e.bpd8 - 7.0,
                bpd8: e.bpd8,
            },
            learning_rate: 1e-3,
            images_per_sec: 900.0,
            seconds: 12.0,
        };
        let checkpoint = CheckpointRecord {
            file: format!("epoch-{epoch:04}.safetensors"),
            sha256: "00".into(),
            size: 1,
        };
        let best = epochs[..=i].iter().all(|o| o.bpd8 >= e.bpd8);
        append(
            run_dir,
            Event::Epoch {
                record,
                checkpoint,
                best,
                peak_rss_mb: None,
                threads: None,
            },
        )
        .unwrap();
        if e.samples {
            let file = format!("epoch-{epoch:04}.png");
            append(run_dir, Event::Samples { epoch, file }).unwrap();
        }
    }
    if let Some((status, detail)) = end {
        append(run_dir, Event::Finished { status, detail }).unwrap();
    }
}
