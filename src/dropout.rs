//! Dropout. On the CPU, masks come from the C++ shim (`csrc/dropout.cpp`): a counter-based
//! generator on all of libtorch's threads, drawing, masking and scaling in one pass, where
//! libtorch's `bernoulli_` draws every element in turn on one thread (about a fifth of a T5
//! training step on two cores). The mask of a call is a function of one key drawn from
//! libtorch's CPU generator, so `tch::manual_seed` fixes it, for any thread count. Other devices
//! use libtorch's own dropout.

use std::ffi::{c_char, c_void};

use tch::{Device, Tensor};

extern "C" {
    fn chronos_dropout(input: *mut c_void, p: f64, out: *mut *mut c_void) -> *mut c_char;
}

/// `xs` with each element zeroed with probability `p` and the others scaled by `1 / (1 - p)`
/// when `train`, else `xs` itself (any shape). `p` in `[0, 1)`.
///
/// # Panics
/// When libtorch fails (out of memory, `p` outside `[0, 1)`), as tch's own operations do.
pub fn dropout(xs: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return xs.shallow_clone();
    }
    if xs.device() != Device::Cpu || !xs.is_floating_point() {
        return xs.dropout(p, train);
    }
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: `xs.as_ptr()` is a live `at::Tensor*` that the shim only reads; on success `out`
    // is a new `at::Tensor*` whose ownership passes to the returned `Tensor`.
    unsafe {
        let error = chronos_dropout(xs.as_ptr() as *mut c_void, p, &mut out);
        crate::shim::new_tensor(error, out, "dropout")
    }
}
