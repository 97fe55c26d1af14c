//! Dense layers with pre-packed weights for inference: `out = act(x·W + b)` on AVX-512.
//!
//! Inference multiplies every block of inputs by the same weights. `gemm` re-packs its
//! operands on every call and reads the inputs in a separate packing pass, which stalls on
//! memory; this kernel packs `W` once, when the model's host weights are made, and reads the
//! input rows in place, prefetching the next rows while the current ones are in use:
//!
//! ```text
//! W [fan_in, fan_out]  →  panels of 64 columns, each [fan_in, 64] contiguous and 64-byte aligned
//! tile: 6 rows × 64 columns = 24 AVX-512 accumulators;  for k in 0..fan_in: acc[r] += x[r,k]·W[k,:]
//!       (full tiles run this loop in assembly, 4 steps per turn: tile_6x64_steps!)
//! epilogue: z = acc + b;  flag any non-finite z;  out = z < 0 ? 0 : z  (ReLU that keeps NaN)
//! order: a panel that fits in L1 (fan_in ≤ 128) is loaded once and every tile of rows passes
//!        through it; a larger one is read from L2 by each tile, which then goes through all
//!        panels while its rows are in L1
//! ```
//!
//! The last rows of a block (fewer than 6) run in tiles of 2, so a single pair's predict
//! (2 rows) does not compute throw-away rows: it takes 1.6 µs at dim 100 against 2.6 µs
//! through `gemm` (`examples/bench.rs`).
//!
//! Every output is one fused multiply-add chain over `k` in order, then `+ b`, whatever the
//! block size, tile position or thread count, so predictions do not depend on how a batch is
//! split. The flag is the input check for free: a NaN or ±∞ anywhere in an input row makes
//! every pre-activation of that row non-finite (`NaN·w`, `±∞·0` and `∞ − ∞` are NaN, and
//! `±∞ + finite` stays infinite), so a block whose pre-activations are all finite had finite
//! inputs. A flagged block may also come from overflow or from non-finite weights; callers
//! then scan the inputs themselves.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows per tile.
const MR: usize = 6;
/// Rows per tile for the rows left after the full tiles.
const TAIL: usize = 2;
/// Columns per panel (four AVX-512 registers).
const PANEL: usize = 64;
/// Panels up to this size are kept in L1 and every tile of rows streams through them.
const L1_PANEL_BYTES: usize = 32 * 1024;
/// Lanes per AVX-512 register.
const LANES: usize = 16;

/// 16 floats on a 64-byte boundary, so that every packed load is one aligned cache line.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
struct Line([f32; LANES]);

/// One dense layer's weights packed for [`PackedDense::forward`].
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PackedDense {
    fan_in: usize,
    fan_out: usize,
    /// Panel `p` covers columns `64p..` and holds `fan_in` steps of `width(p) / 16` lines.
    lines: Vec<Line>,
    bias: Vec<f32>,
}

impl PackedDense {
    /// Packs `kernel` (`[fan_in, fan_out]`, row-major) and `bias` (`[fan_out]`), or `None` when
    /// the CPU lacks AVX-512 (the caller then keeps `gemm`).
    pub(super) fn new(kernel: &[f32], bias: &[f32], fan_in: usize, fan_out: usize) -> Option<Self> {
        if !avx512() || fan_in == 0 || fan_out == 0 {
            return None;
        }
        assert_eq!(kernel.len(), fan_in * fan_out, "packed layer: kernel size");
        assert_eq!(bias.len(), fan_out, "packed layer: bias size");
        let mut lines = Vec::with_capacity(fan_in * fan_out.div_ceil(LANES));
        for start in (0..fan_out).step_by(PANEL) {
            let width = (fan_out - start).min(PANEL);
            for row in kernel.chunks_exact(fan_out) {
                for l in 0..width.div_ceil(LANES) {
                    let mut line = Line([0.0; LANES]);
                    let cols = start + l * LANES..(start + (l + 1) * LANES).min(fan_out);
                    line.0[..cols.len()].copy_from_slice(&row[cols]);
                    lines.push(line);
                }
            }
        }
        Some(Self {
            fan_in,
            fan_out,
            lines,
            bias: bias.to_vec(),
        })
    }

    /// `out[rows, fan_out] = act(x[rows, fan_in]·W + b)`, ReLU when `relu`; returns whether
    /// every pre-activation `x·W + b` was finite.
    pub(super) fn forward(&self, x: &[f32], rows: usize, out: &mut [f32], relu: bool) -> bool {
        let (k, n) = (self.fan_in, self.fan_out);
        assert!(
            x.len() >= rows * k && out.len() >= rows * n,
            "packed layer: [{rows}×{k}] input or [{rows}×{n}] output too small"
        );
        if rows == 0 {
            return true;
        }
        // SAFETY: `new` returned `Some` only on a CPU with AVX-512F, and the assertion above
        // bounds every row the kernel reads (x) and writes (out).
        unsafe { self.forward_avx512(x.as_ptr(), rows, out.as_mut_ptr(), relu) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn forward_avx512(&self, x: *const f32, rows: usize, out: *mut f32, relu: bool) -> bool {
        let (k, n) = (self.fan_in, self.fan_out);
        // Full tiles of 6 rows; the last few rows in tiles of 2, so that a single pair's
        // predict (2 rows) does not compute 4 throw-away rows.
        let tiles = || {
            let mut i = 0;
            std::iter::from_fn(move || {
                (i < rows).then(|| {
                    let height = if rows - i >= MR { MR } else { TAIL };
                    let tile = (i, height, height.min(rows - i));
                    i += tile.2;
                    tile
                })
            })
        };
        let panels = || {
            (0..n).step_by(PANEL).scan(0, move |line, start| {
                let width = (n - start).min(PANEL);
                let panel = (start, width, *line);
                *line += k * width.div_ceil(LANES);
                Some(panel)
            })
        };
        let run = |(i, height, tile): (usize, usize, usize), (start, width, line), next: bool| {
            let t = Tile {
                k,
                x: x.wrapping_add(i * k),
                rows: tile,
                w: self.lines[line..].as_ptr().cast(),
                bias: self.bias[start..].as_ptr(),
                out: out.wrapping_add(i * n + start),
                ldo: n,
                width,
                relu,
                ahead: start == 0,
                next: x.wrapping_add((i + tile) * k),
                next_rows: if next { (rows - i - tile).min(MR) } else { 0 },
            };
            // SAFETY: the tile's rows and columns lie inside `x`, `out` and this panel's
            // packed lines (see `forward`'s assertion and `new`).
            unsafe {
                if height == MR {
                    t.run_panel::<MR>()
                } else {
                    t.run_panel::<TAIL>()
                }
            }
        };
        let mut finite = true;
        if k * PANEL * size_of::<f32>() <= L1_PANEL_BYTES {
            // A panel fits in L1: it stays there while every tile of rows goes through it
            // (the first panel streams the rows in and prefetches ahead along them).
            for panel in panels() {
                for tile in tiles() {
                    finite &= run(tile, panel, false);
                }
            }
        } else {
            // A panel comes from L2 anyway: each tile of rows goes through every panel, the
            // first streaming the rows in and prefetching ahead along them, the others
            // finding them in L1 and prefetching the next tile's rows.
            for tile in tiles() {
                for panel in panels() {
                    finite &= run(tile, panel, true);
                }
            }
        }
        finite
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn forward_avx512(&self, _: *const f32, _: usize, _: *mut f32, _: bool) -> bool {
        unreachable!("PackedDense::new returns None off x86-64")
    }
}

/// Whether this CPU runs the packed kernel.
fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One step of a 6 × 64 tile in assembly: load the step's 4 weight lines (at byte `$w` of
/// the panel pointer), then for each of the 6 rows broadcast `x[r, k]` (at byte `$x` past
/// `row[r] + 4·i`) and add its products into the row's 4 accumulators.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
macro_rules! step_6x64 {
    ($w0:literal, $w1:literal, $w2:literal, $w3:literal, $x:literal) => {
        concat!(
            "vmovaps {b0}, zmmword ptr [{w} + ", $w0, "]\n",
            "vmovaps {b1}, zmmword ptr [{w} + ", $w1, "]\n",
            "vmovaps {b2}, zmmword ptr [{w} + ", $w2, "]\n",
            "vmovaps {b3}, zmmword ptr [{w} + ", $w3, "]\n",
            row_6x64!("{r0}", "{a0}", "{c00}", "{c01}", "{c02}", "{c03}", $x),
            row_6x64!("{r1}", "{a1}", "{c10}", "{c11}", "{c12}", "{c13}", $x),
            row_6x64!("{r2}", "{a0}", "{c20}", "{c21}", "{c22}", "{c23}", $x),
            row_6x64!("{r3}", "{a1}", "{c30}", "{c31}", "{c32}", "{c33}", $x),
            row_6x64!("{r4}", "{a0}", "{c40}", "{c41}", "{c42}", "{c43}", $x),
            row_6x64!("{r5}", "{a1}", "{c50}", "{c51}", "{c52}", "{c53}", $x),
        )
    };
}

/// One row of [`step_6x64!`]: a broadcast and 4 fused multiply-adds.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
macro_rules! row_6x64 {
    ($r:literal, $a:literal, $c0:literal, $c1:literal, $c2:literal, $c3:literal, $x:literal) => {
        concat!(
            "vbroadcastss ", $a, ", dword ptr [", $r, " + {i}*4 + ", $x, "]\n",
            "vfmadd231ps ", $c0, ", ", $a, ", {b0}\n",
            "vfmadd231ps ", $c1, ", ", $a, ", {b1}\n",
            "vfmadd231ps ", $c2, ", ", $a, ", {b2}\n",
            "vfmadd231ps ", $c3, ", ", $a, ", {b3}\n",
        )
    };
}

/// `$groups` (≥ 1) groups of 4 steps of a full 6 × 64 tile from step `$kk`: the same fused
/// multiply-adds, in the same order, as the generic loop of [`Tile::run`], written out in
/// assembly because the compiler's version of this loop spent a quarter of the vector ports'
/// slots on counting (5 scalar instructions per 24 FMAs) and could not be unrolled without
/// spilling the 24 accumulators. Here the loop counts once per 96 FMAs.
///
/// # Safety
/// AVX-512F; `$row[r] + $kk + 4·$groups` stays inside row `r` for all 6 rows, and `$w` holds
/// `4·$groups` steps of 4 aligned lines.
#[cfg(target_arch = "x86_64")]
macro_rules! tile_6x64_steps {
    ($acc:ident, $row:ident, $kk:expr, $w:expr, $groups:expr) => {
        std::arch::asm!(
            "2:",
            step_6x64!(0, 64, 128, 192, 0),
            step_6x64!(256, 320, 384, 448, 4),
            step_6x64!(512, 576, 640, 704, 8),
            step_6x64!(768, 832, 896, 960, 12),
            "add {i}, 4",
            "add {w}, 1024",
            "dec {n}",
            "jnz 2b",
            c00 = inout(zmm_reg) $acc[0][0],
            c01 = inout(zmm_reg) $acc[0][1],
            c02 = inout(zmm_reg) $acc[0][2],
            c03 = inout(zmm_reg) $acc[0][3],
            c10 = inout(zmm_reg) $acc[1][0],
            c11 = inout(zmm_reg) $acc[1][1],
            c12 = inout(zmm_reg) $acc[1][2],
            c13 = inout(zmm_reg) $acc[1][3],
            c20 = inout(zmm_reg) $acc[2][0],
            c21 = inout(zmm_reg) $acc[2][1],
            c22 = inout(zmm_reg) $acc[2][2],
            c23 = inout(zmm_reg) $acc[2][3],
            c30 = inout(zmm_reg) $acc[3][0],
            c31 = inout(zmm_reg) $acc[3][1],
            c32 = inout(zmm_reg) $acc[3][2],
            c33 = inout(zmm_reg) $acc[3][3],
            c40 = inout(zmm_reg) $acc[4][0],
            c41 = inout(zmm_reg) $acc[4][1],
            c42 = inout(zmm_reg) $acc[4][2],
            c43 = inout(zmm_reg) $acc[4][3],
            c50 = inout(zmm_reg) $acc[5][0],
            c51 = inout(zmm_reg) $acc[5][1],
            c52 = inout(zmm_reg) $acc[5][2],
            c53 = inout(zmm_reg) $acc[5][3],
            b0 = out(zmm_reg) _,
            b1 = out(zmm_reg) _,
            b2 = out(zmm_reg) _,
            b3 = out(zmm_reg) _,
            a0 = out(zmm_reg) _,
            a1 = out(zmm_reg) _,
            r0 = in(reg) $row[0],
            r1 = in(reg) $row[1],
            r2 = in(reg) $row[2],
            r3 = in(reg) $row[3],
            r4 = in(reg) $row[4],
            r5 = in(reg) $row[5],
            i = inout(reg) $kk => _,
            w = inout(reg) $w => _,
            n = inout(reg) $groups => _,
            options(nostack, readonly),
        )
    };
}

/// One tile: up to 6 rows × one panel of up to 64 columns.
struct Tile {
    k: usize,
    x: *const f32,
    rows: usize,
    w: *const f32,
    bias: *const f32,
    out: *mut f32,
    ldo: usize,
    width: usize,
    relu: bool,
    ahead: bool,
    next: *const f32,
    next_rows: usize,
}

#[cfg(target_arch = "x86_64")]
impl Tile {
    /// Runs the tile with `R` rows per register block and as many registers per row as
    /// the panel's width needs.
    ///
    /// # Safety
    /// As for [`Tile::run`].
    #[target_feature(enable = "avx512f")]
    unsafe fn run_panel<const R: usize>(&self) -> bool {
        // SAFETY: forwarded; `width.div_ceil(16)` registers cover the panel.
        unsafe {
            match self.width.div_ceil(LANES) {
                4 => self.run::<R, 4>(),
                3 => self.run::<R, 3>(),
                2 => self.run::<R, 2>(),
                _ => self.run::<R, 1>(),
            }
        }
    }

    /// Runs the tile as `R` rows (`rows ≤ R`) × `NZ` registers (`width ≤ 16·NZ`); returns
    /// whether every pre-activation was finite.
    ///
    /// # Safety
    /// AVX-512F; `x` holds `rows` rows of `k` values (row stride `k`), `w` holds `k` steps of
    /// `NZ` aligned lines, `bias` `width` values, and `out` `rows` rows of `width` values (row
    /// stride `ldo`).
    // Full 6 × 64 tiles (nearly all the work) run their steps in `tile_6x64_steps!`. The
    // generic loop keeps indexed loops over constant bounds and one flat loop over k: other
    // shapes (iterators, a nested loop per cache line, unrolling k) kept the accumulators in
    // memory and stored them on every step (seen in the disassembly; twice as slow).
    #[allow(clippy::needless_range_loop)]
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    unsafe fn run<const R: usize, const NZ: usize>(&self) -> bool {
        let k = self.k;
        // Rows past the tile's end repeat its last row: computed, never stored.
        let row: [*const f32; R] =
            std::array::from_fn(|r| self.x.wrapping_add(r.min(self.rows - 1) * k));
        let mut acc = [[_mm512_setzero_ps(); NZ]; R];
        let mut w = self.w;
        let (ahead, next, next_rows) = (self.ahead, self.next, self.next_rows);
        let prefetch = |kk: usize| {
            if ahead {
                for r in row {
                    _mm_prefetch::<_MM_HINT_T0>(r.wrapping_add(kk + 8 * LANES).cast());
                }
            } else {
                for r in 0..next_rows {
                    _mm_prefetch::<_MM_HINT_T1>(next.wrapping_add(r * k + kk).cast());
                }
            }
        };
        let mut kk = 0;
        if R == MR && NZ == 4 {
            while kk + LANES <= k {
                prefetch(kk);
                // SAFETY: the 16 steps from `kk` lie inside the rows and the panel.
                unsafe { tile_6x64_steps!(acc, row, kk, w, LANES / 4) };
                kk += LANES;
                w = w.wrapping_add(LANES * NZ * LANES);
            }
            let groups = (k - kk) / 4;
            if groups > 0 {
                prefetch(kk);
                // SAFETY: the `4·groups ≤ k − kk` steps lie inside the rows and the panel.
                unsafe { tile_6x64_steps!(acc, row, kk, w, groups) };
                kk += 4 * groups;
                w = w.wrapping_add(4 * groups * NZ * LANES);
            }
        }
        while kk < k {
            // One cache line of each row per 16 steps: prefetch once per line.
            if kk % LANES == 0 {
                prefetch(kk);
            }
            // SAFETY: `kk < k` and the step's `NZ` lines lie inside the panel.
            unsafe {
                let mut b = [_mm512_setzero_ps(); NZ];
                for j in 0..NZ {
                    b[j] = _mm512_load_ps(w.add(j * LANES));
                }
                for r in 0..R {
                    let a = _mm512_set1_ps(*row[r].add(kk));
                    for j in 0..NZ {
                        acc[r][j] = _mm512_fmadd_ps(a, b[j], acc[r][j]);
                    }
                }
                w = w.add(NZ * LANES);
            }
            kk += 1;
        }
        let zero = _mm512_setzero_ps();
        // `z·0` is ±0 when `z` is finite and NaN when it is not, and a NaN stays in the
        // row's running check: one FMA per register instead of a compare and a mask.
        let mut check = [zero; R];
        for j in 0..NZ {
            let cols = (self.width - j * LANES).min(LANES);
            let mask: __mmask16 = if cols == LANES { !0 } else { (1 << cols) - 1 };
            // SAFETY: `mask` covers the panel's columns only (the others are 0 in `acc`).
            let b = unsafe { _mm512_maskz_loadu_ps(mask, self.bias.add(j * LANES)) };
            for (r, acc) in acc.iter().enumerate().take(self.rows) {
                let mut z = _mm512_add_ps(acc[j], b);
                check[r] = _mm512_fmadd_ps(z, zero, check[r]);
                if self.relu {
                    // `0 > z ? 0 : z`, i.e. `z < 0 ? 0 : z`: keeps NaN (and −0), as the
                    // scalar path does (`max` returns its second operand on NaN).
                    z = _mm512_max_ps(zero, z);
                }
                // SAFETY: row `r < rows` of the output, the panel's columns only.
                unsafe {
                    _mm512_mask_storeu_ps(self.out.add(r * self.ldo + j * LANES), mask, z);
                }
            }
        }
        let mut bad: __mmask16 = 0;
        for c in check.iter().take(self.rows) {
            bad |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(*c, *c);
        }
        bad == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `act(x·W + b)` in f64, and whether the pre-activations are finite.
    fn reference(x: &[f32], w: &[f32], b: &[f32], k: usize, n: usize, relu: bool) -> Vec<f64> {
        x.chunks_exact(k)
            .flat_map(|row| {
                (0..n).map(move |j| {
                    let z = b[j] as f64
                        + (0..k)
                            .map(|i| row[i] as f64 * w[i * n + j] as f64)
                            .sum::<f64>();
                    if relu && z < 0.0 { 0.0 } else { z }
                })
            })
            .collect()
    }

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn packed_forward_matches_the_formula_on_every_tile_shape() {
        if !avx512() {
            eprintln!("skipped: this CPU has no AVX-512, so the packed kernel is never used");
            return;
        }
        // Panels of 1–4 registers with partial last registers, row tails 1–5, any fan_in (the
        // assembly steps of full tiles: whole lines of 16, groups of 4, single steps after).
        for (k, n) in [
            (1, 1),
            (5, 17),
            (33, 64),
            (100, 65),
            (128, 128),
            (7, 130),
            (21, 64),
            (784, 48),
            (784, 64),
        ] {
            for rows in [1, 2, 5, 6, 7, 13] {
                let (x, w, b) = (values(rows * k, 1), values(k * n, 2), values(n, 3));
                let layer = PackedDense::new(&w, &b, k, n).unwrap();
                for relu in [false, true] {
                    // Sentinels past the output must survive: only `rows × n` values are written.
                    let mut out = vec![f32::MAX; rows * n + 3];
                    assert!(layer.forward(&x, rows, &mut out, relu));
                    let want = reference(&x, &w, &b, k, n, relu);
                    for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
                        let tol = 1e-5 * (1.0 + (k as f64).sqrt());
                        assert!(
                            (got as f64 - want).abs() <= tol,
                            "k {k} n {n} rows {rows} relu {relu}: [{i}] {got} vs {want}"
                        );
                    }
                    assert!(
                        out[rows * n..].iter().all(|&v| v == f32::MAX),
                        "wrote past the end"
                    );
                }
            }
        }
    }

    /// Each output is the same chain of operations wherever its row falls (full tile, tail
    /// tile, alone): results are bit-identical however a batch is split. (Full tiles run in
    /// assembly, single rows in the generic loop: this also checks the two agree bit for bit.)
    #[test]
    fn outputs_do_not_depend_on_how_rows_are_split() {
        if !avx512() {
            eprintln!("skipped: this CPU has no AVX-512, so the packed kernel is never used");
            return;
        }
        for (k, n) in [(100, 128), (784, 70), (7, 64), (21, 64)] {
            let rows = 13;
            let (x, w, b) = (values(rows * k, 7), values(k * n, 8), values(n, 9));
            let layer = PackedDense::new(&w, &b, k, n).unwrap();
            let mut whole = vec![0.0; rows * n];
            layer.forward(&x, rows, &mut whole, true);
            for r in 0..rows {
                let mut one = vec![0.0; n];
                layer.forward(&x[r * k..(r + 1) * k], 1, &mut one, true);
                assert_eq!(&whole[r * n..(r + 1) * n], &one[..], "k {k} n {n} row {r}");
            }
        }
    }

    #[test]
    fn a_non_finite_input_value_flags_its_block_whatever_the_weights() {
        if !avx512() {
            eprintln!("skipped: this CPU has no AVX-512, so the packed kernel is never used");
            return;
        }
        let (k, n, rows) = (20, 70, 9);
        let mut w = values(k * n, 4);
        // Column 3's weights are all zero and row 5 of W is all zero: ±∞·0 is NaN.
        for i in 0..k {
            w[i * n + 3] = 0.0;
        }
        w[5 * n..6 * n].fill(0.0);
        let layer = PackedDense::new(&w, &values(n, 5), k, n).unwrap();
        let x = values(rows * k, 6);
        let mut out = vec![0.0; rows * n];
        assert!(layer.forward(&x, rows, &mut out, true));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for (r, c) in [(0, 0), (8, 5), (4, 19)] {
                let mut x = x.clone();
                x[r * k + c] = bad;
                assert!(
                    !layer.forward(&x, rows, &mut out, true),
                    "{bad} at ({r}, {c})"
                );
                // Every pre-activation of the row is non-finite; the ReLU keeps NaN and +∞
                // and maps −∞ to 0, so the flag, not the output, is the check.
                let row = &out[r * n..(r + 1) * n];
                assert!(row.iter().all(|v| !v.is_finite() || *v == 0.0));
            }
        }
        // Finite inputs whose products overflow are flagged too (callers then scan the input).
        let mut x = x.clone();
        x[k..2 * k].fill(f32::MAX);
        assert!(!layer.forward(&x, rows, &mut out, false));
    }
}
