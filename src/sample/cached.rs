//! The cached sampler: activations of every layer are kept, and each step computes only what the
//! newly chosen sub-pixel changes.
//!
//! Per sub-pixel (i, j, c) the horizontal stack of each layer is evaluated at column j alone,
//! from cached columns j-k/2..j of the layer below; the vertical stack's row i is computed once,
//! after row i is complete, from the k/2+1 rows it needs, together with what it adds to every
//! column of row i+1's horizontal stack.
//!
//! A step is a few hundred tiny operations, so their count, not their arithmetic, is the cost.
//! The per-pixel path therefore works on `[N, features]` matrices: buffers are position-major
//! (`[N, H, W, F]`) and zero-padded, so a layer's input window is a view reshaped to
//! `[N, cols·F]` and each convolution at one position is one `addmm` against a weight matrix
//! prepared once; `h_conv`'s bias, `v_to_h` and the label bias are folded into one per-row term;
//! `h_skip` and `h_fc` are one product; outputs are written into the buffers in place; the head
//! computes only the current channel's logits.

use tch::{Kind, Tensor};

use super::Draws;
use crate::model::{gate, Conv, PixelCnn};

/// `[in, out]` matrix of a 1×1 convolution (masked as it computes).
fn matrix(conv: &Conv) -> Tensor {
    let w = conv.effective_weight();
    let (out, inp) = (w.size()[0], w.size()[1]);
    w.reshape([out, inp]).tr().contiguous()
}

/// The prepared weights of one layer.
struct Layer {
    /// Vertical kernel `(k/2+1) × k` with `v_fc` folded into its bottom-centre tap, and the sum
    /// of both biases.
    v_weight: Tensor,
    v_bias: Tensor,
    /// What the row above row 0 contributes: padding, i.e. `v_conv`'s bias alone.
    v_top: Tensor,
    /// `v_to_h` as `[2F, 2F]`, and its bias plus `h_conv`'s.
    v_to_h: (Tensor, Tensor),
    /// `h_conv` over its kept columns as `[cols·in, 2F]`, rows ordered (column, channel).
    h_conv: Tensor,
    /// `h_fc` (causal layer) or `[h_skip | h_fc]` (gated layers) as `[F, F or 2F]`, with bias.
    out: (Tensor, Tensor),
    /// Label bias `[N, 2F]` (gated layers only).
    label: Option<Tensor>,
    half: i64,
    cols: i64,
}

impl Layer {
    #[allow(clippy::too_many_arguments)]
    fn new(
        v_conv: &Conv,
        v_fc: &Conv,
        v_to_h: &Conv,
        h_conv: &Conv,
        out: (Tensor, Tensor),
        label: Option<Tensor>,
        k: i64,
    ) -> Self {
        let half = k / 2;
        let v_weight = &v_conv.weight + v_fc.weight.constant_pad_nd([half, half, half, 0]);
        let h = h_conv.effective_weight();
        let (two_f, inp, cols) = (h.size()[0], h.size()[1], h.size()[3]);
        Self {
            v_weight,
            v_bias: &v_conv.bias + &v_fc.bias,
            v_top: v_conv.bias.shallow_clone(),
            v_to_h: (matrix(v_to_h), &v_to_h.bias + &h_conv.bias),
            h_conv: h.squeeze_dim(2).permute([2, 1, 0]).reshape([cols * inp, two_f]),
            out,
            label,
            half,
            cols,
        }
    }
}

fn layers(model: &PixelCnn, labels: &Tensor) -> Vec<Layer> {
    let c = &model.causal;
    let fc = (matrix(&c.h_fc), c.h_fc.bias.shallow_clone());
    let mut out = vec![Layer::new(
        &c.v_conv, &c.v_fc, &c.v_to_h, &c.h_conv, fc, None, c.ksize,
    )];
    for g in &model.gated {
        let both = (
            Tensor::cat(&[matrix(&g.h_skip), matrix(&g.h_fc)], 1),
            Tensor::cat(&[&g.h_skip.bias, &g.h_fc.bias], 0),
        );
        let label = g.embed(labels).flatten(1, -1);
        out.push(Layer::new(
            &g.v_conv,
            &g.v_fc,
            &g.v_to_h,
            &g.h_conv,
            both,
            Some(label),
            g.ksize,
        ));
    }
    out
}

/// The output head: label bias, hidden 1×1 and, per colour channel, the rows of the output 1×1
/// that give that channel's `L` logits.
struct Head {
    label: Tensor,
    hidden: (Tensor, Tensor),
    per_channel: Vec<(Tensor, Tensor)>,
}

impl Head {
    fn new(model: &PixelCnn, labels: &Tensor) -> Self {
        let (ch, levels) = (model.spec.channels, model.spec.levels);
        let w = matrix(&model.out); // [O, L·C], output channel l·C + c
        let o = w.size()[0];
        let w = w.view([o, levels, ch]);
        let b = model.out.bias.view([levels, ch]);
        Self {
            label: Tensor::embedding(&model.label_embedding, labels, -1, false, false),
            hidden: (matrix(&model.out_hidden), model.out_hidden.bias.shallow_clone()),
            per_channel: (0..ch)
                .map(|c| (w.select(2, c).contiguous(), b.select(1, c).contiguous()))
                .collect(),
        }
    }

    /// Logits `[N, L]` of channel `c` from the summed skips `[N, F]`.
    fn logits(&self, skip: &Tensor, c: i64) -> Tensor {
        let out = (skip + &self.label).relu_();
        let hidden = self.hidden.1.addmm(&out, &self.hidden.0).relu_();
        let (w, b) = &self.per_channel[c as usize];
        b.addmm(&hidden, w)
    }
}

/// The sampler's activations: the image and every layer's outputs, padded, position-major.
struct State {
    layers: Vec<Layer>,
    head: Head,
    /// The image as values `level / (L-1)`, `[N, H + h0, W + 2·h0, C]`.
    x: Tensor,
    /// `v_out` of each layer but the last, `[N, H + hg, W + 2·hg, F]`.
    v_out: Vec<Tensor>,
    /// `h_out` of each layer but the last for the current row, `[N, W + hg, F]`.
    h_out: Vec<Tensor>,
    /// Per layer, `[N, W, 2F]`: what the vertical stack and the biases add to each column of
    /// the current row's `h_conv`.
    vh: Vec<Tensor>,
    n: i64,
    f: i64,
    width: i64,
}

impl State {
    fn new(model: &PixelCnn, labels: &Tensor, height: i64, width: i64) -> Self {
        let (n, f) = (labels.size()[0], model.spec.hidden_fmaps);
        let opts = (Kind::Float, labels.device());
        let layers = layers(model, labels);
        let h0 = layers[0].half;
        let hg = layers.get(1).map_or(0, |l| l.half);
        let x = Tensor::zeros([n, height + h0, width + 2 * h0, model.spec.channels], opts);
        let inner = layers.len() - 1;
        let v_out = (0..inner)
            .map(|_| Tensor::zeros([n, height + hg, width + 2 * hg, f], opts))
            .collect();
        let h_out = (0..inner)
            .map(|_| Tensor::zeros([n, width + hg, f], opts))
            .collect();
        let mut state = Self {
            head: Head::new(model, labels),
            layers,
            x,
            v_out,
            h_out,
            vh: Vec::new(),
            n,
            f,
            width,
        };
        state.vh = (0..state.layers.len())
            .map(|g| {
                let top = state.layers[g]
                    .v_top
                    .view([1, 1, -1])
                    .expand([n, width, -1], false);
                state.row_term(g, &top)
            })
            .collect();
        state
    }

    /// `v_to_h(v_shift) + biases + label` for every column of a row, from `v_shift` `[N, W, 2F]`.
    fn row_term(&self, g: usize, v_shift: &Tensor) -> Tensor {
        let l = &self.layers[g];
        let two_f = 2 * self.f;
        let t = l.v_to_h.1.addmm(&v_shift.reshape([-1, two_f]), &l.v_to_h.0);
        let t = t.view([self.n, self.width, two_f]);
        match &l.label {
            Some(e) => t + e.unsqueeze(1),
            None => t,
        }
    }

    /// `tanh(pre[:, :F]) * sigmoid(pre[:, F:])` of layer `g`'s horizontal stack at column `j`,
    /// from its input window `[N, cols·in]`.
    fn gated(&self, g: usize, window: &Tensor, j: i64) -> Tensor {
        let pre = self.vh[g].select(1, j).addmm(window, &self.layers[g].h_conv);
        pre.narrow(1, 0, self.f).tanh_() * pre.narrow(1, self.f, self.f).sigmoid_()
    }

    /// Logits `[N, L]` of sub-pixel (i, j, c), the image known up to it.
    fn step(&self, i: i64, j: i64, c: i64) -> Tensor {
        let (l0, f) = (&self.layers[0], self.f);
        let window = self
            .x
            .select(1, i + l0.half)
            .narrow(1, j, l0.cols)
            .reshape([self.n, -1]);
        let h = l0.out.1.addmm(&self.gated(0, &window, j), &l0.out.0);
        let mut skip: Option<Tensor> = None;
        for g in 1..self.layers.len() {
            let (l, below) = (&self.layers[g], &self.h_out[g - 1]);
            let at = j + l.half;
            if g == 1 {
                below.select(1, at).copy_(&h);
            }
            let window = below.narrow(1, j, l.cols).reshape([self.n, -1]);
            let both = l.out.1.addmm(&self.gated(g, &window, j), &l.out.0);
            let part = both.narrow(1, 0, f);
            match &mut skip {
                Some(s) => *s += part,
                None => skip = Some(part),
            }
            if let Some(next) = self.h_out.get(g) {
                let _ = both
                    .narrow(1, f, f)
                    .add_out(&next.select(1, at), &below.select(1, at));
            }
        }
        let skip = skip.unwrap_or_else(|| Tensor::zeros([self.n, f], (Kind::Float, self.x.device())));
        self.head.logits(&skip, c)
    }

    /// Writes the chosen levels (as values) of sub-pixel (i, j, c) into the image.
    fn place(&self, i: i64, j: i64, c: i64, values: &[f32]) {
        let h0 = self.layers[0].half;
        let mut slot = self.x.select(1, i + h0).select(1, j + h0).select(1, c);
        slot.copy_(&Tensor::from_slice(values).to_device(self.x.device()));
    }

    /// Row i is complete: every layer's vertical stack for it, and the next row's row terms.
    fn finish_row(&mut self, i: i64) {
        let width = self.width;
        let mut input = self.x.permute([0, 3, 1, 2]); // NCHW view of the padded image
        for g in 0..self.layers.len() {
            let l = &self.layers[g];
            let rows = input.narrow(2, i, l.half + 1);
            let mut v_pre = rows.conv2d(&l.v_weight, Some(&l.v_bias), [1, 1], [0, 0], [1, 1], 1);
            if let Some(e) = &l.label {
                v_pre += e.view([self.n, -1, 1, 1]);
            }
            let mut v = gate(&v_pre);
            if g > 0 {
                v += input.narrow(2, i + l.half, 1).narrow(3, l.half, width);
            }
            self.vh[g] = self.row_term(g, &v_pre.squeeze_dim(2).permute([0, 2, 1]));
            let Some(out) = self.v_out.get(g) else { break };
            let hg = self.layers[g + 1].half;
            out.select(1, i + hg)
                .narrow(1, hg, width)
                .copy_(&v.squeeze_dim(2).permute([0, 2, 1]));
            input = out.permute([0, 3, 1, 2]);
        }
    }
}

/// Runs the autoregressive loop. `choose(i, j, c, logits [N, L])` returns the levels (one per
/// image) to place at (c, i, j). Returns all chosen levels `[N, C, H, W]` (int64).
fn generate(
    model: &PixelCnn,
    labels: &Tensor,
    height: i64,
    width: i64,
    mut choose: impl FnMut(i64, i64, i64, &Tensor) -> Vec<i64>,
) -> Tensor {
    let (n, ch) = (labels.size()[0], model.spec.channels);
    let scale = (model.spec.levels - 1) as f32;
    let mut levels = vec![0i64; (n * ch * height * width) as usize];
    tch::no_grad(|| {
        let mut state = State::new(model, labels, height, width);
        for i in 0..height {
            for j in 0..width {
                for c in 0..ch {
                    let chosen = choose(i, j, c, &state.step(i, j, c));
                    let values: Vec<f32> = chosen.iter().map(|&v| v as f32 / scale).collect();
                    state.place(i, j, c, &values);
                    for (k, &v) in chosen.iter().enumerate() {
                        levels[(((k as i64 * ch + c) * height + i) * width + j) as usize] = v;
                    }
                }
            }
            state.finish_row(i);
        }
    });
    Tensor::from_slice(&levels)
        .view([n, ch, height, width])
        .to_device(labels.device())
}

/// Samples with cached activations; same draws in the same order as the naive sampler.
pub fn sample_cached(
    model: &PixelCnn,
    labels: &Tensor,
    height: i64,
    width: i64,
    draws: &mut Draws,
) -> Tensor {
    generate(model, labels, height, width, |_, _, _, logits| draws.draw(logits))
}

/// The logits `[N, L, C, H, W]` the cached sampler computes when the image is forced to be
/// `given` (levels `[N, C, H, W]`): equal to a full forward pass over `given` when the cache is
/// right. Exposed for tests.
pub fn cached_logits(model: &PixelCnn, labels: &Tensor, given: &Tensor) -> Tensor {
    let (n, ch, height, width) = given.size4().expect("levels are [N, C, H, W]");
    let out = Tensor::zeros(
        [n, model.spec.levels, ch, height, width],
        (Kind::Float, given.device()),
    );
    let _levels = generate(model, labels, height, width, |i, j, c, logits| {
        out.select(2, c).select(2, i).select(2, j).copy_(logits);
        Vec::<i64>::try_from(
            given
                .select(1, c)
                .select(1, i)
                .select(1, j)
                .to_device(tch::Device::Cpu)
                .contiguous(),
        )
        .expect("levels are int64")
    });
    out
}
