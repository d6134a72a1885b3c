//! The model's autoregressive structure, checked through input gradients: each sub-pixel's logits
//! depend on every earlier sub-pixel in reach and on nothing at or after it.
//! Belongs here: properties of the network itself (masks, receptive field).

use pixelx::model::{ModelSpec, PixelCnn};
use tch::{nn, Device, Kind, Tensor};

fn model(channels: i64, k: i64, layers: i64) -> (nn::VarStore, PixelCnn) {
    let vs = nn::VarStore::new(Device::Cpu);
    let spec = ModelSpec {
        channels,
        levels: 4,
        hidden_fmaps: 12,
        out_hidden_fmaps: 12,
        hidden_layers: layers,
        causal_ksize: k,
        hidden_ksize: k,
        classes: 10,
    };
    let m = PixelCnn::new(&vs.root(), spec, 3);
    (vs, m)
}

/// Which input sub-pixels `[C, H, W]` influence the logits of sub-pixel (c, i, j): non-zero
/// gradient for any image of a random batch (a batch makes accidental zeros, e.g. from a ReLU
/// that happens to be off, irrelevant).
fn influence(m: &PixelCnn, size: i64, c: i64, i: i64, j: i64) -> Vec<bool> {
    let ch = m.spec.channels;
    let x = Tensor::rand([8, ch, size, size], (Kind::Double, Device::Cpu)).set_requires_grad(true);
    let labels = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 5, 6, 7]);
    let logits = m.forward(&x.to_kind(Kind::Float), &labels);
    logits
        .select(2, c)
        .select(2, i)
        .select(2, j)
        .sum(Kind::Float)
        .backward();
    let seen = x
        .grad()
        .abs()
        .sum_dim_intlist([0i64].as_slice(), false, Kind::Double)
        .gt(0.0);
    Vec::<bool>::try_from(seen.flatten(0, -1)).unwrap()
}

/// True when sub-pixel (c2, i2, j2) comes before (c, i, j) in raster order, channels R, G, B.
fn before(c2: i64, i2: i64, j2: i64, c: i64, i: i64, j: i64) -> bool {
    (i2, j2, c2) < (i, j, c)
}

#[test]
fn no_logit_sees_its_own_or_a_later_sub_pixel() {
    let size = 7;
    for channels in [1, 3] {
        for k in [3, 5, 7] {
            let (_vs, m) = model(channels, k, 2);
            for (i, j) in [(0, 0), (0, 3), (3, 0), (3, 3), (6, 6), (2, 5)] {
                for c in 0..channels {
                    let seen = influence(&m, size, c, i, j);
                    for (at, &s) in seen.iter().enumerate() {
                        let at = at as i64;
                        let (c2, i2, j2) = (at / (size * size), (at / size) % size, at % size);
                        if s {
                            assert!(
                                before(c2, i2, j2, c, i, j),
                                "C={channels} k={k}: logits of ({c},{i},{j}) depend on ({c2},{i2},{j2})"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The original project's default model in RGB (F = 30, O = 10: O is not a multiple of C, which
/// the output layers' masks allow, since they group channels by index modulo C).
#[test]
fn the_original_rgb_model_is_causal_and_sees_every_earlier_sub_pixel() {
    let vs = nn::VarStore::new(Device::Cpu);
    let m = PixelCnn::new(&vs.root(), ModelSpec::original(3), 5);
    let size = 7;
    for (i, j) in [(6, 6), (3, 2), (0, 5)] {
        for c in 0..3 {
            let seen = influence(&m, size, c, i, j);
            for (at, &s) in seen.iter().enumerate() {
                let at = at as i64;
                let (c2, i2, j2) = (at / (size * size), (at / size) % size, at % size);
                assert_eq!(
                    s,
                    before(c2, i2, j2, c, i, j),
                    "original RGB model: logits of ({c},{i},{j}) vs ({c2},{i2},{j2})"
                );
            }
        }
    }
}

#[test]
fn every_earlier_sub_pixel_in_reach_is_seen() {
    // Enough layers that the receptive field covers a 5x5 image: no blind spot may remain.
    let size = 5;
    for channels in [1, 3] {
        for (k, layers) in [(3, 6), (5, 4), (7, 3)] {
            let (_vs, m) = model(channels, k, layers);
            for (i, j) in [(4, 4), (2, 2), (4, 0), (0, 4), (3, 1)] {
                for c in 0..channels {
                    let seen = influence(&m, size, c, i, j);
                    for (at, &s) in seen.iter().enumerate() {
                        let at = at as i64;
                        let (c2, i2, j2) = (at / (size * size), (at / size) % size, at % size);
                        if before(c2, i2, j2, c, i, j) {
                            assert!(
                                s,
                                "C={channels} k={k}: logits of ({c},{i},{j}) are blind to ({c2},{i2},{j2})"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Logits and every parameter's gradient of `(logits · r).sum()` for one random batch.
fn logits_and_grads(vs: &nn::VarStore, m: &PixelCnn, x: &Tensor, labels: &Tensor, r: &Tensor) -> Vec<Tensor> {
    for mut v in vs.trainable_variables() {
        v.zero_grad();
    }
    let logits = m.forward(x, labels);
    (&logits * r).sum(Kind::Float).backward();
    let mut out = vec![logits.detach()];
    let mut named: Vec<_> = vs
        .variables()
        .into_iter()
        .filter(|(_, v)| v.requires_grad())
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    out.extend(named.into_iter().map(|(_, v)| v.grad().copy()));
    out
}

#[test]
fn cropped_row_convolutions_give_the_masked_ones_logits_and_gradients() {
    // The horizontal stacks' masked 1×k convolutions computed as 1×(k/2+1) (1×k/2 for mask A on
    // one channel) over the shifted input: the same numbers as over the full masked kernel.
    for channels in [1, 3] {
        for k in [3, 5, 7] {
            let (vs, mut m) = model(channels, k, 2);
            let x = Tensor::rand([3, channels, 6, 7], (Kind::Float, Device::Cpu));
            let labels = Tensor::from_slice(&[0i64, 4, 9]);
            let r = Tensor::randn([3, 4, channels, 6, 7], (Kind::Float, Device::Cpu));
            m.set_cropped(true);
            let cropped = logits_and_grads(&vs, &m, &x, &labels, &r);
            m.set_cropped(false);
            let masked = logits_and_grads(&vs, &m, &x, &labels, &r);
            assert_eq!(cropped.len(), masked.len());
            for (i, (a, b)) in cropped.iter().zip(&masked).enumerate() {
                let diff = (a - b).abs().max().double_value(&[]);
                let what = if i == 0 { "logits" } else { "a gradient" };
                assert!(
                    diff <= 1e-6,
                    "C={channels} k={k}: {what} (#{i}) differs by {diff}"
                );
            }
            // The masked path computes with the full kernel: the cropped one really is narrower.
            let h = &m.causal.h_conv;
            let expected = if channels == 1 { k / 2 } else { k / 2 + 1 };
            assert_eq!(h.kept_cols(), expected, "C={channels} k={k}");
            assert_eq!(h.effective_weight().size()[3], expected);
        }
    }
}
