//! The Gated PixelCNN (docs/architecture.md), with the parameter names of the reference layout.

mod blocks;
mod conv;
mod fused;
mod init;
pub mod layout;

pub use blocks::{shift_down, vertical_pre, CausalBlock, GatedBlock};
pub use conv::{build_mask, Conv, MaskType};
pub use fused::{gate, gate_unfused};
pub use init::Initialiser;

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// The shape of a network: everything needed to rebuild it and load its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub channels: i64,
    pub levels: i64,
    pub hidden_fmaps: i64,
    pub out_hidden_fmaps: i64,
    pub hidden_layers: i64,
    pub causal_ksize: i64,
    pub hidden_ksize: i64,
    pub classes: i64,
}

impl ModelSpec {
    /// The original project's default architecture (F=30, O=10, 6 blocks, k=7, L=2, 10 classes).
    pub fn original(channels: i64) -> Self {
        Self {
            channels,
            levels: 2,
            hidden_fmaps: 30,
            out_hidden_fmaps: 10,
            hidden_layers: 6,
            causal_ksize: 7,
            hidden_ksize: 7,
            classes: 10,
        }
    }

    /// Trainable values of the network this spec builds, counted from the layer shapes (what
    /// [`trainable_parameters`] counts after building it, without allocating anything). Every
    /// convolution is stride 1 at full resolution, so this is also about the multiply-adds per
    /// sub-pixel position of one forward pass, which is what the estimator uses it for.
    pub fn parameter_count(&self) -> i64 {
        let conv = |inp: i64, out: i64, kh: i64, kw: i64| out * inp * kh * kw + out;
        let (c, f, o) = (self.channels, self.hidden_fmaps, self.out_hidden_fmaps);
        let (two, k) = (2 * f, self.causal_ksize);
        let causal = conv(c, two, k / 2 + 1, k)
            + conv(c, two, 1, 1)
            + conv(two, two, 1, 1)
            + conv(c, two, 1, k)
            + conv(f, f, 1, 1);
        let k = self.hidden_ksize;
        let gated = conv(f, two, k / 2 + 1, k)
            + conv(f, two, 1, 1)
            + conv(two, two, 1, 1)
            + conv(f, two, 1, k)
            + 2 * conv(f, f, 1, 1)
            + self.classes * two;
        let head = self.classes * f + conv(f, o, 1, 1) + conv(o, c * self.levels, 1, 1);
        causal + self.hidden_layers * gated + head
    }
}

/// A conditional Gated PixelCNN. Its variables live in the `VarStore` it was built in.
#[derive(Debug)]
pub struct PixelCnn {
    pub spec: ModelSpec,
    pub causal: CausalBlock,
    pub gated: Vec<GatedBlock>,
    pub label_embedding: Tensor,
    pub out_hidden: Conv,
    pub out: Conv,
    /// Run the forward pass on channels-last activations: the default on CPU, where oneDNN then
    /// convolves without reordering every activation to and from its blocked layout (`just
    /// bench training` compares both; see `layout`). Off on CUDA, where it is not measured yet.
    pub channels_last: bool,
}

impl PixelCnn {
    /// Builds the network in `root`, initialised from `seed` (same seed, same weights).
    pub fn new(root: &nn::Path, spec: ModelSpec, seed: u64) -> Self {
        let ModelSpec {
            channels: c,
            levels: l,
            hidden_fmaps: f,
            out_hidden_fmaps: o,
            ..
        } = spec;
        let init = &mut Initialiser::new(seed);
        let hidden = root / "hidden_conv";
        let b = Some((MaskType::B, c));
        let on_cpu = root.device() == tch::Device::Cpu;
        let mut model = Self {
            spec,
            causal: CausalBlock::new(root / "causal_conv", init, c, f, spec.causal_ksize),
            gated: (0..spec.hidden_layers)
                .map(|i| GatedBlock::new(&hidden / i, init, c, f, spec.hidden_ksize, spec.classes))
                .collect(),
            label_embedding: (root / "label_embedding").var_copy("weight", &init.normal(&[spec.classes, f])),
            out_hidden: Conv::new(root / "out_hidden_conv", init, (f, o), (1, 1), b),
            out: Conv::new(root / "out_conv", init, (o, c * l), (1, 1), b),
            channels_last: on_cpu,
        };
        model.set_cropped(on_cpu);
        model
    }

    /// Whether the horizontal stacks' masked convolutions skip their zero taps (the default on
    /// CPU, see [`CausalBlock::cropped`]); off, they run over the full masked kernels as the
    /// reference does.
    pub fn set_cropped(&mut self, on: bool) {
        self.causal.cropped = on;
        for block in &mut self.gated {
            block.cropped = on;
        }
    }

    /// Logits `[N, L, C, H, W]` for images `[N, C, H, W]` (values `level / (L-1)`) and labels `[N]`.
    pub fn forward(&self, x: &Tensor, labels: &Tensor) -> Tensor {
        let (n, c, h, w) = x.size4().expect("images are [N, C, H, W]");
        let mut skip = Tensor::zeros([n, self.spec.hidden_fmaps, h, w], (x.kind(), x.device()));
        let x = &if self.channels_last {
            skip = layout::channels_last(&skip);
            layout::channels_last(x)
        } else {
            x.shallow_clone()
        };
        let (mut v, mut hs) = self.causal.forward(x);
        for block in &self.gated {
            (v, hs, skip) = block.forward(&v, &hs, &skip, labels);
        }
        let logits = self.head(&skip, labels);
        logits.view([n, self.spec.levels, c, h, w])
    }

    /// `out_conv(relu(out_hidden_conv(relu(skip + label bias))))`, still `[N, C·L, H, W]`.
    pub fn head(&self, skip: &Tensor, labels: &Tensor) -> Tensor {
        let e = Tensor::embedding(&self.label_embedding, labels, -1, false, false)
            .unsqueeze(-1)
            .unsqueeze(-1);
        let out = (skip + e).relu();
        let out = self.out_hidden.pointwise(&out).relu();
        self.out.pointwise(&out)
    }
}

/// Number of trainable values in a var store (masks are buffers and do not count).
pub fn trainable_parameters(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(Tensor::numel).sum::<usize>() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_reference() {
        for (c, expected) in [(3, 438_526), (1, 434_162)] {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            PixelCnn::new(&vs.root(), ModelSpec::original(c), 0);
            assert_eq!(trainable_parameters(&vs), expected, "C = {c}");
        }
    }

    #[test]
    fn the_counted_parameters_are_the_built_ones() {
        let mut specs = vec![ModelSpec::original(1), ModelSpec::original(3)];
        let mut s = ModelSpec::original(1);
        (s.hidden_fmaps, s.out_hidden_fmaps, s.levels, s.hidden_layers) = (120, 60, 10, 10);
        (s.causal_ksize, s.hidden_ksize) = (5, 3);
        specs.push(s);
        s.hidden_layers = 0;
        specs.push(s);
        for spec in specs {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            PixelCnn::new(&vs.root(), spec, 0);
            assert_eq!(spec.parameter_count(), trainable_parameters(&vs), "{spec:?}");
        }
    }

    #[test]
    fn logits_have_the_reference_shape() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut s = ModelSpec::original(3);
        s.hidden_layers = 1;
        s.levels = 4;
        let model = PixelCnn::new(&vs.root(), s, 0);
        let x = Tensor::rand([2, 3, 5, 6], (tch::Kind::Float, tch::Device::Cpu));
        let y = model.forward(&x, &Tensor::from_slice(&[1i64, 7]));
        assert_eq!(y.size(), vec![2, 4, 3, 5, 6]);
    }

    #[test]
    fn the_cpu_default_layout_changes_the_layout_not_the_logits() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut s = ModelSpec::original(3);
        s.hidden_layers = 2;
        let mut model = PixelCnn::new(&vs.root(), s, 0);
        assert!(model.channels_last && model.causal.cropped && model.gated[1].cropped);
        let x = Tensor::rand([2, 3, 8, 8], (tch::Kind::Float, tch::Device::Cpu));
        let labels = Tensor::from_slice(&[1i64, 7]);
        let nhwc_input = layout::channels_last(&x);
        assert!(layout::is_channels_last(&nhwc_input) && !layout::is_channels_last(&x));
        let (v, h) = model.causal.forward(&nhwc_input);
        assert!(
            layout::is_channels_last(&v) && layout::is_channels_last(&h),
            "blocks keep NHWC"
        );
        let v_pre = vertical_pre(&model.causal.v_conv, &model.causal.v_fc, &nhwc_input, 7);
        let shifted = shift_down(&v_pre, &model.causal.v_conv.bias);
        assert!(layout::is_channels_last(&shifted), "the shift keeps NHWC");
        let default = model.forward(&x, &labels);
        // The reference's way: NCHW, full masked row kernels.
        model.channels_last = false;
        model.set_cropped(false);
        let nchw = model.forward(&x, &labels);
        let diff = (default - nchw).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "max |Δlogit| {diff}");
    }
}
