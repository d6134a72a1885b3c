//! Test-set likelihood metrics: `nll`, `bpd` and `bpd8` (see docs/architecture.md).

use serde::{Deserialize, Deserializer, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::data::{level_bin_widths, Dataset};
use crate::model::PixelCnn;

/// JSON has no NaN or infinity (serde_json writes `null`): read `null` back as NaN, so a run whose
/// loss blew up is still recorded rather than unreadable. Every measured float of a journal is
/// read through it.
pub fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Mean negative log-likelihood per sub-pixel over a whole test set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Nats per sub-pixel at the model's `L` levels.
    #[serde(deserialize_with = "nan_if_null")]
    pub nll: f64,
    /// Bits per sub-pixel at the model's `L` levels: `nll / ln 2`.
    #[serde(deserialize_with = "nan_if_null")]
    pub bpd: f64,
    /// Bits per sub-pixel of the 8-bit data: each level spread uniformly over its bin of bytes.
    #[serde(deserialize_with = "nan_if_null")]
    pub bpd8: f64,
}

impl EvalMetrics {
    /// Combines a total NLL in nats and a total of `log2(bin width)` over `count` sub-pixels.
    pub fn from_totals(nll_sum: f64, log2_width_sum: f64, count: f64) -> Self {
        let nll = nll_sum / count;
        let bpd = nll / std::f64::consts::LN_2;
        Self {
            nll,
            bpd,
            bpd8: bpd + log2_width_sum / count,
        }
    }
}

/// Cross-entropy of the true levels in nats, averaged over every sub-pixel of the batch.
pub fn batch_loss(logits: &Tensor, target: &Tensor) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(target, None, Reduction::Mean, -100, 0.0)
}

/// Evaluates `model` on every image of `data`, in batches, without gradients.
pub fn evaluate(model: &PixelCnn, data: &Dataset, batch_size: i64) -> EvalMetrics {
    let device = data.levels.device();
    let widths: Vec<f64> = level_bin_widths(data.color_levels as u32)
        .iter()
        .map(|&w| (w as f64).log2())
        .collect();
    let log2_widths = Tensor::from_slice(&widths).to_device(device);
    let n = data.len();
    let (mut nll_sum, mut width_sum, mut count) = (0f64, 0f64, 0f64);
    tch::no_grad(|| {
        let mut start = 0;
        while start < n {
            let len = batch_size.min(n - start);
            let idx = Tensor::arange_start(start, start + len, (Kind::Int64, device));
            let (x, target, labels) = data.batch(&idx);
            let logits = model.forward(&x, &labels);
            nll_sum += logits
                .cross_entropy_loss::<Tensor>(&target, None, Reduction::Sum, -100, 0.0)
                .double_value(&[]);
            width_sum += log2_widths
                .index_select(0, &target.flatten(0, -1))
                .sum(Kind::Double)
                .double_value(&[]);
            count += target.numel() as f64;
            start += len;
        }
    });
    EvalMetrics::from_totals(nll_sum, width_sum, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpd8_adds_the_bin_width() {
        // A model that is certain (nll 0) on binary data still pays log2(128) = 7 bits per byte.
        let m = EvalMetrics::from_totals(0.0, 7.0 * 10.0, 10.0);
        assert_eq!((m.bpd, m.bpd8), (0.0, 7.0));
        // Uniform over 2 levels: 1 bit at L = 2, 8 bits for the bytes.
        let u = EvalMetrics::from_totals(10.0 * std::f64::consts::LN_2, 70.0, 10.0);
        assert!((u.bpd - 1.0).abs() < 1e-12 && (u.bpd8 - 8.0).abs() < 1e-12);
    }
}
