//! The torchrun environment of one rank.

use super::{DistError, Result};

/// Where this process stands in a job: torchrun's `RANK`, `LOCAL_RANK`, `WORLD_SIZE`,
/// `MASTER_ADDR` and `MASTER_PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldEnv {
    pub rank: usize,
    /// Rank on this machine: the CUDA device index of the rank.
    pub local_rank: usize,
    pub world_size: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent hosts the TCPStore (`TORCHELASTIC_USE_AGENT_STORE=True`): rank 0
    /// connects to it instead of hosting one.
    pub agent_store: bool,
    /// `TORCHELASTIC_RESTART_COUNT`: keys of earlier attempts in the agent's store are left
    /// alone.
    pub restart_count: usize,
}

impl WorldEnv {
    /// The process's environment: `None` when `WORLD_SIZE` and `RANK` are both unset (not a
    /// distributed job); an error when they are incomplete or malformed.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`WorldEnv::from_env`], reading variables through `var`. `LOCAL_RANK` defaults to
    /// `RANK`, `MASTER_ADDR` to 127.0.0.1; `MASTER_PORT` is required; the torchelastic
    /// variables are optional.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        if var("WORLD_SIZE").is_none() && var("RANK").is_none() {
            return Ok(None);
        }
        let number = |name: &str| -> Result<usize> {
            let value = var(name).ok_or_else(|| DistError::Env(format!("{name} is not set")))?;
            value
                .trim()
                .parse()
                .map_err(|_| DistError::Env(format!("{name}='{value}' is not a number")))
        };
        let rank = number("RANK")?;
        let world_size = number("WORLD_SIZE")?;
        let local_rank = match var("LOCAL_RANK") {
            Some(_) => number("LOCAL_RANK")?,
            None => rank,
        };
        let port = number("MASTER_PORT")?;
        let master_port = u16::try_from(port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| DistError::Env(format!("MASTER_PORT={port} is not a TCP port")))?;
        if world_size == 0 || rank >= world_size {
            return Err(DistError::Env(format!(
                "RANK={rank} must be below WORLD_SIZE={world_size}"
            )));
        }
        let restart_count = match var("TORCHELASTIC_RESTART_COUNT") {
            Some(_) => number("TORCHELASTIC_RESTART_COUNT")?,
            None => 0,
        };
        Ok(Some(WorldEnv {
            rank,
            local_rank,
            world_size,
            master_addr: var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
            master_port,
            agent_store: var("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True"),
            restart_count,
        }))
    }

    /// The variables that describe this rank, for a child process of [`super::launch`] (which
    /// hosts no store and never restarts).
    pub fn vars(&self) -> [(&'static str, String); 5] {
        [
            ("RANK", self.rank.to_string()),
            ("LOCAL_RANK", self.local_rank.to_string()),
            ("WORLD_SIZE", self.world_size.to_string()),
            ("MASTER_ADDR", self.master_addr.clone()),
            ("MASTER_PORT", self.master_port.to_string()),
        ]
    }
}
