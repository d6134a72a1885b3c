//! The cached sampler: activations of every layer are kept, and each step computes only what the
//! newly chosen sub-pixel changes.
//!
//! Per sub-pixel (i, j, c) the horizontal stack of each layer is evaluated at column j alone,
//! from cached columns j-k/2..j of the layer below; the vertical stack's row i is computed once,
//! after row i is complete, from the k/2+1 rows it needs. Buffers carry their zero padding, so a
//! window is a `narrow`, never a copy of the whole image.

use tch::{Kind, Tensor};

use super::Draws;
use crate::model::{gate, Conv, PixelCnn};

/// The convolutions of one layer with their effective (masked) weights computed once.
struct Layer {
    /// Vertical stack: `(k/2+1) × k` kernel, and its 1×1 `v_fc`.
    v_conv: (Tensor, Tensor),
    v_fc: (Tensor, Tensor),
    v_to_h: (Tensor, Tensor),
    /// Horizontal `1 × k` kernel cut to the `cols` leading columns its mask keeps (the left half,
    /// and the centre unless the mask drops it): the right taps are masked to zero.
    h_conv_left: (Tensor, Tensor),
    cols: i64,
    h_fc: (Tensor, Tensor),
    h_skip: Option<(Tensor, Tensor)>,
    /// Label bias `[N, 2F, 1, 1]` (gated layers only).
    label: Option<Tensor>,
    half: i64,
}

fn weights(conv: &Conv) -> (Tensor, Tensor) {
    (conv.effective_weight(), conv.bias.shallow_clone())
}

fn apply(x: &Tensor, (w, b): &(Tensor, Tensor)) -> Tensor {
    x.conv2d(w, Some(b), [1, 1], [0, 0], [1, 1], 1)
}

fn layers(model: &PixelCnn, labels: &Tensor) -> Vec<Layer> {
    let c = &model.causal;
    let left = |conv: &Conv| {
        let (w, b) = weights(conv);
        (w.contiguous(), b)
    };
    let mut out = vec![Layer {
        v_conv: weights(&c.v_conv),
        v_fc: weights(&c.v_fc),
        v_to_h: weights(&c.v_to_h),
        h_conv_left: left(&c.h_conv),
        cols: c.h_conv.kept_cols(),
        h_fc: weights(&c.h_fc),
        h_skip: None,
        label: None,
        half: c.ksize / 2,
    }];
    for g in &model.gated {
        out.push(Layer {
            v_conv: weights(&g.v_conv),
            v_fc: weights(&g.v_fc),
            v_to_h: weights(&g.v_to_h),
            h_conv_left: left(&g.h_conv),
            cols: g.h_conv.kept_cols(),
            h_fc: weights(&g.h_fc),
            h_skip: Some(weights(&g.h_skip)),
            label: Some(g.embed(labels)),
            half: g.ksize / 2,
        });
    }
    out
}

/// Runs the autoregressive loop. `choose(i, j, c, logits [N, L])` returns the levels `[N]` to
/// place at (c, i, j). Returns all chosen levels `[N, C, H, W]`.
fn generate(
    model: &PixelCnn,
    labels: &Tensor,
    height: i64,
    width: i64,
    mut choose: impl FnMut(i64, i64, i64, &Tensor) -> Tensor,
) -> Tensor {
    let spec = model.spec;
    let (n, ch, f) = (labels.size()[0], spec.channels, spec.hidden_fmaps);
    let opts = (Kind::Float, labels.device());
    let scale = (spec.levels - 1) as f64;
    let layers = layers(model, labels);
    let h0 = layers[0].half;
    let hg = layers.get(1).map_or(0, |l| l.half);
    let levels = Tensor::zeros([n, ch, height, width], (Kind::Int64, labels.device()));
    // The image, zero-padded above and on both sides for the causal block's kernels.
    let x = Tensor::zeros([n, ch, height + h0, width + 2 * h0], opts);
    // v_out of each layer but the last (input of the next), padded for the gated kernels.
    let v_out: Vec<Tensor> = (1..layers.len())
        .map(|_| Tensor::zeros([n, f, height + hg, width + 2 * hg], opts))
        .collect();
    // h_out of each layer but the last, for the current row, padded left by hg.
    let h_out: Vec<Tensor> = (1..layers.len())
        .map(|_| Tensor::zeros([n, f, 1, width + hg], opts))
        .collect();
    // v_pre of the previous row per layer: what v_shift reads. Row 0 sees only v_conv's bias.
    let mut v_prev: Vec<Tensor> = layers
        .iter()
        .map(|l| l.v_conv.1.view([1, -1, 1, 1]).expand([n, -1, 1, width], false))
        .collect();

    tch::no_grad(|| {
        for i in 0..height {
            // The vertical stack's contribution to every column of this row, label bias included.
            let vh: Vec<Tensor> = layers
                .iter()
                .zip(&v_prev)
                .map(|(l, vp)| match &l.label {
                    Some(e) => apply(vp, &l.v_to_h) + e,
                    None => apply(vp, &l.v_to_h),
                })
                .collect();
            for j in 0..width {
                for c in 0..ch {
                    let window = x.narrow(2, i + h0, 1).narrow(3, j, layers[0].cols);
                    let l0 = &layers[0];
                    let pre = apply(&window, &l0.h_conv_left) + vh[0].narrow(3, j, 1);
                    let mut h = apply(&gate(&pre), &l0.h_fc);
                    let mut skip = Tensor::zeros([n, f, 1, 1], opts);
                    for (g, layer) in layers.iter().enumerate().skip(1) {
                        let below = &h_out[g - 1];
                        below.narrow(3, j + hg, 1).copy_(&h);
                        let pre =
                            apply(&below.narrow(3, j, layer.cols), &layer.h_conv_left) + vh[g].narrow(3, j, 1);
                        let gated = gate(&pre);
                        if let Some(s) = &layer.h_skip {
                            skip += apply(&gated, s);
                        }
                        h = apply(&gated, &layer.h_fc) + &h;
                    }
                    let logits = model.head(&skip, labels).view([n, spec.levels, ch]).select(2, c);
                    let chosen = choose(i, j, c, &logits);
                    levels.select(1, c).select(1, i).select(1, j).copy_(&chosen);
                    x.select(1, c)
                        .select(1, i + h0)
                        .select(1, j + h0)
                        .copy_(&(chosen.to_kind(Kind::Float) / scale));
                }
            }
            // Row i is complete: compute every layer's vertical stack for it.
            let x_row = x.narrow(2, i + h0, 1).narrow(3, h0, width);
            let l0 = &layers[0];
            let mut v_pre = apply(&x.narrow(2, i, h0 + 1), &l0.v_conv) + apply(&x_row, &l0.v_fc);
            let mut v = gate(&v_pre);
            v_prev[0] = v_pre;
            for (g, layer) in layers.iter().enumerate().skip(1) {
                let below = &v_out[g - 1];
                below.narrow(2, i + hg, 1).narrow(3, hg, width).copy_(&v);
                let row = below.narrow(2, i + hg, 1).narrow(3, hg, width);
                v_pre = apply(&below.narrow(2, i, hg + 1), &layer.v_conv) + apply(&row, &layer.v_fc);
                if let Some(e) = &layer.label {
                    v_pre += e;
                }
                v = gate(&v_pre) + row;
                v_prev[g] = v_pre;
            }
        }
    });
    levels
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
        given.select(1, c).select(1, i).select(1, j)
    });
    out
}
