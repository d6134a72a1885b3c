//! The cached sampler's state for a chunk of images, on the host: every buffer is a plain
//! position-major `Vec<f32>` (image, row, column, channel), zero-padded, allocated once, so a
//! layer's input window at one position is a contiguous slice and each step is a few small
//! matrix products with no allocation and no libtorch call.

use super::kernels::{fill_rows, gate, gemm_acc};
use super::net::Net;

/// A padded `[n, rows, cols, depth]` buffer.
struct Grid {
    data: Vec<f32>,
    /// Padding rows on top and columns on each side.
    pad: usize,
    depth: usize,
    row: usize,
    image: usize,
}

impl Grid {
    fn new(n: usize, height: usize, width: usize, pad: usize, depth: usize) -> Self {
        let row = (width + 2 * pad) * depth;
        let image = (height + pad) * row;
        Self {
            data: vec![0.0; n * image],
            pad,
            depth,
            row,
            image,
        }
    }

    /// Offset of padded position (`r`, `c`) of image `b`.
    fn at(&self, b: usize, r: usize, c: usize) -> usize {
        b * self.image + r * self.row + c * self.depth
    }
}

/// Scratch rows for the per-step products, `[n, width]` each.
struct Scratch {
    pre: Vec<f32>,
    gated: Vec<f32>,
    both: Vec<f32>,
    skip: Vec<f32>,
    hidden: Vec<f32>,
    logits: Vec<f32>,
    /// One image's row of the vertical stack, `[W, 2F]`.
    v_pre: Vec<f32>,
}

/// The activations of `labels.len()` images while they are sampled.
pub struct Chunk<'a> {
    net: &'a Net,
    labels: Vec<usize>,
    width: usize,
    /// The image as `level / (L-1)`, padded by the first layer's `half`.
    x: Grid,
    /// `v_out` of every layer but the last, padded by the next layer's `half`.
    v_out: Vec<Grid>,
    /// `h_out` of every layer but the last for the current row, `[n, pad + W, F]`.
    h_out: Vec<Vec<f32>>,
    /// Per layer, `[n, W, 2F]`: what the vertical stack and the biases add to each column of
    /// the current row's `h_conv`.
    vh: Vec<Vec<f32>>,
    /// The padding of `h_out` (the gated layers' `half`).
    h_pad: usize,
    s: Scratch,
}

impl<'a> Chunk<'a> {
    pub fn new(net: &'a Net, labels: Vec<usize>, height: usize, width: usize) -> Self {
        let (n, f, layers) = (labels.len(), net.f, &net.layers);
        let h_pad = layers.get(1).map_or(0, |l| l.half);
        let inner = layers.len() - 1;
        let mut chunk = Self {
            net,
            width,
            x: Grid::new(n, height, width, layers[0].half, net.channels),
            v_out: (0..inner)
                .map(|g| Grid::new(n, height, width, layers[g + 1].half, f))
                .collect(),
            h_out: vec![vec![0.0; n * (width + h_pad) * f]; inner],
            vh: vec![vec![0.0; n * width * 2 * f]; layers.len()],
            h_pad,
            s: Scratch {
                pre: vec![0.0; n * 2 * f],
                gated: vec![0.0; n * f],
                both: vec![0.0; n * 2 * f],
                skip: vec![0.0; n * f],
                hidden: vec![0.0; n * net.o],
                logits: vec![0.0; n * net.levels],
                v_pre: vec![0.0; width * 2 * f],
            },
            labels,
        };
        let rows = width * 2 * f;
        for (g, vh) in chunk.vh.iter_mut().enumerate() {
            fill_rows(&mut chunk.s.v_pre, width, 2 * f, &layers[g].v_top);
            for (b, &label) in chunk.labels.iter().enumerate() {
                row_term(net, g, label, &chunk.s.v_pre, &mut vh[b * rows..(b + 1) * rows]);
            }
        }
        chunk
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `pre = vh[g][·, j] + window · h_conv` for every image, then the gate into `s.gated`.
    fn gated(&mut self, g: usize, j: usize, window: &[f32], lda: usize) {
        let (l, f, n) = (&self.net.layers[g], self.net.f, self.len());
        let (w, pre) = (self.width, &mut self.s.pre);
        for b in 0..n {
            let from = (b * w + j) * 2 * f;
            pre[b * 2 * f..(b + 1) * 2 * f].copy_from_slice(&self.vh[g][from..from + 2 * f]);
        }
        gemm_acc(n, window, lda, &l.h_conv, pre, 2 * f);
        for b in 0..n {
            gate(
                &pre[b * 2 * f..(b + 1) * 2 * f],
                &mut self.s.gated[b * f..(b + 1) * f],
            );
        }
    }

    /// `s.both = out_bias + s.gated · out` for layer `g` (`width` outputs per image).
    fn out_product(&mut self, g: usize, width: usize) {
        let (l, f, n) = (&self.net.layers[g], self.net.f, self.len());
        fill_rows(&mut self.s.both, n, width, &l.out_bias);
        gemm_acc(n, &self.s.gated, f, &l.out, &mut self.s.both, width);
    }

    /// Logits `[n, L]` of sub-pixel (i, j, c), the image known up to it.
    pub fn step(&mut self, i: usize, j: usize, c: usize) -> &[f32] {
        let (f, n, layers) = (self.net.f, self.len(), &self.net.layers);
        let l0 = &layers[0];
        let start = self.x.at(0, i + l0.half, j);
        let x = std::mem::take(&mut self.x.data);
        self.gated(0, j, &x[start..], self.x.image);
        self.x.data = x;
        self.out_product(0, f);
        let (hp, hs) = (self.h_pad, (self.width + self.h_pad) * f);
        if let Some(h) = self.h_out.first_mut() {
            for b in 0..n {
                let at = b * hs + (j + hp) * f;
                h[at..at + f].copy_from_slice(&self.s.both[b * f..(b + 1) * f]);
            }
        }
        self.s.skip.fill(0.0);
        for g in 1..layers.len() {
            let below = std::mem::take(&mut self.h_out[g - 1]);
            self.gated(g, j, &below[j * f..], hs);
            self.out_product(g, 2 * f);
            for b in 0..n {
                let both = &self.s.both[b * 2 * f..(b + 1) * 2 * f];
                let skip = &mut self.s.skip[b * f..(b + 1) * f];
                skip.iter_mut().zip(&both[..f]).for_each(|(s, v)| *s += v);
                if let Some(next) = self.h_out.get_mut(g) {
                    let at = b * hs + (j + hp) * f;
                    for ((o, v), r) in next[at..at + f]
                        .iter_mut()
                        .zip(&both[f..])
                        .zip(&below[at..at + f])
                    {
                        *o = v + r;
                    }
                }
            }
            self.h_out[g - 1] = below;
        }
        self.head(c)
    }

    /// `out_c(relu(hidden(relu(skip + label))))`: channel `c`'s logits `[n, L]`.
    fn head(&mut self, c: usize) -> &[f32] {
        let (h, f, o, n) = (&self.net.head, self.net.f, self.net.o, self.len());
        for (b, &label) in self.labels.iter().enumerate() {
            let skip = &mut self.s.skip[b * f..(b + 1) * f];
            skip.iter_mut()
                .zip(&h.label[label])
                .for_each(|(s, e)| *s = (*s + e).max(0.0));
        }
        fill_rows(&mut self.s.hidden, n, o, &h.hidden_bias);
        gemm_acc(n, &self.s.skip, f, &h.hidden, &mut self.s.hidden, o);
        self.s.hidden.iter_mut().for_each(|v| *v = v.max(0.0));
        let (w, bias) = &h.per_channel[c];
        let levels = self.net.levels;
        fill_rows(&mut self.s.logits, n, levels, bias);
        gemm_acc(n, &self.s.hidden, o, w, &mut self.s.logits, levels);
        &self.s.logits
    }

    /// Writes the chosen values (`level / (L-1)`, one per image) of sub-pixel (i, j, c).
    pub fn place(&mut self, i: usize, j: usize, c: usize, values: impl Iterator<Item = f32>) {
        let pad = self.x.pad;
        for (b, v) in values.enumerate() {
            let at = self.x.at(b, i + pad, j + pad) + c;
            self.x.data[at] = v;
        }
    }

    /// Row `i` is complete: every layer's vertical stack for it, and the next row's row terms.
    pub fn finish_row(&mut self, i: usize) {
        let rows = self.width * 2 * self.net.f;
        for g in 0..self.net.layers.len() {
            let split = g.min(self.v_out.len());
            let (below, rest) = self.v_out.split_at_mut(split);
            let input = match g {
                0 => &self.x,
                _ => &below[g - 1],
            };
            for (b, &label) in self.labels.iter().enumerate() {
                vertical_row(self.net, g, input, b, i, label, &mut self.s.v_pre);
                if let Some(out) = rest.first_mut() {
                    write_v_out(self.net, g, input, out, b, i, &self.s.v_pre);
                }
                let vh = &mut self.vh[g][b * rows..(b + 1) * rows];
                row_term(self.net, g, label, &self.s.v_pre, vh);
            }
        }
    }
}

/// What layer `g`'s vertical stack adds to each column of the next row's `h_conv` for one
/// image: `v_to_h(v_pre) + biases + label`, from its `[W, 2F]` row `v_pre`, into `out`.
fn row_term(net: &Net, g: usize, label: usize, v_pre: &[f32], out: &mut [f32]) {
    let (l, two_f) = (&net.layers[g], 2 * net.f);
    let w = v_pre.len() / two_f;
    fill_rows(out, w, two_f, &l.v_to_h_bias);
    if let Some(e) = l.label.get(label) {
        for row in out.chunks_mut(two_f) {
            row.iter_mut().zip(e).for_each(|(o, e)| *o += e);
        }
    }
    gemm_acc(w, v_pre, two_f, &l.v_to_h, out, two_f);
}

/// `v_pre` `[W, 2F]` of layer `g`, image `b`, row `i`: bias, label, and one product per kernel
/// row over the overlapping windows of `input`'s rows `i..=i+half` (padded coordinates).
fn vertical_row(net: &Net, g: usize, input: &Grid, b: usize, i: usize, label: usize, v_pre: &mut [f32]) {
    let (l, two_f) = (&net.layers[g], 2 * net.f);
    let width = v_pre.len() / two_f;
    fill_rows(v_pre, width, two_f, &l.v_bias);
    if let Some(e) = l.label.get(label) {
        for row in v_pre.chunks_mut(two_f) {
            row.iter_mut().zip(e).for_each(|(o, e)| *o += e);
        }
    }
    for (r, weights) in l.v_rows.iter().enumerate() {
        let start = input.at(b, i + r, 0);
        let a = &input.data[start..];
        gemm_acc(width, a, l.inp, weights, v_pre, two_f);
    }
}

/// `v_out` of layer `g` at row `i` of image `b`: the gated `v_pre`, plus the layer's input
/// (a residual) after the first layer, written into the next layer's padded input.
fn write_v_out(net: &Net, g: usize, input: &Grid, out: &mut Grid, b: usize, i: usize, v_pre: &[f32]) {
    let (f, half) = (net.f, net.layers[g].half);
    let width = v_pre.len() / (2 * f);
    for j in 0..width {
        let at = out.at(b, i + out.pad, j + out.pad);
        let dst = &mut out.data[at..at + f];
        gate(&v_pre[j * 2 * f..(j + 1) * 2 * f], dst);
        if g > 0 {
            let from = input.at(b, i + half, j + half);
            dst.iter_mut()
                .zip(&input.data[from..from + f])
                .for_each(|(o, r)| *o += r);
        }
    }
}
