//! Convolutions with an optional autoregressive mask, and the masks themselves.

use tch::{nn, Kind, Tensor};

use super::init::Initialiser;

/// Which taps of the centre position a masked convolution keeps (see docs/architecture.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskType {
    /// Input colour group must come strictly before the output group: excludes the current sub-pixel.
    A,
    /// Input group may equal the output group.
    B,
}

/// The 0/1 mask of a `[out, in, kh, kw]` kernel: every row above the centre, the taps left of
/// centre in the centre row, and at the centre only the colour groups allowed by `kind`.
/// Feature channel `f` belongs to colour group `f mod channels`.
pub fn build_mask(out: i64, inp: i64, kh: i64, kw: i64, channels: i64, kind: MaskType) -> Tensor {
    let (yc, xc) = (kh / 2, kw / 2);
    let mut m = vec![0f32; (out * inp * kh * kw) as usize];
    let mut at = 0;
    for o in 0..out {
        for i in 0..inp {
            for y in 0..kh {
                for x in 0..kw {
                    let (go, gi) = (o % channels, i % channels);
                    let keep = y < yc
                        || (y == yc && x < xc)
                        || (y == yc
                            && x == xc
                            && match kind {
                                MaskType::A => gi < go,
                                MaskType::B => gi <= go,
                            });
                    m[at] = if keep { 1.0 } else { 0.0 };
                    at += 1;
                }
            }
        }
    }
    Tensor::from_slice(&m).reshape([out, inp, kh, kw])
}

/// A 2-D convolution, stride 1, whose weight is multiplied by a fixed mask on every forward.
/// The product is a fresh tensor: weights are never masked in place, so the optimiser state and
/// exported weights hold exactly what was trained.
///
/// The weight keeps the reference layout's full kernel, but the convolution only uses the
/// leading `kept_cols` columns: the mask zeroes every tap right of the centre (and for a
/// single-channel mask A the centre column too), so those columns would be multiply-adds of zero.
#[derive(Debug)]
pub struct Conv {
    pub weight: Tensor,
    pub bias: Tensor,
    pub mask: Option<Tensor>,
    /// Leading kernel columns with any tap the mask keeps (the whole width when unmasked).
    kept_cols: i64,
    /// The mask over those columns; `None` where it keeps every tap there (no multiply needed).
    kept_mask: Option<Tensor>,
}

/// How many leading columns of a `[out, in, kh, kw]` mask hold a kept tap (at least one, so a
/// mask that keeps nothing still gives a valid, all-zero kernel), and the mask cropped to them
/// unless it is all ones there.
fn crop(mask: &Tensor) -> (i64, Option<Tensor>) {
    let kw = mask.size()[3];
    let per_col = mask
        .abs()
        .sum_dim_intlist([0i64, 1, 2].as_slice(), false, Kind::Float);
    let per_col = Vec::<f32>::try_from(per_col).unwrap_or_default();
    let kept = per_col
        .iter()
        .rposition(|&s| s > 0.0)
        .map_or(1, |last| last as i64 + 1)
        .min(kw);
    let cropped = mask.narrow(3, 0, kept);
    let all_ones = cropped.eq(1.0).all().int64_value(&[]) == 1;
    (kept, (!all_ones).then(|| cropped.contiguous()))
}

impl Conv {
    /// Creates `path.weight` and `path.bias` (`inp` → `out` channels, kernel `kh × kw`) with
    /// PyTorch's default initialisation (uniform in ±1/sqrt(fan_in)), and `path.mask` as a
    /// non-trainable buffer when masked.
    pub fn new(
        p: nn::Path,
        init: &mut Initialiser,
        (inp, out): (i64, i64),
        (kh, kw): (i64, i64),
        mask: Option<(MaskType, i64)>,
    ) -> Self {
        let bound = 1.0 / ((inp * kh * kw) as f64).sqrt();
        let weight = p.var_copy("weight", &init.uniform(&[out, inp, kh, kw], bound));
        let bias = p.var_copy("bias", &init.uniform(&[out], bound));
        let (mut kept_cols, mut kept_mask) = (kw, None);
        let mask = mask.map(|(kind, channels)| {
            let values = build_mask(out, inp, kh, kw, channels, kind);
            (kept_cols, kept_mask) = crop(&values);
            kept_mask = kept_mask.take().map(|m| m.to_device(p.device()));
            let mut buffer = p.zeros_no_train("mask", &[out, inp, kh, kw]);
            tch::no_grad(|| buffer.copy_(&values.to_device(p.device())));
            buffer
        });
        Self {
            weight,
            bias,
            mask,
            kept_cols,
            kept_mask,
        }
    }

    /// The full masked weight `[out, in, kh, kw]`, as the reference computes with.
    pub fn masked_weight(&self) -> Tensor {
        match &self.mask {
            Some(m) => &self.weight * m,
            None => self.weight.shallow_clone(),
        }
    }

    /// The weight as the convolution uses it: its leading [`Self::kept_cols`] columns, masked.
    /// A view of the variable where the mask keeps all of them, so gradients flow as through
    /// the full masked kernel (zero on every dropped tap).
    pub fn effective_weight(&self) -> Tensor {
        let w = if self.kept_cols == self.weight.size()[3] {
            self.weight.shallow_clone()
        } else {
            self.weight.narrow(3, 0, self.kept_cols)
        };
        match &self.kept_mask {
            Some(m) => w * m,
            None => w,
        }
    }

    /// Leading kernel columns the convolution uses.
    pub fn kept_cols(&self) -> i64 {
        self.kept_cols
    }

    /// The masked `1 × k` convolution of a row, output column `j` reading input columns
    /// `j-k/2 ..= j+k/2` (zero outside), computed as the `1 × kept_cols` convolution it equals:
    /// the input is padded `k/2` on the left and `kept_cols - 1 - k/2` (0 or -1) on the right.
    pub fn row_causal(&self, x: &Tensor) -> Tensor {
        let half = self.weight.size()[3] / 2;
        x.constant_pad_nd([half, self.kept_cols - 1 - half, 0, 0]).conv2d(
            &self.effective_weight(),
            Some(&self.bias),
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        )
    }

    /// The same convolution over the full masked kernel with symmetric padding, as the
    /// reference computes it (the baseline the cropped one is tested and benchmarked against).
    pub fn row_masked(&self, x: &Tensor) -> Tensor {
        let half = self.weight.size()[3] / 2;
        x.conv2d(
            &self.masked_weight(),
            Some(&self.bias),
            [1, 1],
            [0, half],
            [1, 1],
            1,
        )
    }

    /// A 1×1 convolution.
    pub fn pointwise(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.effective_weight(),
            Some(&self.bias),
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn single_channel_masks_drop_or_keep_the_centre() {
        // 3x3 kernel, one channel: rows above kept, left of centre kept, centre per mask type.
        assert_eq!(
            values(&build_mask(1, 1, 3, 3, 1, MaskType::A)),
            vec![1., 1., 1., 1., 0., 0., 0., 0., 0.]
        );
        assert_eq!(
            values(&build_mask(1, 1, 3, 3, 1, MaskType::B)),
            vec![1., 1., 1., 1., 1., 0., 0., 0., 0.]
        );
        assert_eq!(
            values(&build_mask(1, 1, 1, 5, 1, MaskType::A)),
            vec![1., 1., 0., 0., 0.]
        );
    }

    #[test]
    fn rgb_centre_taps_follow_colour_order() {
        // 1x1 kernels over 3 groups: rows are outputs R, G, B; columns inputs R, G, B.
        let a = values(&build_mask(3, 3, 1, 1, 3, MaskType::A));
        assert_eq!(a, vec![0., 0., 0., 1., 0., 0., 1., 1., 0.]);
        let b = values(&build_mask(3, 3, 1, 1, 3, MaskType::B));
        assert_eq!(b, vec![1., 0., 0., 1., 1., 0., 1., 1., 1.]);
        // Groups repeat with period 3 over feature channels: channel 4 is green.
        let wide = build_mask(6, 6, 1, 1, 3, MaskType::B);
        assert_eq!(wide.double_value(&[4, 1, 0, 0]), 1.0);
        assert_eq!(wide.double_value(&[4, 5, 0, 0]), 0.0);
    }
}
