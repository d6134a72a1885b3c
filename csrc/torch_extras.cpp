// The two libtorch features pixelx needs that tch 0.24 does not wrap:
// - the per-device autocast switch (tch only has the deprecated CUDA-only one, fixed to fp16),
//   so a run can use bf16 autocast on CUDA, and on CPU (which is how the tests exercise it);
// - converting a tensor to the channels-last memory layout.
//
// Every function returns 0 on success and -1 if libtorch threw; no exception crosses into Rust.
#include <ATen/autocast_mode.h>

namespace {
at::DeviceType device_type(int cuda) { return cuda ? at::kCUDA : at::kCPU; }
}  // namespace

extern "C" {

// Enables autocast to bf16 on the device type; reports what was there before so that
// `pixelx_autocast_exit` can restore it.
int pixelx_autocast_enter(int cuda, int* was_enabled, int* previous_dtype) {
  try {
    auto dev = device_type(cuda);
    *was_enabled = at::autocast::is_autocast_enabled(dev) ? 1 : 0;
    *previous_dtype = static_cast<int>(at::autocast::get_autocast_dtype(dev));
    at::autocast::set_autocast_dtype(dev, at::kBFloat16);
    at::autocast::set_autocast_enabled(dev, true);
    at::autocast::increment_nesting();
    return 0;
  } catch (...) {
    return -1;
  }
}

// Restores the state `pixelx_autocast_enter` reported; drops the cast-weight cache once the
// outermost autocast region ends (as torch.autocast's __exit__ does).
int pixelx_autocast_exit(int cuda, int was_enabled, int previous_dtype) {
  try {
    auto dev = device_type(cuda);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(dev, was_enabled != 0);
    at::autocast::set_autocast_dtype(dev, static_cast<at::ScalarType>(previous_dtype));
    return 0;
  } catch (...) {
    return -1;
  }
}

// 1 if autocast is on for the device type, 0 if off, -1 on error.
int pixelx_autocast_enabled(int cuda) {
  try {
    return at::autocast::is_autocast_enabled(device_type(cuda)) ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// `*out` = `t` in channels-last (NHWC) layout; differentiable, so autograd follows it. The new
// tensor is owned by the caller (tch frees it with `delete`, as all its tensors).
int pixelx_channels_last(const at::Tensor* t, at::Tensor** out) {
  try {
    *out = new at::Tensor(t->contiguous(at::MemoryFormat::ChannelsLast));
    return 0;
  } catch (...) {
    return -1;
  }
}

}  // extern "C"
