//! The `extern "C"` API of the c10d shim (`csrc/chronos_c10d.h`), and its error convention:
//! a NULL return is success, anything else a malloc'd message that [`check`] takes over.

use std::ffi::{c_char, c_int, c_void, CStr};

/// Opaque `chronos_c10d_group`.
#[repr(C)]
pub(super) struct RawGroup {
    _private: [u8; 0],
}

extern "C" {
    pub(super) fn chronos_c10d_has_nccl() -> c_int;
    pub(super) fn chronos_c10d_group_new(
        master_addr: *const c_char,
        master_port: u16,
        host_store: c_int,
        store_prefix: *const c_char,
        rank: c_int,
        world_size: c_int,
        device_index: c_int,
        timeout_ms: i64,
        out: *mut *mut RawGroup,
    ) -> *mut c_char;
    pub(super) fn chronos_c10d_group_shutdown(group: *mut RawGroup) -> *mut c_char;
    pub(super) fn chronos_c10d_group_free(group: *mut RawGroup);
    pub(super) fn chronos_c10d_allreduce(
        group: *mut RawGroup,
        tensors: *const *mut c_void,
        n: usize,
        average: c_int,
    ) -> *mut c_char;
    pub(super) fn chronos_c10d_broadcast(
        group: *mut RawGroup,
        tensors: *const *mut c_void,
        n: usize,
        root: c_int,
    ) -> *mut c_char;
    pub(super) fn chronos_c10d_barrier(group: *mut RawGroup) -> *mut c_char;
    fn chronos_c10d_free_error(error: *mut c_char);
}

/// `Ok` for a NULL return, else the message (freed here).
pub(super) fn check(error: *mut c_char) -> Result<(), String> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-NULL return is a NUL-terminated string from the shim's malloc, freed once.
    let message = unsafe { CStr::from_ptr(error) }
        .to_string_lossy()
        .into_owned();
    unsafe { chronos_c10d_free_error(error) };
    Err(message)
}
