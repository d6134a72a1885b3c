//! The causal (first) block and the gated blocks of the network.

use tch::{nn, Tensor};

use super::conv::{Conv, MaskType};
use super::fused::gate;
use super::init::Initialiser;
use super::layout;

/// The vertical stack's `v_conv(x) + v_fc(x)`, kernel `(k/2 + 1) × k` over the current row and the
/// `k/2` rows above. Padding only the top and the sides yields exactly `H` output rows, so nothing
/// is computed and then cropped away (as the original does). The 1×1 `v_fc` reads exactly the
/// input under the kernel's bottom-centre tap, so its weight is added there: one convolution
/// instead of two and an add (gradients still reach both parameters).
pub fn vertical_pre(v_conv: &Conv, v_fc: &Conv, x: &Tensor, k: i64) -> Tensor {
    let half = k / 2;
    let fc = v_fc.weight.constant_pad_nd([half, half, half, 0]);
    let weight = &v_conv.weight + fc;
    let bias = &v_conv.bias + &v_fc.bias;
    x.constant_pad_nd([half, half, half, 0])
        .conv2d(&weight, Some(&bias), [1, 1], [0, 0], [1, 1], 1)
}

/// `v_pre` moved down one row, so row `i` only sees input rows above `i`. Row 0 sees nothing but
/// padding, which through `v_conv` is its bias. The result keeps `v_pre`'s layout: `cat` takes
/// its inputs' common one, so the top row is made channels-last too where `v_pre` is (else the
/// next convolution would reorder the whole activation back and forth).
pub fn shift_down(v_pre: &Tensor, v_conv_bias: &Tensor) -> Tensor {
    let (n, _, h, w) = v_pre.size4().expect("activations are 4-D");
    let top = v_conv_bias
        .to_kind(v_pre.kind())
        .view([1, -1, 1, 1])
        .expand([n, -1, 1, w], false);
    let top = if layout::is_channels_last(v_pre) {
        layout::channels_last(&top)
    } else {
        top
    };
    Tensor::cat(&[top, v_pre.narrow(2, 0, h - 1)], 2)
}

/// The horizontal stack's masked `1 × k` convolution, cropped to the taps its mask keeps or not.
fn h_row(h_conv: &Conv, x: &Tensor, cropped: bool) -> Tensor {
    if cropped {
        h_conv.row_causal(x)
    } else {
        h_conv.row_masked(x)
    }
}

/// First layer: reads the image, no residuals, skips or labels.
#[derive(Debug)]
pub struct CausalBlock {
    pub v_conv: Conv,
    pub v_fc: Conv,
    pub v_to_h: Conv,
    pub h_conv: Conv,
    pub h_fc: Conv,
    pub ksize: i64,
    /// `h_conv` as the cropped `1 × (k/2 + 1)` convolution, or as the reference computes it,
    /// over the full masked kernel: same logits. [`crate::model::PixelCnn::new`] crops on CPU,
    /// where on channels-last activations the narrower kernel takes less time (`just bench
    /// training` compares both); on CUDA it is not measured yet.
    pub cropped: bool,
}

impl CausalBlock {
    pub fn new(p: nn::Path, init: &mut Initialiser, channels: i64, fmaps: i64, k: i64) -> Self {
        let two = 2 * fmaps;
        Self {
            v_conv: Conv::new(&p / "v_conv", init, (channels, two), (k / 2 + 1, k), None),
            v_fc: Conv::new(&p / "v_fc", init, (channels, two), (1, 1), None),
            v_to_h: Conv::new(&p / "v_to_h", init, (two, two), (1, 1), None),
            h_conv: Conv::new(
                &p / "h_conv",
                init,
                (channels, two),
                (1, k),
                Some((MaskType::A, channels)),
            ),
            // Mask B, not the original's A: h_conv (mask A) already excludes the current
            // sub-pixel; a second strict mask here would cut colour group 0 (all of a grayscale
            // image) off from the pixels to its left in the same row, a blind spot.
            h_fc: Conv::new(
                &p / "h_fc",
                init,
                (fmaps, fmaps),
                (1, 1),
                Some((MaskType::B, channels)),
            ),
            ksize: k,
            cropped: false,
        }
    }

    /// Returns `(v_out, h_out)`.
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let v_pre = vertical_pre(&self.v_conv, &self.v_fc, x, self.ksize);
        let v_shift = shift_down(&v_pre, &self.v_conv.bias);
        let h_pre = h_row(&self.h_conv, x, self.cropped) + self.v_to_h.pointwise(&v_shift);
        (gate(&v_pre), self.h_fc.pointwise(&gate(&h_pre)))
    }
}

/// A gated block with label conditioning, residual connections and a skip output.
#[derive(Debug)]
pub struct GatedBlock {
    pub v_conv: Conv,
    pub v_fc: Conv,
    pub v_to_h: Conv,
    pub h_conv: Conv,
    pub h_fc: Conv,
    pub h_skip: Conv,
    pub label_embedding: Tensor,
    pub ksize: i64,
    /// See [`CausalBlock::cropped`].
    pub cropped: bool,
}

impl GatedBlock {
    pub fn new(p: nn::Path, init: &mut Initialiser, channels: i64, fmaps: i64, k: i64, classes: i64) -> Self {
        let two = 2 * fmaps;
        let b = Some((MaskType::B, channels));
        Self {
            v_conv: Conv::new(&p / "v_conv", init, (fmaps, two), (k / 2 + 1, k), None),
            v_fc: Conv::new(&p / "v_fc", init, (fmaps, two), (1, 1), None),
            v_to_h: Conv::new(&p / "v_to_h", init, (two, two), (1, 1), b),
            h_conv: Conv::new(&p / "h_conv", init, (fmaps, two), (1, k), b),
            h_fc: Conv::new(&p / "h_fc", init, (fmaps, fmaps), (1, 1), b),
            h_skip: Conv::new(&p / "h_skip", init, (fmaps, fmaps), (1, 1), b),
            label_embedding: (&p / "label_embedding").var_copy("weight", &init.normal(&[classes, two])),
            ksize: k,
            cropped: false,
        }
    }

    /// The label bias `[N, 2F, 1, 1]` this block adds to both stacks.
    pub fn embed(&self, labels: &Tensor) -> Tensor {
        Tensor::embedding(&self.label_embedding, labels, -1, false, false)
            .unsqueeze(-1)
            .unsqueeze(-1)
    }

    /// Returns `(v_out, h_out, skip)`.
    pub fn forward(
        &self,
        v_in: &Tensor,
        h_in: &Tensor,
        skip: &Tensor,
        labels: &Tensor,
    ) -> (Tensor, Tensor, Tensor) {
        let e = self.embed(labels);
        let v_pre = vertical_pre(&self.v_conv, &self.v_fc, v_in, self.ksize) + &e;
        let v_shift = shift_down(&v_pre, &self.v_conv.bias);
        let h_pre = h_row(&self.h_conv, h_in, self.cropped) + self.v_to_h.pointwise(&v_shift) + e;
        // h_skip and h_fc read the same input: one 1×1 convolution with both weights stacked.
        let weight = Tensor::cat(&[self.h_skip.effective_weight(), self.h_fc.effective_weight()], 0);
        let bias = Tensor::cat(&[&self.h_skip.bias, &self.h_fc.bias], 0);
        let both = gate(&h_pre)
            .conv2d(&weight, Some(&bias), [1, 1], [0, 0], [1, 1], 1)
            .chunk(2, 1);
        let skip = skip + &both[0];
        let h_out = &both[1] + h_in;
        (gate(&v_pre) + v_in, h_out, skip)
    }
}
