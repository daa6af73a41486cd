//! bf16 matrix products with f32 accumulation on the CPU (issue 16): `C = A · B` where both inputs
//! are f32 in memory (any strides), rounded to bf16 (round to nearest even) while they are packed,
//! multiplied as bf16 and summed in f32. This is what `model.dtype = "bf16"` runs for the linear
//! layers; weights, gradients and optimizer state stay f32 (PyTorch autocast does the same).
//!
//! Three paths, chosen at run time ([`Bf16Path::detect`]: AMX if present, else the f32 gemm), so
//! one binary serves every x86-64 CPU:
//! - [`Bf16Path::Amx`]: Intel AMX tiles (`tdpbf16ps`, Sapphire Rapids and later), through `asm!`
//!   (the AMX intrinsics are not stable in Rust 1.95). Linux hands out the tile state only on
//!   request: `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` once per process.
//! - [`Bf16Path::Avx512Bf16`]: `vdpbf16ps` (`_mm512_dpbf16_ps`, stable), AMD Zen 4 and Intel Cooper
//!   Lake and later.
//! - [`Bf16Path::F32Gemm`]: every other CPU: the bf16-rounded inputs widened back to f32 and multiplied
//!   by the `gemm` crate. The products of two bf16 numbers are exact in f32, so this gives the same
//!   numbers as the bf16 kernels up to the order of the f32 sums; it is not faster than f32.
//!
//! Products with fewer than 16 rows whose B is a transposed row-major weight (decoding steps) skip
//! the packing on every path: each weight row is rounded on the fly and dotted in f32
//! (`small_m`, compiled for AVX-512 or AVX2 where the CPU has them, chosen at run time).
//!
//! A generation call multiplies by the same weights at every step, so [`matmul_prepared`] keeps
//! each weight's converted form for the call ([`PreparedWeight`]): the rows in bf16 for few-row
//! products (half the bytes of the f32 weight to read per step), the packed tiles for larger ones
//! on the AMX and AVX512-BF16 paths, the rounded f32 rows on the f32-gemm path. The numbers are
//! the same as without it, bit for bit.
//!
//! Packed layouts, shared by the AMX and AVX512-BF16 kernels (`Kp` = k rounded up to 32, rows and
//! columns rounded up to 32, zero padding):
//! - A: 16-row blocks, each a run of `Kp / 32` tiles of 16 rows × 32 bf16 (64 bytes a row);
//! - B: 16-column blocks, each a run of `Kp / 32` tiles of 16 k-pairs × 16 columns × 2 bf16 (the
//!   "VNNI" layout `tdpbf16ps` and `vdpbf16ps` read: element `(k, j)` of a tile at `(k / 2) * 32 + 2 j + k % 2`).

use std::sync::OnceLock;

use rayon::prelude::*;

/// Which kernel computes a bf16 product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Path {
    /// AMX tiles (`tdpbf16ps`).
    Amx,
    /// AVX-512 `vdpbf16ps`.
    Avx512Bf16,
    /// bf16-rounded inputs through the f32 `gemm` crate (any CPU).
    F32Gemm,
}

impl Bf16Path {
    /// Every path, fastest first.
    pub const ALL: [Bf16Path; 3] = [Bf16Path::Amx, Bf16Path::Avx512Bf16, Bf16Path::F32Gemm];

    /// Short name (`amx`, `avx512-bf16`, `f32-gemm`), as `spear bench model` prints it and
    /// `SPEAR_BF16_PATH` accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Bf16Path::Amx => "amx",
            Bf16Path::Avx512Bf16 => "avx512-bf16",
            Bf16Path::F32Gemm => "f32-gemm",
        }
    }

    /// Whether this CPU (and OS) can run the path.
    pub fn available(self) -> bool {
        match self {
            Bf16Path::Amx => amx_usable(),
            Bf16Path::Avx512Bf16 => avx512_bf16(),
            Bf16Path::F32Gemm => true,
        }
    }

    /// The path products use: `SPEAR_BF16_PATH` (`amx`, `avx512-bf16`, `f32-gemm`) if set and
    /// available on this CPU, otherwise AMX if available, else the f32 gemm. The AVX512-BF16
    /// kernel is never picked by default: on the Intel Xeon of BENCHMARKS.md it ran at about half
    /// the f32 gemm's rate (`vdpbf16ps` has the FLOP rate of two f32 FMAs there, and the kernel is
    /// simpler than gemm's); it stays as a tested path to force and to measure on AMD Zen 4.
    /// Decided once per process.
    pub fn detect() -> Bf16Path {
        static PATH: OnceLock<Bf16Path> = OnceLock::new();
        *PATH.get_or_init(|| {
            let forced = std::env::var("SPEAR_BF16_PATH").ok().and_then(|v| {
                Bf16Path::ALL
                    .into_iter()
                    .find(|p| p.name() == v.trim())
                    .filter(|p| p.available())
            });
            forced.unwrap_or(if Bf16Path::Amx.available() {
                Bf16Path::Amx
            } else {
                Bf16Path::F32Gemm
            })
        })
    }
}

/// The `gemm` crate's f32 microkernel this CPU gets (its own run-time choice, gemm-common 0.19.0
/// `init_gemm_fn`: AVX-512 needs the `x86-v4` feature, which this workspace enables).
pub fn f32_matmul_path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "gemm avx512f (x86-v4)";
        }
        if std::arch::is_x86_feature_detected!("fma") {
            return "gemm avx2+fma";
        }
    }
    "gemm scalar/other"
}

/// CPU features relevant to the kernels, as `spear bench model` prints them.
pub fn cpu_features() -> Vec<&'static str> {
    let mut v = vec![];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            v.push("avx2");
        }
        if std::arch::is_x86_feature_detected!("fma") {
            v.push("fma");
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            v.push("avx512f");
        }
        if avx512_bf16() {
            v.push("avx512_bf16");
        }
        let (tile, bf16) = amx_cpuid();
        if tile {
            v.push("amx_tile");
        }
        if bf16 {
            v.push("amx_bf16");
        }
    }
    v
}

fn avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// CPUID leaf 7 subleaf 0, EDX bits 24 (AMX-TILE) and 22 (AMX-BF16). `is_x86_feature_detected!`
/// for AMX is not stable in Rust 1.95.
fn amx_cpuid() -> (bool, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        // Leaf 7 is checked against the maximum leaf.
        let max = std::arch::x86_64::__cpuid(0).eax;
        if max < 7 {
            return (false, false);
        }
        let r = std::arch::x86_64::__cpuid_count(7, 0);
        (r.edx & (1 << 24) != 0, r.edx & (1 << 22) != 0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (false, false)
    }
}

/// AMX-TILE + AMX-BF16 + AVX-512 on the CPU and the tile data permission granted by Linux.
fn amx_usable() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let (tile, bf16) = amx_cpuid();
        tile && bf16 && avx512_bf16() && request_amx_permission()
    })
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: Linux (5.16+) enables the 8 KB tile
/// state of a process only on this request (arch/x86/include/uapi/asm/prctl.h: 0x1023; xfeature 18).
fn request_amx_permission() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a plain syscall with integer arguments; failure is reported through the result.
        let r = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            )
        };
        r == 0
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// f32 → bf16 bits, round to nearest even (NaN stays a quiet NaN).
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `x` rounded to the nearest bf16, as f32.
#[inline]
pub fn round_bf16(x: f32) -> f32 {
    f32::from_bits((to_bf16(x) as u32) << 16)
}

/// A strided read-only f32 matrix: element `(i, j)` at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A `rows × cols` matrix stored row-major (`transposed = false`: row stride `cols`) or
    /// stored as its transpose (`true`: the `cols × rows` row-major matrix read through
    /// transposed strides).
    pub fn dense(data: &'a [f32], rows: usize, cols: usize, transposed: bool) -> Self {
        let (rs, cs) = if transposed { (1, rows) } else { (cols, 1) };
        MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }
}

impl MatRef<'_> {
    #[inline]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }

    fn check(&self, what: &str) -> Result<(), String> {
        if self.rows == 0 || self.cols == 0 {
            return Ok(());
        }
        let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
        if last >= self.data.len() {
            return Err(format!(
                "bf16 matmul: {what} ({}x{}, strides {}/{}) reads past its {} elements",
                self.rows,
                self.cols,
                self.rs,
                self.cs,
                self.data.len()
            ));
        }
        Ok(())
    }
}

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

const TILE: usize = 512; // u16 elements of one packed tile (16 × 32 bf16)

/// [`to_bf16`] without a branch (a select for NaN), so loops over slices vectorise; the same bits.
#[inline(always)]
fn to_bf16_sel(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    let quiet = ((b >> 16) | 0x40) as u16;
    if (b & 0x7fff_ffff) > 0x7f80_0000 {
        quiet
    } else {
        rounded
    }
}

/// Packs A (`m × k`) into 16-row blocks of k-tiles (see the module doc). Reads along whichever
/// of A's dimensions is contiguous: slices without per-element index arithmetic when a stride is
/// 1 (every product of the decoder), element by element otherwise.
fn pack_a(a: &MatRef, mp: usize, kp: usize) -> Vec<u16> {
    let kbn = kp / 32;
    let mut out = vec![0u16; mp * kp];
    out.par_chunks_mut(16 * kp)
        .enumerate()
        .for_each(|(mb, blk)| {
            let rows = 16.min(a.rows.saturating_sub(mb * 16));
            if rows == 0 {
                return; // a padding block: zeros
            }
            for kb in 0..kbn {
                let tile = &mut blk[kb * TILE..(kb + 1) * TILE];
                let cols = 32.min(a.cols - kb * 32);
                let (i0, p0) = (mb * 16, kb * 32);
                if a.cs == 1 {
                    for r in 0..rows {
                        let src = &a.data[(i0 + r) * a.rs + p0..][..cols];
                        for (d, &x) in tile[r * 32..r * 32 + cols].iter_mut().zip(src) {
                            *d = to_bf16_sel(x);
                        }
                    }
                } else if a.rs == 1 {
                    for c in 0..cols {
                        let src = &a.data[(p0 + c) * a.cs + i0..][..rows];
                        for (r, &x) in src.iter().enumerate() {
                            tile[r * 32 + c] = to_bf16_sel(x);
                        }
                    }
                } else {
                    for r in 0..rows {
                        for c in 0..cols {
                            tile[r * 32 + c] = to_bf16(a.at(i0 + r, p0 + c));
                        }
                    }
                }
            }
        });
    out
}

/// Packs B (`k × n`) into 16-column blocks of VNNI k-tiles (see the module doc). Reads along
/// whichever of B's dimensions is contiguous, as [`pack_a`].
fn pack_b(b: &MatRef, np: usize, kp: usize) -> Vec<u16> {
    let kbn = kp / 32;
    let mut out = vec![0u16; np * kp];
    out.par_chunks_mut(16 * kp)
        .enumerate()
        .for_each(|(nb, blk)| {
            let cols = 16.min(b.cols.saturating_sub(nb * 16));
            if cols == 0 {
                return; // a padding block: zeros
            }
            for kb in 0..kbn {
                let tile = &mut blk[kb * TILE..(kb + 1) * TILE];
                let rows = 32.min(b.rows - kb * 32);
                let (p0, j0) = (kb * 32, nb * 16);
                if b.rs == 1 {
                    // Column jj is contiguous along k: pairs of k land side by side.
                    for jj in 0..cols {
                        let src = &b.data[(j0 + jj) * b.cs + p0..][..rows];
                        for (p2, &x) in src.iter().enumerate() {
                            tile[(p2 / 2) * 32 + 2 * jj + (p2 % 2)] = to_bf16_sel(x);
                        }
                    }
                } else if b.cs == 1 {
                    for p2 in 0..rows {
                        let src = &b.data[(p0 + p2) * b.rs + j0..][..cols];
                        let base = (p2 / 2) * 32 + (p2 % 2);
                        for (jj, &x) in src.iter().enumerate() {
                            tile[base + 2 * jj] = to_bf16_sel(x);
                        }
                    }
                } else {
                    for p2 in 0..rows {
                        for jj in 0..cols {
                            tile[(p2 / 2) * 32 + 2 * jj + (p2 % 2)] =
                                to_bf16(b.at(p0 + p2, j0 + jj));
                        }
                    }
                }
            }
        });
    out
}

/// A raw output pointer shared by the tasks, each of which writes a disjoint block.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint (row, column) blocks of the output and nothing reads it meanwhile.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer `off` elements in. (A method, so closures capture the whole `OutPtr`, which
    /// is `Send`, not its raw-pointer field.)
    fn add(self, off: usize) -> *mut f32 {
        self.0.wrapping_add(off)
    }
}

/// The checks [`matmul`] and [`matmul_prepared`] share (output size, A in bounds, path available)
/// and their empty cases: `Ok(true)` when the product is already done (no rows or columns, or
/// `k = 0`, which zeroes `c`).
fn checked_trivial(a: &MatRef, n: usize, c: &mut [f32], path: Bf16Path) -> Result<bool, String> {
    let (m, k) = (a.rows, a.cols);
    if c.len() != m * n {
        return Err(format!(
            "bf16 matmul: output has {} elements, expected {m}x{n}",
            c.len()
        ));
    }
    a.check("A")?;
    if !path.available() {
        return Err(format!(
            "bf16 matmul: path `{}` is not available on this CPU",
            path.name()
        ));
    }
    if m == 0 || n == 0 {
        return Ok(true);
    }
    if k == 0 {
        c.fill(0.0);
        return Ok(true);
    }
    Ok(false)
}

/// `C (m × n, row-major, overwritten) = A (m × k) · B (k × n)` in bf16 with f32 sums, on `path`.
/// Errors if the shapes disagree, a view reads out of bounds, or `path` is not available here.
pub fn matmul(a: &MatRef, b: &MatRef, c: &mut [f32], path: Bf16Path) -> Result<(), String> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k {
        return Err(format!("bf16 matmul: A is {m}x{k} but B is {}x{n}", b.rows));
    }
    b.check("B")?;
    if checked_trivial(a, n, c, path)? {
        return Ok(());
    }
    match path {
        _ if m < SMALL_M && b.rs == 1 => {
            small_m(a, n, &f32_columns(b), c);
            Ok(())
        }
        Bf16Path::F32Gemm => {
            f32_gemm_rounded(a, b, c);
            Ok(())
        }
        Bf16Path::Amx | Bf16Path::Avx512Bf16 => {
            let (mp, np, kp) = (round_up(m, 32), round_up(n, 32), round_up(k, 32));
            let pa = pack_a(a, mp, kp);
            let pb = pack_b(b, np, kp);
            blocked(&pa, &pb, m, n, mp, np, kp, c, path);
            Ok(())
        }
    }
}

/// Below this many rows (decoding steps), packing or copying B costs more than the product:
/// every path then runs [`small_m`] (when B's columns are contiguous, as `Wᵀ` in a forward pass).
const SMALL_M: usize = 16;

/// Branch-free [`round_bf16`] for finite inputs (vectorises; a NaN may become another NaN or ±0).
#[inline(always)]
fn round_bf16_fast(x: f32) -> f32 {
    let b = x.to_bits();
    f32::from_bits(b.wrapping_add(0x7fff + ((b >> 16) & 1)) & 0xffff_0000)
}

/// f32 dot product in 16 lanes (vectorises).
#[inline(always)]
fn dot16(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (xc, yc) = (x.chunks_exact(16), y.chunks_exact(16));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for l in 0..16 {
            acc[l] += a[l] * b[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (a, b) in xr.iter().zip(yr) {
        s += a * b;
    }
    s
}

/// Where [`small_m`] reads the columns of B from.
trait Columns: Sync {
    /// Fills `out` (`k` values) with column `j` rounded to bf16, as f32.
    fn load(&self, j: usize, out: &mut [f32]);
    /// `dot16(x, column j)` for the four columns `j..j + 4`, each rounded on the fly (the same
    /// numbers as [`Columns::load`] then [`dot16`], column by column; four columns at a time
    /// keep more loads of the weight in flight).
    fn dot4(&self, j: usize, x: &[f32]) -> [f32; 4];
}

/// Four [`dot16`]s at once, of `x[c]` with `w[c]` widened by `f` on the fly: lane `l` of pair `c`
/// sums `x[c][16 q + l] · f(w[c][16 q + l])` over `q` in order, the lanes are then summed left to
/// right, then the tail — [`dot16`]'s order, pair by pair. Four independent chains of sums keep
/// more loads and additions in flight than one [`dot16`] after another.
#[inline(always)]
fn dot16x4<T: Copy>(x: [&[f32]; 4], w: [&[T]; 4], f: impl Fn(T) -> f32) -> [f32; 4] {
    let k = x[0].len();
    let (x0, x1, x2, x3) = (&x[0][..k], &x[1][..k], &x[2][..k], &x[3][..k]);
    let (w0, w1, w2, w3) = (&w[0][..k], &w[1][..k], &w[2][..k], &w[3][..k]);
    let (mut a0, mut a1, mut a2, mut a3) = ([0f32; 16], [0f32; 16], [0f32; 16], [0f32; 16]);
    let full = k / 16 * 16;
    for q in (0..full).step_by(16) {
        let (y0, y1, y2, y3) = (
            &x0[q..q + 16],
            &x1[q..q + 16],
            &x2[q..q + 16],
            &x3[q..q + 16],
        );
        let (b0, b1, b2, b3) = (
            &w0[q..q + 16],
            &w1[q..q + 16],
            &w2[q..q + 16],
            &w3[q..q + 16],
        );
        for l in 0..16 {
            a0[l] += y0[l] * f(b0[l]);
            a1[l] += y1[l] * f(b1[l]);
            a2[l] += y2[l] * f(b2[l]);
            a3[l] += y3[l] * f(b3[l]);
        }
    }
    let fin = |acc: [f32; 16], xc: &[f32], wc: &[T]| -> f32 {
        let mut s: f32 = acc.iter().sum();
        for (a, &b) in xc[full..].iter().zip(&wc[full..]) {
            s += a * f(b);
        }
        s
    };
    [
        fin(a0, x0, w0),
        fin(a1, x1, w1),
        fin(a2, x2, w2),
        fin(a3, x3, w3),
    ]
}

/// Columns of B stored contiguously, column `j` at `data[j * stride..][..k]`, each element turned
/// into its bf16-rounded f32 value by `widen`: an f32 `Wᵀ` of a row-major weight (rounded on the
/// fly, [`f32_columns`]) or the bf16 rows of a [`PreparedWeight`] (widened exactly,
/// [`bf16_columns`]).
struct SliceColumns<'a, T, F> {
    data: &'a [T],
    stride: usize,
    k: usize,
    widen: F,
    /// Prefetch columns ahead in [`Columns::dot4`] (measured for the bf16 rows only).
    prefetch: bool,
}

/// The columns of `Wᵀ` given as a strided f32 B with contiguous columns.
fn f32_columns<'a>(b: &'a MatRef<'a>) -> SliceColumns<'a, f32, impl Fn(f32) -> f32 + Sync> {
    SliceColumns {
        data: b.data,
        stride: b.cs,
        k: b.rows,
        widen: round_bf16_fast,
        prefetch: false,
    }
}

/// The columns of `Wᵀ` given as the bf16 rows of `W` (`n × k`).
fn bf16_columns(bits: &[u16], k: usize) -> SliceColumns<'_, u16, impl Fn(u16) -> f32 + Sync> {
    SliceColumns {
        data: bits,
        stride: k,
        k,
        widen: |v: u16| f32::from_bits((v as u32) << 16),
        prefetch: true,
    }
}

impl<T: Copy + Sync, F: Fn(T) -> f32 + Sync> SliceColumns<'_, T, F> {
    #[inline(always)]
    fn col(&self, j: usize) -> &[T] {
        &self.data[j * self.stride..j * self.stride + self.k]
    }

    /// Asks the CPU to fetch columns `j..j + 4` ahead of their use, so that the reads of later
    /// columns overlap the arithmetic on these (no effect on the numbers).
    #[inline(always)]
    fn prefetch4(&self, j: usize) {
        #[cfg(target_arch = "x86_64")]
        for c in j..j + 4 {
            let start = (c * self.stride).min(self.data.len());
            let end = (start + self.k).min(self.data.len());
            let per_line = (64 / std::mem::size_of::<T>()).max(1);
            for e in (start..end).step_by(per_line) {
                // SAFETY: a prefetch of an address inside `data`; it reads nothing.
                unsafe {
                    std::arch::x86_64::_mm_prefetch(
                        self.data.as_ptr().add(e) as *const i8,
                        std::arch::x86_64::_MM_HINT_T0,
                    )
                };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = j;
    }
}

impl<T: Copy + Sync, F: Fn(T) -> f32 + Sync> Columns for SliceColumns<'_, T, F> {
    #[inline(always)]
    fn load(&self, j: usize, out: &mut [f32]) {
        for (d, &v) in out.iter_mut().zip(self.col(j)) {
            *d = (self.widen)(v);
        }
    }

    #[inline(always)]
    fn dot4(&self, j: usize, x: &[f32]) -> [f32; 4] {
        let w = [
            self.col(j),
            self.col(j + 1),
            self.col(j + 2),
            self.col(j + 3),
        ];
        if self.prefetch {
            // The four columns after the next four: about 4.6 KB ahead for a 576-wide layer.
            self.prefetch4(j + 8);
        }
        dot16x4([x; 4], w, &self.widen)
    }
}

/// Columns `j0..j1` of a few-row product: `C[i, j] = dot16(ar row i, column j)`. One or two rows:
/// four columns at a time, rounded on the fly; more rows: each column rounded once into a
/// buffer, then dotted with four rows at a time.
#[inline(always)]
fn small_m_cols<C: Columns>(
    ar: &[f32],
    m: usize,
    n: usize,
    cols: &C,
    j0: usize,
    j1: usize,
    out: OutPtr,
) {
    let k = ar.len() / m;
    let put = |i: usize, j: usize, s: f32| {
        // SAFETY: (i, j) is inside the m × n output; column j belongs to this task only.
        unsafe { *out.add(i * n + j) = s };
    };
    let mut j = j0;
    if m <= 2 {
        while j + 4 <= j1 {
            for i in 0..m {
                let s = cols.dot4(j, &ar[i * k..(i + 1) * k]);
                for (c, v) in s.into_iter().enumerate() {
                    put(i, j + c, v);
                }
            }
            j += 4;
        }
    }
    let mut w = vec![0f32; k];
    let row = |i: usize| &ar[i * k..(i + 1) * k];
    for j in j..j1 {
        cols.load(j, &mut w);
        let mut i = 0;
        while i + 4 <= m {
            let s = dot16x4(
                [row(i), row(i + 1), row(i + 2), row(i + 3)],
                [&w[..]; 4],
                |v| v,
            );
            for (r, v) in s.into_iter().enumerate() {
                put(i + r, j, v);
            }
            i += 4;
        }
        for i in i..m {
            put(i, j, dot16(row(i), &w));
        }
    }
}

/// [`small_m_cols`] compiled for AVX-512 (the crate itself is compiled for baseline x86-64).
/// The same operations in the same order, so the same numbers as the other builds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn small_m_cols_avx512<C: Columns>(
    ar: &[f32],
    m: usize,
    n: usize,
    cols: &C,
    j0: usize,
    j1: usize,
    out: OutPtr,
) {
    small_m_cols(ar, m, n, cols, j0, j1, out)
}

/// [`small_m_cols`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn small_m_cols_avx2<C: Columns>(
    ar: &[f32],
    m: usize,
    n: usize,
    cols: &C,
    j0: usize,
    j1: usize,
    out: OutPtr,
) {
    small_m_cols(ar, m, n, cols, j0, j1, out)
}

/// The widest SIMD build of [`small_m_cols`] this CPU runs (`"avx512f"`, `"avx2"` or
/// `"baseline"`), as `spear bench model` prints it.
pub fn small_m_path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "baseline"
}

/// Few rows of A (a decoding step) against a B whose columns come from `cols`: each column is
/// loaded once as bf16-rounded f32 and dotted with the bf16-rounded rows of A in 16 f32 lanes
/// ([`dot16`]). Memory-bound: reads each weight once per product.
fn small_m<C: Columns>(a: &MatRef, n: usize, cols: &C, c: &mut [f32]) {
    let (m, k) = (a.rows, a.cols);
    let mut ar = vec![0f32; m * k];
    for (i, row) in ar.chunks_mut(k).enumerate() {
        for (p, v) in row.iter_mut().enumerate() {
            *v = round_bf16(a.at(i, p));
        }
    }
    let out = OutPtr(c.as_mut_ptr());
    let cols_per_task = 256;
    let simd = small_m_path();
    let tasks = n.div_ceil(cols_per_task);
    // One thread: no hand-off to the pool (a wake-up per product costs more than the product).
    let serial = rayon::current_num_threads() == 1;
    let run = |t: usize| {
        let (j0, j1) = (t * cols_per_task, ((t + 1) * cols_per_task).min(n));
        match simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512F (checked at run time by `small_m_path`).
            "avx512f" => unsafe { small_m_cols_avx512(&ar, m, n, cols, j0, j1, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 (checked as above).
            "avx2" => unsafe { small_m_cols_avx2(&ar, m, n, cols, j0, j1, out) },
            _ => small_m_cols(&ar, m, n, cols, j0, j1, out),
        }
    };
    if serial {
        (0..tasks).for_each(run);
    } else {
        (0..tasks).into_par_iter().for_each(run);
    }
}

/// A weight `W [n, k]` (row-major, as a linear layer stores it) converted once for many products
/// `x · Wᵀ` with the same weight: the decoding steps of one generation call
/// ([`crate::linear_bf16::DecodeWeights`]). Two forms, each made on first need from the weight
/// passed to [`matmul_prepared`]: the rows rounded to bf16 (products with fewer than 16 rows, read
/// at half the bytes of the f32 weight) and the packed tiles of `Wᵀ` (products with 16 rows or
/// more on the AMX and AVX512-BF16 paths, which would otherwise pack the weight again at every
/// step). The numbers are those of [`matmul`] on the same weight, bit for bit.
#[derive(Debug, Default)]
pub struct PreparedWeight {
    rows: OnceLock<Vec<u16>>,
    packed: OnceLock<Vec<u16>>,
    /// The rows rounded to bf16 and kept as f32, for products with 16 rows or more on the
    /// f32-gemm path.
    rounded: OnceLock<Vec<f32>>,
}

impl PreparedWeight {
    /// Nothing converted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held by the converted forms.
    pub fn bytes(&self) -> usize {
        2 * (self.rows.get().map_or(0, Vec::len) + self.packed.get().map_or(0, Vec::len))
            + 4 * self.rounded.get().map_or(0, Vec::len)
    }

    /// Whether a product with `m` rows on `path` still needs the weight's values (its first one).
    pub fn needs_source(&self, m: usize, path: Bf16Path) -> bool {
        if m < SMALL_M {
            self.rows.get().is_none()
        } else if path == Bf16Path::F32Gemm {
            self.rounded.get().is_none()
        } else {
            self.packed.get().is_none()
        }
    }
}

/// `C (m × n) = A (m × k) · Wᵀ` like [`matmul`] with `B = Wᵀ`, for a row-major weight `W [n, k]`
/// whose converted forms `prep` keeps (and fills on first need). `w` is the weight's values; it is
/// read only while `prep` lacks the form this product needs ([`PreparedWeight::needs_source`]), so
/// a caller may pass `None` then. Every call with one `prep` must pass the same weight.
pub fn matmul_prepared(
    a: &MatRef,
    w: Option<&[f32]>,
    n: usize,
    prep: &PreparedWeight,
    c: &mut [f32],
    path: Bf16Path,
) -> Result<(), String> {
    let (m, k) = (a.rows, a.cols);
    let wref = |w: &[f32]| -> Result<(), String> {
        if w.len() != n * k {
            return Err(format!(
                "bf16 matmul: the weight has {} elements, expected {n}x{k}",
                w.len()
            ));
        }
        Ok(())
    };
    if let Some(w) = w {
        wref(w)?;
    }
    if checked_trivial(a, n, c, path)? {
        return Ok(());
    }
    let missing = || "bf16 matmul: the prepared weight needs its values on first use".to_string();
    fn bt(w: &[f32], k: usize, n: usize) -> MatRef<'_> {
        MatRef {
            data: w,
            rows: k,
            cols: n,
            rs: 1,
            cs: k,
        }
    }
    if m < SMALL_M {
        let rows = match prep.rows.get() {
            Some(r) => r,
            None => {
                let w = w.ok_or_else(missing)?;
                let mut bits = vec![0u16; n * k];
                bits.par_chunks_mut(k)
                    .zip(w.par_chunks(k))
                    .for_each(|(d, s)| {
                        for (d, &s) in d.iter_mut().zip(s) {
                            *d = to_bf16_sel(s);
                        }
                    });
                prep.rows.get_or_init(|| bits)
            }
        };
        if rows.len() != n * k {
            return Err(format!(
                "bf16 matmul: the prepared weight was made for another shape than {n}x{k}"
            ));
        }
        small_m(a, n, &bf16_columns(rows, k), c);
        return Ok(());
    }
    match path {
        Bf16Path::F32Gemm => {
            let r = match prep.rounded.get() {
                Some(r) => r,
                None => {
                    let w = w.ok_or_else(missing)?;
                    let mut r = vec![0f32; n * k];
                    r.par_chunks_mut(k).zip(w.par_chunks(k)).for_each(|(d, s)| {
                        for (d, &s) in d.iter_mut().zip(s) {
                            *d = round_bf16(s);
                        }
                    });
                    prep.rounded.get_or_init(|| r)
                }
            };
            if r.len() != n * k {
                return Err(format!(
                    "bf16 matmul: the prepared weight was made for another shape than {n}x{k}"
                ));
            }
            // B = Wᵀ read in place: B[p, j] = W[j, p].
            gemm_f32(&rounded_rows(a), m, r, n, k, 1, c);
        }
        Bf16Path::Amx | Bf16Path::Avx512Bf16 => {
            let (mp, np, kp) = (round_up(m, 32), round_up(n, 32), round_up(k, 32));
            let pb = match prep.packed.get() {
                Some(p) => p,
                None => {
                    let w = w.ok_or_else(missing)?;
                    prep.packed.get_or_init(|| pack_b(&bt(w, k, n), np, kp))
                }
            };
            if pb.len() != np * kp {
                return Err(format!(
                    "bf16 matmul: the prepared weight was made for another shape than {n}x{k}"
                ));
            }
            let pa = pack_a(a, mp, kp);
            blocked(&pa, pb, m, n, mp, np, kp, c, path);
        }
    }
    Ok(())
}

/// Fallback: round both inputs to bf16, widen back to f32 (contiguous) and run the f32 gemm.
fn f32_gemm_rounded(a: &MatRef, b: &MatRef, c: &mut [f32]) {
    let (k, n) = (a.cols, b.cols);
    let ar = rounded_rows(a);
    let mut br = vec![0f32; k * n];
    if b.rs == 1 {
        // Columns contiguous (`Wᵀ` of a row-major weight): copied column by column and read
        // through the same strides, as `matmul_prepared` reads its rounded weight (same numbers).
        br.par_chunks_mut(k).enumerate().for_each(|(j, col)| {
            for (d, &v) in col.iter_mut().zip(&b.data[j * b.cs..j * b.cs + k]) {
                *d = round_bf16(v);
            }
        });
        gemm_f32(&ar, a.rows, &br, n, k, 1, c);
    } else {
        br.par_chunks_mut(n).enumerate().for_each(|(p, row)| {
            for (j, v) in row.iter_mut().enumerate() {
                *v = round_bf16(b.at(p, j));
            }
        });
        gemm_f32(&ar, a.rows, &br, n, 1, n, c);
    }
}

/// The rows of A rounded to bf16, as a contiguous f32 `m × k` matrix.
fn rounded_rows(a: &MatRef) -> Vec<f32> {
    let k = a.cols;
    let mut ar = vec![0f32; a.rows * k];
    ar.par_chunks_mut(k).enumerate().for_each(|(i, row)| {
        for (p, v) in row.iter_mut().enumerate() {
            *v = round_bf16(a.at(i, p));
        }
    });
    ar
}

/// `C (m × n, row-major) = A (m × k, row-major) · B` by the `gemm` crate, B (`k × n`) read with
/// column stride `b_cs` and row stride `b_rs`.
fn gemm_f32(ar: &[f32], m: usize, b: &[f32], n: usize, b_cs: usize, b_rs: usize, c: &mut [f32]) {
    let k = ar.len() / m.max(1);
    assert!(
        m * n == c.len() && (k == 0 || n == 0 || (k - 1) * b_rs + (n - 1) * b_cs < b.len()),
        "gemm_f32: operand sizes"
    );
    let threads = rayon::current_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: A and C are contiguous row-major with the dimensions passed, B's strided view is
    // inside `b` (asserted); `read_dst` is false, so `c` is only written.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            ar.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Splits the output into column chunks whose packed B stays in L2 and row ranges, and runs the
/// 32 × 32 block kernel of `path` on each (tasks in parallel on the rayon pool).
#[allow(clippy::too_many_arguments)]
fn blocked(
    pa: &[u16],
    pb: &[u16],
    m: usize,
    n: usize,
    mp: usize,
    np: usize,
    kp: usize,
    c: &mut [f32],
    path: Bf16Path,
) {
    // Columns per chunk: packed B of the chunk about 256 KB.
    let nc = ((256 * 1024) / (kp * 2) / 32 * 32).clamp(32, np);
    let nchunks = np.div_ceil(nc);
    let mblocks = mp / 32;
    let threads = rayon::current_num_threads().max(1);
    let mparts = (4 * threads).div_ceil(nchunks).clamp(1, mblocks);
    let per_part = mblocks.div_ceil(mparts);
    let out = OutPtr(c.as_mut_ptr());
    let tasks: Vec<(usize, usize)> = (0..nchunks)
        .flat_map(|ch| (0..mparts).map(move |mpart| (ch, mpart)))
        .collect();
    tasks.into_par_iter().for_each(|(ch, mpart)| {
        let n0 = ch * nc;
        let n1 = (n0 + nc).min(np);
        let m0 = mpart * per_part * 32;
        let m1 = ((mpart + 1) * per_part * 32).min(mp);
        let mut scratch = [0f32; 32 * 32];
        let run = |scratch: &mut [f32; 1024], mb: usize, nb: usize| match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path was checked available; block offsets are inside the packed buffers.
            Bf16Path::Amx => unsafe { amx::block(pa, pb, mb, nb, kp, scratch) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Bf16Path::Avx512Bf16 => unsafe { avx512::block(pa, pb, mb, nb, kp, scratch) },
            _ => unreachable!("bf16 block kernel on a path without one"),
        };
        #[cfg(target_arch = "x86_64")]
        if path == Bf16Path::Amx {
            // SAFETY: AMX available (checked); the config is loaded on this thread before use.
            unsafe { amx::configure() };
        }
        for mb in (m0..m1).step_by(32) {
            for nb in (n0..n1).step_by(32) {
                run(&mut scratch, mb, nb);
                let rows = 32.min(m.saturating_sub(mb));
                let cols = 32.min(n.saturating_sub(nb));
                for r in 0..rows {
                    // SAFETY: (mb + r, nb..nb + cols) is inside the m × n output and owned by
                    // this task only.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            scratch.as_ptr().add(r * 32),
                            out.add((mb + r) * n + nb),
                            cols,
                        );
                    }
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        if path == Bf16Path::Amx {
            // SAFETY: releases this thread's tile state.
            unsafe { amx::release() };
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod amx {
    use std::arch::asm;

    /// The 64-byte tile configuration (palette 1): tmm0–7 all 16 rows × 64 bytes.
    #[repr(C, align(64))]
    struct TileCfg {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }

    pub unsafe fn configure() {
        let mut cfg = TileCfg {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        for i in 0..8 {
            cfg.colsb[i] = 64;
            cfg.rows[i] = 16;
        }
        asm!("ldtilecfg [{}]", in(reg) &cfg as *const TileCfg, options(nostack, readonly));
    }

    pub unsafe fn release() {
        asm!("tilerelease", options(nostack, nomem));
    }

    /// The 32 × 32 output block at rows `mb`, columns `nb` into `c` (row stride 32 floats):
    /// tmm0–3 accumulate, tmm4–5 hold two A tiles, tmm6–7 two B tiles.
    pub unsafe fn block(
        pa: &[u16],
        pb: &[u16],
        mb: usize,
        nb: usize,
        kp: usize,
        c: &mut [f32; 1024],
    ) {
        let kbn = kp / 32;
        let a0 = pa.as_ptr().add(mb * kp);
        let a1 = a0.add(16 * kp);
        let b0 = pb.as_ptr().add(nb * kp);
        let b1 = b0.add(16 * kp);
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        for kb in 0..kbn {
            let off = kb * super::TILE;
            asm!(
                "tileloadd tmm4, [{a0} + {s}*1]",
                "tileloadd tmm5, [{a1} + {s}*1]",
                "tileloadd tmm6, [{b0} + {s}*1]",
                "tileloadd tmm7, [{b1} + {s}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) a0.add(off),
                a1 = in(reg) a1.add(off),
                b0 = in(reg) b0.add(off),
                b1 = in(reg) b1.add(off),
                s = in(reg) 64usize,
                options(nostack, readonly)
            );
        }
        let cp = c.as_mut_ptr();
        asm!(
            "tilestored [{c0} + {s}*1], tmm0",
            "tilestored [{c1} + {s}*1], tmm1",
            "tilestored [{c2} + {s}*1], tmm2",
            "tilestored [{c3} + {s}*1], tmm3",
            c0 = in(reg) cp,
            c1 = in(reg) cp.add(16),
            c2 = in(reg) cp.add(16 * 32),
            c3 = in(reg) cp.add(16 * 32 + 16),
            s = in(reg) 128usize,
            options(nostack)
        );
    }
}

// The AVX-512 intrinsics are stable since Rust 1.89, so building needs Rust >= 1.89 although the
// workspace's `rust-version` says 1.85 (raising it turns on `manual_is_multiple_of` in spear-rl
// and spear-envs: left to a separate change).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod avx512 {
    use std::arch::x86_64::*;

    /// The 32 × 32 output block at rows `mb`, columns `nb` into `c` (row stride 32 floats), as
    /// four 8-row × 32-column register blocks: 16 accumulators, `vdpbf16ps` per k-pair.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn block(
        pa: &[u16],
        pb: &[u16],
        mb: usize,
        nb: usize,
        kp: usize,
        c: &mut [f32; 1024],
    ) {
        let kbn = kp / 32;
        let b0 = pb.as_ptr().add(nb * kp);
        let b1 = b0.add(16 * kp);
        for rg in 0..4 {
            // 8 rows starting at mb + 8 rg: inside 16-row block (mb + 8 rg) / 16, rows from r0.
            let row0 = mb + 8 * rg;
            let blk = pa.as_ptr().add((row0 / 16) * 16 * kp);
            let r0 = row0 % 16;
            let mut acc = [[_mm512_setzero_ps(); 2]; 8];
            for kb in 0..kbn {
                let off = kb * super::TILE;
                let at = blk.add(off + r0 * 32) as *const u32;
                let bt0 = b0.add(off);
                let bt1 = b1.add(off);
                for kk in 0..16 {
                    let v0: __m512bh =
                        std::mem::transmute(_mm512_loadu_si512(bt0.add(kk * 32) as *const _));
                    let v1: __m512bh =
                        std::mem::transmute(_mm512_loadu_si512(bt1.add(kk * 32) as *const _));
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let a: __m512bh = std::mem::transmute(_mm512_set1_epi32(
                            at.add(r * 16 + kk).read_unaligned() as i32,
                        ));
                        acc_r[0] = _mm512_dpbf16_ps(acc_r[0], a, v0);
                        acc_r[1] = _mm512_dpbf16_ps(acc_r[1], a, v1);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate() {
                let dst = c.as_mut_ptr().add((8 * rg + r) * 32);
                _mm512_storeu_ps(dst, acc_r[0]);
                _mm512_storeu_ps(dst.add(16), acc_r[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Naive reference: bf16-rounded inputs, f64 sums.
    fn reference(a: &MatRef, b: &MatRef) -> Vec<f64> {
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for p in 0..k {
                    s += round_bf16(a.at(i, p)) as f64 * round_bf16(b.at(p, j)) as f64;
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    #[test]
    fn bf16_rounding_is_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bf16(1.0 + 1.5 / 256.0), 0x3f81);
        assert_eq!(to_bf16(-2.0), 0xc000);
        assert!(f32::from_bits((to_bf16(f32::NAN) as u32) << 16).is_nan());
        assert_eq!(to_bf16(f32::INFINITY), 0x7f80);
    }

    /// Every available path against the naive loop on random shapes (odd sizes, transposed
    /// views), |c - ref| ≤ 1e-5 · Σ|a||b| + 1e-6 (f32 sums of exact bf16 products). A path this
    /// CPU lacks must refuse with an error; `SPEAR_REQUIRE_BF16_PATHS=amx,avx512-bf16` makes its
    /// absence a failure (set on machines that have them, so they cannot go untested).
    #[test]
    fn every_path_matches_the_naive_loop() {
        let required = std::env::var("SPEAR_REQUIRE_BF16_PATHS").unwrap_or_default();
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        let shapes = [
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 15),
            (32, 32, 32),
            (33, 64, 65),
            (64, 100, 48),
            (5, 577, 3),
            (70, 130, 90),
            (8, 200, 300),
            (15, 576, 129),
            (1, 300, 37),
            (2, 577, 9),
        ];
        for path in Bf16Path::ALL {
            if !path.available() {
                assert!(
                    !required.split(',').any(|r| r.trim() == path.name()),
                    "SPEAR_REQUIRE_BF16_PATHS names `{}`, which this CPU lacks",
                    path.name()
                );
                let a = [1f32];
                let m = MatRef {
                    data: &a,
                    rows: 1,
                    cols: 1,
                    rs: 1,
                    cs: 1,
                };
                let mut c = [0f32];
                let e = matmul(&m, &m, &mut c, path).unwrap_err();
                assert!(e.contains("not available"), "{e}");
                eprintln!(
                    "bf16 path {}: not available on this CPU (refusal checked)",
                    path.name()
                );
                continue;
            }
            for &(m, k, n) in &shapes {
                for transposed in [false, true] {
                    let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0..2.0)).collect();
                    let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-2.0..2.0)).collect();
                    // Row-major, or the same numbers read through transposed strides.
                    let (am, bm) = (
                        MatRef::dense(&a, m, k, transposed),
                        MatRef::dense(&b, k, n, transposed),
                    );
                    let want = reference(&am, &bm);
                    let mut got = vec![f32::NAN; m * n];
                    matmul(&am, &bm, &mut got, path).unwrap();
                    for i in 0..m {
                        for j in 0..n {
                            let scale: f64 = (0..k)
                                .map(|p| (am.at(i, p) as f64 * bm.at(p, j) as f64).abs())
                                .sum();
                            let (g, w) = (got[i * n + j] as f64, want[i * n + j]);
                            assert!(
                                (g - w).abs() <= 1e-5 * scale + 1e-6,
                                "{} {m}x{k}x{n} (transposed {transposed}) at ({i},{j}): {g} vs {w}",
                                path.name()
                            );
                        }
                    }
                }
            }
            eprintln!("bf16 path {}: checked", path.name());
        }
    }

    /// The packing's branch-free rounding gives `to_bf16`'s bits on every input, NaNs included.
    #[test]
    fn select_rounding_equals_rounding_everywhere() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let edge = [
            0.0f32,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7f80_0001),
            f32::from_bits(0xffff_ffff),
            f32::MAX,
            f32::MIN,
            1.0 + 1.0 / 256.0,
        ];
        for x in edge
            .into_iter()
            .chain((0..200_000).map(|_| f32::from_bits(rng.random::<u32>())))
        {
            assert_eq!(to_bf16_sel(x), to_bf16(x), "{:#x}", x.to_bits());
        }
    }

    #[test]
    fn fast_rounding_equals_rounding_on_finite_values() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let edge = [
            0.0f32,
            -0.0,
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-40,
        ];
        for x in edge
            .into_iter()
            .chain((0..100_000).map(|_| f32::from_bits(rng.random::<u32>())))
        {
            if x.is_finite() && round_bf16(x).is_finite() {
                assert_eq!(
                    round_bf16_fast(x).to_bits(),
                    round_bf16(x).to_bits(),
                    "{x:e}"
                );
            }
        }
    }

    #[test]
    fn shape_and_bounds_errors() {
        let a = [0f32; 6];
        let m23 = MatRef {
            data: &a,
            rows: 2,
            cols: 3,
            rs: 3,
            cs: 1,
        };
        let mut c = [0f32; 4];
        let e = matmul(&m23, &m23, &mut c, Bf16Path::F32Gemm).unwrap_err();
        assert!(e.contains("A is 2x3 but B is 2x3"), "{e}");
        let bad = MatRef {
            data: &a,
            rows: 3,
            cols: 3,
            rs: 3,
            cs: 1,
        };
        let e = matmul(&bad, &bad, &mut [0f32; 9], Bf16Path::F32Gemm).unwrap_err();
        assert!(e.contains("reads past"), "{e}");
    }

    /// A prepared weight gives [`matmul`]'s numbers bit for bit on every available path, for
    /// few-row products (its bf16 rows) and larger ones (its packed tiles), on the first call
    /// (made from the weight) and later ones (without it); it refuses a first call without the
    /// weight and a weight of another shape.
    #[test]
    fn prepared_weights_give_the_plain_products_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(61);
        for path in Bf16Path::ALL.into_iter().filter(|p| p.available()) {
            for &(n, k) in &[(1, 1), (7, 5), (129, 576), (48, 33)] {
                let w: Vec<f32> = (0..n * k).map(|_| rng.random_range(-2.0..2.0)).collect();
                let wt = MatRef {
                    data: &w,
                    rows: k,
                    cols: n,
                    rs: 1,
                    cs: k,
                };
                let prep = PreparedWeight::new();
                for m in [1, 2, 3, 15, 16, 40, 1, 40] {
                    let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0..2.0)).collect();
                    let am = MatRef {
                        data: &a,
                        rows: m,
                        cols: k,
                        rs: k,
                        cs: 1,
                    };
                    let mut want = vec![0f32; m * n];
                    matmul(&am, &wt, &mut want, path).unwrap();
                    let mut got = vec![f32::NAN; m * n];
                    let src = prep.needs_source(m, path).then_some(&w[..]);
                    if src.is_none() {
                        // Already made: the weight's values are not read again.
                        assert!(matches!(m, 1 | 40) || path == Bf16Path::F32Gemm);
                    }
                    matmul_prepared(&am, src, n, &prep, &mut got, path).unwrap();
                    let (wb, gb): (Vec<u32>, Vec<u32>) = (
                        want.iter().map(|x| x.to_bits()).collect(),
                        got.iter().map(|x| x.to_bits()).collect(),
                    );
                    assert_eq!(wb, gb, "{} m={m} n={n} k={k}", path.name());
                }
                assert!(prep.bytes() >= 2 * n * k);
                let mut c = vec![0f32; 2 * (n + 1)];
                let a = vec![1f32; 2 * k];
                let am = MatRef {
                    data: &a,
                    rows: 2,
                    cols: k,
                    rs: k,
                    cs: 1,
                };
                let e = matmul_prepared(&am, None, n + 1, &prep, &mut c, path).unwrap_err();
                assert!(e.contains("another shape"), "{e}");
                let e =
                    matmul_prepared(&am, None, n, &PreparedWeight::new(), &mut c[..2 * n], path)
                        .unwrap_err();
                assert!(e.contains("needs its values"), "{e}");
            }
        }
    }
}
