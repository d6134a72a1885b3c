//! The network's weights as plain row-major `f32` matrices, arranged for the host sampler's
//! products (position-major activations: a window of columns is one contiguous slice).

use tch::{Kind, Tensor};

use super::kernels::Matrix;
use crate::model::{Conv, PixelCnn};

/// The values of a tensor, row-major, as `f32`.
fn values(t: &Tensor) -> Vec<f32> {
    let t = t.to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous();
    Vec::<f32>::try_from(t.flatten(0, -1)).expect("a float tensor converts to f32 values")
}

/// `[in, out]` matrix of a 1×1 convolution (masked as it computes).
fn pointwise(conv: &Conv) -> Matrix {
    let w = conv.effective_weight();
    let (out, inp) = (w.size()[0], w.size()[1]);
    Matrix::new(inp as usize, out as usize, &values(&w.reshape([out, inp]).tr()))
}

/// A `[rows, cols]` matrix from a tensor of that many values.
fn matrix(t: &Tensor, rows: i64, cols: i64) -> Matrix {
    Matrix::new(rows as usize, cols as usize, &values(t))
}

/// One layer's weights.
pub struct Layer {
    /// Input channels (the image's `C` for the first layer, `F` after).
    pub inp: usize,
    /// `k / 2`: rows above the current one the vertical stack reads, and columns either side.
    pub half: usize,
    /// Per kernel row `r` of the vertical stack (`v_fc` folded into the bottom-centre tap), a
    /// `[k·in, 2F]` matrix, rows ordered (column, channel) as a row of activations is.
    pub v_rows: Vec<Matrix>,
    /// `v_conv`'s bias plus `v_fc`'s.
    pub v_bias: Vec<f32>,
    /// What the row above row 0 contributes to `v_to_h`: `v_conv`'s bias alone (padding).
    pub v_top: Vec<f32>,
    /// `v_to_h` as `[2F, 2F]`, and its bias plus `h_conv`'s.
    pub v_to_h: Matrix,
    pub v_to_h_bias: Vec<f32>,
    /// The masked `h_conv` over its kept columns as `[cols·in, 2F]`.
    pub h_conv: Matrix,
    /// `h_fc` (first layer, `[F, F]`) or `[h_skip | h_fc]` (gated layers, `[F, 2F]`), with bias.
    pub out: Matrix,
    pub out_bias: Vec<f32>,
    /// Per class, the label bias `[2F]` (gated layers; empty for the first).
    pub label: Vec<Vec<f32>>,
}

impl Layer {
    fn new(v_conv: &Conv, v_fc: &Conv, v_to_h: &Conv, h_conv: &Conv, k: i64) -> Self {
        let half = k / 2;
        let v = &v_conv.weight + v_fc.weight.constant_pad_nd([half, half, half, 0]);
        let (two_f, inp) = (v.size()[0], v.size()[1]);
        // [2F, in, r, t] -> per r: [t, in, 2F] flattened to [k·in, 2F]
        let v_rows = (0..=half)
            .map(|r| matrix(&v.select(2, r).permute([2, 1, 0]), k * inp, two_f))
            .collect();
        let h = h_conv.effective_weight();
        let cols = h.size()[3];
        Self {
            inp: inp as usize,
            half: half as usize,
            v_rows,
            v_bias: values(&(&v_conv.bias + &v_fc.bias)),
            v_top: values(&v_conv.bias),
            v_to_h: pointwise(v_to_h),
            v_to_h_bias: values(&(&v_to_h.bias + &h_conv.bias)),
            h_conv: matrix(&h.squeeze_dim(2).permute([2, 1, 0]), cols * inp, two_f),
            out: Matrix::new(0, 0, &[]),
            out_bias: Vec::new(),
            label: Vec::new(),
        }
    }
}

/// The output head: label bias per class, hidden 1×1, and per colour channel the `[O, L]`
/// part of the output 1×1 that gives that channel's logits.
pub struct Head {
    pub label: Vec<Vec<f32>>,
    pub hidden: Matrix,
    pub hidden_bias: Vec<f32>,
    pub per_channel: Vec<(Matrix, Vec<f32>)>,
}

/// The whole network, host-side.
pub struct Net {
    pub layers: Vec<Layer>,
    pub head: Head,
    pub f: usize,
    pub o: usize,
    pub channels: usize,
    pub levels: usize,
}

/// Per class, the rows of an embedding table `[classes, d]`.
fn per_class(table: &Tensor) -> Vec<Vec<f32>> {
    let d = table.size()[1] as usize;
    values(table).chunks(d).map(<[f32]>::to_vec).collect()
}

impl Net {
    pub fn new(model: &PixelCnn) -> Self {
        let spec = model.spec;
        let c = &model.causal;
        let mut first = Layer::new(&c.v_conv, &c.v_fc, &c.v_to_h, &c.h_conv, c.ksize);
        (first.out, first.out_bias) = (pointwise(&c.h_fc), values(&c.h_fc.bias));
        let mut layers = vec![first];
        for g in &model.gated {
            let mut layer = Layer::new(&g.v_conv, &g.v_fc, &g.v_to_h, &g.h_conv, g.ksize);
            let both = Tensor::cat(&[g.h_skip.effective_weight(), g.h_fc.effective_weight()], 0);
            let f = spec.hidden_fmaps;
            layer.out = matrix(&both.reshape([2 * f, f]).tr(), f, 2 * f);
            layer.out_bias = values(&Tensor::cat(&[&g.h_skip.bias, &g.h_fc.bias], 0));
            layer.label = per_class(&g.label_embedding);
            layers.push(layer);
        }
        let (ch, levels) = (spec.channels, spec.levels);
        let w = model.out.effective_weight();
        let o = w.size()[1];
        let w = w.reshape([levels, ch, o]); // output channel l·C + c
        let b = model.out.bias.view([levels, ch]);
        let per_channel = (0..ch)
            .map(|c| (matrix(&w.select(1, c).tr(), o, levels), values(&b.select(1, c))))
            .collect();
        Self {
            layers,
            head: Head {
                label: per_class(&model.label_embedding),
                hidden: pointwise(&model.out_hidden),
                hidden_bias: values(&model.out_hidden.bias),
                per_channel,
            },
            f: spec.hidden_fmaps as usize,
            o: o as usize,
            channels: ch as usize,
            levels: levels as usize,
        }
    }
}
