//! The `extern "C"` API of the c10d shim (`csrc/chronos_c10d.h`); errors follow
//! [`crate::shim`]'s convention.

use std::ffi::{c_char, c_int, c_void};

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
}

pub(super) use crate::shim::check;
