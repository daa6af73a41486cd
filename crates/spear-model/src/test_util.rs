//! Helpers shared by the unit tests.

use candle_core::{Device, Tensor};

/// The largest absolute element-wise difference of two f32 tensors of one shape.
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("tensors of the same shape and dtype f32")
}

/// The largest absolute element of an f32 tensor.
pub(crate) fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("an f32 tensor")
}

/// [`max_abs_diff`] relative to the reference `b`'s largest element (at least `1e-6`).
pub(crate) fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs_diff(a, b) / max_abs(b).max(1e-6)
}

/// The device the numeric tests run on: `SPEAR_TEST_DEVICE` (`cpu`, `cuda:N`), default the
/// CPU. The tests that compare numbers (kernels against composed ops, finite differences,
/// fixtures) build their tensors and models here, so the same tests check a GPU build on a
/// GPU machine: `SPEAR_TEST_DEVICE=cuda:0 cargo test -p spear-model --features cuda`.
pub(crate) fn test_device() -> Device {
    match std::env::var("SPEAR_TEST_DEVICE").as_deref() {
        Err(_) | Ok("") | Ok("cpu") => Device::Cpu,
        Ok(spec) => {
            let n: usize = spec
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("SPEAR_TEST_DEVICE={spec:?}: use cpu or cuda:N"));
            Device::new_cuda(n).unwrap_or_else(|e| panic!("SPEAR_TEST_DEVICE={spec}: {e}"))
        }
    }
}
