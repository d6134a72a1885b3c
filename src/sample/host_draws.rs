//! Tensors in and out of the host sampler: the sampling draws, and the logits it computes for a
//! given image (for tests).

use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use super::host::{generate, Chooser, Net, Shape};
use super::{draw_one, Draws};
use crate::model::PixelCnn;

/// Draws from the one seeded generator in the naive sampler's order (per sub-pixel, image by
/// image), a row's uniforms at a time.
struct RowDraws<'a> {
    draws: &'a mut Draws,
    n: usize,
    channels: usize,
    width: usize,
    uniforms: Vec<f32>,
}

impl Chooser for RowDraws<'_> {
    fn start_row(&mut self, _i: usize) {
        self.uniforms.clear();
        let count = self.n * self.channels * self.width;
        self.uniforms.extend((0..count).map(|_| self.draws.uniform()));
    }

    fn choose(&self, _i: usize, j: usize, c: usize, first: usize, logits: &[f32], out: &mut [i64]) {
        let levels = logits.len() / out.len().max(1);
        let at = (j * self.channels + c) * self.n + first;
        let temperature = self.draws.temperature();
        for (b, o) in out.iter_mut().enumerate() {
            *o = draw_one(
                &logits[b * levels..(b + 1) * levels],
                self.uniforms[at + b],
                temperature,
            );
        }
    }
}

/// The labels as class indices, each checked against the model's `classes` (the tensor path
/// fails in its embedding lookup alike).
fn host_labels(labels: &Tensor, classes: usize) -> Vec<usize> {
    let values =
        Vec::<i64>::try_from(labels.to_device(Device::Cpu).to_kind(Kind::Int64)).expect("labels are int64");
    let class = |l: i64| {
        assert!(
            (0..classes as i64).contains(&l),
            "label {l} is not one of the model's {classes} classes"
        );
        l as usize
    };
    values.into_iter().map(class).collect()
}

fn shape(height: i64, width: i64, threads: usize) -> Shape {
    Shape {
        height: height as usize,
        width: width as usize,
        threads,
    }
}

/// Samples on the host CPU with `threads` threads (one chunk of images each): the same images
/// as the naive sampler for the same draws, whatever the number of threads.
pub fn sample_host(
    model: &PixelCnn,
    labels: &Tensor,
    (height, width): (i64, i64),
    draws: &mut Draws,
    threads: usize,
) -> Tensor {
    let net = Net::new(model);
    let host = host_labels(labels, net.head.label.len());
    let mut chooser = RowDraws {
        n: host.len(),
        channels: net.channels,
        width: width as usize,
        uniforms: Vec::new(),
        draws,
    };
    let levels = generate(&net, &host, shape(height, width, threads), &mut chooser);
    let dims = [host.len() as i64, net.channels as i64, height, width];
    Tensor::from_slice(&levels).view(dims).to_device(labels.device())
}

/// Replays `given`'s levels and records every step's logits.
struct Replay {
    given: Vec<i64>,
    dims: [usize; 4],
    levels: usize,
    logits: Mutex<Vec<f32>>,
}

impl Chooser for Replay {
    fn start_row(&mut self, _i: usize) {}

    fn choose(&self, i: usize, j: usize, c: usize, first: usize, logits: &[f32], out: &mut [i64]) {
        let [_, ch, h, w] = self.dims;
        let mut all = self.logits.lock().unwrap_or_else(|e| e.into_inner());
        for (b, o) in out.iter_mut().enumerate() {
            let n = first + b;
            *o = self.given[((n * ch + c) * h + i) * w + j];
            for l in 0..self.levels {
                all[(((n * self.levels + l) * ch + c) * h + i) * w + j] = logits[b * self.levels + l];
            }
        }
    }
}

/// The logits `[N, L, C, H, W]` the host sampler computes when the image is forced to be `given`
/// (levels `[N, C, H, W]`) on `threads` threads: equal to a full forward pass over `given` when
/// the cache is right. Exposed for tests.
pub fn host_logits(model: &PixelCnn, labels: &Tensor, given: &Tensor, threads: usize) -> Tensor {
    let (n, ch, h, w) = given.size4().expect("levels are [N, C, H, W]");
    let net = Net::new(model);
    let levels = net.levels;
    let mut replay = Replay {
        given: Vec::<i64>::try_from(given.to_device(Device::Cpu).flatten(0, -1)).expect("int64 levels"),
        dims: [n, ch, h, w].map(|d| d as usize),
        levels,
        logits: Mutex::new(vec![0.0; (n * ch * h * w) as usize * levels]),
    };
    let labels = host_labels(labels, net.head.label.len());
    generate(&net, &labels, shape(h, w, threads), &mut replay);
    let logits = replay.logits.into_inner().unwrap_or_else(|e| e.into_inner());
    Tensor::from_slice(&logits).view([n, levels as i64, ch, h, w])
}
