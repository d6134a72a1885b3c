// The fused gate as a differentiable libtorch operation (see gate_kernels.cpp for the kernels).
// CPU tensors of float or bf16 in NCHW or NHWC layout; everything else is refused, and the
// Rust side (model::fused::gate) uses the unfused ops there instead.
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>

#define PIXELX_DECLARE(cap)                                                                        \
  void pixelx_gate_forward_f32_##cap(const float*, float*, int64_t, int64_t);                      \
  void pixelx_gate_backward_f32_##cap(const float*, const float*, float*, int64_t, int64_t);       \
  void pixelx_gate_forward_bf16_##cap(const c10::BFloat16*, c10::BFloat16*, int64_t, int64_t);     \
  void pixelx_gate_backward_bf16_##cap(const c10::BFloat16*, const c10::BFloat16*, c10::BFloat16*, \
                                       int64_t, int64_t);

PIXELX_DECLARE(default)
#ifdef PIXELX_HAVE_AVX512
PIXELX_DECLARE(avx512)
#define PIXELX_IF_AVX512(name) name##_avx512
#else
#define PIXELX_IF_AVX512(name) name##_default
#endif

namespace {

// Set by a test, for its own thread, so that the portable kernels are checked on machines that
// have AVX-512 too (the choice is made on the calling thread, before the work is split).
thread_local bool force_portable = false;

bool use_avx512() {
#ifdef PIXELX_HAVE_AVX512
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return has && !force_portable;
#else
  return false;
#endif
}

// How the 2F-channel tensor `t` splits into gate halves: its memory format, and the
// `outer × (a: inner, b: inner)` rows it is made of.
struct Split {
  at::MemoryFormat format;
  int64_t outer, inner;
};

Split split_of(const at::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu(), "gate: expected a CPU tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, "gate: expected float or bf16");
  TORCH_CHECK(t.dim() == 4 && t.size(1) % 2 == 0, "gate: expected [N, 2F, H, W], got ", t.sizes());
  int64_t n = t.size(0), f = t.size(1) / 2, hw = t.size(2) * t.size(3);
  if (t.is_contiguous()) return {at::MemoryFormat::Contiguous, n, f * hw};
  TORCH_CHECK(t.is_contiguous(at::MemoryFormat::ChannelsLast), "gate: expected a dense NCHW or NHWC tensor");
  return {at::MemoryFormat::ChannelsLast, n * hw, f};
}

at::Tensor gate_forward(const at::Tensor& t) {
  auto s = split_of(t);
  auto out = at::empty({t.size(0), t.size(1) / 2, t.size(2), t.size(3)}, t.options().memory_format(s.format));
  bool wide = use_avx512();
  if (t.scalar_type() == at::kFloat) {
    auto f = wide ? PIXELX_IF_AVX512(pixelx_gate_forward_f32) : pixelx_gate_forward_f32_default;
    f(t.const_data_ptr<float>(), out.mutable_data_ptr<float>(), s.outer, s.inner);
  } else {
    auto f = wide ? PIXELX_IF_AVX512(pixelx_gate_forward_bf16) : pixelx_gate_forward_bf16_default;
    f(t.const_data_ptr<c10::BFloat16>(), out.mutable_data_ptr<c10::BFloat16>(), s.outer, s.inner);
  }
  return out;
}

at::Tensor gate_backward(const at::Tensor& t, const at::Tensor& grad) {
  auto s = split_of(t);
  auto g = grad.to(t.scalar_type()).contiguous(s.format);
  auto dt = at::empty_like(t, t.options().memory_format(s.format));
  bool wide = use_avx512();
  if (t.scalar_type() == at::kFloat) {
    auto f = wide ? PIXELX_IF_AVX512(pixelx_gate_backward_f32) : pixelx_gate_backward_f32_default;
    f(t.const_data_ptr<float>(), g.const_data_ptr<float>(), dt.mutable_data_ptr<float>(), s.outer, s.inner);
  } else {
    auto f = wide ? PIXELX_IF_AVX512(pixelx_gate_backward_bf16) : pixelx_gate_backward_bf16_default;
    f(t.const_data_ptr<c10::BFloat16>(), g.const_data_ptr<c10::BFloat16>(), dt.mutable_data_ptr<c10::BFloat16>(),
      s.outer, s.inner);
  }
  return dt;
}

struct Gate : public torch::autograd::Function<Gate> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& t) {
    ctx->save_for_backward({t});
    return gate_forward(t);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    // The backward is computed directly, not from differentiable ops: no second derivative.
    TORCH_CHECK(!at::GradMode::is_enabled(), "gate: double backward (create_graph) is not supported");
    auto t = ctx->get_saved_variables()[0];
    return {gate_backward(t, grads[0])};
  }
};

}  // namespace

extern "C" {

// 1 if `pixelx_gate` takes `t`: a 4-d CPU tensor of float or bf16 with an even channel count,
// dense in NCHW or NHWC.
int pixelx_gate_supported(const at::Tensor* t) {
  try {
    return t->device().is_cpu() && t->dim() == 4 && t->size(1) % 2 == 0 &&
                   (t->scalar_type() == at::kFloat || t->scalar_type() == at::kBFloat16) &&
                   (t->is_contiguous() || t->is_contiguous(at::MemoryFormat::ChannelsLast))
               ? 1
               : 0;
  } catch (...) {
    return 0;
  }
}

// `*out` = tanh(t[:, :F]) * sigmoid(t[:, F:]), differentiable, in `t`'s layout. 0 on success,
// -1 if libtorch threw (nothing is written to `out` then).
int pixelx_gate(const at::Tensor* t, at::Tensor** out) {
  try {
    *out = new at::Tensor(Gate::apply(*t));
    return 0;
  } catch (...) {
    return -1;
  }
}

// Whether the portable kernels run on this thread even where AVX-512 is there (for tests);
// returns 1 if the AVX-512 ones exist and would otherwise run.
int pixelx_gate_force_portable(int on) {
  force_portable = false;
  bool avx512 = use_avx512();
  force_portable = on != 0;
  return avx512 ? 1 : 0;
}

}  // extern "C"
