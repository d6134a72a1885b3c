//! Memory layout of activations. Convolutions on channels-last (NHWC) tensors run faster in
//! oneDNN on CPU and cuDNN on GPU than on the default NCHW layout; element-wise ops and the
//! convolutions' outputs keep the layout, so converting the model's input is enough.

use tch::Tensor;

extern "C" {
    fn pixelx_channels_last(t: *const torch_sys::C_tensor, out: *mut *mut torch_sys::C_tensor) -> i32;
}

/// `t` (4-d) in channels-last layout, same values; autograd flows through the conversion.
pub fn channels_last(t: &Tensor) -> Tensor {
    // SAFETY: `t` is a live tensor, and the shim catches every C++ exception.
    shim_result("channels-last conversion", t, |out| unsafe {
        pixelx_channels_last(t.as_ptr(), out)
    })
}

/// Runs a `csrc/` shim call that writes a new tensor to its out-pointer and returns 0 (or -1 if
/// libtorch threw), and takes ownership of that tensor. A failure is a bug, not an input error:
/// callers check what the shim accepts first, so it panics naming `what` and `t`'s shape.
pub(crate) fn shim_result(
    what: &str,
    t: &Tensor,
    call: impl FnOnce(*mut *mut torch_sys::C_tensor) -> i32,
) -> Tensor {
    let mut out = std::ptr::null_mut();
    let rc = call(&mut out);
    assert!(
        rc == 0 && !out.is_null(),
        "{what} of a {:?} tensor failed",
        t.size()
    );
    // SAFETY: on success the shim handed over a new heap tensor that nothing else owns;
    // `Tensor::from_ptr` owns it from here on.
    unsafe { Tensor::from_ptr(out) }
}

/// Whether `t` is laid out channels-last (NHWC strides).
pub fn is_channels_last(t: &Tensor) -> bool {
    let (size, stride) = (t.size(), t.stride());
    size.len() == 4 && stride[1] == 1 && stride[3] == size[1] && stride[2] == size[1] * size[3]
}
