//! The error convention of the C++ shim (`csrc/shim.h`, compiled by `build.rs`) that
//! [`crate::distributed`], [`crate::train::adamw`], [`crate::precision`], [`crate::dropout`] and
//! [`crate::attention`] call: a NULL return is success, anything else a malloc'd message that
//! [`check`] takes over.

use std::ffi::{c_char, c_void, CStr};

use tch::Tensor;

use crate::error::ChronosError;

extern "C" {
    fn chronos_shim_free_error(error: *mut c_char);
}

/// `Ok` for a NULL return, else the message (freed here).
pub(crate) fn check(error: *mut c_char) -> Result<(), String> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-NULL return is a NUL-terminated string from the shim's malloc, freed once.
    let message = unsafe { CStr::from_ptr(error) }
        .to_string_lossy()
        .into_owned();
    unsafe { chronos_shim_free_error(error) };
    Err(message)
}

/// [`check`] as this crate's error, the message prefixed with `what`.
pub(crate) fn check_as(error: *mut c_char, what: &str) -> crate::error::Result<()> {
    check(error).map_err(|message| ChronosError::InvalidInput(format!("{what}: {message}")))
}

/// The tensor a shim call returned through its `out` handle, or a panic with the shim's message
/// (as tch's own operations panic when libtorch fails).
///
/// # Safety
/// `out` must be the call's out-parameter: on success a new `at::Tensor*`, whose ownership
/// passes to the returned `Tensor`.
pub(crate) unsafe fn new_tensor(error: *mut c_char, out: *mut c_void, what: &str) -> Tensor {
    if let Err(message) = check(error) {
        panic!("{what}: {message}");
    }
    unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) }
}
