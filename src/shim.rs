//! The error convention of the C++ shim (`csrc/shim.h`, compiled by `build.rs`) that
//! [`crate::distributed`] and [`crate::train::adamw`] call: a NULL return is success, anything
//! else a malloc'd message that [`check`] takes over.

use std::ffi::{c_char, CStr};

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
