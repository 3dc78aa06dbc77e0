//! Mixed precision: autocast to bfloat16 or float16 on the CPU or CUDA, and TF32 matmuls on
//! CUDA, through the C++ shim (`csrc/precision.cpp`; tch 0.24's `autocast` only switches CUDA's
//! float16 autocast).

use std::ffi::c_char;

use tch::{Device, Kind};

use crate::error::{ChronosError, Result};
use crate::shim::check_as as check;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct AutocastState {
    enabled: i32,
    bfloat16: i32,
}

extern "C" {
    fn chronos_autocast_enter(
        cuda: i32,
        bfloat16: i32,
        previous: *mut AutocastState,
    ) -> *mut c_char;
    fn chronos_autocast_exit(cuda: i32, previous: AutocastState) -> *mut c_char;
    fn chronos_set_tf32(enabled: i32) -> *mut c_char;
}

/// Runs `f` with autocast to `dtype` (bfloat16 or float16) on `device`'s type, as
/// `torch.autocast(device_type, dtype)`: matmuls, linear layers and attention run in `dtype`,
/// precision-sensitive ops in f32; the previous state is restored afterwards. Autocast state is
/// per thread. Backward passes run outside, in the dtypes the forward pass saved.
pub fn autocast<T>(device: Device, dtype: Kind, f: impl FnOnce() -> T) -> Result<T> {
    let bfloat16 = match dtype {
        Kind::BFloat16 => 1,
        Kind::Half => 0,
        other => {
            return Err(ChronosError::InvalidInput(format!(
                "autocast to {other:?}: bfloat16 or float16 only"
            )))
        }
    };
    let cuda = i32::from(device.is_cuda());
    let mut previous = AutocastState {
        enabled: 0,
        bfloat16: 0,
    };
    // SAFETY: `previous` is a valid out-pointer for the call.
    check(
        unsafe { chronos_autocast_enter(cuda, bfloat16, &mut previous) },
        "autocast",
    )?;
    /// Restores the previous state even when `f` panics.
    struct Exit(i32, AutocastState);
    impl Drop for Exit {
        fn drop(&mut self) {
            // SAFETY: plain values; an error here can only be reported, not acted on.
            let error = unsafe { chronos_autocast_exit(self.0, self.1) };
            if let Err(message) = crate::shim::check(error) {
                eprintln!("autocast: {message}");
            }
        }
    }
    let _exit = Exit(cuda, previous);
    Ok(f())
}

/// TF32 for CUDA matmuls and cuDNN (`torch.backends.cuda.matmul.allow_tf32` and
/// `torch.backends.cudnn.allow_tf32`, what HF Trainer's `tf32=True` sets). Process-wide; no effect
/// on the CPU.
pub fn set_tf32(enabled: bool) -> Result<()> {
    // SAFETY: a plain value.
    check(unsafe { chronos_set_tf32(i32::from(enabled)) }, "tf32")
}
