//! The cached sampler on the host CPU, without libtorch in the loop: the weights are copied
//! once into plain matrices ([`net`]), each chunk of images keeps its activations in plain
//! buffers ([`chunk`]), and a step is a handful of small matrix products (an AVX-512 kernel
//! where the CPU has it, `matrixmultiply` elsewhere: [`kernels`]) with no allocation. The
//! images are split into one chunk per thread; the uniforms each step's draw uses are taken
//! from the one seeded generator in the naive sampler's order, a row at a time, so the images
//! do not depend on the number of threads.

mod chunk;
mod kernels;
mod net;

use chunk::Chunk;
pub use net::Net;

/// Sizes of a sampling job.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub height: usize,
    pub width: usize,
    pub threads: usize,
}

/// What picks each sub-pixel's level: given (i, j, c), the index of the chunk's first image
/// and the chunk's logits `[n, L]`, the levels of its `n` images.
pub trait Chooser: Sync {
    /// Called once per row before its steps (on the calling thread).
    fn start_row(&mut self, i: usize);
    fn choose(&self, i: usize, j: usize, c: usize, first: usize, logits: &[f32], out: &mut [i64]);
}

/// Runs the autoregressive loop over `labels.len()` images; returns the levels `[N, C, H, W]`.
pub fn generate(net: &Net, labels: &[usize], shape: Shape, chooser: &mut impl Chooser) -> Vec<i64> {
    let per = labels.len().div_ceil(shape.threads.max(1)).max(1);
    let mut chunks: Vec<(usize, Chunk)> = labels
        .chunks(per)
        .enumerate()
        .map(|(k, l)| (k * per, Chunk::new(net, l.to_vec(), shape.height, shape.width)))
        .collect();
    let plane = shape.height * shape.width;
    let mut levels = vec![0i64; labels.len() * net.channels * plane];
    let mut parts: Vec<&mut [i64]> = levels.chunks_mut(per * net.channels * plane).collect();
    for i in 0..shape.height {
        chooser.start_row(i);
        let chooser = &*chooser;
        std::thread::scope(|scope| {
            let mut work = chunks.iter_mut().zip(parts.iter_mut());
            let own = work.next();
            for (chunk, part) in work {
                scope.spawn(move || sample_row(net, chunk, part, i, shape, chooser));
            }
            if let Some((chunk, part)) = own {
                sample_row(net, chunk, part, i, shape, chooser);
            }
        });
    }
    levels
}

/// Row `i` of one chunk: every sub-pixel's step, choice and placement, then the row's vertical
/// stacks. `levels` is the chunk's part of the `[N, C, H, W]` result.
fn sample_row(
    net: &Net,
    (first, chunk): &mut (usize, Chunk),
    levels: &mut [i64],
    i: usize,
    shape: Shape,
    chooser: &impl Chooser,
) {
    let (ch, plane) = (net.channels, shape.height * shape.width);
    let scale = (net.levels - 1) as f32;
    let mut chosen = vec![0i64; chunk.len()];
    for j in 0..shape.width {
        for c in 0..ch {
            let logits = chunk.step(i, j, c);
            chooser.choose(i, j, c, *first, logits, &mut chosen);
            chunk.place(i, j, c, chosen.iter().map(|&v| v as f32 / scale));
            for (b, &v) in chosen.iter().enumerate() {
                levels[(b * ch + c) * plane + i * shape.width + j] = v;
            }
        }
    }
    chunk.finish_row(i);
}
