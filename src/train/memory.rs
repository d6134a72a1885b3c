//! A rough bound on the memory a training step needs, to refuse an impossible batch before
//! loading data and allocating (where libtorch would abort the process instead of failing).

use tch::Device;

use crate::config::{ConfigError, RunConfig};

/// Bytes the activations of one training step keep for the backward pass, give or take a factor
/// of two: per pixel and gated block about 16 feature maps of `F` floats (the two stacks'
/// pre-activations, gates, shifts, skips and residuals), plus the head and the logits.
pub fn training_bytes(config: &RunConfig) -> u64 {
    let side = config.dataset.side() as u64;
    let pixels = side * side;
    let f = config.hidden_fmaps as u64;
    let per_pixel = (config.hidden_layers as u64 + 1) * 16 * f
        + 4 * config.out_hidden_fmaps as u64
        + 4 * (config.channels() * config.color_levels) as u64;
    (config.batch_size as u64)
        .saturating_mul(pixels)
        .saturating_mul(per_pixel)
        .saturating_mul(4)
}

/// Refuses a run whose training step cannot fit in this machine's memory (CPU runs; a GPU's
/// own limit is left to libtorch, which fails there with an error rather than an abort).
pub fn check_fits(config: &RunConfig, device: Device) -> Result<(), ConfigError> {
    if device != Device::Cpu {
        return Ok(());
    }
    let Some(total) = crate::host::total_memory() else {
        return Ok(());
    };
    let need = training_bytes(config);
    if need > total {
        return Err(ConfigError::new(
            "batch_size",
            format!(
                "a training step of {} images of this model needs about {} of memory, more than this \
                 machine's {}; use a smaller batch_size or hidden_fmaps",
                config.batch_size,
                crate::format::bytes(need),
                crate::format::bytes(total)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_model_fits_and_an_absurd_batch_does_not() {
        let config = RunConfig::default();
        assert!(
            training_bytes(&config) < 1 << 30,
            "{}",
            crate::format::bytes(training_bytes(&config))
        );
        let absurd = RunConfig {
            batch_size: 60_000,
            hidden_fmaps: 2_400,
            ..RunConfig::default()
        };
        assert!(training_bytes(&absurd) > 1 << 40);
        assert_eq!(crate::format::bytes(1536), "1.5 KiB");
    }
}
