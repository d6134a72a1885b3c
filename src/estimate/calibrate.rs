//! Calibration: a few timed training steps, a forward pass and a few samples of each
//! architecture, on random images of the run's shape, with the threads each slot will have.
//!
//! It must stay short (seconds for a whole sweep: the 10 architectures of `mnist_sweep.toml`,
//! up to F = 120, in well under 30 s on two cores), so on CPU big models are timed on small
//! batches and scaled per image. On one thread a CPU's time per image hardly depends on the
//! batch (measured flat from 2 to 32 images on the 2-core machine); on two, small models need
//! batches of 16 or more to keep both busy (F = 30: 42 images/s at 4, 60 at 32), while big ones
//! are flat (F = 120: about 4.5 at 1 to 8). So each architecture's step is sized to take about
//! a fifth of its share of the budget but at least 0.2 s, which gives small models large batches
//! and big ones small. GPUs are timed at the run's batch. The budget is shared in proportion to
//! each architecture's work per image (a stride-1 network does about one multiply-add per
//! parameter per pixel), so the big models that dominate a sweep's time get the most timing.
//! Past a deadline (a busy machine can make every step slow), architectures not timed yet are
//! scaled from the last one timed by their work per image, and the estimate says so.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{anyhow, Result};
use tch::Device;

use super::{Arch, Speed};
use crate::sample::{libtorch_threads, sample, sample_labels, Sampler};
use crate::slots::SlotKind;
use crate::train::speed::StepTimer;

/// Seconds of timed work the calibration aims at per lane, all architectures together.
const BUDGET_SECONDS: f64 = 10.0;
/// Bounds of one architecture's share: enough for a warm-up and a timed step, not more than
/// a small sweep needs.
const MIN_SHARE_SECONDS: f64 = 0.4;
const MAX_SHARE_SECONDS: f64 = 3.0;
/// The largest batch timed on CPU.
const MAX_CPU_BATCH: i64 = 32;
/// A CPU step is sized to take at least this long, so that small models get batches that keep
/// every thread busy.
const MIN_STEP_SECONDS: f64 = 0.2;
/// Timed steps at most per architecture.
const MAX_STEPS: usize = 64;
/// At most this many images are sampled (the time is scaled to the grid's count).
const MAX_SAMPLED: i64 = 64;
/// First guess of a training step's seconds per parameter, pixel and image on one CPU thread
/// (about 1e-10 on the 2-core machine), refined after each architecture.
const GUESS_SECONDS_PER_PARAM_PIXEL: f64 = 1.5e-10;

/// An architecture to time, and the sample grid its runs draw.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub arch: Arch,
    pub epoch_samples: i64,
}

/// What timing an architecture found.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    pub arch: Arch,
    pub speed: Speed,
    /// The batch the steps were timed on, and how many steps.
    pub batch: i64,
    pub steps: usize,
    /// Not timed (the calibration ran out of time): scaled from the architecture timed before
    /// by parameter count.
    pub extrapolated: bool,
}

/// Seconds per image of one timing.
#[derive(Debug, Clone, Copy)]
struct Sample {
    train: f64,
    eval: f64,
    sample: f64,
    batch: i64,
    steps: usize,
    extrapolated: bool,
}

/// A stride-1 network's work per image: parameters times pixels.
fn work(arch: &Arch) -> f64 {
    (arch.spec.parameter_count() * arch.side * arch.side) as f64
}

/// `from`'s timing scaled to `to` by their work per image.
fn extrapolate(from: &(Arch, Sample), to: &Arch) -> Sample {
    let ratio = work(to) / work(&from.0).max(1.0);
    let s = from.1;
    Sample {
        train: s.train * ratio,
        eval: s.eval * ratio,
        sample: s.sample * ratio,
        batch: 0,
        steps: 0,
        extrapolated: true,
    }
}

/// Times every job on `device`, `lanes` at a time (CPU slots side by side; with fewer jobs than
/// lanes, jobs are timed twice so that every lane is busy, as in the sweep). Jobs a lane takes
/// after `deadline` are extrapolated from the one it timed before, so that a loaded machine
/// cannot stretch the calibration without bound.
pub fn calibrate(
    jobs: &[Job],
    kind: SlotKind,
    device: Device,
    lanes: usize,
    deadline: Instant,
) -> Result<Vec<Timed>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let lanes = lanes.max(1);
    // Biggest first: what dominates the sweep is timed before any deadline, and what may be
    // scaled after it is small and cheap.
    let mut tasks: Vec<usize> = (0..jobs.len().max(lanes)).map(|t| t % jobs.len()).collect();
    tasks.sort_by(|&a, &b| work(&jobs[b].arch).total_cmp(&work(&jobs[a].arch)));
    let total_work: f64 = tasks.iter().map(|&i| work(&jobs[i].arch)).sum();
    let share = |i: usize| {
        (BUDGET_SECONDS * lanes as f64 * work(&jobs[i].arch) / total_work.max(1.0))
            .clamp(MIN_SHARE_SECONDS, MAX_SHARE_SECONDS)
    };
    let queue: Mutex<VecDeque<usize>> = Mutex::new(tasks.iter().copied().collect());
    let results: Mutex<Vec<(usize, Result<Sample>)>> = Mutex::new(Vec::new());
    let threads = match kind {
        SlotKind::Cpu { threads } => Some(threads.max(1) as i32),
        SlotKind::Cuda => None,
    };
    let before = tch::get_num_threads();
    if let Some(t) = threads {
        tch::set_num_threads(t);
    }
    std::thread::scope(|scope| {
        for _ in 0..lanes {
            scope.spawn(|| {
                // Per thread too: OpenMP keeps the thread count per calling thread.
                if let Some(t) = threads {
                    tch::set_num_threads(t);
                }
                let mut per_param_pixel = GUESS_SECONDS_PER_PARAM_PIXEL / threads.unwrap_or(1) as f64;
                let mut last: Option<(Arch, Sample)> = None;
                // The guard is dropped inside the closure: lanes never hold the queue while timing.
                let next = || queue.lock().ok().and_then(|mut q| q.pop_front());
                while let Some(i) = next() {
                    let r = match &last {
                        Some(prev) if Instant::now() > deadline => Ok(extrapolate(prev, &jobs[i].arch)),
                        _ => crate::panics::catch("calibrating", || {
                            time_job(&jobs[i], device, share(i), &mut per_param_pixel)
                        }),
                    };
                    if let Ok(s) = &r {
                        if !s.extrapolated {
                            last = Some((jobs[i].arch, *s));
                        }
                    }
                    if let Ok(mut out) = results.lock() {
                        out.push((i, r));
                    }
                }
            });
        }
    });
    if threads.is_some() {
        tch::set_num_threads(before);
    }
    let results = results
        .into_inner()
        .map_err(|_| anyhow!("a calibration thread panicked"))?;
    average(jobs, &results, kind)
}

/// Each job's speed: the mean of its timings (its extrapolations only where nothing was timed).
fn average(jobs: &[Job], results: &[(usize, Result<Sample>)], kind: SlotKind) -> Result<Vec<Timed>> {
    let mut timed = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let mut samples = Vec::new();
        for (j, r) in results {
            if *j == i {
                match r {
                    Ok(s) => samples.push(*s),
                    Err(e) => return Err(anyhow!("{e:#}")),
                }
            }
        }
        // Timings count; extrapolations only where nothing was timed.
        if samples.iter().any(|s| !s.extrapolated) {
            samples.retain(|s| !s.extrapolated);
        }
        if samples.is_empty() {
            continue;
        }
        let mean = |f: fn(&Sample) -> f64| samples.iter().map(f).sum::<f64>() / samples.len() as f64;
        timed.push(Timed {
            arch: job.arch,
            speed: Speed {
                train_images_per_sec: 1.0 / mean(|s| s.train).max(1e-12),
                eval_images_per_sec: 1.0 / mean(|s| s.eval).max(1e-12),
                sample_seconds_per_image: mean(|s| s.sample),
                epoch_fixed_seconds: Speed::checkpoint_seconds(job.arch.spec.parameter_count()),
                startup_seconds: super::startup_seconds(kind),
            },
            batch: samples[0].batch,
            steps: samples.iter().map(|s| s.steps).sum(),
            extrapolated: samples[0].extrapolated,
        });
    }
    Ok(timed)
}

/// The batch to time on CPU: one step should take about `target` seconds.
fn cpu_batch(arch: &Arch, per_param_pixel: f64, target: f64) -> i64 {
    let per_image = per_param_pixel * work(arch);
    let fits = (target / per_image.max(1e-12)).floor();
    let cap = arch.batch.clamp(1, MAX_CPU_BATCH);
    if fits.is_finite() {
        (fits as i64).clamp(1, cap)
    } else {
        cap
    }
}

/// Times one architecture within about `share` seconds.
fn time_job(job: &Job, device: Device, share: f64, per_param_pixel: &mut f64) -> Result<Sample> {
    let arch = &job.arch;
    let started = Instant::now();
    let batch = if device == Device::Cpu {
        cpu_batch(arch, *per_param_pixel, (share / 5.0).max(MIN_STEP_SECONDS))
    } else {
        arch.batch
    };
    let mut timer = StepTimer::new(arch.spec, arch.side, batch, device, arch.precision);
    // The first step allocates and picks kernels, so it is not what the run's steps cost; but a
    // step slower than half the share is mostly arithmetic, and counts.
    let warm = timer.time_steps(1)?;
    let mut times = Vec::new();
    if warm > 0.5 * share && device == Device::Cpu {
        times.push(warm);
    }
    // Three steps at least, unless that would take far past the share.
    loop {
        times.push(timer.time_steps(1)?);
        let elapsed = started.elapsed().as_secs_f64();
        let enough = times.len() >= 3 && elapsed >= 0.7 * share;
        if enough || elapsed >= 1.5 * share || times.len() >= MAX_STEPS {
            break;
        }
    }
    // The median step: a step that another process's burst slowed down does not count.
    let train = crate::stats::median(times.clone()).unwrap_or(f64::NAN) / batch as f64;
    let steps = times.len();
    *per_param_pixel = train / work(arch).max(1.0);
    // Evaluation runs at `max(64, batch)` images; on CPU per image that is the timed batch's.
    let eval_batch = if device == Device::Cpu {
        batch
    } else {
        arch.batch.max(64)
    };
    timer.time_forward(eval_batch, arch.side);
    let eval = timer.time_forward(eval_batch, arch.side) / eval_batch as f64;
    // A quarter of one row, scaled to the image: the cached sampler's work is about the same
    // for every sub-pixel (many small operations, so the image count matters little).
    let sample_per_image = if job.epoch_samples > 0 {
        let n = job.epoch_samples.min(MAX_SAMPLED);
        let width = (arch.side / 4).max(1);
        let labels = sample_labels(n, None, arch.spec.classes, device);
        let start = Instant::now();
        let threads = libtorch_threads();
        let _ = sample(
            timer.model(),
            &labels,
            (1, width),
            1.0,
            Sampler::Cached,
            0,
            threads,
        );
        let pixels = (arch.side * arch.side) as f64 / width as f64;
        start.elapsed().as_secs_f64() * pixels / n as f64
    } else {
        0.0
    };
    tracing::debug!(
        "calibrated F={} layers={} L={} on batches of {batch}: warm-up {warm:.3} s, {steps} steps, \
         {:.1} train img/s, {:.1} eval img/s, {sample_per_image:.4} s per sampled image, {:.2} s in all",
        arch.spec.hidden_fmaps,
        arch.spec.hidden_layers,
        arch.spec.levels,
        1.0 / train,
        1.0 / eval,
        started.elapsed().as_secs_f64()
    );
    Ok(Sample {
        train,
        eval,
        sample: sample_per_image,
        batch,
        steps,
        extrapolated: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;

    #[test]
    fn bigger_models_are_timed_on_smaller_batches() {
        let small = Arch::of(&RunConfig {
            hidden_fmaps: 8,
            hidden_layers: 1,
            ..RunConfig::default()
        });
        let big = Arch::of(&RunConfig {
            hidden_fmaps: 120,
            out_hidden_fmaps: 60,
            color_levels: 10,
            ..RunConfig::default()
        });
        let guess = GUESS_SECONDS_PER_PARAM_PIXEL;
        assert_eq!(cpu_batch(&small, guess, 0.3), 32);
        assert_eq!(cpu_batch(&big, guess, 0.3), 1);
        assert!(cpu_batch(&Arch::of(&RunConfig::default()), guess, 0.3) < 32);
    }

    #[test]
    fn a_tiny_model_calibrates_to_sane_speeds() {
        let arch = Arch::of(&RunConfig {
            hidden_fmaps: 8,
            out_hidden_fmaps: 8,
            hidden_layers: 1,
            ..RunConfig::default()
        });
        let timed = calibrate(
            &[Job {
                arch,
                epoch_samples: 2,
            }],
            SlotKind::Cpu { threads: 1 },
            Device::Cpu,
            1,
            Instant::now() + std::time::Duration::from_secs(60),
        )
        .unwrap();
        let s = timed[0].speed;
        assert!(
            s.train_images_per_sec > 1.0 && s.train_images_per_sec.is_finite(),
            "{s:?}"
        );
        assert!(
            s.eval_images_per_sec > s.train_images_per_sec,
            "forward only is faster: {s:?}"
        );
        assert!(s.sample_seconds_per_image > 0.0, "{s:?}");
        assert!(!timed[0].extrapolated);
    }

    #[test]
    fn a_late_architecture_is_scaled_from_the_one_before() {
        let small = Arch::of(&RunConfig::default());
        let big = Arch::of(&RunConfig {
            hidden_fmaps: 60,
            ..RunConfig::default()
        });
        let s = Sample {
            train: 0.01,
            eval: 0.002,
            sample: 0.1,
            batch: 8,
            steps: 3,
            extrapolated: false,
        };
        let e = extrapolate(&(small, s), &big);
        let ratio = work(&big) / work(&small);
        assert!(ratio > 3.0 && (e.train / s.train - ratio).abs() < 1e-9);
        assert!(e.extrapolated && e.steps == 0);
    }
}
