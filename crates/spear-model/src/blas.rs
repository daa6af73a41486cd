//! f32 matrix products through a CBLAS library loaded at run time (`model.matmul = "blas"`,
//! issue 16).
//!
//! candle's CPU matmul runs the `gemm` crate. On an AVX2-only AMD EPYC (Zen 3), one thread, that
//! crate reached 45.6–77.5 GFLOP/s on the products of a SmolLM2-135M training step as candle calls
//! it, OpenBLAS 0.3.34 59.7–77.6 on the same shapes, ahead on 11 of 12 (BENCHMARKS.md). This
//! module lets the linear layers (q/k/v/o, MLP, LM head; forward and both backward products) use
//! a BLAS library instead, without linking one at build time:
//!
//! * the default library is OpenBLAS as the PyPI wheel `scipy-openblas32` ships it (one
//!   self-contained shared library, `DYNAMIC_ARCH`: it picks its kernels for the CPU at run time),
//!   pinned by version and sha256 and fetched on first use into `$SPEAR_CACHE/openblas/` the way
//!   the pretrained models are ([`crate::load::pretrained`]);
//! * any other CBLAS library can be named by path (`model.blas_library`), e.g. OpenBLAS from a
//!   distribution or MKL's `libmkl_rt.so` (PyPI `mkl`), which is asked to run sequentially.
//!
//! Products of fewer than [`MIN_ROWS`] rows (decoding steps) stay with the `gemm` crate, which is
//! much faster there. The library's own threads are set to one; a product is cut into as many blocks of rows (or of
//! columns, when the output has fewer rows than columns) as rayon has threads, one single-threaded
//! call per block, so the work shares the thread pool with the rest of the engine and the same
//! thread count always gives the same cut. The numbers are the library's: they differ from the
//! `gemm` crate's by float rounding (summation order), so a run with `model.matmul = "blas"` is
//! reproducible on the same machine and library, not bit-identical to a `gemm` run.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::bf16gemm::MatRef;
use crate::load::pretrained::{self, PretrainedSpec};

/// OpenBLAS 0.3.34 from the PyPI wheel `scipy-openblas32==0.3.34.481.3` (BSD-3-Clause; the
/// build NumPy and SciPy use): the library [`default_library`] fetches.
pub const OPENBLAS_WHEEL: PretrainedSpec = PretrainedSpec {
    name: "openblas",
    pip_requirement: "scipy-openblas32==0.3.34.481.3",
    wheel: "scipy_openblas32-0.3.34.481.3-py3-none-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    wheel_sha256: "0595f94cd58c1f8a0d90c975621f4587337a003916b1979e834ebdf2cb5d9504",
    member: "scipy_openblas32/lib/libscipy_openblas.so",
    member_sha256: "b396d74f12ab4319e6713b3287104d64245c76c60e5bd9eaeb4b447eda66a561",
};

/// Products with fewer rows than this (decoding steps: one row per sequence) stay with candle's
/// matmul under `model.matmul = "blas"`: OpenBLAS's `sgemm` on a handful of rows is far slower
/// than the `gemm` crate there (batch-1 decoding of SmolLM2-135M, AMD EPYC Zen 3, one thread:
/// 7.7 new tokens/s through OpenBLAS against 16 through the `gemm` crate; BENCHMARKS.md).
pub const MIN_ROWS: usize = 32;

/// How the f32 products of the linear layers are computed.
#[derive(Clone, Default)]
pub enum F32Matmul {
    /// candle's matmul (the `gemm` crate), the default.
    #[default]
    Gemm,
    /// A CBLAS library loaded at run time.
    Blas(Arc<BlasLib>),
}

impl F32Matmul {
    /// What `spear bench model` prints: `gemm …` or `blas: <library's own description>`.
    pub fn describe(&self) -> String {
        match self {
            F32Matmul::Gemm => crate::bf16gemm::f32_matmul_path().to_string(),
            F32Matmul::Blas(lib) => format!("blas: {} ({})", lib.name, lib.path.display()),
        }
    }
}

impl std::fmt::Debug for F32Matmul {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

type SgemmFn = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

/// A CBLAS library opened with `dlopen` (kept open for the life of the process).
pub struct BlasLib {
    /// The library's description of itself (OpenBLAS's config string, MKL's version).
    pub name: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    sgemm: SgemmFn,
}

// The handle is never closed and the function pointer is a plain C function.
unsafe impl Send for BlasLib {}
unsafe impl Sync for BlasLib {}

fn dl_error() -> String {
    // SAFETY: dlerror returns a thread-local C string or null.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-null, NUL-terminated.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

impl BlasLib {
    /// Opens a CBLAS library: the `scipy-openblas32` build (symbols prefixed `scipy_`), a plain
    /// OpenBLAS, or MKL (`libmkl_rt`). Its own threading is turned off (one thread, or MKL's
    /// sequential layer). The error names the file and what is missing.
    pub fn open(path: &Path) -> Result<BlasLib, String> {
        let cpath = CString::new(path.as_os_str().to_string_lossy().as_bytes())
            .map_err(|_| format!("{}: the path has a NUL byte", path.display()))?;
        // SAFETY: dlopen with a valid C string; the handle is deliberately never closed.
        let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!(
                "cannot load {} as a BLAS library: {}",
                path.display(),
                dl_error()
            ));
        }
        let sym = |name: &str| -> Option<*mut c_void> {
            let c = CString::new(name).expect("symbol names have no NUL");
            // SAFETY: valid handle and C string.
            let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
            (!p.is_null()).then_some(p)
        };
        let describe = |p: Option<*mut c_void>| -> Option<String> {
            let p = p?;
            // SAFETY: the library's `char *get_config(void)`, a static C string.
            let f: unsafe extern "C" fn() -> *const c_char = unsafe { std::mem::transmute(p) };
            let s = unsafe { f() };
            (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
        };
        let (sgemm, name) = if let Some(g) = sym("scipy_cblas_sgemm") {
            if let Some(t) = sym("scipy_openblas_set_num_threads") {
                // SAFETY: `void openblas_set_num_threads(int)`.
                let f: unsafe extern "C" fn(c_int) = unsafe { std::mem::transmute(t) };
                unsafe { f(1) };
            }
            let name = describe(sym("scipy_openblas_get_config")).unwrap_or("OpenBLAS".into());
            (g, name)
        } else if let Some(g) = sym("cblas_sgemm") {
            if let Some(t) = sym("openblas_set_num_threads") {
                // SAFETY: `void openblas_set_num_threads(int)`.
                let f: unsafe extern "C" fn(c_int) = unsafe { std::mem::transmute(t) };
                unsafe { f(1) };
                (
                    g,
                    describe(sym("openblas_get_config")).unwrap_or("OpenBLAS".into()),
                )
            } else if let Some(t) = sym("MKL_Set_Threading_Layer") {
                // SAFETY: `int MKL_Set_Threading_Layer(int)`; 1 = MKL_THREADING_SEQUENTIAL.
                let f: unsafe extern "C" fn(c_int) -> c_int = unsafe { std::mem::transmute(t) };
                unsafe { f(1) };
                let mut name = "MKL".to_string();
                if let Some(v) = sym("MKL_Get_Version_String") {
                    // SAFETY: `void MKL_Get_Version_String(char *buf, int len)`.
                    let f: unsafe extern "C" fn(*mut c_char, c_int) =
                        unsafe { std::mem::transmute(v) };
                    let mut buf = vec![0 as c_char; 256];
                    unsafe { f(buf.as_mut_ptr(), buf.len() as c_int - 1) };
                    name = unsafe { CStr::from_ptr(buf.as_ptr()) }
                        .to_string_lossy()
                        .trim()
                        .to_string();
                }
                (g, name)
            } else {
                (g, "CBLAS (threads not controlled)".to_string())
            }
        } else {
            return Err(format!(
                "{} has no `cblas_sgemm` (nor `scipy_cblas_sgemm`): not a CBLAS library; \
                 set model.blas_library to OpenBLAS or MKL's libmkl_rt, or leave it empty for \
                 the pinned OpenBLAS wheel",
                path.display()
            ));
        };
        // SAFETY: the CBLAS `cblas_sgemm` signature.
        let sgemm: SgemmFn = unsafe { std::mem::transmute(sgemm) };
        Ok(BlasLib {
            name,
            path: path.to_path_buf(),
            sgemm,
        })
    }
}

/// The library `model.blas_library` names (`""`: the pinned OpenBLAS wheel, fetched into the
/// cache on first use), opened once per process and path.
pub fn load(library: &str) -> Result<Arc<BlasLib>, String> {
    // Keyed by the setting as given, so the pinned library is located (and its 25 MB checked by
    // sha256) once per process, not at every policy a run builds.
    type Opened = Vec<(String, Arc<BlasLib>)>;
    static OPEN: OnceLock<Mutex<Opened>> = OnceLock::new();
    let key = library.trim();
    let open = OPEN.get_or_init(|| Mutex::new(vec![]));
    let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, l)) = open.iter().find(|(k, _)| k == key) {
        return Ok(l.clone());
    }
    let path = if key.is_empty() {
        default_library()?
    } else {
        PathBuf::from(key)
    };
    let lib = Arc::new(BlasLib::open(&path)?);
    open.push((key.to_string(), lib.clone()));
    Ok(lib)
}

/// The pinned OpenBLAS ([`OPENBLAS_WHEEL`]) in `$SPEAR_CACHE/openblas/`, fetched with
/// `python3 -m pip download` and checked by sha256 on first use.
pub fn default_library() -> Result<PathBuf, String> {
    pretrained::fetch(&OPENBLAS_WHEEL).map_err(|e| {
        format!("{e}; or set model.blas_library to a CBLAS library, or model.matmul = \"gemm\"")
    })
}

fn to_int(x: usize, what: &str) -> Result<c_int, String> {
    c_int::try_from(x).map_err(|_| format!("blas matmul: {what} = {x} does not fit a C int"))
}

/// `(ptr offset per row, per column, leading dimension, transposed)` of a row-major-or-
/// transposed view, or `None` when neither stride is 1.
fn layout(m: &MatRef) -> Option<(usize, usize, usize, bool)> {
    if m.cs == 1 && (m.rs >= m.cols.max(1) || m.rows <= 1) {
        Some((m.rs, 1, m.rs.max(m.cols).max(1), false))
    } else if m.rs == 1 && (m.cs >= m.rows.max(1) || m.cols <= 1) {
        Some((1, m.cs, m.cs.max(m.rows).max(1), true))
    } else {
        None
    }
}

/// The index one past the last element a view reads.
fn extent(m: &MatRef) -> usize {
    if m.rows == 0 || m.cols == 0 {
        0
    } else {
        (m.rows - 1) * m.rs + (m.cols - 1) * m.cs + 1
    }
}

/// `c (m × n, row-major, overwritten) = a (m × k) · b (k × n)` with the library, each view
/// row-major or transposed (one of its strides 1). The work is cut into one block of rows (or
/// columns) per rayon thread.
pub fn matmul(lib: &BlasLib, a: &MatRef, b: &MatRef, c: &mut [f32]) -> Result<(), String> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k {
        return Err(format!("blas matmul: A is {m}x{k} but B is {}x{n}", b.rows));
    }
    if c.len() != m * n {
        return Err(format!(
            "blas matmul: output has {} elements, expected {m}x{n}",
            c.len()
        ));
    }
    if extent(a) > a.data.len() || extent(b) > b.data.len() {
        return Err("blas matmul: a view reads past its data".into());
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        c.fill(0.0);
        return Ok(());
    }
    let (a_row, _, lda, ta) =
        layout(a).ok_or("blas matmul: A has neither a row nor a column stride of 1")?;
    let (_, b_col, ldb, tb) =
        layout(b).ok_or("blas matmul: B has neither a row nor a column stride of 1")?;
    let (ki, lda_i, ldb_i) = (to_int(k, "k")?, to_int(lda, "lda")?, to_int(ldb, "ldb")?);
    let (ta, tb) = (
        if ta { TRANS } else { NO_TRANS },
        if tb { TRANS } else { NO_TRANS },
    );
    let threads = rayon::current_num_threads().max(1);
    let (ap, bp) = (a.data.as_ptr() as usize, b.data.as_ptr() as usize);
    let call = |rows: usize, cols: usize, a_off: usize, b_off: usize, cp: *mut f32, ldc: usize| {
        // SAFETY: the offsets stay inside the views checked above; each call writes its own
        // block of `c`; cblas_sgemm reads `rows x k` of A and `k x cols` of B.
        unsafe {
            (lib.sgemm)(
                ROW_MAJOR,
                ta,
                tb,
                rows as c_int,
                cols as c_int,
                ki,
                1.0,
                (ap as *const f32).add(a_off),
                lda_i,
                (bp as *const f32).add(b_off),
                ldb_i,
                0.0,
                cp,
                ldc as c_int,
            )
        }
    };
    to_int(m, "m")?;
    to_int(n, "n")?;
    if m >= n {
        // Blocks of rows: c[i0.., :] = a[i0.., :] · b.
        let per = m.div_ceil(threads).max(1);
        c.par_chunks_mut(per * n).enumerate().for_each(|(i, blk)| {
            let i0 = i * per;
            let rows = blk.len() / n;
            call(rows, n, i0 * a_row, 0, blk.as_mut_ptr(), n);
        });
    } else {
        // Blocks of columns: c[:, j0..j1] = a · b[:, j0..j1]; each block writes its own columns
        // of every row, so the blocks are handed out as raw pointers.
        let per = n.div_ceil(threads).max(1);
        let cp = c.as_mut_ptr() as usize;
        (0..n.div_ceil(per)).into_par_iter().for_each(|j| {
            let j0 = j * per;
            let cols = per.min(n - j0);
            // SAFETY: column blocks are disjoint; ldc = n keeps every write inside c.
            call(
                m,
                cols,
                0,
                j0 * b_col,
                unsafe { (cp as *mut f32).add(j0) },
                n,
            );
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The plain triple loop in f64, the reference.
    fn naive(a: &MatRef, b: &MatRef) -> Vec<f64> {
        let mut c = vec![0f64; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0f64;
                for p in 0..a.cols {
                    s += a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64;
                }
                c[i * b.cols + j] = s;
            }
        }
        c
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// The library: `SPEAR_TEST_BLAS` (a path) if set, else the pinned OpenBLAS (fetched into
    /// the cache on first use, as `model.matmul = "blas"` does).
    pub(crate) fn test_lib() -> Arc<BlasLib> {
        let p = std::env::var("SPEAR_TEST_BLAS").unwrap_or_default();
        load(&p).unwrap_or_else(|e| panic!("the BLAS library for the tests: {e}"))
    }

    #[test]
    fn every_layout_and_block_cut_matches_the_reference() {
        let lib = test_lib();
        assert!(!lib.name.is_empty());
        for &(m, n, k) in &[
            (1, 1, 1),
            (1, 7, 5),
            (7, 1, 5),
            (13, 9, 17),
            (3, 40, 8),
            (64, 3, 2),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let ad = values(m * k, 1);
                let bd = values(k * n, 2);
                let a = MatRef::dense(&ad, m, k, ta);
                let b = MatRef::dense(&bd, k, n, tb);
                let want = naive(&a, &b);
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let mut c = vec![f32::NAN; m * n];
                    pool.install(|| matmul(&lib, &a, &b, &mut c)).unwrap();
                    for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                        assert!(
                            (got as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "m{m} n{n} k{k} ta{ta} tb{tb} t{threads} [{i}]: {got} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn bad_views_and_libraries_are_errors_not_crashes() {
        let lib = test_lib();
        let d = values(12, 3);
        let a = MatRef::dense(&d, 3, 4, false);
        let b = MatRef::dense(&d, 3, 4, false);
        let mut c = vec![0f32; 12];
        assert!(matmul(&lib, &a, &b, &mut c).unwrap_err().contains("3x4"));
        let b = MatRef::dense(&d, 4, 3, false);
        let mut short = vec![0f32; 8];
        assert!(matmul(&lib, &a, &b, &mut short)
            .unwrap_err()
            .contains("output"));
        let past = MatRef::dense(&d[..10], 3, 4, false);
        let mut c9 = vec![0f32; 9];
        assert!(matmul(&lib, &past, &b, &mut c9)
            .unwrap_err()
            .contains("past"));
        let strided = MatRef {
            data: &d,
            rows: 2,
            cols: 2,
            rs: 4,
            cs: 2,
        };
        let b2 = MatRef::dense(&d, 2, 2, false);
        let mut c2 = vec![0f32; 4];
        assert!(matmul(&lib, &strided, &b2, &mut c2)
            .unwrap_err()
            .contains("stride"));
        let e = BlasLib::open(Path::new("/nonexistent/libblas.so"))
            .err()
            .unwrap();
        assert!(e.contains("/nonexistent/libblas.so"), "{e}");
        // A real shared library without CBLAS symbols, found on the loader's path.
        let e = BlasLib::open(Path::new("libm.so.6")).err().unwrap();
        assert!(e.contains("cblas_sgemm") && e.contains("libm.so.6"), "{e}");
    }
}
