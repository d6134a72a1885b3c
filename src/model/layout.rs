//! Memory layout of activations. Convolutions on channels-last (NHWC) tensors run faster in
//! oneDNN on CPU and cuDNN on GPU than on the default NCHW layout; element-wise ops and the
//! convolutions' outputs keep the layout, so converting the model's input is enough.

use tch::Tensor;

extern "C" {
    fn pixelx_channels_last(t: *const torch_sys::C_tensor, out: *mut *mut torch_sys::C_tensor) -> i32;
}

/// `t` (4-d) in channels-last layout, same values; autograd flows through the conversion.
pub fn channels_last(t: &Tensor) -> Tensor {
    let mut out = std::ptr::null_mut();
    // SAFETY: `t` is a live tensor; on success the shim hands over a new heap tensor that
    // `Tensor::from_ptr` owns from here on. It catches every C++ exception.
    let rc = unsafe { pixelx_channels_last(t.as_ptr(), &mut out) };
    assert!(
        rc == 0 && !out.is_null(),
        "channels-last conversion of a {:?} tensor failed",
        t.size()
    );
    unsafe { Tensor::from_ptr(out) }
}

/// Whether `t` is laid out channels-last (NHWC strides).
pub fn is_channels_last(t: &Tensor) -> bool {
    let (size, stride) = (t.size(), t.stride());
    size.len() == 4 && stride[1] == 1 && stride[3] == size[1] && stride[2] == size[1] * size[3]
}
