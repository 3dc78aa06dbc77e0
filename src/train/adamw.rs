//! AdamW whose state this crate holds: libtorch's `torch::optim::AdamW` update (through the C++
//! shim, `csrc/adamw.cpp`, op for op, so bitwise the same), with the moments and step counts
//! as tensors here, so that checkpoints can store them and a run resumes without replaying its
//! steps (tch 0.24 exposes neither).

use std::collections::HashMap;
use std::ffi::{c_char, c_void};

use tch::{Kind, Tensor};

use crate::error::{ChronosError, Result};
use crate::shim::check_as as check;

extern "C" {
    fn chronos_adamw_step(
        params: *const *mut c_void,
        exp_avgs: *const *mut c_void,
        exp_avg_sqs: *const *mut c_void,
        steps: *const i64,
        n: usize,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    ) -> *mut c_char;
    fn chronos_clear_grads(params: *const *mut c_void, n: usize) -> *mut c_char;
}

/// One parameter's state: its steps so far and, from its first step, the first and second
/// moments (shaped like the parameter; f32 on its device).
#[derive(Debug)]
struct ParamState {
    step: i64,
    moments: Option<(Tensor, Tensor)>,
}

/// AdamW without weight decay (applied by the caller, decoupled) over `params`, in order.
#[derive(Debug)]
pub struct AdamW {
    params: Vec<(String, Tensor)>,
    state: Vec<ParamState>,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl AdamW {
    pub fn new(params: Vec<(String, Tensor)>, beta1: f64, beta2: f64, eps: f64) -> Self {
        let state = params
            .iter()
            .map(|_| ParamState {
                step: 0,
                moments: None,
            })
            .collect();
        AdamW {
            params,
            state,
            beta1,
            beta2,
            eps,
        }
    }

    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// One update at learning rate `lr` of every parameter that has a gradient.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        let mut handles = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((_, p), state) in self.params.iter().zip(&mut self.state) {
            if !p.grad().defined() {
                continue;
            }
            state.step += 1;
            let (m, v) = state
                .moments
                .get_or_insert_with(|| (p.zeros_like().detach(), p.zeros_like().detach()));
            handles.0.push(p.as_ptr() as *mut c_void);
            handles.1.push(m.as_ptr() as *mut c_void);
            handles.2.push(v.as_ptr() as *mut c_void);
            handles.3.push(state.step);
        }
        // SAFETY: every handle is a live `at::Tensor*` owned by `self` for the whole call, and
        // the four arrays have the same length.
        let error = unsafe {
            chronos_adamw_step(
                handles.0.as_ptr(),
                handles.1.as_ptr(),
                handles.2.as_ptr(),
                handles.3.as_ptr(),
                handles.0.len(),
                lr,
                self.beta1,
                self.beta2,
                self.eps,
            )
        };
        check(error, "AdamW step")
    }

    /// Drops every parameter's gradient (as libtorch's `zero_grad`, which sets them to none).
    pub fn zero_grad(&mut self) -> Result<()> {
        let handles: Vec<*mut c_void> = self
            .params
            .iter()
            .map(|(_, p)| p.as_ptr() as *mut c_void)
            .collect();
        // SAFETY: live tensor handles owned by `self` for the whole call.
        check(
            unsafe { chronos_clear_grads(handles.as_ptr(), handles.len()) },
            "clearing gradients",
        )
    }

    /// A copy of the state as named CPU tensors: `exp_avg.<param>`, `exp_avg_sq.<param>` (f32) and
    /// `step.<param>` (a 0-d i64) for each parameter that has taken a step.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for ((name, _), state) in self.params.iter().zip(&self.state) {
            if let Some((m, v)) = &state.moments {
                // Copies: on the CPU `to` would alias the live moments.
                out.push((format!("exp_avg.{name}"), m.to(tch::Device::Cpu).copy()));
                out.push((format!("exp_avg_sq.{name}"), v.to(tch::Device::Cpu).copy()));
                out.push((format!("step.{name}"), Tensor::from(state.step)));
            }
        }
        out
    }

    /// Restores a state saved by [`AdamW::state_tensors`] for the same parameters; `what` names
    /// the source in errors (missing, unexpected or wrongly shaped entries).
    pub fn load_state(&mut self, saved: Vec<(String, Tensor)>, what: &str) -> Result<()> {
        let mut saved: HashMap<String, Tensor> = saved.into_iter().collect();
        let bad = |message: String| ChronosError::InvalidInput(format!("{what}: {message}"));
        for ((name, p), state) in self.params.iter().zip(&mut self.state) {
            let Some(step) = saved.remove(&format!("step.{name}")) else {
                state.step = 0;
                state.moments = None;
                continue;
            };
            let mut moment = |kind: &str| {
                let key = format!("{kind}.{name}");
                let t = saved
                    .remove(&key)
                    .ok_or_else(|| bad(format!("'{key}' is missing")))?;
                if t.size() != p.size() {
                    return Err(bad(format!(
                        "'{key}' has shape {:?}, the parameter {:?}",
                        t.size(),
                        p.size()
                    )));
                }
                Ok(t.to_kind(Kind::Float).to(p.device()).detach())
            };
            state.moments = Some((moment("exp_avg")?, moment("exp_avg_sq")?));
            state.step = step.f_int64_value(&[])?;
        }
        match saved.keys().min() {
            Some(extra) => Err(bad(format!("unexpected entry '{extra}'"))),
            None => Ok(()),
        }
    }
}
