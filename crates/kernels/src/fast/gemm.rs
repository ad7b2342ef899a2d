//! The int16 GEMM every fast conv-like kernel ends in: `out[r][n] = stage(Σ_k a[r][k] · b[k][n])`
//! for up to [`MR`] rows at a time, with `b` packed once by [`PackedB::new`].
//!
//! Packing: columns in blocks of [`NR`] (zero-padded), depth in pairs (zero-padded to even); a
//! block holds, for each depth pair `p`, the [`NR`] columns' `(b[2p][n], b[2p+1][n])` side by
//! side. One `vpmaddwd` of a broadcast row pair `(a[2p], a[2p+1])` with 8 such column pairs gives 8
//! exact int32 partial sums (each operand fits in 9 bits plus sign), added to the accumulators.

use super::stage::OutputStage;
use super::Isa;

/// Columns per packed block.
pub(crate) const NR: usize = 16;
/// Rows per call of [`gemm_rows`].
pub(crate) const MR: usize = 4;

/// The right-hand matrix, `k × n`, packed for the inner loop.
#[derive(Clone, Debug)]
pub(crate) struct PackedB {
    /// Depth padded to even: the length of one row of `a`.
    pub kp: usize,
    pub n: usize,
    data: Vec<i16>,
}

impl PackedB {
    /// Packs `b[k][n] = value(k, n)`.
    pub fn new(k: usize, n: usize, value: impl Fn(usize, usize) -> i16) -> PackedB {
        let kp = k.next_multiple_of(2);
        let blocks = n.div_ceil(NR);
        let mut data = vec![0i16; blocks * kp * NR];
        for block in 0..blocks {
            for kk in 0..k {
                for lane in 0..NR {
                    let col = block * NR + lane;
                    if col < n {
                        data[(block * kp / 2 + kk / 2) * 2 * NR + lane * 2 + kk % 2] = value(kk, col);
                    }
                }
            }
        }
        PackedB { kp, n, data }
    }

    pub fn padded_n(&self) -> usize {
        self.n.div_ceil(NR) * NR
    }

    fn block(&self, block: usize) -> &[i16] {
        &self.data[block * self.kp * NR..(block + 1) * self.kp * NR]
    }
}

/// Rows `0..rows` (`rows ≤ MR`) of `stage(a · b)`: `a` holds `rows` rows of `b.kp` values (the
/// padding columns 0), row `r` of the result goes to `out[r · out_stride..][..b.n]`.
pub(crate) fn gemm_rows(
    isa: Isa,
    b: &PackedB,
    stage: &OutputStage,
    a: &[i16],
    rows: usize,
    out: &mut [i8],
    out_stride: usize,
) {
    assert!((1..=MR).contains(&rows) && a.len() >= rows * b.kp);
    assert!(out.len() >= (rows - 1) * out_stride + b.n && stage.bias.len() >= b.padded_n());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` and `Isa::Avx512Vnni` are only constructed after run-time detection
        // (`Isa::checked`), and the lengths the kernel reads and writes were asserted above.
        Isa::Avx2 | Isa::Avx512Vnni => unsafe {
            match rows {
                1 => avx2::gemm::<1>(b, stage, a, out, out_stride),
                2 => avx2::gemm::<2>(b, stage, a, out, out_stride),
                3 => avx2::gemm::<3>(b, stage, a, out, out_stride),
                _ => avx2::gemm::<4>(b, stage, a, out, out_stride),
            }
        },
        _ => portable(b, stage, a, rows, out, out_stride),
    }
}

fn portable(b: &PackedB, stage: &OutputStage, a: &[i16], rows: usize, out: &mut [i8], out_stride: usize) {
    for block in 0..b.n.div_ceil(NR) {
        let packed = b.block(block);
        let cols = NR.min(b.n - block * NR);
        for r in 0..rows {
            let row = &a[r * b.kp..(r + 1) * b.kp];
            let mut acc = [0i32; NR];
            for (pair, w) in row.chunks_exact(2).zip(packed.chunks_exact(2 * NR)) {
                let (a0, a1) = (pair[0] as i32, pair[1] as i32);
                for (lane, acc) in acc.iter_mut().enumerate() {
                    let sum = a0 * w[2 * lane] as i32 + a1 * w[2 * lane + 1] as i32;
                    *acc = acc.wrapping_add(sum);
                }
            }
            let dst = &mut out[r * out_stride + block * NR..][..cols];
            for (lane, d) in dst.iter_mut().enumerate() {
                *d = stage.apply(block * NR + lane, acc[lane]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::stage::{avx2 as vstage, OutputStage};
    use super::{PackedB, NR};

    /// # Safety
    /// AVX2 available; `a` has `R · b.kp` values; `out` has room for `R` rows at `out_stride`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn gemm<const R: usize>(b: &PackedB, stage: &OutputStage, a: &[i16], out: &mut [i8], out_stride: usize) {
        let pairs = b.kp / 2;
        let a_ptr = a.as_ptr() as *const i32;
        for block in 0..b.n.div_ceil(NR) {
            let w = b.block(block).as_ptr() as *const __m256i;
            let mut acc = [[_mm256_setzero_si256(); 2]; R];
            for p in 0..pairs {
                // SAFETY: `p < pairs` and the block holds `pairs` × 2 vectors; row `r` of `a` holds
                // `pairs` int16 pairs.
                unsafe {
                    let (w0, w1) = (_mm256_loadu_si256(w.add(2 * p)), _mm256_loadu_si256(w.add(2 * p + 1)));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let x = _mm256_set1_epi32(a_ptr.add(r * pairs + p).read_unaligned());
                        acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(x, w0));
                        acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(x, w1));
                    }
                }
            }
            let col = block * NR;
            let cols = NR.min(b.n - col);
            for (r, acc) in acc.iter().enumerate() {
                // SAFETY: the stage is padded to whole blocks; the row has `cols` bytes at `col`.
                unsafe {
                    let v = vstage::pack16(vstage::apply8(stage, col, acc[0]), vstage::apply8(stage, col + 8, acc[1]));
                    vstage::store_partial(v, out.as_mut_ptr().add(r * out_stride + col), cols);
                }
            }
        }
    }
}
