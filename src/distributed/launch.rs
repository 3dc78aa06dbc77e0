//! A torchrun-like launcher: N ranks of one program on this machine, with the torchrun
//! environment, their output prefixed by rank, and a failed rank ending the job.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read, Write};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{DistError, Result, WorldEnv};

/// How [`launch`] runs a job.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    pub nproc: usize,
    pub master_addr: String,
    /// `None`: a free port of `master_addr`.
    pub master_port: Option<u16>,
    /// After a rank fails, how long the others get to fail on their own (they normally do
    /// within a second: their next collective sees the closed connection) before being killed.
    pub grace: Duration,
}

impl LaunchOptions {
    /// `nproc` ranks on 127.0.0.1, a free port, a 10 s grace.
    pub fn new(nproc: usize) -> Self {
        LaunchOptions {
            nproc,
            master_addr: "127.0.0.1".into(),
            master_port: None,
            grace: Duration::from_secs(10),
        }
    }
}

/// A TCP port that was free on `addr` a moment ago (bound, then released).
pub fn free_port(addr: &str) -> Result<u16> {
    Ok(std::net::TcpListener::bind((addr, 0))?.local_addr()?.port())
}

/// `args` without the option `name` (as `name value` or `name=value`).
pub fn strip_option(args: &[OsString], name: &str) -> Vec<OsString> {
    let prefix = format!("{name}=");
    let mut out = Vec::with_capacity(args.len());
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let text = arg.to_string_lossy();
        if text == name {
            skip_value = true;
        } else if !text.starts_with(&prefix) {
            out.push(arg.clone());
        }
    }
    out
}

/// Runs `program args` as ranks `0..nproc` (each with `RANK`, `LOCAL_RANK`, `WORLD_SIZE`,
/// `MASTER_ADDR`, `MASTER_PORT`), forwarding their stdout and stderr line by line prefixed with
/// `[rank r] `. Returns when all have exited: `Ok` if all succeeded; otherwise the first rank
/// to fail, the others having been given `grace` to exit and then killed. Ranks die with the
/// launcher (`PR_SET_PDEATHSIG`).
pub fn launch(program: &Path, args: &[OsString], options: &LaunchOptions) -> Result<()> {
    if options.nproc == 0 {
        return Err(DistError::InvalidInput("--nproc must be at least 1".into()));
    }
    let port = match options.master_port {
        Some(port) => port,
        None => free_port(&options.master_addr)?,
    };
    let mut ranks = Vec::with_capacity(options.nproc);
    for rank in 0..options.nproc {
        let env = WorldEnv {
            rank,
            local_rank: rank,
            world_size: options.nproc,
            master_addr: options.master_addr.clone(),
            master_port: port,
            agent_store: false,
            restart_count: 0,
        };
        match spawn(program, args, &env) {
            Ok(r) => ranks.push(r),
            Err(e) => {
                stop(&mut ranks);
                return Err(e);
            }
        }
    }
    let outcome = supervise(&mut ranks, options.grace);
    for rank in ranks {
        for handle in rank.forwarders {
            let _ = handle.join();
        }
    }
    outcome
}

/// A running rank.
struct Rank {
    child: Child,
    status: Option<ExitStatus>,
    forwarders: Vec<JoinHandle<()>>,
}

fn spawn(program: &Path, args: &[OsString], env: &WorldEnv) -> Result<Rank> {
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.vars())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    eprintln!("launcher: rank {} is pid {}", env.rank, child.id());
    let prefix = format!("[rank {}] ", env.rank);
    let mut forwarders = Vec::with_capacity(2);
    if let Some(out) = child.stdout.take() {
        forwarders.push(forward(out, prefix.clone(), std::io::stdout));
    }
    if let Some(err) = child.stderr.take() {
        forwarders.push(forward(err, prefix, std::io::stderr));
    }
    Ok(Rank {
        child,
        status: None,
        forwarders,
    })
}

/// Copies `from` line by line to `to()`, each line prefixed and written whole in one call (the
/// standard streams lock for the call, so the ranks' lines never interleave).
fn forward<W: Write>(
    from: impl Read + Send + 'static,
    prefix: String,
    to: impl Fn() -> W + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(from).split(b'\n') {
            let Ok(line) = line else { break };
            let mut whole = Vec::with_capacity(prefix.len() + line.len() + 1);
            whole.extend_from_slice(prefix.as_bytes());
            whole.extend_from_slice(&line);
            whole.push(b'\n');
            let _ = to().write_all(&whole);
        }
    })
}

/// Waits for every rank; the first failure starts the grace period, after which the rest are
/// killed.
fn supervise(ranks: &mut [Rank], grace: Duration) -> Result<()> {
    let mut failure: Option<DistError> = None;
    let mut deadline: Option<Instant> = None;
    loop {
        for (r, rank) in ranks.iter_mut().enumerate() {
            if rank.status.is_some() {
                continue;
            }
            let Some(status) = rank.child.try_wait()? else {
                continue;
            };
            rank.status = Some(status);
            if !status.success() && failure.is_none() {
                let error = DistError::RankFailed {
                    rank: r,
                    pid: rank.child.id(),
                    status: describe(status),
                };
                eprintln!("launcher: {error}; stopping the other ranks");
                failure = Some(error);
                deadline = Some(Instant::now() + grace);
            }
        }
        if ranks.iter().all(|r| r.status.is_some()) {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop(ranks);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    failure.map_or(Ok(()), Err)
}

/// Kills and reaps the ranks still running.
fn stop(ranks: &mut [Rank]) {
    for rank in ranks.iter_mut().filter(|r| r.status.is_none()) {
        let _ = rank.child.kill();
        rank.status = rank.child.wait().ok();
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended ({status})"),
    }
}
