//! `chronos::runtime`: per-thread CPU thread counts for helper threads.

use tch::{Device, Kind, Tensor};

#[test]
fn serial_tensor_ops_apply_to_the_calling_thread_only() {
    tch::set_num_threads(2);
    let (fresh, serial, sum) = std::thread::spawn(|| {
        let fresh = tch::get_num_threads();
        chronos::runtime::serial_tensor_ops();
        // a reduction large enough for libtorch to split it over threads, still exact
        let sum = Tensor::ones([1 << 20], (Kind::Float, Device::Cpu))
            .sum(Kind::Double)
            .double_value(&[]);
        (fresh, tch::get_num_threads(), sum)
    })
    .join()
    .unwrap();
    assert_eq!(fresh, 2, "a new thread starts with the process's count");
    assert_eq!(serial, 1);
    assert_eq!(sum, (1 << 20) as f64);
    assert_eq!(tch::get_num_threads(), 2, "other threads keep theirs");
}
