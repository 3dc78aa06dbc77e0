//! The c10d layer (`chronos::distributed`) on the CPU with Gloo: two ranks as two threads of
//! this process, each with its own process group. Collectives give the sums, means and root
//! values torch's do; DDP averages gradients and keeps replicas identical, and notices when
//! they are not; failures (a missing peer, bad tensors, bad environments) are errors, not
//! aborts or hangs.

use std::sync::Arc;
use std::time::Duration;

use tch::nn::{self, Module as _};
use tch::{Device, Kind, Tensor};

use chronos::distributed::{
    buckets, free_port, strip_option, DataParallel, DistError, ProcessGroup, ReduceOp, WorldEnv,
};

const TIMEOUT: Duration = Duration::from_secs(60);

fn world(rank: usize, world_size: usize, port: u16) -> WorldEnv {
    WorldEnv {
        rank,
        local_rank: rank,
        world_size,
        master_addr: "127.0.0.1".into(),
        master_port: port,
        agent_store: false,
        restart_count: 0,
    }
}

/// Runs `f(group)` on ranks 0..world_size, one thread each; returns their results by rank.
fn on_ranks<T: Send>(world_size: usize, f: impl Fn(ProcessGroup) -> T + Sync) -> Vec<T> {
    let port = free_port("127.0.0.1").unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..world_size)
            .map(|rank| {
                let f = &f;
                s.spawn(move || {
                    let group =
                        ProcessGroup::new(&world(rank, world_size, port), Device::Cpu, TIMEOUT)
                            .unwrap();
                    f(group)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

#[test]
fn allreduce_broadcast_and_barrier_on_two_ranks() {
    let results = on_ranks(2, |group| {
        let r = group.rank() as f32;
        assert_eq!(group.world_size(), 2);
        // two tensors in flight together, of different dtypes and shapes
        let a = Tensor::from_slice(&[1.0f32 + r, 10.0 * (1.0 + r)]);
        let b = Tensor::from_slice(&[r, 2.0, 3.0, 4.0 + r]).view([2, 2]);
        group
            .allreduce(&[a.shallow_clone(), b.shallow_clone()], ReduceOp::Sum)
            .unwrap();
        let mean = Tensor::from_slice(&[1.0f32 + r, -3.0 * r]);
        group
            .allreduce(std::slice::from_ref(&mean), ReduceOp::Average)
            .unwrap();
        let root = Tensor::from_slice(&[100 + group.rank() as i64, 7]);
        group.broadcast(std::slice::from_ref(&root), 1).unwrap();
        group.barrier().unwrap();
        let agreed = group
            .broadcast_u64(&[u64::MAX - group.rank() as u64])
            .unwrap();
        group.shutdown().unwrap();
        (values(&a), values(&b), values(&mean), values(&root), agreed)
    });
    for (a, b, mean, root, agreed) in results {
        assert_eq!(a, vec![3.0, 30.0]);
        assert_eq!(b, vec![1.0, 4.0, 6.0, 9.0]);
        assert_eq!(mean, vec![1.5, -1.5]);
        assert_eq!(root, vec![101.0, 7.0]);
        assert_eq!(agreed, vec![u64::MAX], "u64 values survive the trip whole");
    }
}

#[test]
fn groups_of_one_process_start_collectives_together() {
    // Four ranks as threads, new groups each round, all starting at once. c10d's process-wide
    // flight recorder is not safe for that on its own: before the shim serialised Gloo starts,
    // this test binary died of SIGSEGV in about one run in twelve.
    for round in 0..10 {
        let sums = on_ranks(4, |group| {
            let t = Tensor::from_slice(&[group.rank() as f32 + round as f32]);
            group
                .allreduce(std::slice::from_ref(&t), ReduceOp::Sum)
                .unwrap();
            group.barrier().unwrap();
            group.shutdown().unwrap();
            values(&t)
        });
        let want = (0..4).map(|r| (r + round) as f64).sum::<f64>();
        assert!(
            sums.iter().all(|s| s == &vec![want]),
            "round {round}: {sums:?}"
        );
    }
}

#[test]
fn collectives_reject_tensors_they_cannot_use() {
    let results = on_ranks(1, |group| {
        let strided = Tensor::arange(6, (Kind::Float, Device::Cpu))
            .view([2, 3])
            .tr();
        let bad_layout = group.allreduce(&[strided], ReduceOp::Sum);
        let bad_root = group.broadcast(&[Tensor::zeros([1], (Kind::Float, Device::Cpu))], 1);
        (
            bad_layout.unwrap_err().to_string(),
            bad_root.unwrap_err().to_string(),
        )
    });
    let (layout, root) = &results[0];
    assert!(layout.contains("contiguous"), "{layout}");
    assert!(root.contains("root 1"), "{root}");
}

#[test]
fn a_missing_peer_is_an_error_after_the_timeout() {
    // rank 1 never comes: rank 0's rendezvous must fail (not hang, not abort)
    let port = free_port("127.0.0.1").unwrap();
    let err = ProcessGroup::new(&world(0, 2, port), Device::Cpu, Duration::from_secs(2))
        .expect_err("rank 1 never joined");
    match err {
        DistError::Collective {
            rank: 0,
            op: "init",
            ref message,
            ..
        } => {
            assert!(!message.is_empty())
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn a_nccl_group_without_a_gpu_is_an_error() {
    // NCCL needs a GPU (and a build with its headers): the shim reports either as an error
    if tch::Cuda::device_count() > 0 {
        return;
    }
    let port = free_port("127.0.0.1").unwrap();
    let err = ProcessGroup::new(&world(0, 1, port), Device::Cuda(0), TIMEOUT)
        .expect_err("no CUDA device here");
    let DistError::Collective {
        op: "init",
        message,
        ..
    } = &err
    else {
        panic!("unexpected error {err}");
    };
    let no_nccl = message.contains("this build has no ProcessGroupNCCL");
    assert_eq!(no_nccl, !ProcessGroup::has_nccl(), "{message}");
}

/// A two-layer net with rank-dependent initial weights.
fn net(vs: &nn::VarStore) -> impl nn::Module {
    let root = vs.root();
    nn::seq()
        .add(nn::linear(&root / "a", 3, 4, Default::default()))
        .add_fn(|x| x.tanh())
        .add(nn::linear(&root / "b", 4, 2, Default::default()))
}

fn named_params(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut p: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    p.sort_by(|a, b| a.0.cmp(&b.0));
    p
}

#[test]
fn ddp_broadcasts_parameters_averages_gradients_and_checks_replicas() {
    let results = on_ranks(2, |group| {
        let rank = group.rank();
        tch::manual_seed(rank as i64); // different replicas before the broadcast
        let vs = nn::VarStore::new(Device::Cpu);
        let model = net(&vs);
        let params = named_params(&vs);
        // 1-byte buckets: one tensor per bucket; the tests of `buckets` cover the packing
        let ddp = DataParallel::new(Arc::new(group), named_params(&vs), 1).unwrap();
        assert_eq!(ddp.bucket_count(), params.len());
        ddp.broadcast_parameters().unwrap();
        ddp.check_parameters(0).unwrap();
        let weights: Vec<Vec<f64>> = params.iter().map(|(_, p)| values(p)).collect();

        // each rank its own input; the averaged gradient is the mean of both
        let x = Tensor::from_slice(&[1.0f32 + rank as f32, -2.0, 0.5]).view([1, 3]);
        model.forward(&x).sum(Kind::Float).backward();
        let local: Vec<Vec<f64>> = params.iter().map(|(_, p)| values(&p.grad())).collect();
        ddp.allreduce_gradients().unwrap();
        let averaged: Vec<Vec<f64>> = params.iter().map(|(_, p)| values(&p.grad())).collect();

        // a replica that drifts is caught on every rank
        if rank == 1 {
            tch::no_grad(|| {
                let _ = params[0].1.shallow_clone().get(0).fill_(42.0);
            });
        }
        let drift = ddp.check_parameters(5).unwrap_err();
        (weights, local, averaged, drift)
    });
    assert_eq!(
        results[0].0, results[1].0,
        "parameters equal after the broadcast"
    );
    for (r, (_, _, averaged, drift)) in results.iter().enumerate() {
        for (i, avg) in averaged.iter().enumerate() {
            let expected: Vec<f64> = results[0].1[i]
                .iter()
                .zip(&results[1].1[i])
                .map(|(a, b)| (a + b) / 2.0)
                .collect();
            for (x, y) in avg.iter().zip(&expected) {
                assert!(
                    (x - y).abs() <= 1e-6 * (1.0 + y.abs()),
                    "rank {r} grad {i}: {x} vs {y}"
                );
            }
        }
        match drift {
            DistError::OutOfSync {
                step: 5,
                ranks,
                first,
            } => {
                assert_eq!(ranks, &vec![1]);
                assert_eq!(
                    first.is_some(),
                    r == 1,
                    "rank {r} names its own differing tensor"
                );
            }
            other => panic!("rank {r}: unexpected {other}"),
        }
    }
    assert_ne!(
        results[0].1, results[1].1,
        "the ranks' own gradients differed"
    );
}

#[test]
fn ddp_refuses_replicas_of_different_models() {
    let results = on_ranks(2, |group| {
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = vs.root().zeros("w", &[2 + group.rank() as i64]);
        DataParallel::new(Arc::new(group), named_params(&vs), 1 << 20).map(|_| ())
    });
    for result in results {
        let message = result.unwrap_err().to_string();
        assert!(message.contains("models differ"), "{message}");
    }
}

#[test]
fn buckets_pack_consecutive_tensors_of_one_kind_within_the_capacity() {
    let f = Kind::Float;
    let sizes = [
        (40, f),
        (40, f),
        (30, f),
        (200, f),
        (10, Kind::Double),
        (10, f),
        (10, f),
    ];
    assert_eq!(buckets(&sizes, 100), vec![0..2, 2..3, 3..4, 4..5, 5..7]);
    assert_eq!(
        buckets(&sizes, 1),
        (0..7).map(|i| i..i + 1).collect::<Vec<_>>()
    );
    assert!(buckets(&[], 100).is_empty());
}

#[test]
fn world_env_reads_torchrun_variables() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(WorldEnv::from_vars(vars(&[])).unwrap(), None);
    let env = WorldEnv::from_vars(vars(&[
        ("RANK", "3"),
        ("LOCAL_RANK", "1"),
        ("WORLD_SIZE", "4"),
        ("MASTER_ADDR", "10.0.0.2"),
        ("MASTER_PORT", "29500"),
        ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ("TORCHELASTIC_RESTART_COUNT", "2"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(
        env,
        WorldEnv {
            rank: 3,
            local_rank: 1,
            world_size: 4,
            master_addr: "10.0.0.2".into(),
            master_port: 29500,
            agent_store: true,
            restart_count: 2,
        }
    );
    let plain = WorldEnv::from_vars(vars(&[
        ("RANK", "1"),
        ("WORLD_SIZE", "2"),
        ("MASTER_PORT", "9"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(
        (
            plain.local_rank,
            plain.master_addr.as_str(),
            plain.agent_store,
            plain.restart_count
        ),
        (1, "127.0.0.1", false, 0)
    );
    assert_eq!(env.vars()[0], ("RANK", "3".to_string()));
    for (bad, needle) in [
        (
            &[("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "1")][..],
            "below",
        ),
        (
            &[("RANK", "0"), ("WORLD_SIZE", "two"), ("MASTER_PORT", "1")][..],
            "WORLD_SIZE",
        ),
        (
            &[("RANK", "0"), ("WORLD_SIZE", "1")][..],
            "MASTER_PORT is not set",
        ),
        (
            &[("RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_PORT", "70000")][..],
            "not a TCP port",
        ),
    ] {
        let leaked: &'static [(&'static str, &'static str)] =
            Box::leak(bad.to_vec().into_boxed_slice());
        let message = WorldEnv::from_vars(vars(leaked)).unwrap_err().to_string();
        assert!(message.contains(needle), "{message}");
    }
}

#[test]
fn strip_option_removes_both_spellings() {
    let args: Vec<std::ffi::OsString> =
        ["--config", "c.yaml", "--nproc", "2", "--nproc=3", "--quiet"]
            .iter()
            .map(Into::into)
            .collect();
    let kept = strip_option(&args, "--nproc");
    assert_eq!(
        kept,
        ["--config", "c.yaml", "--quiet"]
            .map(std::ffi::OsString::from)
            .to_vec()
    );
}
