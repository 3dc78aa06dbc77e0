//! A c10d process group (TCPStore rendezvous + ProcessGroupGloo or ProcessGroupNCCL) and its
//! collectives on tch tensors.

use std::ffi::{c_int, c_void, CString};
use std::time::Duration;

use tch::{Device, Tensor};

use super::ffi::{self, RawGroup};
use super::{DistError, Result, WorldEnv};

/// How [`ProcessGroup::allreduce`] combines the ranks' tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    /// The sum divided by the world size.
    Average,
}

/// One rank's membership of a process group: Gloo for CPU tensors, NCCL for CUDA ones. Every
/// collective must be called by all ranks in the same order with tensors of the same shapes and
/// dtypes; each blocks until it completes (or fails, e.g. when a peer died, or times out).
#[derive(Debug)]
pub struct ProcessGroup {
    raw: *mut RawGroup,
    rank: usize,
    world_size: usize,
    device: Device,
}

impl ProcessGroup {
    /// Joins the group described by `env` (rank 0 hosts the TCPStore at
    /// `master_addr:master_port` and waits for the others, unless torchrun's agent hosts it),
    /// for tensors on `device`: Gloo on the CPU, NCCL on `Device::Cuda(i)`. `timeout` bounds the
    /// rendezvous and each collective. The group's keys live under `chronos/<restart>`.
    pub fn new(env: &WorldEnv, device: Device, timeout: Duration) -> Result<Self> {
        let device_index = match device {
            Device::Cpu => -1,
            Device::Cuda(i) => i as c_int,
            other => {
                return Err(DistError::Unsupported(format!(
                    "process groups on {other:?} (cpu: Gloo, cuda: NCCL)"
                )))
            }
        };
        let addr = CString::new(env.master_addr.as_str())
            .map_err(|_| DistError::Env("MASTER_ADDR contains a NUL byte".into()))?;
        let prefix = CString::new(format!("chronos/{}", env.restart_count))
            .map_err(|_| DistError::Env("bad store prefix".into()))?;
        let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid C string and out pointer; the shim catches every C++ exception.
        ffi::check(unsafe {
            ffi::chronos_c10d_group_new(
                addr.as_ptr(),
                env.master_port,
                c_int::from(!env.agent_store),
                prefix.as_ptr(),
                env.rank as c_int,
                env.world_size as c_int,
                device_index,
                timeout_ms,
                &mut raw,
            )
        })
        .map_err(|message| DistError::Collective {
            rank: env.rank,
            world_size: env.world_size,
            op: "init",
            message,
        })?;
        Ok(ProcessGroup {
            raw,
            rank: env.rank,
            world_size: env.world_size,
            device,
        })
    }

    /// Whether this build can make NCCL groups.
    pub fn has_nccl() -> bool {
        // SAFETY: no arguments.
        unsafe { ffi::chronos_c10d_has_nccl() != 0 }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Replaces each tensor (contiguous, on the group's device) in place by the sum or mean
    /// over ranks. The tensors' collectives are all in flight together.
    pub fn allreduce(&self, tensors: &[Tensor], op: ReduceOp) -> Result<()> {
        let handles = self.handles(tensors, "allreduce")?;
        let average = c_int::from(op == ReduceOp::Average);
        // SAFETY: live tensor handles for the duration of the call.
        let status = unsafe {
            ffi::chronos_c10d_allreduce(self.raw, handles.as_ptr(), handles.len(), average)
        };
        self.checked("allreduce", status)
    }

    /// Overwrites each tensor (contiguous, on the group's device) in place with rank `root`'s.
    pub fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<()> {
        if root >= self.world_size {
            return Err(DistError::InvalidInput(format!(
                "broadcast root {root} of world size {}",
                self.world_size
            )));
        }
        let handles = self.handles(tensors, "broadcast")?;
        // SAFETY: live tensor handles for the duration of the call.
        let status = unsafe {
            ffi::chronos_c10d_broadcast(self.raw, handles.as_ptr(), handles.len(), root as c_int)
        };
        self.checked("broadcast", status)
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: a live group.
        let status = unsafe { ffi::chronos_c10d_barrier(self.raw) };
        self.checked("barrier", status)
    }

    /// Shuts the backend down after the last collective (NCCL finalizes its communicators;
    /// a group dropped without it is aborted). Collectives fail afterwards.
    pub fn shutdown(&self) -> Result<()> {
        // SAFETY: a live group.
        let status = unsafe { ffi::chronos_c10d_group_shutdown(self.raw) };
        self.checked("shutdown", status)
    }

    /// The shim's handles of `tensors`, checked to be contiguous and on the group's device.
    fn handles(&self, tensors: &[Tensor], op: &'static str) -> Result<Vec<*mut c_void>> {
        tensors
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.device() != self.device || !t.is_contiguous() {
                    return Err(DistError::InvalidInput(format!(
                        "{op}: tensor {i} must be contiguous on {:?}, got {:?} (contiguous: {})",
                        self.device,
                        t.device(),
                        t.is_contiguous()
                    )));
                }
                Ok(t.as_ptr() as *mut c_void)
            })
            .collect()
    }

    fn checked(&self, op: &'static str, status: *mut std::ffi::c_char) -> Result<()> {
        ffi::check(status).map_err(|message| DistError::Collective {
            rank: self.rank,
            world_size: self.world_size,
            op,
            message,
        })
    }

    /// [`ProcessGroup::allreduce`] of a few f64 values (through a tensor on the group's device).
    pub fn allreduce_f64(&self, values: &[f64], op: ReduceOp) -> Result<Vec<f64>> {
        let t = Tensor::from_slice(values).to_device(self.device);
        self.allreduce(std::slice::from_ref(&t), op)?;
        Ok(Vec::<f64>::try_from(t.to_device(Device::Cpu))?)
    }

    /// Rank 0's `values` (the same count on every rank), on every rank.
    pub fn broadcast_u64(&self, values: &[u64]) -> Result<Vec<u64>> {
        let bits: Vec<i64> = values.iter().map(|&v| v as i64).collect();
        let t = Tensor::from_slice(&bits).to_device(self.device);
        self.broadcast(std::slice::from_ref(&t), 0)?;
        let bits = Vec::<i64>::try_from(t.to_device(Device::Cpu))?;
        Ok(bits.into_iter().map(|v| v as u64).collect())
    }
}

// SAFETY: the shim's group is immutable after creation, and c10d's backends are thread-safe
// (their collectives enqueue work under their own locks). Calling collectives from several
// threads is memory-safe, though ranks must still issue them in the same order.
unsafe impl Send for ProcessGroup {}
unsafe impl Sync for ProcessGroup {}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: created by chronos_c10d_group_new, freed once.
        unsafe { ffi::chronos_c10d_group_free(self.raw) }
    }
}
