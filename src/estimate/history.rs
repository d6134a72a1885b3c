//! Speeds from history: completed runs of the same architecture, batch, precision (the one each
//! run recorded using) and image size on the same kind of slot. A CPU run counts only from this machine and with the same torch
//! threads (a slot's threads follow how many runs share the cores); a GPU run counts from any
//! host when asked (a cluster's GPUs are taken as alike).

use super::{Arch, Measured, Source, Speed};
use crate::registry::SpeedRecord;
use crate::slots::SlotKind;
use crate::stats::median_of_finite as median;

/// The slot kind a record ran on, when it can be told.
fn kind_of(r: &SpeedRecord) -> Option<SlotKind> {
    let device = r.device.as_deref()?;
    if device.starts_with("cuda") {
        return Some(SlotKind::Cuda);
    }
    let threads = r.epochs.iter().rev().find_map(|e| e.threads)?;
    (device == "cpu").then_some(SlotKind::Cpu {
        threads: threads as usize,
    })
}

/// The architecture a record trained: its precision the one it recorded (`auto` resolved when
/// it ran), else its config's as it resolves on `kind` here.
fn arch_of(r: &SpeedRecord, kind: SlotKind) -> Arch {
    let arch = Arch::of(&r.config);
    match r.precision {
        Some(precision) => Arch { precision, ..arch },
        None => arch.on(kind),
    }
}

/// What one completed run says about its speed.
fn speed_of(r: &SpeedRecord, kind: SlotKind) -> Option<Speed> {
    let c = &r.config;
    let train = median(r.epochs.iter().map(|e| e.images_per_sec).collect())?;
    let test_images = match c.test_subset {
        0 => c.dataset.test_images(),
        n => n.min(c.dataset.test_images()),
    };
    // An epoch's seconds are its training and its evaluation.
    let eval_seconds = median(
        r.epochs
            .iter()
            .filter_map(|e| Some(e.seconds? - c.images_per_epoch() as f64 / e.images_per_sec))
            .collect(),
    )?
    .max(1e-3);
    // The rest of the worker's span is samples and checkpoints, per epoch.
    let epoch_seconds: f64 = r.epochs.iter().filter_map(|e| e.seconds).sum();
    let extra = r.span_seconds.map_or(0.0, |span| {
        ((span - epoch_seconds) / r.epochs.len() as f64).max(0.0)
    });
    let (sample_seconds_per_image, epoch_fixed_seconds) = if c.epoch_samples > 0 {
        (extra / c.epoch_samples as f64, 0.0)
    } else {
        (0.0, extra)
    };
    Some(Speed {
        train_images_per_sec: train,
        eval_images_per_sec: test_images as f64 / eval_seconds,
        sample_seconds_per_image,
        epoch_fixed_seconds,
        startup_seconds: super::startup_seconds(kind),
    })
}

/// Speeds of the `wanted` (architecture, slot kind) pairs that completed runs cover: the median
/// of each part over the matching runs. `host`: only runs on that machine count.
pub fn speeds(records: &[SpeedRecord], wanted: &[(Arch, SlotKind)], host: Option<&str>) -> Vec<Measured> {
    let mut out = Vec::new();
    for &(arch, kind) in wanted {
        let found: Vec<Speed> = records
            .iter()
            .filter(|r| host.is_none_or(|h| r.host.as_deref() == Some(h)))
            .filter(|r| kind_of(r) == Some(kind) && arch_of(r, kind) == arch.on(kind))
            .filter_map(|r| speed_of(r, kind))
            .collect();
        let part = |f: fn(&Speed) -> f64| median(found.iter().map(f).collect());
        let (Some(train), Some(eval), Some(sample), Some(fixed)) = (
            part(|s| s.train_images_per_sec),
            part(|s| s.eval_images_per_sec),
            part(|s| s.sample_seconds_per_image),
            part(|s| s.epoch_fixed_seconds),
        ) else {
            continue;
        };
        out.push(Measured {
            arch,
            kind,
            speed: Speed {
                train_images_per_sec: train,
                eval_images_per_sec: eval,
                sample_seconds_per_image: sample,
                epoch_fixed_seconds: fixed,
                startup_seconds: super::startup_seconds(kind),
            },
            source: Source::History { runs: found.len() },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;
    use crate::precision::Precision;
    use crate::registry::EpochSpeed;

    fn record(device: &str, host: &str, ips: f64, threads: Option<u32>) -> SpeedRecord {
        let config = RunConfig {
            train_subset: 1000,
            test_subset: 500,
            epoch_samples: 10,
            epochs: 2,
            precision: Precision::Fp32,
            ..RunConfig::default()
        };
        // Each epoch: 1000 / ips s of training and 1 s of evaluation; 2 s of samples between.
        let epoch = EpochSpeed {
            images_per_sec: ips,
            seconds: Some(1000.0 / ips + 1.0),
            threads,
        };
        SpeedRecord {
            id: "r".into(),
            config,
            device: Some(device.into()),
            host: Some(host.into()),
            span_seconds: Some(2.0 * (1000.0 / ips + 1.0) + 4.0),
            epochs: vec![epoch; 2],
            precision: Some(Precision::Fp32),
        }
    }

    #[test]
    fn matching_runs_give_the_median_speed_and_others_do_not_count() {
        let arch = Arch::of(&RunConfig {
            precision: Precision::Fp32,
            ..RunConfig::default()
        });
        let cpu1 = SlotKind::Cpu { threads: 1 };
        let records = vec![
            record("cpu", "here", 100.0, Some(1)),
            record("cpu", "here", 200.0, Some(1)),
            record("cpu", "here", 300.0, Some(1)),
            record("cpu", "here", 900.0, Some(2)),
            record("cpu", "there", 900.0, Some(1)),
            record("cpu", "here", 900.0, None),
            record("cuda:1", "there", 5000.0, None),
        ];
        let found = speeds(&records, &[(arch, cpu1), (arch, SlotKind::Cuda)], Some("here"));
        assert_eq!(found.len(), 1, "no CUDA run on this host");
        let s = found[0].speed;
        assert_eq!(found[0].source, Source::History { runs: 3 });
        assert_eq!(s.train_images_per_sec, 200.0);
        assert!((s.eval_images_per_sec - 500.0).abs() < 1e-6, "{s:?}");
        assert!((s.sample_seconds_per_image - 0.2).abs() < 1e-6, "{s:?}");
        let any_host = speeds(&records, &[(arch, SlotKind::Cuda)], None);
        assert_eq!(any_host[0].speed.train_images_per_sec, 5000.0);
        let other = Arch { batch: 64, ..arch };
        assert!(speeds(&records, &[(other, cpu1)], None).is_empty());
    }

    /// An `auto` run is matched by the precision it recorded using: a planned `auto` run on this
    /// CPU finds the bf16 ones exactly when this CPU computes bf16 natively, and a run recorded
    /// before v9 counts as its config's precision.
    #[test]
    fn auto_runs_match_by_the_precision_they_used() {
        let cpu1 = SlotKind::Cpu { threads: 1 };
        let mut used_bf16 = record("cpu", "here", 100.0, Some(1));
        used_bf16.config.precision = Precision::Auto;
        used_bf16.precision = Some(Precision::Bf16);
        let mut unrecorded = record("cpu", "here", 300.0, Some(1));
        unrecorded.precision = None;
        let records = vec![used_bf16, unrecorded];
        let at = |precision| Arch {
            precision,
            ..Arch::of(&records[0].config)
        };
        let ips = |precision| {
            speeds(&records, &[(at(precision), cpu1)], None)
                .first()
                .map(|m| m.speed.train_images_per_sec)
        };
        assert_eq!(ips(Precision::Bf16), Some(100.0));
        assert_eq!(ips(Precision::Fp32), Some(300.0));
        let native = crate::precision::cpu_has_native_bf16();
        assert_eq!(ips(Precision::Auto), Some(if native { 100.0 } else { 300.0 }));
    }
}
