//! numpy in and out. Inputs are borrowed without a copy when they already are
//! contiguous arrays of the right dtype (anything array-like is converted once);
//! outputs hand a Rust `Vec` to numpy without copying it.

use numpy::{AllowTypeChange, PyArray1, PyArrayLike1, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// A 1-D `float64` input.
pub type F64s<'py> = PyArrayLike1<'py, f64, AllowTypeChange>;
/// A 1-D `int64` input (group ids, trajectory ids, steps).
pub type I64s<'py> = PyArrayLike1<'py, i64, AllowTypeChange>;
/// A 1-D `bool` input.
pub type Bools<'py> = PyArrayLike1<'py, bool, AllowTypeChange>;
/// A 1-D `uint32` input (token ids).
pub type U32s<'py> = PyArrayLike1<'py, u32, AllowTypeChange>;

/// Calls `f` on the data of `a` as a slice: borrowed when contiguous, else copied once.
pub fn with_slice<T, R>(a: &PyArrayLike1<'_, T, AllowTypeChange>, f: impl FnOnce(&[T]) -> R) -> R
where
    T: numpy::Element + Clone,
{
    match a.as_slice() {
        Ok(s) => f(s),
        Err(_) => {
            let v: Vec<T> = a.as_array().to_vec();
            f(&v)
        }
    }
}

/// An owned copy of the data (for work done with the GIL released).
pub fn to_vec<T>(a: &PyArrayLike1<'_, T, AllowTypeChange>) -> Vec<T>
where
    T: numpy::Element + Clone,
{
    with_slice(a, |s| s.to_vec())
}

/// Number of rows.
pub fn len<T: numpy::Element>(a: &PyArrayLike1<'_, T, AllowTypeChange>) -> usize {
    a.len()
}

/// A `float64` array owning `v` (no copy).
pub fn f64_out(py: Python<'_>, v: Vec<f64>) -> Bound<'_, PyArray1<f64>> {
    PyArray1::from_vec(py, v)
}

/// An `int64` array owning `v` (no copy).
pub fn i64_out(py: Python<'_>, v: Vec<i64>) -> Bound<'_, PyArray1<i64>> {
    PyArray1::from_vec(py, v)
}

/// A `bool` array owning `v` (no copy).
pub fn bool_out(py: Python<'_>, v: Vec<bool>) -> Bound<'_, PyArray1<bool>> {
    PyArray1::from_vec(py, v)
}
