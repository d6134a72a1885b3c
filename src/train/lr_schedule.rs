//! Learning rate as a function of the optimiser step.

use crate::config::LrSchedule;

/// Steps per half cycle of the original's `CyclicLR` (PyTorch's default `step_size_up`).
const CYCLIC_HALF: f64 = 2000.0;

/// Learning rate for optimiser step `step` (0-based) of `total` steps.
pub fn learning_rate(schedule: LrSchedule, base: f64, step: i64, total: i64) -> f64 {
    match schedule {
        LrSchedule::Constant => base,
        LrSchedule::Cosine => {
            let progress = (step as f64 / total.max(1) as f64).min(1.0);
            base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
        LrSchedule::Cyclic => {
            let s = step as f64;
            let cycle = (1.0 + s / (2.0 * CYCLIC_HALF)).floor();
            let x = (s / CYCLIC_HALF - 2.0 * cycle + 1.0).abs();
            base + (10.0 * base - base) * (1.0 - x).max(0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyclic_rises_to_ten_times_and_back() {
        let lr = |s| learning_rate(LrSchedule::Cyclic, 1e-3, s, 0);
        assert!((lr(0) - 1e-3).abs() < 1e-12);
        assert!((lr(2000) - 1e-2).abs() < 1e-12);
        assert!((lr(1000) - 5.5e-3).abs() < 1e-12);
        assert!((lr(4000) - 1e-3).abs() < 1e-12);
    }

    #[test]
    fn cosine_decays_to_zero() {
        let lr = |s| learning_rate(LrSchedule::Cosine, 1.0, s, 100);
        assert_eq!(lr(0), 1.0);
        assert!((lr(50) - 0.5).abs() < 1e-12);
        assert!(lr(100).abs() < 1e-12);
        assert_eq!(learning_rate(LrSchedule::Constant, 0.3, 77, 100), 0.3);
    }
}
