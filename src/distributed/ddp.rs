//! DDP in Rust: the same parameters on every rank (broadcast from rank 0 at the start), the
//! gradients averaged before every optimizer step, flattened into buckets of a few MB so that a
//! model's hundreds of tensors make a handful of collectives, all in flight together.

use std::cell::Cell;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tch::{Kind, Tensor};

use super::{DistError, ProcessGroup, ReduceOp, Result};

/// Bucket capacity (torch DDP's `bucket_cap_mb` is 25 MB; smaller buckets pipeline better
/// through Gloo's two worker threads).
pub const DEFAULT_BUCKET_BYTES: usize = 4 << 20;

/// How a training run is distributed (part of its `RunOptions`).
#[derive(Debug, Clone)]
pub struct Distributed {
    pub group: Arc<ProcessGroup>,
    /// Capacity of a gradient bucket in bytes (a larger tensor gets a bucket of its own).
    pub bucket_bytes: usize,
    /// Check every this many steps that the parameters are identical on all ranks.
    pub check_sync_every: Option<usize>,
}

/// Consecutive runs of tensors, given as (bytes, kind), that share a kind and stay within
/// `capacity` bytes together (a tensor larger than `capacity` alone): index ranges in order,
/// covering every tensor once.
pub fn buckets(tensors: &[(usize, Kind)], capacity: usize) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, &(size, kind)) in tensors.iter().enumerate() {
        let joins = out
            .last()
            .is_some_and(|last| tensors[last.start].1 == kind && bytes + size <= capacity);
        match out.last_mut() {
            Some(last) if joins => {
                last.end = i + 1;
                bytes += size;
            }
            _ => {
                out.push(i..i + 1);
                bytes = size;
            }
        }
    }
    out
}

/// The parameters of one rank's model replica and the collectives that keep them in step.
pub struct DataParallel {
    group: Arc<ProcessGroup>,
    /// Trainable parameters by name, in the same order on every rank.
    params: Vec<(String, Tensor)>,
    buckets: Vec<Range<usize>>,
    /// One flat buffer per bucket, allocated once, that the gradients are copied into.
    grad_buffers: Vec<Tensor>,
    allreduce_time: Cell<Duration>,
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("group", &self.group)
            .field("params", &self.params.len())
            .field("buckets", &self.buckets.len())
            .finish()
    }
}

impl DataParallel {
    /// Over `params` (the same names, shapes and order on every rank), bucketed by
    /// `bucket_bytes`. Checks across ranks that the parameter lists agree (their count and
    /// sizes), so that mismatched replicas fail here instead of corrupting each other.
    pub fn new(
        group: Arc<ProcessGroup>,
        params: Vec<(String, Tensor)>,
        bucket_bytes: usize,
    ) -> Result<Self> {
        let sizes: Vec<(usize, Kind)> = params
            .iter()
            .map(|(_, p)| (p.numel() * p.kind().elt_size_in_bytes(), p.kind()))
            .collect();
        let shape = [
            params.len() as u64,
            params.iter().map(|(_, p)| p.numel() as u64).sum(),
        ];
        let rank0 = group.broadcast_u64(&shape)?;
        let same = f64::from(u8::from(rank0 == shape));
        if group.allreduce_f64(&[same], ReduceOp::Sum)?[0] as usize != group.world_size() {
            return Err(DistError::InvalidInput(format!(
                "rank {}: the ranks' models differ ({} parameters of {} values here, {} of {} \
                 on rank 0, or another rank differs)",
                group.rank(),
                shape[0],
                shape[1],
                rank0[0],
                rank0[1]
            )));
        }
        let buckets = buckets(&sizes, bucket_bytes);
        let grad_buffers = buckets
            .iter()
            .map(|range| {
                let first = &params[range.start].1;
                let numel: usize = params[range.clone()].iter().map(|(_, p)| p.numel()).sum();
                Tensor::zeros([numel as i64], (first.kind(), first.device()))
            })
            .collect();
        Ok(DataParallel {
            buckets,
            grad_buffers,
            group,
            params,
            allreduce_time: Cell::new(Duration::ZERO),
        })
    }

    pub fn group(&self) -> &ProcessGroup {
        &self.group
    }

    /// Number of gradient buckets (collectives per step).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Total time spent in [`DataParallel::allreduce_gradients`] (waiting for the slowest rank
    /// included).
    pub fn allreduce_time(&self) -> Duration {
        self.allreduce_time.get()
    }

    /// Overwrites every rank's parameters with rank 0's.
    pub fn broadcast_parameters(&self) -> Result<()> {
        let params: Vec<Tensor> = self.params.iter().map(|(_, p)| p.detach()).collect();
        let flats = self.flatten(&params)?;
        self.group.broadcast(&flats, 0)?;
        self.unflatten(&flats, &params)
    }

    /// Replaces every parameter's gradient with its mean over ranks. A parameter without a
    /// gradient (unused by this rank's step) takes part with zeros, as in torch's DDP.
    pub fn allreduce_gradients(&self) -> Result<()> {
        let began = Instant::now();
        self.materialize_gradients()?;
        let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).collect();
        self.fill_buffers(&grads)?;
        self.group
            .allreduce(&self.grad_buffers, ReduceOp::Average)?;
        self.unflatten(&self.grad_buffers, &grads)?;
        self.allreduce_time
            .set(self.allreduce_time.get() + began.elapsed());
        Ok(())
    }

    /// Checks that every rank's parameters equal rank 0's bit for bit (after optimizer step
    /// `step`, for the error); every rank gets the same verdict.
    pub fn check_parameters(&self, step: usize) -> Result<()> {
        let params: Vec<Tensor> = self.params.iter().map(|(_, p)| p.detach()).collect();
        let flats = self.flatten(&params)?;
        let theirs: Vec<Tensor> = flats.iter().map(Tensor::copy).collect();
        self.group.broadcast(&theirs, 0)?;
        let mut first = None;
        for ((range, mine), theirs) in self.buckets.iter().zip(&flats).zip(&theirs) {
            if mine.equal(theirs) {
                continue;
            }
            let numels: Vec<i64> = params[range.clone()]
                .iter()
                .map(|t| t.numel() as i64)
                .collect();
            let pieces = (mine - theirs).abs().split_with_sizes(&numels, 0);
            for (i, piece) in range.clone().zip(pieces) {
                let diff = piece.max().double_value(&[]);
                if diff != 0.0 || diff.is_nan() {
                    first = Some((self.params[i].0.clone(), diff));
                    break;
                }
            }
            break;
        }
        let mut flags = vec![0.0; self.group.world_size()];
        flags[self.group.rank()] = f64::from(u8::from(first.is_some()));
        let flags = self.group.allreduce_f64(&flags, ReduceOp::Sum)?;
        let ranks: Vec<usize> = (0..flags.len()).filter(|&r| flags[r] != 0.0).collect();
        if ranks.is_empty() {
            return Ok(());
        }
        Err(DistError::OutOfSync { step, ranks, first })
    }

    /// Gives zero gradients to the parameters that have none (a zero-valued backward).
    fn materialize_gradients(&self) -> Result<()> {
        let missing: Vec<Tensor> = self
            .params
            .iter()
            .filter(|(_, p)| !p.grad().defined())
            .map(|(_, p)| p.sum(None::<Kind>) * 0.0)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Ok(Tensor::stack(&missing, 0).sum(None::<Kind>).f_backward()?)
    }

    /// One contiguous 1-d tensor per bucket of `tensors` (parallel to `self.params`).
    fn flatten(&self, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        tch::no_grad(|| {
            self.buckets
                .iter()
                .map(|range| {
                    let views: Vec<Tensor> = tensors[range.clone()]
                        .iter()
                        .map(|t| t.reshape([-1]))
                        .collect();
                    Ok(Tensor::f_cat(&views, 0)?)
                })
                .collect()
        })
    }

    /// Copies `tensors` (parallel to `self.params`) into the gradient buffers, bucket by bucket.
    fn fill_buffers(&self, tensors: &[Tensor]) -> Result<()> {
        tch::no_grad(|| {
            for (range, buffer) in self.buckets.iter().zip(&self.grad_buffers) {
                let mut offset = 0;
                for t in &tensors[range.clone()] {
                    let n = t.numel() as i64;
                    buffer.narrow(0, offset, n).f_copy_(&t.reshape([-1]))?;
                    offset += n;
                }
            }
            Ok(())
        })
    }

    /// Copies the buckets made by [`DataParallel::flatten`] or [`DataParallel::fill_buffers`]
    /// back into `tensors`.
    fn unflatten(&self, flats: &[Tensor], tensors: &[Tensor]) -> Result<()> {
        tch::no_grad(|| {
            for (range, flat) in self.buckets.iter().zip(flats) {
                let targets = &tensors[range.clone()];
                let numels: Vec<i64> = targets.iter().map(|t| t.numel() as i64).collect();
                for (target, piece) in targets.iter().zip(flat.split_with_sizes(&numels, 0)) {
                    target
                        .shallow_clone()
                        .f_copy_(&piece.view(target.size().as_slice()))?;
                }
            }
            Ok(())
        })
    }
}
