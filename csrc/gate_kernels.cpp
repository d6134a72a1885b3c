// The gate `tanh(a) * sigmoid(b)` of the Gated PixelCNN, forward and backward, in one pass over
// memory each, where libtorch takes three element-wise kernels forward (two of them on the
// strided halves a channels-last tensor splits into, which fall off its vectorised path) and
// about five backward.
//
// An activation `t` of 2F channels is `outer` rows of [a (inner values), b (inner values)]:
// NCHW gives outer = N, inner = F·H·W; NHWC gives outer = N·H·W, inner = F. The output (and
// the gradient flowing back into it) is the matching `outer × inner`.
//
// This file is compiled once per instruction set (build.rs): `CPU_CAPABILITY` picks the width of
// ATen's `Vectorized` (AVX-512, or the portable default), and `PIXELX_CAP` names the entry
// points, so `gate.cpp` can choose at run time and the binary still runs on CPUs without
// AVX-512. The exponential is ATen's own (Sleef), as its sigmoid kernel uses.
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cstdint>

#define PIXELX_JOIN2(a, b) a##_##b
#define PIXELX_JOIN(a, b) PIXELX_JOIN2(a, b)
#define PIXELX_NAME(x) PIXELX_JOIN(x, PIXELX_CAP)

namespace {

using Vec = at::vec::Vectorized<float>;

// Elements per parallel task: large enough that scheduling costs nothing next to the work.
constexpr int64_t kGrain = 16384;
// bf16 values are widened to float a block at a time, in buffers on the stack.
constexpr int64_t kBlock = 512;

Vec sigmoid(Vec x) { return (Vec(1.0f) + (Vec(0.0f) - x).exp()).reciprocal(); }

// tanh(x) = sign(x) (1 - e) / (1 + e) with e = exp(-2|x|): one exp and a division, about half
// of what Sleef's tanh costs (which was the fused kernels' largest part), within 1e-7 of it in
// absolute terms. e is in (0, 1], so nothing overflows.
Vec tanh(Vec x) {
  const Vec one(1.0f), zero(0.0f);
  auto e = (Vec(-2.0f) * x.abs()).exp();
  auto magnitude = (one - e) / (one + e);
  return Vec::blendv(magnitude, zero - magnitude, x < zero);
}

// out[j] = tanh(a[j]) * sigmoid(b[j]) for j < n.
void forward_span(const float* a, const float* b, float* out, int64_t n) {
  int64_t j = 0;
  for (; j + Vec::size() <= n; j += Vec::size()) {
    (tanh(Vec::loadu(a + j)) * sigmoid(Vec::loadu(b + j))).store(out + j);
  }
  if (j < n) {
    auto left = n - j;
    (tanh(Vec::loadu(a + j, left)) * sigmoid(Vec::loadu(b + j, left))).store(out + j, left);
  }
}

// da = g (1 - tanh²a) σ(b), db = g tanh(a) σ(b) (1 - σ(b)), recomputing tanh and σ from the
// saved pre-activation rather than keeping them from the forward pass (less memory traffic).
void backward_span(const float* a, const float* b, const float* g, float* da, float* db, int64_t n) {
  const Vec one(1.0f);
  auto step = [&](int64_t j, int64_t count) {
    auto th = tanh(Vec::loadu(a + j, count));
    auto sg = sigmoid(Vec::loadu(b + j, count));
    auto gv = Vec::loadu(g + j, count);
    (gv * (one - th * th) * sg).store(da + j, count);
    (gv * th * sg * (one - sg)).store(db + j, count);
  };
  int64_t j = 0;
  for (; j + Vec::size() <= n; j += Vec::size()) {
    step(j, Vec::size());
  }
  if (j < n) {
    step(j, n - j);
  }
}

// Calls `span(o, i, len)` over every row segment of the `outer × inner` index space, in parallel.
template <typename Span>
void for_segments(int64_t outer, int64_t inner, const Span& span) {
  at::parallel_for(0, outer * inner, kGrain, [&](int64_t begin, int64_t end) {
    while (begin < end) {
      int64_t o = begin / inner, i = begin % inner;
      int64_t len = std::min(inner - i, end - begin);
      span(o, i, len);
      begin += len;
    }
  });
}

void widen(const c10::BFloat16* from, float* to, int64_t n) {
  for (int64_t j = 0; j < n; ++j) to[j] = static_cast<float>(from[j]);
}

void narrow(const float* from, c10::BFloat16* to, int64_t n) {
  for (int64_t j = 0; j < n; ++j) to[j] = c10::BFloat16(from[j]);
}

}  // namespace

void PIXELX_NAME(pixelx_gate_forward_f32)(const float* t, float* out, int64_t outer, int64_t inner) {
  for_segments(outer, inner, [&](int64_t o, int64_t i, int64_t len) {
    const float* a = t + o * 2 * inner + i;
    forward_span(a, a + inner, out + o * inner + i, len);
  });
}

void PIXELX_NAME(pixelx_gate_backward_f32)(const float* t, const float* g, float* dt, int64_t outer,
                                           int64_t inner) {
  for_segments(outer, inner, [&](int64_t o, int64_t i, int64_t len) {
    int64_t at = o * 2 * inner + i;
    backward_span(t + at, t + at + inner, g + o * inner + i, dt + at, dt + at + inner, len);
  });
}

void PIXELX_NAME(pixelx_gate_forward_bf16)(const c10::BFloat16* t, c10::BFloat16* out, int64_t outer,
                                           int64_t inner) {
  for_segments(outer, inner, [&](int64_t o, int64_t i, int64_t len) {
    float a[kBlock], b[kBlock], y[kBlock];
    for (int64_t s = 0; s < len; s += kBlock) {
      int64_t n = std::min(kBlock, len - s);
      const c10::BFloat16* at = t + o * 2 * inner + i + s;
      widen(at, a, n);
      widen(at + inner, b, n);
      forward_span(a, b, y, n);
      narrow(y, out + o * inner + i + s, n);
    }
  });
}

void PIXELX_NAME(pixelx_gate_backward_bf16)(const c10::BFloat16* t, const c10::BFloat16* g,
                                            c10::BFloat16* dt, int64_t outer, int64_t inner) {
  for_segments(outer, inner, [&](int64_t o, int64_t i, int64_t len) {
    float a[kBlock], b[kBlock], gv[kBlock], da[kBlock], db[kBlock];
    for (int64_t s = 0; s < len; s += kBlock) {
      int64_t n = std::min(kBlock, len - s);
      int64_t at = o * 2 * inner + i + s;
      widen(t + at, a, n);
      widen(t + at + inner, b, n);
      widen(g + o * inner + i + s, gv, n);
      backward_span(a, b, gv, da, db, n);
      narrow(da, dt + at, n);
      narrow(db, dt + at + inner, n);
    }
  });
}
